# The gateway: its identity (exactly the rights ARCHITECTURE.md lists, on the tool resources only),
# the permission boundary every tool role carries, the invocation bucket for Fargate hand-over, the
# clusters, the session key and the approvals table every replica shares, and the ECS service
# behind a TLS load balancer, its tasks findable by each other (service discovery) for forwarding
# cancellations.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  policies   = "${path.module}/../../../policies"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  role_path  = "/switchboard/${var.name_prefix}/"

  work_role_arns       = sort(concat(compact([for t in var.tools : t.work_role_arn]), var.local_work_role_arns))
  function_arns        = sort(compact([for t in var.tools : t.function_arn]))
  task_definition_arns = sort(compact([for t in var.tools : t.task_definition_arn]))
  task_role_arns       = sort([for t in var.tools : t.execution_role_arn if t.backend == "fargate"])

  tool_log_group_arn_prefix = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/switchboard/${var.name_prefix}/tools/"

  bucket_name = "${var.name_prefix}-invocations-${local.account_id}-${local.region}"

  image = (
    length(regexall("^[^/]+[.:][^/]*/", var.image)) > 0
    ? var.image
    : "${local.account_id}.dkr.ecr.${local.region}.amazonaws.com/${var.image}"
  )
  ecr_repository_arns = [
    for m in regexall("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/([^:@]+)", local.image) :
    "arn:${local.partition}:ecr:${m[1]}:${m[0]}:repository/${m[2]}"
  ]
  log_group_name = "/switchboard/${var.name_prefix}/gateway"

  # The tool modules name the tools' cluster the same way (their execution roles trust its tasks).
  gateway_cluster_name = "${var.name_prefix}-gateway"
  tools_cluster_name   = "${var.name_prefix}-tools"

  # Sessions any replica serves (docs/architecture.md): one key for all tasks, from Secrets
  # Manager; cancellations and DELETEs forwarded to the name that resolves to every task.
  session_key_name        = "${var.name_prefix}-gateway-session-key"
  session_key_arn_pattern = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${local.session_key_name}-??????"
  discovery_namespace     = "${var.name_prefix}.internal"
  peer_name               = "gateway.${local.discovery_namespace}"
  peers                   = var.peer_discovery ? "${local.peer_name}:${var.container_port}" : null
  container_environment = merge(
    var.peer_discovery ? { SWITCHBOARD_PEERS = local.peers } : {},
    var.environment,
  )

  # The names the gateway's tasks resolve when they run in the tools' VPC (expose = true), where
  # DNS Firewall answers only listed names: the AWS APIs the gateway calls, its log endpoint, and
  # its image's registry, ECR API and layer bucket.
  dns_suffix   = data.aws_partition.current.dns_suffix
  image_region = one([for m in regexall("^[0-9]{12}\\.dkr\\.ecr\\.([a-z0-9-]+)\\.", local.image) : m[0]])
  # Secrets Manager is resolved by the task's own interface when ECS fetches the session key; the
  # peers' name is the service discovery record (a private hosted zone of the same VPC).
  dns_names = var.expose ? sort(distinct(concat(
    [for api in ["sts", "lambda", "ecs", "logs", "s3", "secretsmanager", "dynamodb"] : "${api}.${local.region}.${local.dns_suffix}"],
    ["*.s3.${local.region}.${local.dns_suffix}", split("/", local.image)[0]],
    local.image_region == null ? [] : ["api.ecr.${local.image_region}.${local.dns_suffix}", "*.s3.${local.image_region}.${local.dns_suffix}"],
    var.peer_discovery ? [local.peer_name] : [],
  ))) : []

  # policies/gateway.json.tftpl lists every right the architecture gives the gateway; a statement
  # whose resources render empty (no Fargate tool, no work role, ...) is left out.
  gateway_policy_all = jsondecode(templatefile("${local.policies}/gateway.json.tftpl", {
    partition            = local.partition
    region               = local.region
    account_id           = local.account_id
    bucket_arn           = one(aws_s3_bucket.invocations[*].arn)
    invocation_prefix    = var.invocation_prefix
    work_role_arns       = local.work_role_arns
    function_arns        = local.function_arns
    task_definition_arns = local.task_definition_arns
    tools_cluster_arn    = aws_ecs_cluster.tools.arn
    tools_cluster_name   = aws_ecs_cluster.tools.name
    task_role_arns       = local.task_role_arns
    vpc_id               = var.perimeter ? var.vpc_id : null
    approvals_table_arn  = aws_dynamodb_table.approvals.arn
    approvals_index      = local.approvals_index
  }))
  gateway_policy = merge(local.gateway_policy_all, {
    Statement = [for st in local.gateway_policy_all.Statement : st if length(st.Resource) > 0]
  })
  log_group_arn = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"

  # The approvals (docs/approvals.md): the table, and its sparse index of unsettled approvals by
  # what the call is bound to, as gateway/src/approval/dynamo.rs reads and writes them.
  approvals_table_name = "${var.name_prefix}-approvals"
  approvals_index      = "open_binding"
  approvals_sids       = ["KeepApprovals", "FindOpenApprovals"]
}

