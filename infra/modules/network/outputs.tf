output "vpc_id" {
  description = "The VPC's id."
  value       = aws_vpc.this.id
}

output "vpc_arn" {
  description = "The VPC's ARN."
  value       = aws_vpc.this.arn
}

output "private_subnet_ids" {
  description = "Private subnets (no internet gateway, no NAT), one per zone: where tool units run."
  value       = aws_subnet.private[*].id
}

output "private_subnet_arns" {
  description = "ARNs of the private subnets."
  value       = aws_subnet.private[*].arn
}

output "private_route_table_id" {
  description = "The route table shared by the private subnets."
  value       = aws_route_table.private.id
}

output "private_subnet_cidrs" {
  description = "Address ranges of the private (tool) subnets."
  value       = aws_subnet.private[*].cidr_block
}

output "endpoint_subnet_ids" {
  description = "Subnets holding the interface endpoints' network interfaces, one per zone (no internet gateway, no NAT)."
  value       = aws_subnet.endpoint[*].id
}

output "public_subnet_cidrs" {
  description = "Address ranges of the public (gateway) subnets (empty when public_subnets is false)."
  value       = aws_subnet.public[*].cidr_block
}

output "tools_network_acl_id" {
  description = "Network ACL of the tool subnets: denies the gateway's subnets both ways, HTTPS out, answers in."
  value       = aws_network_acl.tools.id
}

output "gateway_network_acl_id" {
  description = "Network ACL of the gateway's subnets: denies the tool subnets both ways (null without public subnets)."
  value       = one(aws_network_acl.gateway[*].id)
}

output "public_subnet_ids" {
  description = "Public subnets (empty when public_subnets is false)."
  value       = aws_subnet.public[*].id
}

output "endpoint_security_group_ids" {
  description = "Security group of each interface endpoint, by catalog endpoint name."
  value       = { for name, sg in aws_security_group.endpoint : name => sg.id }
}

output "endpoint_ids" {
  description = "VPC endpoint id by catalog endpoint name (s3 and dynamodb included when declared)."
  value = merge(
    { for name, ep in aws_vpc_endpoint.interface : name => ep.id },
    length(aws_vpc_endpoint.s3) > 0 ? { s3 = aws_vpc_endpoint.s3[0].id } : {},
    length(aws_vpc_endpoint.dynamodb) > 0 ? { dynamodb = aws_vpc_endpoint.dynamodb[0].id } : {}
  )
}

output "s3_prefix_list_id" {
  description = "The S3 gateway endpoint's prefix list (the only S3 destination a tool's security group may name); null without s3."
  value       = length(aws_vpc_endpoint.s3) > 0 ? aws_vpc_endpoint.s3[0].prefix_list_id : null
}

output "flow_log_group_name" {
  description = "CloudWatch log group receiving the VPC's flow logs."
  value       = aws_cloudwatch_log_group.flow.name
}

output "dns_allowed_domains" {
  description = "The only names the VPC resolver answers (DNS Firewall's allow list); every other name gets NXDOMAIN."
  value       = local.dns_allowed_domains
}

output "dns_firewall_rule_group_id" {
  description = "The DNS Firewall rule group of the VPC (allow the list, then block everything)."
  value       = aws_route53_resolver_firewall_rule_group.this.id
}

output "dns_firewall_association_id" {
  description = "The association of that rule group with the VPC."
  value       = aws_route53_resolver_firewall_rule_group_association.this.id
}

output "dns_query_log_group_name" {
  description = "CloudWatch log group receiving every DNS query of the VPC."
  value       = aws_cloudwatch_log_group.dns.name
}
