variable "name_prefix" {
  description = "Prefix of every name this module gives (lowercase letters, digits, '-'; at most 15)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}$", var.name_prefix))
    error_message = "name_prefix: 1 to 15 of a-z, 0-9, '-', starting with a letter."
  }
}

variable "cidr_block" {
  description = "The VPC's IPv4 range; split into /20s: one private (tool), one endpoint and one public (gateway) subnet per zone."
  type        = string
  default     = "10.42.0.0/16"
}

variable "az_count" {
  description = "How many availability zones get subnets (and interface endpoints, billed per zone)."
  type        = number
  default     = 2
  validation {
    condition     = var.az_count >= 1 && var.az_count <= 4
    error_message = "az_count must be between 1 and 4."
  }
}

variable "endpoints" {
  description = <<-EOT
    The VPC endpoints to create, by catalog name (s3, sts, logs, kms, ecr.api, ecr.dkr,
    secretsmanager; and lambda, ecs, dynamodb for the gateway's own calls), each mapped to the
    actions its endpoint policy allows. s3 and dynamodb become gateway endpoints (dynamodb in
    the gateway's route table only: no tool reaches it), the others interface endpoints with
    private DNS and a security group of their own.
  EOT
  type        = map(list(string))
  default     = {}
  validation {
    condition = alltrue([
      for name in keys(var.endpoints) : contains(["s3", "sts", "logs", "kms", "ecr.api", "ecr.dkr", "secretsmanager", "lambda", "ecs", "dynamodb"], name)
    ])
    error_message = "endpoints: only s3, sts, logs, kms, ecr.api, ecr.dkr, secretsmanager, lambda, ecs and dynamodb are known."
  }
  validation {
    condition = alltrue(flatten([
      for actions in values(var.endpoints) : [for a in actions : a != "*" && !endswith(a, ":*")]
    ]))
    error_message = "endpoints: an endpoint policy action may not be a wildcard."
  }
}

variable "public_subnets" {
  description = "Create public subnets (with an internet gateway) for the gateway's load balancer and tasks."
  type        = bool
  default     = true
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow log group, in days."
  type        = number
  default     = 30
}

variable "dns_allowed_domains" {
  description = <<-EOT
    Names the VPC resolver answers besides the endpoints' own (DNS Firewall blocks every other
    name): what the gateway's tasks resolve when they run in this VPC (modules/gateway's dns_names,
    the token issuer's JWKS host). A name may start with "*." for its subdomains.
  EOT
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for d in var.dns_allowed_domains : can(regex("^(\\*\\.)?[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$", d))])
    error_message = "dns_allowed_domains: each entry is a domain name of two labels or more, optionally starting with \"*.\" (never \"*\" alone, which would let everything through)."
  }
}

variable "dns_query_log_retention_days" {
  description = "Retention of the VPC's DNS query log group, in days."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "The deployment's KMS key for its log groups (modules/log-key): only CloudWatch Logs of this region uses it, for log groups under /switchboard/<name_prefix>/."
  type        = string
}
