# `terraform test` of what makes 2025-11-25 sessions work across gateway tasks, offline (a mocked
# AWS provider): one session key from Secrets Manager in every task, never in the task definition's
# environment; SWITCHBOARD_PEERS naming the service discovery record; the tasks admitting each
# other on the container port. Run by tests/infra/run.sh; tests/infra/test_gateway_sessions.py
# reads the same back from the emulators.
mock_provider "aws" {
  # The ARNs and ids below are known at plan, so that plan runs can compare them.
  override_during = plan
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sbtest-gateway-session-key-AbCdEf" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-1111-1111-1111-111111111111" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/switchboard/sbtest/sbtest-gateway" }
  }
  mock_resource "aws_security_group" {
    defaults = { id = "sg-0123456789abcdef0" }
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
  environment       = { SWITCHBOARD_BINDINGS = "{}" }
}

run "every_task_gets_the_session_key_from_the_secret_and_the_peers_name" {
  command = plan
  variables {
    expose        = true
    desired_count = 3
  }
  assert {
    condition = jsondecode(aws_ecs_task_definition.gateway.container_definitions)[0].secrets == [
      { name = "SWITCHBOARD_SESSION_KEY", valueFrom = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sbtest-gateway-session-key-AbCdEf" }
    ]
    error_message = "the container does not take SWITCHBOARD_SESSION_KEY from the secret"
  }
  assert {
    condition = jsondecode(aws_ecs_task_definition.gateway.container_definitions)[0].environment == [
      { name = "SWITCHBOARD_BINDINGS", value = "{}" },
      { name = "SWITCHBOARD_PEERS", value = "gateway.sbtest.internal:8080" },
    ]
    error_message = "the environment is not the bindings and the peers' name: ${aws_ecs_task_definition.gateway.container_definitions}"
  }
  assert {
    condition     = aws_service_discovery_private_dns_namespace.gateway[0].name == "sbtest.internal" && aws_service_discovery_service.gateway[0].name == "gateway"
    error_message = "the discovery name is not gateway.sbtest.internal"
  }
  assert {
    condition     = one(aws_service_discovery_service.gateway[0].dns_config[0].dns_records).type == "A" && aws_service_discovery_service.gateway[0].dns_config[0].routing_policy == "MULTIVALUE"
    error_message = "the discovery service does not answer one A record per task"
  }
  assert {
    condition     = length(aws_ecs_service.gateway[0].service_registries) == 1
    error_message = "the ECS service does not register its tasks"
  }
  assert {
    condition = (
      aws_vpc_security_group_ingress_rule.gateway_from_peers.referenced_security_group_id == aws_security_group.gateway.id
      && aws_vpc_security_group_ingress_rule.gateway_from_peers.from_port == 8080
      && aws_vpc_security_group_ingress_rule.gateway_from_peers.to_port == 8080
      && aws_vpc_security_group_egress_rule.gateway_to_peers.referenced_security_group_id == aws_security_group.gateway.id
      && aws_vpc_security_group_egress_rule.gateway_to_peers.from_port == 8080
    )
    error_message = "the gateway tasks do not admit each other on the container port only"
  }
  assert {
    condition     = aws_secretsmanager_secret.session_key.kms_key_id == aws_kms_key.session_key.arn && aws_secretsmanager_secret_version.session_key.secret_string_wo_version == 1
    error_message = "the session key is not encrypted with its own key, or not written as a write-only value"
  }
}

run "a_key_version_bump_is_a_new_task_definition" {
  command = plan
  variables {
    expose              = false
    session_key_version = 2
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.gateway.container_definitions)[0].dockerLabels["switchboard.session-key-version"] == "2"
    error_message = "the key version does not reach the task definition, so running tasks would keep the old key"
  }
}

run "without_peer_discovery_nothing_is_registered_and_peers_is_unset" {
  command = plan
  variables {
    expose         = true
    peer_discovery = false
  }
  assert {
    condition     = length(aws_service_discovery_private_dns_namespace.gateway) == 0 && output.peers == null
    error_message = "peer_discovery = false still creates a namespace or sets SWITCHBOARD_PEERS"
  }
  assert {
    condition     = !strcontains(aws_ecs_task_definition.gateway.container_definitions, "SWITCHBOARD_PEERS")
    error_message = "SWITCHBOARD_PEERS is set without peer discovery"
  }
}

run "the_session_key_cannot_be_passed_in_plain_text" {
  command = plan
  variables {
    environment = { SWITCHBOARD_SESSION_KEY = "0123456789abcdef0123456789abcdef" }
  }
  expect_failures = [var.environment]
}

run "more_than_eight_tasks_with_discovery_are_refused" {
  command = plan
  variables {
    expose        = true
    desired_count = 9
  }
  expect_failures = [aws_ecs_service.gateway]
}

run "a_short_session_key_is_refused" {
  command = plan
  variables {
    session_key = "too-short"
  }
  expect_failures = [var.session_key]
}