# --- the gateway's role: the ECS task role its code runs with ---------------------------------

resource "aws_iam_role" "gateway" {
  name        = "${var.name_prefix}-gateway"
  path        = local.role_path
  description = "Switchboard gateway: mints tool credentials and dispatches tool calls, nothing else"
  # Only tasks of the gateway's own cluster get it (the tool tasks' cluster is another).
  assume_role_policy = templatefile("${local.policies}/ecs-tasks-trust.json.tftpl", {
    partition    = local.partition
    region       = local.region
    account_id   = local.account_id
    cluster_name = local.gateway_cluster_name
  })

  tags = { "switchboard:role" = "gateway" }
}

resource "aws_iam_role_policy" "gateway" {
  name   = "dispatch-tool-calls"
  role   = aws_iam_role.gateway.id
  policy = jsonencode(local.gateway_policy)

  lifecycle {
    precondition {
      condition     = length([for st in local.gateway_policy.Statement : st if !contains(local.approvals_sids, st.Sid)]) > 0
      error_message = "The catalog deploys no lambda or fargate tool: the gateway would have nothing to dispatch to."
    }
  }
}

# --- the permission boundary of every tool role -------------------------------------------------

resource "aws_iam_policy" "tool_boundary" {
  name        = "${var.name_prefix}-tool-boundary"
  path        = local.role_path
  description = "Permission boundary of every Switchboard tool role: the catalog's permissions, own logs, image pull, Lambda interfaces"
  policy = templatefile("${local.policies}/tool-permission-boundary.json.tftpl", {
    partition                 = local.partition
    region                    = local.region
    account_id                = local.account_id
    tool_log_group_arn_prefix = local.tool_log_group_arn_prefix
    subnet_arns               = var.tool_subnet_arns
    ecr_repository_arns       = var.tool_ecr_repository_arns
    catalog_statements        = var.tool_permission_statements
  })
}

# --- the invocation bucket: Fargate hand-over through presigned URLs ---------------------------

resource "aws_s3_bucket" "invocations" {
  count = var.invocation_bucket ? 1 : 0

  bucket        = local.bucket_name
  force_destroy = var.bucket_force_destroy
  # checkov:skip=CKV_AWS_18:Access logs would record every presigned GET/PUT of short-lived invocation objects; the gateway's audit line records each call, and CloudTrail data events can be enabled account-wide.
  # checkov:skip=CKV_AWS_21:Versioning would keep every credential-bearing invocation after the lifecycle rule expires it; these objects must disappear.
  # checkov:skip=CKV_AWS_144:Invocation objects live for one call (the gateway deletes them; the lifecycle removes leftovers within a day); replicating them to another region would copy credentials for no recovery benefit.
  # checkov:skip=CKV2_AWS_62:Nothing consumes bucket events; the gateway polls its own result objects.

  tags = { "switchboard:role" = "invocations" }
}

