variable "name_prefix" {
  description = "Prefix of every name (the same as the gateway's and the tools')."
  type        = string
}

variable "tool_name" {
  description = "The tool's catalog name."
  type        = string
}

variable "session_tags" {
  description = "The session tag keys the gateway sets on every call, exactly (the catalog's session_tags)."
  type        = list(string)
}

variable "statements" {
  description = "The catalog's permissions as IAM statements (catalog module: tools[*].statements)."
  type        = any
}

variable "gateway_role_arn" {
  description = "The only principal that may assume the role."
  type        = string
}

variable "permission_boundary_arn" {
  description = "The permission boundary every tool role carries."
  type        = string
}

variable "source_vpc_id" {
  description = <<-EOT
    The VPC the tool's unit runs in: every request with the role's credentials that does not come
    through a VPC endpoint of this VPC is denied (aws:SourceVpc), unless an AWS service makes it on
    the tool's behalf. null for a local tool, which calls AWS from the gateway's machine.
  EOT
  type        = string
  default     = null
}

variable "source_subnet_cidrs" {
  description = <<-EOT
    The address ranges of the subnets the tool's unit runs in (with source_vpc_id): a request with
    the role's credentials through an endpoint of the VPC from any other address (the gateway's
    subnets, another workload of the VPC) is denied (aws:VpcSourceIp), unless an AWS service
    makes it on the tool's behalf.
  EOT
  type        = list(string)
  default     = []
}
