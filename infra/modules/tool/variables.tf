variable "name_prefix" {
  description = "Prefix of every name this module gives; the same for every tool of one deployment."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}$", var.name_prefix))
    error_message = "name_prefix: 1 to 15 of a-z, 0-9, '-', starting with a letter."
  }
}

variable "tool" {
  description = "One tool as the catalog module resolves it: module.catalog.tools[name]."
  type = object({
    name                 = string
    backend              = string
    timeout_seconds      = number
    memory_mb            = number
    ephemeral_storage_mb = number
    reach                = list(string) # declared endpoints plus the platform's (Fargate)
    session_tags         = list(string)
    statements           = any # IAM statements of the work role, as the catalog writes them
    lambda               = object({ package_path = string, architecture = string })
    fargate              = object({ image = string, ecr_repository_arn = string, cpu = number, command = list(string) })
  })

  validation {
    condition     = can(regex("^[a-z][a-z0-9_-]{0,47}$", var.tool.name))
    error_message = "tool.name must be 1 to 48 of a-z, 0-9, '-', '_', starting with a letter."
  }
  validation {
    condition     = contains(["lambda", "fargate"], var.tool.backend)
    error_message = "This module deploys lambda and fargate tools only; local tools run on the gateway's machine."
  }
  validation {
    condition     = (var.tool.backend == "lambda") == (var.tool.lambda != null) && (var.tool.backend == "fargate") == (var.tool.fargate != null)
    error_message = "A lambda tool needs its lambda block, a fargate tool its fargate block."
  }
  validation {
    condition     = var.tool.timeout_seconds >= 1 && var.tool.timeout_seconds <= 900
    error_message = "tool.timeout_seconds must be between 1 and 900."
  }
}

variable "vpc_id" {
  description = "The VPC of the network module."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (no internet gateway, no NAT) the unit runs in."
  type        = list(string)
}

variable "subnet_cidrs" {
  description = "Address ranges of those subnets: the only addresses the tool's work credentials work from (aws:VpcSourceIp)."
  type        = list(string)
}

variable "subnet_arns" {
  description = "ARNs of those subnets (a Lambda execution role may create interfaces there only)."
  type        = list(string)
}

variable "endpoint_security_group_ids" {
  description = "Security group of each interface endpoint of the network, by catalog endpoint name."
  type        = map(string)
  default     = {}
}

variable "s3_prefix_list_id" {
  description = "Prefix list of the network's S3 gateway endpoint; needed when the tool reaches s3."
  type        = string
  default     = null
}

variable "gateway_role_arn" {
  description = "The gateway's role: the only principal the work role trusts."
  type        = string
}

variable "permission_boundary_arn" {
  description = "The permission boundary every tool role carries."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the tool's log group, in days."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "The deployment's KMS key for its log groups (modules/log-key): only CloudWatch Logs of this region uses it, for log groups under /switchboard/<name_prefix>/."
  type        = string
}