resource "aws_s3_bucket_public_access_block" "invocations" {
  count = var.invocation_bucket ? 1 : 0

  bucket                  = aws_s3_bucket.invocations[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "invocations" {
  count = var.invocation_bucket ? 1 : 0

  bucket = aws_s3_bucket.invocations[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# The invocations' own key: only the gateway role may use it (through S3), the account only
# administers it. A presigned URL acts with its signer's rights, so the task's GET and PUT need no
# KMS right of their own.
resource "aws_kms_key" "invocations" {
  count = var.invocation_bucket ? 1 : 0

  description             = "${var.name_prefix}: invocation objects (arguments, credentials, results)"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy = templatefile("${local.policies}/invocation-key.json.tftpl", {
    partition        = local.partition
    region           = local.region
    account_id       = local.account_id
    gateway_role_arn = aws_iam_role.gateway.arn
  })
  tags = { "switchboard:role" = "invocations" }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "invocations" {
  count = var.invocation_bucket ? 1 : 0

  bucket = aws_s3_bucket.invocations[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.invocations[0].arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "invocations" {
  count = var.invocation_bucket ? 1 : 0

  bucket = aws_s3_bucket.invocations[0].id

  rule {
    id     = "expire-invocations"
    status = "Enabled"
    filter {
      prefix = var.invocation_prefix
    }
    expiration {
      days = var.invocation_expiry_days
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_policy" "invocations" {
  count = var.invocation_bucket ? 1 : 0

  bucket = aws_s3_bucket.invocations[0].id
  policy = templatefile("${local.policies}/invocation-bucket.json.tftpl", {
    bucket_arn        = aws_s3_bucket.invocations[0].arn
    invocation_prefix = var.invocation_prefix
    gateway_role_arn  = aws_iam_role.gateway.arn
    s3_endpoint_id    = var.s3_endpoint_id
  })

  lifecycle {
    precondition {
      condition     = var.s3_endpoint_id != null
      error_message = "The invocation bucket admits invocation objects only through the network's S3 endpoint: pass s3_endpoint_id (the network module's endpoint_ids[\"s3\"])."
    }
  }

  depends_on = [aws_s3_bucket_public_access_block.invocations]
}

# --- the approvals: decisions every replica shares, kept across restarts ---------------------
# One item per approval (the caller's arguments, who decided what); the gateway's conditional
# writes make a decision once and use an approval once. TTL deletes an item a day after its
# approval expired (lazily: the gateway checks expiry itself). Encrypted with its own key, which
# only the gateway role uses, through DynamoDB; the account administers it and may let DynamoDB
# use it to create or restore the table (point-in-time recovery), nothing more.

resource "aws_kms_key" "approvals" {
  description             = "${var.name_prefix}: the gateway's approvals table (the calls' arguments, the decisions)"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy = templatefile("${local.policies}/approvals-key.json.tftpl", {
    partition        = local.partition
    region           = local.region
    account_id       = local.account_id
    gateway_role_arn = aws_iam_role.gateway.arn
  })
  tags = { "switchboard:role" = "approvals" }
}

resource "aws_dynamodb_table" "approvals" {
  name         = local.approvals_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"

  attribute {
    name = "id"
    type = "S"
  }
  attribute {
    name = "open_binding"
    type = "S"
  }
  attribute {
    name = "created_unix"
    type = "N"
  }

  # Unsettled approvals by binding, newest first: the retry of a call finds its approval without
  # a scan. Keys only: the arguments are not copied into the index.
  global_secondary_index {
    name            = local.approvals_index
    hash_key        = "open_binding"
    range_key       = "created_unix"
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.approvals.arn
  }

  deletion_protection_enabled = var.deletion_protection

  tags = { "switchboard:role" = "approvals" }
}

# --- clusters ---------------------------------------------------------------------------------

# Tool tasks run here; the gateway may run tasks in this cluster only.
resource "aws_ecs_cluster" "tools" {
  name = local.tools_cluster_name
  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

resource "aws_ecs_cluster" "gateway" {
  name = local.gateway_cluster_name
  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

# --- the gateway's task ------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "gateway" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

resource "aws_iam_role" "gateway_execution" {
  name        = "${var.name_prefix}-gateway-exec"
  path        = local.role_path
  description = "ECS execution identity of the gateway task: its logs and image only"
  # Only tasks of the gateway's own cluster get it (the tool tasks' cluster is another).
  assume_role_policy = templatefile("${local.policies}/ecs-tasks-trust.json.tftpl", {
    partition    = local.partition
    region       = local.region
    account_id   = local.account_id
    cluster_name = local.gateway_cluster_name
  })

  tags = { "switchboard:role" = "gateway-execution" }
}

resource "aws_iam_role_policy" "gateway_execution" {
  name = "own-logs-and-image"
  role = aws_iam_role.gateway_execution.id
  policy = templatefile("${local.policies}/ecs-task-execution.json.tftpl", {
    log_group_arn       = local.log_group_arn
    ecr_repository_arns = local.ecr_repository_arns
  })
}

# --- the session key: the same secret in every gateway task -----------------------------------
# The caller passes the key as an ephemeral value (infra/examples generates it with the ephemeral
# aws_secretsmanager_random_password) and it is written as a write-only argument: the value is in
# no plan and no state. The module does not generate it itself because Terraform 1.11's mock
# providers refuse any ephemeral resource, which would leave the module without its offline tests.
# ECS reads it into SWITCHBOARD_SESSION_KEY when a task starts (`secrets` below), with the
# execution role. Change session_key_version to write a new key (every open session then answers
# 404 and clients start a new one).

resource "aws_kms_key" "session_key" {
  description             = "${var.name_prefix}: the gateway's session key (Secrets Manager)"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy = templatefile("${local.policies}/session-key.json.tftpl", {
    partition          = local.partition
    region             = local.region
    account_id         = local.account_id
    secret_arn_pattern = local.session_key_arn_pattern
  })
  tags = { "switchboard:role" = "session-key" }
}

resource "aws_secretsmanager_secret" "session_key" {
  # checkov:skip=CKV2_AWS_57:A new key ends every open session (ids are MACs under it), so it is replaced on purpose (session_key_version), not on a schedule; a rotation Lambda would also need a network path and rights this stack gives no function.

  name        = local.session_key_name
  description = "Switchboard gateway (${var.name_prefix}): SWITCHBOARD_SESSION_KEY, the MAC key of MCP session ids, the same in every task"
  kms_key_id  = aws_kms_key.session_key.arn
  # Nothing to recover: a lost key costs open sessions one re-initialize. Deleting at once also
  # lets a destroyed stack be applied again under the same name.
  recovery_window_in_days = 0

  tags = { "switchboard:role" = "session-key" }
}

# Whatever IAM grants elsewhere in the account, only the role ECS starts the gateway's tasks with
# reads the key (a read would let anyone forge session ids that every replica accepts).
resource "aws_secretsmanager_secret_policy" "session_key" {
  secret_arn = aws_secretsmanager_secret.session_key.arn
  policy = templatefile("${local.policies}/session-key-secret.json.tftpl", {
    execution_role_arn = aws_iam_role.gateway_execution.arn
  })
}

resource "aws_secretsmanager_secret_version" "session_key" {
  secret_id                = aws_secretsmanager_secret.session_key.id
  secret_string_wo         = var.session_key
  secret_string_wo_version = var.session_key_version
}

resource "aws_iam_role_policy" "gateway_execution_session_key" {
  name = "read-session-key"
  role = aws_iam_role.gateway_execution.id
  policy = templatefile("${local.policies}/gateway-execution-session-key.json.tftpl", {
    region     = local.region
    secret_arn = aws_secretsmanager_secret.session_key.arn
    key_arn    = aws_kms_key.session_key.arn
  })
}

resource "aws_ecs_task_definition" "gateway" {
  family                   = "${var.name_prefix}-gateway"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.cpu)
  memory                   = tostring(var.memory)
  task_role_arn            = aws_iam_role.gateway.arn
  execution_role_arn       = aws_iam_role.gateway_execution.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "scratch"
  }

  container_definitions = jsonencode([{
    name                   = "gateway"
    image                  = local.image
    essential              = true
    memory                 = var.memory
    command                = var.command
    readonlyRootFilesystem = true
    user                   = "65534:65534"
    portMappings           = [{ containerPort = var.container_port, protocol = "tcp" }]
    environment            = [for k in sort(keys(local.container_environment)) : { name = k, value = local.container_environment[k] }]
    secrets                = [{ name = "SWITCHBOARD_SESSION_KEY", valueFrom = aws_secretsmanager_secret.session_key.arn }]
    # A new key version is a new task definition, so the service rolls its tasks onto the new key.
    dockerLabels = { "switchboard.session-key-version" = tostring(var.session_key_version) }
    mountPoints  = [{ sourceVolume = "scratch", containerPath = "/tmp", readOnly = false }]
    # Between SIGTERM and SIGKILL. The gateway's shutdown takes the catalog's grace (10 s by
    # default), 5 s for the cancelled calls to end, and up to 26 s for Fargate clean-ups (a late
    # RunTask's task stopped, the invocation objects deleted): 41 s by default. A SIGKILL before
    # that leaves a tool's task running and its objects in the bucket. 120 s is Fargate's most;
    # a gateway that is done exits sooner.
    stopTimeout = 120
    linuxParameters = {
      initProcessEnabled = true
      capabilities       = { drop = ["ALL"] }
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.gateway.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "gateway"
      }
    }
  }])
}

# --- network: clients -> load balancer (443) -> gateway tasks -> AWS APIs and the JWKS (443) ---

resource "aws_security_group" "alb" {
  # checkov:skip=CKV2_AWS_5:Attached to the load balancer when expose = true; with expose = false (the emulator run) the group is still created so its rules can be tested.
  name        = "${var.name_prefix}-gateway-lb"
  description = "Gateway load balancer: HTTPS from clients, to the gateway tasks only"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name_prefix}-gateway-lb" }
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = toset(var.ingress_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_gateway" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the gateway tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.gateway.id
}

resource "aws_security_group" "gateway" {
  # checkov:skip=CKV2_AWS_5:Attached to the ECS service's tasks when expose = true; with expose = false (the emulator run) the group is still created so its rules can be tested.
  name        = "${var.name_prefix}-gateway"
  description = "Gateway tasks: from the load balancer only; HTTPS out to AWS APIs and the identity provider"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name_prefix}-gateway" }
}

resource "aws_vpc_security_group_ingress_rule" "gateway_from_alb" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "From the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.alb.id
}

# Replicas forward notifications/cancelled and DELETE to each other (SWITCHBOARD_PEERS), over
# plain HTTP on the container port, inside the gateway's own security group only.
resource "aws_vpc_security_group_ingress_rule" "gateway_from_peers" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "From the other gateway tasks (forwarded cancellations and DELETEs)"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.gateway.id
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_peers" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "To the other gateway tasks (forwarded cancellations and DELETEs)"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.gateway.id
}

# Interface endpoints have private DNS for the whole VPC: the gateway's own calls to STS (minting
# tool credentials), CloudWatch Logs and ECR (its image) resolve to them as well.
resource "aws_vpc_security_group_ingress_rule" "endpoint_from_gateway" {
  for_each = var.endpoint_security_group_ids

  security_group_id            = each.value
  description                  = "HTTPS from the gateway tasks"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.gateway.id
}

resource "aws_vpc_security_group_egress_rule" "gateway_https_out" {
  security_group_id = aws_security_group.gateway.id
  description       = "HTTPS to AWS APIs (STS, Lambda, ECS, S3) and the identity provider's JWKS"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# --- service discovery: one name, an A record per gateway task (peer_discovery) ---------------
# ECS registers each task's address when it starts and removes it when it stops; the gateway
# resolves the name at each forward and contacts every address. Multivalue answers hold at most
# eight records, hence desired_count <= 8 with discovery (checked on the service).

resource "aws_service_discovery_private_dns_namespace" "gateway" {
  count = var.peer_discovery ? 1 : 0

  name        = local.discovery_namespace
  description = "Switchboard (${var.name_prefix}): the gateway tasks' addresses, for each other"
  vpc         = var.vpc_id
}

resource "aws_service_discovery_service" "gateway" {
  count = var.peer_discovery ? 1 : 0

  name = "gateway"
  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.gateway[0].id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10 # a new task is contacted within seconds
    }
  }
  # ECS reports each task's health (a task stopping is removed at once).
  health_check_custom_config {
    failure_threshold = 1
  }
  force_destroy = true
}

# --- load balancer and service (expose = true) -------------------------------------------------

resource "aws_lb" "gateway" {
  count = var.expose ? 1 : 0
  # checkov:skip=CKV_AWS_91:The gateway writes one audit line per call with principal, tenant and outcome; ALB access logs would need a second bucket with an ELB delivery policy; docs/deploy-aws.md lists them as an option (Hardening beyond the defaults).
  # checkov:skip=CKV2_AWS_28:Every request is authenticated by the gateway (OAuth 2.1) before any work; a WAF web ACL costs from 5 USD/month and is listed in docs/deploy-aws.md as an option.
  # checkov:skip=CKV2_AWS_76:Same as CKV2_AWS_28: no WAF web ACL by default; the gateway runs no Java.

  name                       = "${var.name_prefix}-gateway"
  internal                   = false
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = 960 # a tool call may run 900 s with progress notifications on one stream

  lifecycle {
    precondition {
      condition     = var.certificate_arn != null
      error_message = "expose = true needs certificate_arn (an ACM certificate for the gateway's name)."
    }
    precondition {
      condition     = length(var.public_subnet_ids) >= 2
      error_message = "An application load balancer needs public subnets in at least two zones (az_count >= 2)."
    }
  }
}

resource "aws_lb_target_group" "gateway" {
  count = var.expose ? 1 : 0
  # checkov:skip=CKV_AWS_378:TLS ends at the load balancer; the hop to the task stays inside the VPC and the gateway's security group admits the load balancer only.

  name                 = "${var.name_prefix}-gateway"
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    path    = var.health_check_path
    matcher = "200"
  }
}

resource "aws_lb_listener" "https" {
  count = var.expose ? 1 : 0

  load_balancer_arn = aws_lb.gateway[0].arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "not found"
      status_code  = "404"
    }
  }
}

resource "aws_lb_listener_rule" "gateway" {
  count = var.expose ? 1 : 0

  listener_arn = aws_lb_listener.https[0].arn
  priority     = 10

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway[0].arn
  }

  condition {
    path_pattern {
      values = var.public_paths
    }
  }
}

