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
