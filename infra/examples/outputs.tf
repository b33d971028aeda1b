output "switchboard_bindings" {
  description = "What the gateway needs to dispatch each tool (shape: infra/README.md). Read with `terraform output -json switchboard_bindings`."
  value       = local.bindings
}

output "gateway_url" {
  description = "Where the gateway's load balancer answers (point your DNS name at it); null when not exposed."
  value       = module.gateway.load_balancer_dns_name == null ? null : "https://${module.gateway.load_balancer_dns_name}/mcp"
}

output "network" {
  description = "The network: VPC, private (tool) subnets, endpoint subnets, public (gateway) subnets, their ACLs, endpoints."
  value = {
    vpc_id                      = module.network.vpc_id
    private_subnet_ids          = module.network.private_subnet_ids
    private_route_table_id      = module.network.private_route_table_id
    public_subnet_ids           = module.network.public_subnet_ids
    endpoint_subnet_ids         = module.network.endpoint_subnet_ids
    tools_network_acl_id        = module.network.tools_network_acl_id
    gateway_network_acl_id      = module.network.gateway_network_acl_id
    endpoint_ids                = module.network.endpoint_ids
    endpoint_security_group_ids = module.network.endpoint_security_group_ids
    s3_prefix_list_id           = module.network.s3_prefix_list_id
    dns_allowed_domains         = module.network.dns_allowed_domains
    dns_firewall_rule_group_id  = module.network.dns_firewall_rule_group_id
    dns_firewall_association_id = module.network.dns_firewall_association_id
    dns_query_log_group_name    = module.network.dns_query_log_group_name
  }
}

output "gateway" {
  description = "The gateway's identities, boundary, clusters and logs."
  value = {
    role_arn                     = module.gateway.role_arn
    execution_role_arn           = module.gateway.execution_role_arn
    tool_permission_boundary_arn = module.gateway.tool_permission_boundary_arn
    tools_cluster_arn            = module.gateway.tools_cluster_arn
    gateway_cluster_arn          = module.gateway.gateway_cluster_arn
    task_definition_arn          = module.gateway.task_definition_arn
    security_group_id            = module.gateway.security_group_id
    load_balancer_ingress_cidrs  = var.ingress_cidrs
    log_group_name               = module.gateway.log_group_name
    invocation_bucket            = module.gateway.invocation_bucket
    dns_names                    = module.gateway.dns_names
    session_key_secret_arn       = module.gateway.session_key_secret_arn
    session_key_kms_key_arn      = module.gateway.session_key_kms_key_arn
    peers                        = module.gateway.peers
    discovery_service_arn        = module.gateway.discovery_service_arn
    approvals_table              = module.gateway.approvals_table
  }
}

output "tools" {
  description = "Every deployed tool: roles, unit, security group, endpoints, log group."
  value = {
    for name, t in module.tool : name => {
      backend             = t.backend
      execution_role_arn  = t.execution_role_arn
      work_role_arn       = t.work_role_arn
      function_arn        = t.function_arn
      task_definition_arn = t.task_definition_arn
      security_group_id   = t.security_group_id
      log_group_name      = t.log_group_name
      endpoints           = t.endpoints
    }
  }
}

output "log_key_arn" {
  description = "The KMS key of every log group of the deployment."
  value       = module.log_key.arn
}

output "trail" {
  description = "The CloudTrail trail (var.trail): its ARN, bucket and key, and the buckets and functions whose data events it records; null when off."
  value = var.trail ? {
    trail_arn              = module.trail[0].trail_arn
    bucket_name            = module.trail[0].bucket_name
    kms_key_arn            = module.trail[0].kms_key_arn
    s3_object_arn_prefixes = module.trail[0].s3_object_arn_prefixes
    lambda_function_arns   = module.trail[0].lambda_function_arns
  } : null
}
