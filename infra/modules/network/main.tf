# The network every tool unit runs in: private subnets whose route tables reach nothing but the VPC
# itself and the endpoints the catalog's tools declare, endpoint subnets holding the interface
# endpoints, plus (optionally) public subnets for the gateway's load balancer and tasks. Network
# ACLs keep the tool subnets and the gateway's subnets apart in both directions.

data "aws_availability_zones" "available" {
  # checkov:skip=CKV_AWS_394:Only the first az_count zones are used (slice below); zone names sort alphabetically and AWS appends new zones, so a new zone does not change the set. Pinning zone names would make the module region-specific.
  state = "available"
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  policies   = "${path.module}/../../../policies"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  azs        = slice(data.aws_availability_zones.available.names, 0, var.az_count)

  interface_endpoints = { for name, actions in var.endpoints : name => actions if !contains(["s3", "dynamodb"], name) }

  # The names a client in the VPC resolves to reach each endpoint: an interface endpoint's private
  # DNS name; for the S3 gateway endpoint, S3's regional names, bucket-style included (ECR's image
  # layers come from a bucket too). DNS Firewall answers these and nothing else.
  dns_suffix = data.aws_partition.current.dns_suffix
  endpoint_domains = {
    "s3"             = ["s3.${local.region}.${local.dns_suffix}", "*.s3.${local.region}.${local.dns_suffix}"]
    "sts"            = ["sts.${local.region}.${local.dns_suffix}"]
    "logs"           = ["logs.${local.region}.${local.dns_suffix}"]
    "kms"            = ["kms.${local.region}.${local.dns_suffix}"]
    "ecr.api"        = ["api.ecr.${local.region}.${local.dns_suffix}"]
    "ecr.dkr"        = ["*.dkr.ecr.${local.region}.${local.dns_suffix}"]
    "secretsmanager" = ["secretsmanager.${local.region}.${local.dns_suffix}"]
    # The gateway's own (tools cannot declare these).
    "lambda"   = ["lambda.${local.region}.${local.dns_suffix}"]
    "ecs"      = ["ecs.${local.region}.${local.dns_suffix}"]
    "dynamodb" = ["dynamodb.${local.region}.${local.dns_suffix}"]
  }
  dns_allowed_domains = sort(distinct(concat(
    flatten([for name in keys(var.endpoints) : local.endpoint_domains[name]]),
    var.dns_allowed_domains,
  )))

  # Image layers pulled through ecr.dkr are served from an AWS-owned bucket, through the S3 endpoint,
  # by URLs that ECR signs with a principal of its own (not of this account): the endpoint lets
  # anyone read that bucket's objects, and nothing else of it, as AWS documents for ECR.
  ecr_layer_objects = contains(keys(var.endpoints), "ecr.dkr") ? ["arn:${local.partition}:s3:::prod-${local.region}-starport-layer-bucket/*"] : []
}

resource "aws_vpc" "this" {
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true # interface endpoints with private DNS need both

  tags = { Name = var.name_prefix }
}

# Adopts the VPC's default security group and leaves it without any rule, so nothing that lands in
# it by accident can talk to anything.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name_prefix}-default-unused" }
}

# --- private subnets: where tool units run --------------------------------------------------

resource "aws_subnet" "private" {
  count = var.az_count

  vpc_id                  = aws_vpc.this.id
  cidr_block              = cidrsubnet(var.cidr_block, 4, count.index)
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = {
    Name               = "${var.name_prefix}-private-${local.azs[count.index]}"
    "switchboard:tier" = "private"
  }
}

# One route table for all private subnets, with no route of its own: only the implicit local route
# and, when declared, the S3 gateway endpoint's prefix-list route. No internet gateway, no NAT.
resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name_prefix}-private" }
}

