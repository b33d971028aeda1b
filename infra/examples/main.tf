# Deploys every lambda and fargate tool of a catalog (examples/catalog.aws.yaml by default) with
# its network and the gateway. The catalog is read once, by the catalog module; nothing in this
# root names a tool.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  catalog_path = coalesce(var.catalog_path, "${path.module}/../../examples/catalog.aws.yaml")

  # The endpoints the gateway's calls need for this catalog (module.gateway.endpoint_actions).
  gateway_uses = {
    sts    = length(module.catalog.local_work_roles) > 0 || anytrue([for t in values(module.catalog.tools) : length(t.statements) > 0])
    lambda = anytrue([for t in values(module.catalog.tools) : t.backend == "lambda"])
    ecs    = module.catalog.has_fargate
    s3     = module.catalog.has_fargate
    # The approvals table, which every deployment has.
    dynamodb = true
  }
  gateway_endpoints = { for e, used in local.gateway_uses : e => module.gateway.endpoint_actions[e] if used }

  # What the gateway needs to dispatch, by tool; also the switchboard_bindings output.
  bindings = {
    version          = 1
    region           = data.aws_region.current.name
    account_id       = data.aws_caller_identity.current.account_id
    gateway_role_arn = module.gateway.role_arn
    invocation_bucket = module.catalog.has_fargate ? {
      name   = module.gateway.invocation_bucket.name
      prefix = module.gateway.invocation_bucket.prefix
    } : null
    approvals = { table_name = module.gateway.approvals_table.name }
    tools = merge(
      {
        for name, t in module.tool : name => merge(
          t.binding,
          t.backend == "fargate" ? { cluster_arn = module.gateway.tools_cluster_arn } : {}
        )
      },
      # A local tool with permissions: no unit, only the work role its calls are minted for.
      {
        for name, r in module.local_work_role : name => {
          backend       = "local"
          work_role_arn = r.arn
          session_tags  = module.catalog.local_work_roles[name].session_tags
        }
      }
    )
    local_tools = module.catalog.skipped_local_tools
  }
}

data "aws_partition" "current" {}

module "catalog" {
  source       = "../modules/catalog"
  catalog_path = local.catalog_path
  account_id   = data.aws_caller_identity.current.account_id
  region       = data.aws_region.current.name
  partition    = data.aws_partition.current.partition
}

# One key for every log group of the deployment (tools, gateway, flow logs, DNS queries).
module "log_key" {
  source      = "../modules/log-key"
  name_prefix = var.name_prefix
}

module "network" {
  source = "../modules/network"

  name_prefix     = var.name_prefix
  log_kms_key_arn = module.log_key.arn
  az_count        = var.az_count
  # The tools' endpoints, and those the gateway's own calls need (its role works only from this
  # VPC): STS when a tool has a work role, Lambda for Lambda tools, ECS for Fargate tools,
  # DynamoDB for the approvals table (a gateway endpoint, free, routed from its subnets only). The
  # session key's secretsmanager only when a tool declares it (ECS falls back to the public API).
  endpoints = {
    for e in distinct(concat(keys(module.catalog.endpoint_actions), keys(local.gateway_endpoints))) :
    e => sort(distinct(concat(lookup(module.catalog.endpoint_actions, e, []), lookup(module.gateway.endpoint_actions, e, []))))
  }
  public_subnets          = true
  flow_log_retention_days = var.log_retention_days

  # DNS Firewall answers the endpoints' names and, when the gateway runs in this VPC, the names it
  # resolves: its AWS APIs and image, and its token issuer's key host.
  dns_allowed_domains = sort(distinct(concat(
    module.gateway.dns_names,
    var.expose_gateway ? module.catalog.gateway_dns_names : [],
    var.dns_allowed_domains,
  )))
  dns_query_log_retention_days = var.log_retention_days
}

module "tool" {
  source   = "../modules/tool"
  for_each = module.catalog.tools

