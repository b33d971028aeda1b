# One catalog tool as an isolated unit: a Lambda function or a Fargate task definition, with its
# own execution identity, its own work role (when the catalog gives it permissions), its own
# security group and its own log group.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  policies   = "${path.module}/../../../policies"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  name            = var.tool.name
  backend         = var.tool.backend
  is_lambda       = local.backend == "lambda"
  is_fargate      = local.backend == "fargate"
  timeout         = var.tool.timeout_seconds
  memory          = var.tool.memory_mb
  storage         = var.tool.ephemeral_storage_mb
  session_tags    = var.tool.session_tags
  work_statements = var.tool.statements
  has_work_role   = length(var.tool.statements) > 0
  endpoints       = toset(var.tool.reach)
  interface_reach = toset([for e in var.tool.reach : e if e != "s3"])

  unit_name      = "${var.name_prefix}-${local.name}"
  role_path      = "/switchboard/${var.name_prefix}/"
  log_group_name = "/switchboard/${var.name_prefix}/tools/${local.name}"
  log_group_arn  = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"

  tags = { "switchboard:tool" = local.name }

  # Lambda
  lambda_package = local.is_lambda ? var.tool.lambda.package_path : null
  architecture   = local.is_lambda ? var.tool.lambda.architecture : null

  # Fargate
  image               = local.is_fargate ? var.tool.fargate.image : null
  ecr_repository_arns = local.is_fargate ? [var.tool.fargate.ecr_repository_arn] : []
  cpu                 = local.is_fargate ? var.tool.fargate.cpu : null
  command             = local.is_fargate ? var.tool.fargate.command : []

  # Fargate's valid memory sizes (MiB) for each CPU size.
  fargate_memory = {
    256  = [512, 1024, 2048]
    512  = [for g in range(1, 5) : g * 1024]
    1024 = [for g in range(2, 9) : g * 1024]
    2048 = [for g in range(4, 17) : g * 1024]
    4096 = [for g in range(8, 31) : g * 1024]
  }
}

# --- checks the catalog loader cannot make (they need the deployment's context) -------------

resource "terraform_data" "checks" {
  input = local.name

  lifecycle {
    precondition {
      condition     = length("${local.unit_name}-exec") <= 64
      error_message = "Tool ${local.name}: name_prefix plus tool name is too long for IAM role names (at most 59 characters together)."
    }
    precondition {
      condition     = alltrue([for e in local.interface_reach : contains(keys(var.endpoint_security_group_ids), e)])
      error_message = "Tool ${local.name}: the network has no endpoint for one of ${join(", ", local.interface_reach)}."
    }
    precondition {
      condition     = !contains(local.endpoints, "s3") || var.s3_prefix_list_id != null
      error_message = "Tool ${local.name} reaches s3 but the network has no S3 gateway endpoint."
    }
    precondition {
      condition     = !local.is_lambda || (local.storage >= 512 && local.storage <= 10240 && local.memory >= 128 && local.memory <= 10240)
      error_message = "Tool ${local.name}: Lambda needs ephemeral_storage_mb in 512..10240 and memory_mb in 128..10240."
    }
    precondition {
      condition     = local.is_lambda ? contains(["x86_64", "arm64"], local.architecture) : true
      error_message = "Tool ${local.name}: lambda.architecture must be x86_64 or arm64."
    }
    precondition {
      condition     = !local.is_fargate || (local.storage >= 21504 && local.storage <= 204800)
      error_message = "Tool ${local.name}: Fargate needs ephemeral_storage_mb in 21504..204800."
    }
    precondition {
      condition     = local.is_fargate ? contains(lookup(local.fargate_memory, tostring(local.cpu), []), local.memory) : true
      error_message = "Tool ${local.name}: fargate.cpu ${local.is_fargate ? local.cpu : 0} cannot have memory_mb ${local.memory} (see Fargate's task sizes)."
    }
  }
}

# --- network: a security group with no egress, or 443 to the declared endpoints only ---------

resource "aws_security_group" "this" {
  # checkov:skip=CKV2_AWS_5:A Fargate tool's group is attached per call: the gateway names it in RunTask. A Lambda tool's group is attached by vpc_config.
  name        = "${var.name_prefix}-tool-${local.name}"
  description = "Tool ${local.name}: no egress except HTTPS to its declared VPC endpoints"
  vpc_id      = var.vpc_id
  # No inline rules: Terraform removes the default allow-all egress rule when it creates the group,
  # and the only rules are the ones below.

  tags = merge(local.tags, { Name = "${var.name_prefix}-tool-${local.name}" })
}

resource "aws_vpc_security_group_egress_rule" "to_endpoint" {
  for_each = local.interface_reach

  security_group_id            = aws_security_group.this.id
  description                  = "HTTPS to the ${each.key} VPC endpoint"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = var.endpoint_security_group_ids[each.key]

  tags = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "endpoint_from_tool" {
  for_each = local.interface_reach

  security_group_id            = var.endpoint_security_group_ids[each.key]
  description                  = "HTTPS from tool ${local.name}"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.this.id

  tags = local.tags
}

resource "aws_vpc_security_group_egress_rule" "to_s3" {
  count = contains(local.endpoints, "s3") ? 1 : 0

  security_group_id = aws_security_group.this.id
  description       = "HTTPS to the S3 gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = var.s3_prefix_list_id

  tags = local.tags
}

# --- logs --------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  # checkov:skip=CKV_AWS_338:Retention is a deployment choice (log_retention_days, 30 days by default); tool output is not an audit record, the gateway's audit line is.

  tags = local.tags
}