resource "aws_route_table_association" "private" {
  count = var.az_count

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# --- endpoint subnets: the interface endpoints' network interfaces ---------------------------
# Apart from the tool subnets so that the gateway's tasks, which use the endpoints too, never
# exchange a packet with a tool subnet: the ACLs below deny that in both directions. Same route
# table as the tool subnets (no internet gateway, no NAT).

resource "aws_subnet" "endpoint" {
  count = var.az_count

  vpc_id                  = aws_vpc.this.id
  cidr_block              = cidrsubnet(var.cidr_block, 4, 4 + count.index)
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = {
    Name               = "${var.name_prefix}-endpoints-${local.azs[count.index]}"
    "switchboard:tier" = "endpoints"
  }
}

resource "aws_route_table_association" "endpoint" {
  count = var.az_count

  subnet_id      = aws_subnet.endpoint[count.index].id
  route_table_id = aws_route_table.private.id
}

# --- public subnets: the gateway's load balancer and tasks ----------------------------------

resource "aws_subnet" "public" {
  count = var.public_subnets ? var.az_count : 0

  vpc_id                  = aws_vpc.this.id
  cidr_block              = cidrsubnet(var.cidr_block, 4, 8 + count.index)
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false # the gateway service asks for its public IP explicitly

  tags = {
    Name               = "${var.name_prefix}-public-${local.azs[count.index]}"
    "switchboard:tier" = "public"
  }
}

resource "aws_internet_gateway" "this" {
  count = var.public_subnets ? 1 : 0

  vpc_id = aws_vpc.this.id
  tags   = { Name = var.name_prefix }
}

resource "aws_route_table" "public" {
  count = var.public_subnets ? 1 : 0

  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name_prefix}-public" }
}

