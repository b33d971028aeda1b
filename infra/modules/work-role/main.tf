# The work role of one catalog tool: what the tool may do for one call, assumed only by the
# gateway, per call, with exactly the catalog's session tags. The tool module makes one for every
# lambda and fargate tool with permissions; infra/examples makes one for every local tool with
# permissions (it runs on the gateway's machine, but with the same identity model as in the cloud).

locals {
  role_name = "${var.name_prefix}-${var.tool_name}-work"
}

resource "terraform_data" "checks" {
  input = var.tool_name

  lifecycle {
    precondition {
      condition     = length(local.role_name) <= 64
      error_message = "Tool ${var.tool_name}: name_prefix plus tool name is too long for IAM role names (at most 59 characters together)."
    }
    precondition {
      condition     = var.source_vpc_id == null || length(var.source_subnet_cidrs) > 0
      error_message = "Tool ${var.tool_name}: a work role used from a VPC needs the address ranges of the subnets its unit runs in (source_subnet_cidrs)."
    }
    precondition {
      condition     = length(var.statements) > 0
      error_message = "Tool ${var.tool_name}: a work role needs at least one permission statement."
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = local.role_name
  path                 = "/switchboard/${var.name_prefix}/"
  description          = "Work role of tool ${var.tool_name}: assumed by the gateway only, per call"
  permissions_boundary = var.permission_boundary_arn
  max_session_duration = 3600
  assume_role_policy = templatefile("${path.module}/../../../policies/tool-work-trust.json.tftpl", {
    gateway_role_arn = var.gateway_role_arn
    session_tags     = var.session_tags
    tool_name        = var.tool_name
    # What the gateway refuses before it asks STS (gateway/src/credentials/tags.rs), refused again
    # here, so that a bug in the gateway cannot mint a session for a malformed tenant.
    tenant_refused = concat(
      ["", "-*", "${join("", [for i in range(64) : "?"])}*"],
      [for c in ["/", ".", "$${*}", "$${?}", ":", "=", "+", "@", "_", " "] : "*${c}*"],
      [for c in split("", "ABCDEFGHIJKLMNOPQRSTUVWXYZ") : "*${c}*"],
    )
    principal_too_long = "${join("", [for i in range(129) : "?"])}*"
    # The approver is checked like the principal, and is never empty when the tag is sent.
    approver_refused = ["", "${join("", [for i in range(129) : "?"])}*"]
  })

  tags = { "switchboard:tool" = var.tool_name, "switchboard:role" = "work" }

  depends_on = [terraform_data.checks]
}

resource "aws_iam_role_policy" "this" {
  name = "catalog-permissions"
  role = aws_iam_role.this.id
  policy = templatefile("${path.module}/../../../policies/tool-work-permissions.json.tftpl", {
    statements          = var.statements
    source_vpc_id       = var.source_vpc_id
    source_subnet_cidrs = var.source_subnet_cidrs
  })
}