resource "aws_ecs_service" "gateway" {
  count = var.expose ? 1 : 0
  # checkov:skip=CKV_AWS_333:The gateway needs outbound HTTPS to AWS APIs and to the identity provider's JWKS; a public IP in a public subnet does this without a NAT gateway (about 32 USD/month idle). Inbound is closed by its security group to the load balancer only, and the public subnets' network ACL denies the tool subnets.

  name                   = "${var.name_prefix}-gateway"
  cluster                = aws_ecs_cluster.gateway.id
  task_definition        = aws_ecs_task_definition.gateway.arn
  desired_count          = var.desired_count
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  propagate_tags         = "SERVICE"
  enable_execute_command = false

  network_configuration {
    subnets          = var.public_subnet_ids
    security_groups  = [aws_security_group.gateway.id]
    assign_public_ip = true
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.gateway[0].arn
    container_name   = "gateway"
    container_port   = var.container_port
  }

  dynamic "service_registries" {
    for_each = aws_service_discovery_service.gateway[*].arn
    content {
      registry_arn = service_registries.value
    }
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    precondition {
      condition     = !var.peer_discovery || var.desired_count <= 8
      error_message = "peer_discovery answers at most eight addresses per query (Cloud Map multivalue records), so a forwarded cancellation could miss a task: run at most 8 gateway tasks, or set peer_discovery = false and pass your own SWITCHBOARD_PEERS in environment."
    }
  }

  # A task starts only once its key exists and the execution role may read it.
  depends_on = [
    aws_lb_listener_rule.gateway,
    aws_secretsmanager_secret_version.session_key,
    aws_secretsmanager_secret_policy.session_key,
    aws_iam_role_policy.gateway_execution_session_key,
  ]
}