resource "aws_route" "public_internet" {
  count = var.public_subnets ? 1 : 0

  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count = var.public_subnets ? var.az_count : 0

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

# --- network ACLs: no packet between the tool subnets and the gateway's subnets ---------------
# Both tiers share the VPC (the gateway's tasks use the interface endpoints too), so the local
# route joins every subnet; these stateless ACLs undo that between the two tiers. Each denies the
# other tier's ranges first, in and out, whatever the protocol; then allows only what its own tier
# needs. Security groups already keep tools from the gateway (tool groups reach nothing but
# endpoints; the gateway's group admits only the load balancer's); the ACLs hold even if a group
# is later widened by mistake. Amazon DNS, DHCP and the task metadata endpoints are not filtered by
# network ACLs (DNS Firewall above governs DNS).

locals {
  tool_cidrs    = aws_subnet.private[*].cidr_block
  gateway_cidrs = aws_subnet.public[*].cidr_block

  # Rules by "<in|out>-<rule number>"; the lowest number that matches decides.
  # Tool subnets: nothing to or from the gateway's subnets; out only HTTPS (to the endpoints' and
  # S3's addresses, which their security groups narrow further), in only the answers to it.
  tools_acl_rules = merge(
    { for i, cidr in local.gateway_cidrs : "in-${100 + i}" => { egress = false, action = "deny", protocol = "-1", cidr = cidr, from = 0, to = 0 } },
    { for i, cidr in local.gateway_cidrs : "out-${100 + i}" => { egress = true, action = "deny", protocol = "-1", cidr = cidr, from = 0, to = 0 } },
    {
      "in-200"  = { egress = false, action = "allow", protocol = "tcp", cidr = "0.0.0.0/0", from = 1024, to = 65535 }
      "out-200" = { egress = true, action = "allow", protocol = "tcp", cidr = "0.0.0.0/0", from = 443, to = 443 }
    },
  )
  # Gateway subnets (load balancer and tasks): nothing to or from the tool subnets; in, HTTPS to
  # the load balancer (its security group narrows this to ingress_cidrs), TCP between the gateway's
  # own subnets (load balancer to tasks), and answers to what the tasks and the load balancer send.
  gateway_acl_rules = !var.public_subnets ? {} : merge(
    { for i, cidr in local.tool_cidrs : "in-${100 + i}" => { egress = false, action = "deny", protocol = "-1", cidr = cidr, from = 0, to = 0 } },
    { for i, cidr in local.tool_cidrs : "out-${100 + i}" => { egress = true, action = "deny", protocol = "-1", cidr = cidr, from = 0, to = 0 } },
    { for i, cidr in local.gateway_cidrs : "in-${300 + i}" => { egress = false, action = "allow", protocol = "tcp", cidr = cidr, from = 1, to = 65535 } },
    {
      "in-200"  = { egress = false, action = "allow", protocol = "tcp", cidr = "0.0.0.0/0", from = 443, to = 443 }
      "in-400"  = { egress = false, action = "allow", protocol = "tcp", cidr = "0.0.0.0/0", from = 1024, to = 65535 }
      "out-200" = { egress = true, action = "allow", protocol = "tcp", cidr = "0.0.0.0/0", from = 1, to = 65535 }
    },
  )
}

resource "aws_network_acl" "tools" {
  # checkov:skip=CKV_AWS_231:The ACL is stateless, so the answers to the subnets' own outbound HTTPS must be let in on their ephemeral port, and AWS documents 1024-65535 for Lambda's interfaces; 3389 lies inside that range. Nothing here listens on it: the tool security groups admit no inbound traffic at all.
  vpc_id     = aws_vpc.this.id
  subnet_ids = aws_subnet.private[*].id
  tags       = { Name = "${var.name_prefix}-tools" }
}

resource "aws_network_acl_rule" "tools" {
  for_each = local.tools_acl_rules
  # checkov:skip=CKV_AWS_231:The ACL is stateless, so the answers to the subnets' own outbound HTTPS must be let in on their ephemeral port, and AWS documents 1024-65535 for Lambda's interfaces; 3389 lies inside that range. Nothing here listens on it: the tool security groups admit no inbound traffic at all.
  # checkov:skip=CKV_AWS_352:The only rules of every protocol and port are denies (rule_action = "deny") of the other tier's subnets, which the check counts as allows; every allow names TCP and a port range.

  network_acl_id = aws_network_acl.tools.id
  egress         = each.value.egress
  rule_number    = tonumber(split("-", each.key)[1])
  rule_action    = each.value.action
  protocol       = each.value.protocol
  cidr_block     = each.value.cidr
  from_port      = each.value.from
  to_port        = each.value.to
}

resource "aws_network_acl" "gateway" {
  count = var.public_subnets ? 1 : 0
  # checkov:skip=CKV_AWS_231:The ACL is stateless, so the answers to what the tasks and the load balancer send must be let in on their ephemeral port, and AWS documents 1024-65535 for load balancers; 3389 lies inside that range. Nothing here listens on it: the load balancer's group admits 443 only, the tasks' group the load balancer only.

  vpc_id     = aws_vpc.this.id
  subnet_ids = aws_subnet.public[*].id
  tags       = { Name = "${var.name_prefix}-gateway" }
}

resource "aws_network_acl_rule" "gateway" {
  for_each = local.gateway_acl_rules
  # checkov:skip=CKV_AWS_231:The ACL is stateless, so the answers to what the tasks and the load balancer send must be let in on their ephemeral port, and AWS documents 1024-65535 for load balancers; 3389 lies inside that range. Nothing here listens on it: the load balancer's group admits 443 only, the tasks' group the load balancer only.
  # checkov:skip=CKV_AWS_352:The only rules of every protocol and port are denies (rule_action = "deny") of the other tier's subnets, which the check counts as allows; every allow names TCP and a port range.

  network_acl_id = aws_network_acl.gateway[0].id
  egress         = each.value.egress
  rule_number    = tonumber(split("-", each.key)[1])
  rule_action    = each.value.action
  protocol       = each.value.protocol
  cidr_block     = each.value.cidr
  from_port      = each.value.from
  to_port        = each.value.to
}

# --- VPC endpoints: the only places a tool can reach ----------------------------------------

resource "aws_vpc_endpoint" "s3" {
  count = contains(keys(var.endpoints), "s3") ? 1 : 0

  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  # The gateway's subnets route S3 through it too: the invocation bucket admits invocation
  # objects only through this endpoint (aws:SourceVpce), the gateway's own writes included.
  route_table_ids = concat([aws_route_table.private.id], aws_route_table.public[*].id)
  policy = templatefile("${local.policies}/vpc-endpoint.json.tftpl", {
    actions                    = var.endpoints["s3"]
    account_id                 = local.account_id
    own_resources_only         = true
    aws_owned_resource_arns    = local.ecr_layer_objects
    aws_owned_resource_actions = ["s3:GetObject"]
  })

  tags = { Name = "${var.name_prefix}-s3" }
}

# The gateway's approvals table (its role works only from this VPC). Routed from the gateway's
# subnets only: the tool subnets' route table does not reach DynamoDB.
resource "aws_vpc_endpoint" "dynamodb" {
  count = contains(keys(var.endpoints), "dynamodb") ? 1 : 0

  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.public[*].id
  policy = templatefile("${local.policies}/vpc-endpoint.json.tftpl", {
    actions                    = var.endpoints["dynamodb"]
    account_id                 = local.account_id
    own_resources_only         = true
    aws_owned_resource_arns    = []
    aws_owned_resource_actions = []
  })

  tags = { Name = "${var.name_prefix}-dynamodb" }
}

# One security group per interface endpoint, so that a tool's egress rule to one endpoint does not
# open the others. They start without rules; the tool module adds, per tool, ingress on 443 from
# that tool's own security group.
resource "aws_security_group" "endpoint" {
  for_each = local.interface_endpoints

  name        = "${var.name_prefix}-endpoint-${replace(each.key, ".", "-")}"
  description = "VPC endpoint ${each.key}: HTTPS from the tools that declare it"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${var.name_prefix}-endpoint-${replace(each.key, ".", "-")}" }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.endpoint[*].id
  security_group_ids  = [aws_security_group.endpoint[each.key].id]
  private_dns_enabled = true
  policy = templatefile("${local.policies}/vpc-endpoint.json.tftpl", {
    actions                    = each.value
    account_id                 = local.account_id
    own_resources_only         = true
    aws_owned_resource_arns    = []
    aws_owned_resource_actions = []
  })

  tags = { Name = "${var.name_prefix}-${replace(each.key, ".", "-")}" }
}

# --- flow logs: evidence of what the units tried to reach -----------------------------------

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/switchboard/${var.name_prefix}/vpc-flow-logs"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = var.log_kms_key_arn
  # checkov:skip=CKV_AWS_338:Retention is a deployment choice (flow_log_retention_days, 30 days by default); a year of flow logs is not needed to prove isolation.
}

