output "tools" {
  description = "The lambda and fargate tools by name, defaults resolved (the tool module's `tool` input)."
  value       = local.tools
}

output "endpoint_actions" {
  description = "Each VPC endpoint some tool reaches, with the actions its endpoint policy allows (the network module's `endpoints` input)."
  value       = local.endpoint_actions
}

output "boundary_statements" {
  description = "Every tool's permission statements, local tools' included, with tool-prefixed Sids (the gateway module's `tool_permission_statements`)."
  value       = local.boundary_statements
}

output "local_work_roles" {
  description = "Local tools with permissions, by name: session_tags and statements of the work role each gets (the work-role module's inputs)."
  value       = local.local_work_roles
}

output "skipped_local_tools" {
  description = "Tools with backend local: served from the gateway's machine, not deployed here."
  value       = sort([for t in local.raw.tools : t.name if t.backend == "local"])
}

output "ecr_repository_arns" {
  description = "The ECR repositories the Fargate tools pull from (the tool permission boundary allows these only)."
  value       = sort(distinct(values(local.ecr_repository_arns)))
}

output "has_fargate" {
  description = "Whether some tool runs on Fargate (the gateway then needs the invocation bucket)."
  value       = anytrue([for t in values(local.tools) : t.backend == "fargate"])
}

output "gateway_dns_names" {
  description = "Names the gateway resolves besides AWS's: the host of gateway.auth.jwks.url, when set."
  value       = local.gateway_dns_names
}

output "boundary_size" {
  description = "Characters (whitespace not counted) of the tool permission boundary at most, with this catalog; IAM allows 6144."
  value       = local.boundary_size
}