  name_prefix                 = var.name_prefix
  tool                        = each.value
  vpc_id                      = module.network.vpc_id
  subnet_ids                  = module.network.private_subnet_ids
  subnet_arns                 = module.network.private_subnet_arns
  subnet_cidrs                = module.network.private_subnet_cidrs
  endpoint_security_group_ids = module.network.endpoint_security_group_ids
  s3_prefix_list_id           = module.network.s3_prefix_list_id
  gateway_role_arn            = module.gateway.role_arn
  permission_boundary_arn     = module.gateway.tool_permission_boundary_arn
  log_retention_days          = var.log_retention_days
  log_kms_key_arn             = module.log_key.arn
}

module "local_work_role" {
  source   = "../modules/work-role"
  for_each = module.catalog.local_work_roles

  name_prefix             = var.name_prefix
  tool_name               = each.key
  session_tags            = each.value.session_tags
  statements              = each.value.statements
  gateway_role_arn        = module.gateway.role_arn
  permission_boundary_arn = module.gateway.tool_permission_boundary_arn
}

# The gateway's session key, the same in every task: Secrets Manager generates one at each plan
# and apply, and it is written (write-only) only when gateway_session_key_version changes, so it is
# in no plan and no state.
ephemeral "aws_secretsmanager_random_password" "gateway_session_key" {
  password_length     = 64
  exclude_punctuation = true
  include_space       = false
}

module "gateway" {
  source = "../modules/gateway"

  name_prefix       = var.name_prefix
  vpc_id            = module.network.vpc_id
  public_subnet_ids = module.network.public_subnet_ids
  tool_subnet_arns  = module.network.private_subnet_arns

  endpoint_security_group_ids = module.network.endpoint_security_group_ids
  invocation_bucket           = module.catalog.has_fargate
  s3_endpoint_id              = lookup(module.network.endpoint_ids, "s3", null)
  perimeter                   = var.gateway_perimeter

  tools = {
    for name, t in module.tool : name => {
      backend             = t.backend
      execution_role_arn  = t.execution_role_arn
      work_role_arn       = t.work_role_arn
      function_arn        = t.function_arn
      task_definition_arn = t.task_definition_arn
    }
  }
  local_work_role_arns       = [for r in module.local_work_role : r.arn]
  tool_permission_statements = module.catalog.boundary_statements
  tool_ecr_repository_arns   = module.catalog.ecr_repository_arns

  image                = var.gateway_image
  environment          = { SWITCHBOARD_BINDINGS = jsonencode(local.bindings) }
  expose               = var.expose_gateway
  certificate_arn      = var.certificate_arn
  ingress_cidrs        = var.ingress_cidrs
  deletion_protection  = var.deletion_protection
  bucket_force_destroy = var.bucket_force_destroy
  log_retention_days   = var.gateway_log_retention_days
  log_kms_key_arn      = module.log_key.arn
  session_key          = ephemeral.aws_secretsmanager_random_password.gateway_session_key.random_password
  session_key_version  = var.gateway_session_key_version
}

# What the tools read and wrote, recorded by CloudTrail (var.trail; infra/modules/trail): S3 data
# events of every bucket a tool's permissions name (the bucket of each arn:<partition>:s3:::bucket
# or arn:<partition>:s3:::bucket/key resource) and of the invocation bucket, Lambda Invoke events of
# the Lambda tools. A bucket named with a wildcard or a policy variable cannot be selected exactly;
# the module refuses it at plan.
locals {
  trail_bucket_arns = sort(distinct(concat(
    [
      for r in flatten([for s in module.catalog.boundary_statements : s.Resource]) :
      "arn:${data.aws_partition.current.partition}:s3:::${regex("^arn:[^:]+:s3:::([^/]+)", r)[0]}"
      if can(regex("^arn:[^:]+:s3:::[^/]+", r))
    ],
    module.gateway.invocation_bucket == null ? [] : [module.gateway.invocation_bucket.arn],
  )))
}

module "trail" {
  source = "../modules/trail"
  count  = var.trail ? 1 : 0

  name_prefix          = var.name_prefix
  s3_bucket_arns       = local.trail_bucket_arns
  lambda_function_arns = [for t in module.tool : t.function_arn if t.backend == "lambda"]
}