resource "aws_iam_role" "flow" {
  name = "${var.name_prefix}-vpc-flow-logs"
  path = "/switchboard/${var.name_prefix}/"
  assume_role_policy = templatefile("${local.policies}/vpc-flow-logs-trust.json.tftpl", {
    partition  = local.partition
    region     = local.region
    account_id = local.account_id
  })
}

resource "aws_iam_role_policy" "flow" {
  name = "deliver-flow-logs"
  role = aws_iam_role.flow.id
  policy = templatefile("${local.policies}/vpc-flow-logs.json.tftpl", {
    log_group_arn = aws_cloudwatch_log_group.flow.arn
  })
}

resource "aws_flow_log" "this" {
  vpc_id                   = aws_vpc.this.id
  traffic_type             = "ALL"
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow.arn
  iam_role_arn             = aws_iam_role.flow.arn
  max_aggregation_interval = 60

  depends_on = [aws_iam_role_policy.flow]
}

# --- DNS: the VPC resolver answers only the names the endpoints need -----------------------
# Security groups do not filter queries to the VPC resolver, so without this a tool with no
# egress at all could still send data out as DNS names under a domain its author controls. DNS
# Firewall lets through only the names of the endpoints in this VPC (and what the gateway's tasks
# resolve, `dns_allowed_domains`) and answers NXDOMAIN to everything else; if the firewall cannot
# answer, the query fails (fail-open disabled). Every query is logged.

