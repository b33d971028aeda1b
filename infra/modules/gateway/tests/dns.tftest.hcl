# `terraform test` of the names the gateway's tasks resolve (dns_names), offline: the tools' VPC
# answers only listed names (modules/network's DNS Firewall), so a gateway run there must list what
# it calls. Run by tests/infra/run.sh.
mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
}

variables {
  session_key       = "0123456789abcdef0123456789abcdef-test-only"
  name_prefix       = "sbtest"
  vpc_id            = "vpc-0123456789abcdef0"
  s3_endpoint_id    = "vpce-0123456789abcdef0"
  public_subnet_ids = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef2"]
  tool_subnet_arns  = ["arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0123456789abcdef1"]
  tools             = {}
  log_kms_key_arn   = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  certificate_arn   = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
  image             = "switchboard-gateway@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

run "a_gateway_in_the_vpc_lists_every_name_it_resolves" {
  command = plan
  variables {
    expose = true
  }
  assert {
    condition = output.dns_names == sort([
      "sts.eu-west-1.amazonaws.com", "lambda.eu-west-1.amazonaws.com", "ecs.eu-west-1.amazonaws.com",
      "logs.eu-west-1.amazonaws.com", "s3.eu-west-1.amazonaws.com", "*.s3.eu-west-1.amazonaws.com",
      "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "api.ecr.eu-west-1.amazonaws.com",
      "secretsmanager.eu-west-1.amazonaws.com", "dynamodb.eu-west-1.amazonaws.com", "gateway.sbtest.internal",
    ])
    error_message = "dns_names is not the gateway's APIs, logs, image registry, session key, approvals table and peers: ${jsonencode(output.dns_names)}"
  }
}

run "an_image_in_another_region_adds_that_regions_registry_names" {
  command = plan
  variables {
    expose = true
    image  = "210987654321.dkr.ecr.us-west-2.amazonaws.com/gw@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
  assert {
    condition = alltrue([for n in ["210987654321.dkr.ecr.us-west-2.amazonaws.com", "api.ecr.us-west-2.amazonaws.com", "*.s3.us-west-2.amazonaws.com"] :
    contains(output.dns_names, n)])
    error_message = "dns_names misses the image's registry names: ${jsonencode(output.dns_names)}"
  }
}

run "a_gateway_not_run_here_needs_no_name" {
  command = plan
  variables {
    expose = false
  }
  assert {
    condition     = length(output.dns_names) == 0
    error_message = "dns_names should be empty when the gateway does not run in the VPC"
  }
}

run "without_peer_discovery_the_peers_name_is_not_listed" {
  command = plan
  variables {
    expose         = true
    peer_discovery = false
  }
  assert {
    condition     = !contains(output.dns_names, "gateway.sbtest.internal") && contains(output.dns_names, "secretsmanager.eu-west-1.amazonaws.com")
    error_message = "dns_names without peer discovery: ${jsonencode(output.dns_names)}"
  }
}