# --- execution identity: its own logs, its own image, nothing that touches data -------------

resource "aws_iam_role" "execution" {
  name                 = "${local.unit_name}-exec"
  path                 = local.role_path
  description          = "Execution identity of tool ${local.name}: own logs and image only"
  permissions_boundary = var.permission_boundary_arn
  assume_role_policy = (
    local.is_lambda
    ? templatefile("${local.policies}/lambda-trust.json.tftpl", {})
    : templatefile("${local.policies}/ecs-tasks-trust.json.tftpl", {
      partition  = local.partition
      region     = local.region
      account_id = local.account_id
      # The tools' cluster, as infra/modules/gateway names it: no task of another cluster (the
      # gateway's) gets this role.
      cluster_name = "${var.name_prefix}-tools"
    })
  )

  tags = merge(local.tags, { "switchboard:role" = "execution" })
}

resource "aws_iam_role_policy" "execution" {
  name = "own-logs-and-image"
  role = aws_iam_role.execution.id
  policy = (
    local.is_lambda
    ? templatefile("${local.policies}/tool-lambda-execution.json.tftpl", {
      partition           = local.partition
      region              = local.region
      account_id          = local.account_id
      log_group_arn       = local.log_group_arn
      subnet_arns         = var.subnet_arns
      security_group_arns = [aws_security_group.this.arn]
    })
    : templatefile("${local.policies}/ecs-task-execution.json.tftpl", {
      log_group_arn       = local.log_group_arn
      ecr_repository_arns = local.ecr_repository_arns
    })
  )
}

# --- work role: what the tool may do, for one call, as minted by the gateway ----------------

module "work_role" {
  source = "../work-role"
  count  = local.has_work_role ? 1 : 0

  name_prefix             = var.name_prefix
  tool_name               = local.name
  session_tags            = local.session_tags
  statements              = local.work_statements
  gateway_role_arn        = var.gateway_role_arn
  permission_boundary_arn = var.permission_boundary_arn
  # The unit reaches AWS only through this VPC's endpoints, from these subnets: credentials handed
  # out by the tool (in its result, say) fail anywhere else, the gateway's subnets of the same VPC
  # included.
  source_vpc_id       = var.vpc_id
  source_subnet_cidrs = var.subnet_cidrs
}

# The work role was made here before local tools needed one too.
moved {
  from = aws_iam_role.work[0]
  to   = module.work_role[0].aws_iam_role.this
}

moved {
  from = aws_iam_role_policy.work[0]
  to   = module.work_role[0].aws_iam_role_policy.this
}

# --- the unit: Lambda ------------------------------------------------------------------------

resource "aws_lambda_function" "this" {
  count = local.is_lambda ? 1 : 0
  # checkov:skip=CKV_AWS_50:Active tracing would need xray:PutTraceSegments and xray:PutTelemetryRecords on the execution role, whose Deny FunctionCodeGetsNothingButLogs leaves what runs in the function nothing but its logs, and the VPC has no X-Ray endpoint; the gateway's audit line and metrics trace every call.
  # checkov:skip=CKV_AWS_115:Each gateway task bounds the calls it runs at once (limits.max_in_flight), and this stack grants lambda:InvokeFunction on the functions to the gateway role only; reserving concurrency per tool would take capacity from the account's unreserved pool.
  # checkov:skip=CKV_AWS_116:The gateway invokes synchronously (RequestResponse); a dead-letter queue only applies to asynchronous invocations.
  # checkov:skip=CKV_AWS_173:The functions have no environment variables at all (tests/infra asserts it), so there is nothing to encrypt with a KMS key.
  # checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile, which this stack does not create; docs/deploy-aws.md lists it as an option (Hardening beyond the defaults). The package comes from this repository's own build.

  function_name    = local.unit_name
  description      = "Switchboard tool ${local.name}"
  role             = aws_iam_role.execution.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [local.architecture]
  filename         = local.lambda_package
  source_code_hash = filebase64sha256(local.lambda_package)
  timeout          = local.timeout
  memory_size      = local.memory

  ephemeral_storage {
    size = local.storage
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.this.id]
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this.name
  }

  tags = local.tags

  depends_on = [aws_iam_role_policy.execution, terraform_data.checks]
}

# --- the unit: Fargate -----------------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  count = local.is_fargate ? 1 : 0

  family                   = local.unit_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(local.cpu)
  memory                   = tostring(local.memory)
  execution_role_arn       = aws_iam_role.execution.arn
  # No task role: the container gets no AWS identity of its own. The credentials for one call
  # arrive with the invocation, through a presigned URL the gateway passes.

  ephemeral_storage {
    size_in_gib = ceil(local.storage / 1024)
  }

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "scratch"
  }

  container_definitions = jsonencode([
    merge(
      {
        name                   = "tool"
        image                  = local.image
        essential              = true
        memory                 = local.memory
        readonlyRootFilesystem = true
        user                   = "65534:65534"
        mountPoints            = [{ sourceVolume = "scratch", containerPath = "/tmp", readOnly = false }]
        linuxParameters = {
          initProcessEnabled = true
          capabilities       = { drop = ["ALL"] }
        }
        logConfiguration = {
          logDriver = "awslogs"
          options = {
            awslogs-group         = aws_cloudwatch_log_group.this.name
            awslogs-region        = local.region
            awslogs-stream-prefix = "tool"
          }
        }
      },
      length(local.command) > 0 ? { command = local.command } : {}
    )
  ])

  tags = local.tags

  depends_on = [terraform_data.checks]
}