resource "aws_route53_resolver_firewall_domain_list" "allowed" {
  name    = "${var.name_prefix}-allowed"
  domains = local.dns_allowed_domains

  tags = { Name = "${var.name_prefix}-allowed" }
}

resource "aws_route53_resolver_firewall_domain_list" "everything" {
  name    = "${var.name_prefix}-everything"
  domains = ["*"]

  tags = { Name = "${var.name_prefix}-everything" }
}

resource "aws_route53_resolver_firewall_rule_group" "this" {
  name = var.name_prefix
  tags = { Name = var.name_prefix }
}

resource "aws_route53_resolver_firewall_rule" "allow_endpoints" {
  name                    = "allow-endpoint-names"
  firewall_rule_group_id  = aws_route53_resolver_firewall_rule_group.this.id
  firewall_domain_list_id = aws_route53_resolver_firewall_domain_list.allowed.id
  priority                = 100
  action                  = "ALLOW"
  # An allowed AWS name may answer with a CNAME inside AWS's own zones (bucket names do); the
  # chain is AWS's, not a tool's, so it is followed rather than checked against the list.
  firewall_domain_redirection_action = "TRUST_REDIRECTION_DOMAIN"
}

resource "aws_route53_resolver_firewall_rule" "block_everything_else" {
  name                    = "block-everything-else"
  firewall_rule_group_id  = aws_route53_resolver_firewall_rule_group.this.id
  firewall_domain_list_id = aws_route53_resolver_firewall_domain_list.everything.id
  priority                = 200
  action                  = "BLOCK"
  block_response          = "NXDOMAIN"
}

resource "aws_route53_resolver_firewall_rule_group_association" "this" {
  name                   = var.name_prefix
  firewall_rule_group_id = aws_route53_resolver_firewall_rule_group.this.id
  vpc_id                 = aws_vpc.this.id
  priority               = 101

  tags = { Name = var.name_prefix }

  # Both rules are in place before the group filters anything.
  depends_on = [
    aws_route53_resolver_firewall_rule.allow_endpoints,
    aws_route53_resolver_firewall_rule.block_everything_else,
  ]
}

resource "aws_route53_resolver_firewall_config" "this" {
  resource_id        = aws_vpc.this.id
  firewall_fail_open = "DISABLED"
}

resource "aws_cloudwatch_log_group" "dns" {
  name              = "/switchboard/${var.name_prefix}/vpc-dns-queries"
  retention_in_days = var.dns_query_log_retention_days
  kms_key_id        = var.log_kms_key_arn
  # checkov:skip=CKV_AWS_338:Retention is a deployment choice (dns_query_log_retention_days, 30 days by default); a year of resolver queries is not needed to spot a tunnel.
}

# What Resolver delivers query logs with, to this log group only (otherwise AWS would add a
# broader policy of its own when the logging configuration is created).
resource "aws_cloudwatch_log_resource_policy" "dns" {
  policy_name = "${var.name_prefix}-vpc-dns-queries"
  policy_document = templatefile("${local.policies}/dns-query-logs.json.tftpl", {
    log_group_arn = aws_cloudwatch_log_group.dns.arn
    partition     = local.partition
    region        = local.region
    account_id    = local.account_id
  })
}

resource "aws_route53_resolver_query_log_config" "this" {
  name            = "${var.name_prefix}-vpc-dns-queries"
  destination_arn = aws_cloudwatch_log_group.dns.arn

  tags = { Name = "${var.name_prefix}-vpc-dns-queries" }

  depends_on = [aws_cloudwatch_log_resource_policy.dns]
}

resource "aws_route53_resolver_query_log_config_association" "this" {
  resolver_query_log_config_id = aws_route53_resolver_query_log_config.this.id
  resource_id                  = aws_vpc.this.id
}
