output "role_arn" {
  description = "The gateway's role (the ECS task role of the gateway service); tool work roles trust it alone."
  value       = aws_iam_role.gateway.arn
}

output "role_name" {
  description = "The gateway role's name."
  value       = aws_iam_role.gateway.name
}

output "execution_role_arn" {
  description = "The gateway task's execution role (logs and image pull)."
  value       = aws_iam_role.gateway_execution.arn
}

output "tool_permission_boundary_arn" {
  description = "The permission boundary every tool role carries."
  value       = aws_iam_policy.tool_boundary.arn
}

output "invocation_bucket" {
  description = "The invocation bucket and the prefix the gateway writes under; null when invocation_bucket is false."
  value = var.invocation_bucket ? {
    name   = aws_s3_bucket.invocations[0].id
    arn    = aws_s3_bucket.invocations[0].arn
    prefix = var.invocation_prefix
  } : null
}

output "tools_cluster_arn" {
  description = "The ECS cluster Fargate tool tasks run in."
  value       = aws_ecs_cluster.tools.arn
}

output "gateway_cluster_arn" {
  description = "The ECS cluster of the gateway service."
  value       = aws_ecs_cluster.gateway.arn
}

output "task_definition_arn" {
  description = "The gateway's task definition."
  value       = aws_ecs_task_definition.gateway.arn
}

output "security_group_id" {
  description = "The gateway tasks' security group."
  value       = aws_security_group.gateway.id
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer (point the gateway's public name at it); null when not exposed."
  value       = one(aws_lb.gateway[*].dns_name)
}

output "log_group_name" {
  description = "The gateway's log group (its audit lines)."
  value       = aws_cloudwatch_log_group.gateway.name
}

output "dns_names" {
  description = "The names the gateway's tasks resolve in the VPC (for the network's DNS Firewall allow list); empty when expose is false."
  value       = local.dns_names
}

output "session_key_secret_arn" {
  description = "The Secrets Manager secret holding SWITCHBOARD_SESSION_KEY (its value is in no Terraform state)."
  value       = aws_secretsmanager_secret.session_key.arn
}

output "session_key_kms_key_arn" {
  description = "The KMS key the session key secret is encrypted with."
  value       = aws_kms_key.session_key.arn
}

output "peers" {
  description = "SWITCHBOARD_PEERS as the module sets it (the service discovery name and the container port), or null when peer_discovery is off."
  value       = local.peers
}

output "discovery_service_arn" {
  description = "The Cloud Map service the ECS service registers its tasks in; null when peer_discovery is off."
  value       = one(aws_service_discovery_service.gateway[*].arn)
}

output "endpoint_actions" {
  description = <<-EOT
    What the gateway's own calls send through the network's endpoints, by endpoint: the gateway
    role's rights hold only from the deployment's VPC (policies/gateway.json.tftpl,
    OnlyFromTheDeploymentsVpc), so each AWS API it calls needs an endpoint there. sts (minting),
    lambda (invoking), ecs (running, watching and stopping tasks), s3 (invocation objects; the
    bucket also refuses them any other way); and secretsmanager, which ECS reads the session key
    through; dynamodb (the approvals table). The root keeps those its catalog uses and merges
    them into the endpoints' policies.
  EOT
  value = merge(
    {
      sts            = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
      lambda         = ["lambda:InvokeFunction"]
      ecs            = ["ecs:DescribeTasks", "ecs:RunTask", "ecs:StopTask", "ecs:TagResource"]
      secretsmanager = ["secretsmanager:GetSecretValue"]
      dynamodb       = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
    },
    var.invocation_bucket ? { s3 = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"] } : {},
  )
}

output "approvals_table" {
  description = "The approvals table every replica shares (docs/approvals.md): name, ARN, the index of unsettled approvals, the KMS key it is encrypted with."
  value = {
    name        = aws_dynamodb_table.approvals.name
    arn         = aws_dynamodb_table.approvals.arn
    index_name  = local.approvals_index
    kms_key_arn = aws_kms_key.approvals.arn
  }
}
