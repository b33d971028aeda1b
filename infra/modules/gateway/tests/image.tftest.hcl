# `terraform test` of the gateway image reference, offline (a mocked AWS provider): the module
# deploys only an image pinned by digest. Run by tests/infra/run.sh.
mock_provider "aws" {
  # The task definition names the session key secret's ARN: known at plan here.
  override_during = plan
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sbtest-gateway-session-key-AbCdEf" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
}

variables {
  session_key       = "0123456789abcdef0123456789abcdef-test-only"
  name_prefix       = "sbtest"
  vpc_id            = "vpc-0123456789abcdef0"
  s3_endpoint_id    = "vpce-0123456789abcdef0"
  public_subnet_ids = ["subnet-0123456789abcdef0"]
  tool_subnet_arns  = ["arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0123456789abcdef1"]
  tools             = {}
  log_kms_key_arn   = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  expose            = false
}

run "a_digest_is_deployed_as_given" {
  command = plan
  variables {
    image = "switchboard-gateway@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.gateway.container_definitions)[0].image == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/switchboard-gateway@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    error_message = "the task definition does not run the image pinned by digest in this account's ECR"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.gateway.container_definitions)[0].stopTimeout == 120
    error_message = "the gateway gets less than Fargate's 120 s between SIGTERM and SIGKILL: its shutdown (41 s by default) may be cut short"
  }
}

run "a_tag_is_refused" {
  command = plan
  variables {
    image = "switchboard-gateway:latest"
  }
  expect_failures = [var.image]
}

run "a_short_digest_is_refused" {
  command = plan
  variables {
    image = "switchboard-gateway@sha256:0123456789abcdef"
  }
  expect_failures = [var.image]
}
