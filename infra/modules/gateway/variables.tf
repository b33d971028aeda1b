variable "name_prefix" {
  description = "Prefix of every name this module gives (the same as the network's and the tools')."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}$", var.name_prefix))
    error_message = "name_prefix: 1 to 15 of a-z, 0-9, '-', starting with a letter."
  }
}

variable "vpc_id" {
  description = "The network's VPC."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets for the load balancer and the gateway's tasks."
  type        = list(string)
}

variable "endpoint_security_group_ids" {
  description = "Security group of each interface endpoint of the network. Private DNS sends the gateway's own STS, Logs and ECR traffic to these endpoints too, so each admits the gateway tasks on 443."
  type        = map(string)
  default     = {}
}

variable "perimeter" {
  description = "Deny every request of the gateway role that does not come through the deployment's VPC (policies/gateway.json.tftpl, OnlyFromTheDeploymentsVpc). Its calls need endpoints there for STS, Lambda, ECS and S3 (endpoint_actions). false only for a gateway played from outside the VPC (scripts/smoke-aws)."
  type        = bool
  default     = true
}

variable "s3_endpoint_id" {
  description = "The network's S3 gateway endpoint (the tool subnets' and the gateway subnets' route to S3): the invocation bucket refuses invocation objects through anything else, so a presigned URL read from RunTask's overrides is useless outside the VPC. Required with invocation_bucket."
  type        = string
  default     = null
}

variable "tool_subnet_arns" {
  description = "ARNs of the private subnets the tools run in (the tool permission boundary names them)."
  type        = list(string)
}

variable "tools" {
  description = "The deployed tools, by catalog name: what the gateway role may reach (tool module outputs)."
  type = map(object({
    backend             = string
    execution_role_arn  = string
    work_role_arn       = optional(string)
    function_arn        = optional(string)
    task_definition_arn = optional(string)
  }))
}

variable "local_work_role_arns" {
  description = "Work roles of local tools (they run on the gateway's machine): the gateway may assume these too."
  type        = list(string)
  default     = []
}

variable "tool_permission_statements" {
  description = "Every statement of every tool's catalog permissions, Sids unique: the tool permission boundary allows their union and nothing else besides logs, image pull and Lambda's network interfaces."
  type        = any # a list of IAM statements; their shapes differ (with or without Condition)
  default     = []
}

variable "tool_ecr_repository_arns" {
  description = "ECR repositories the Fargate tools pull from (the boundary allows pulling these only)."
  type        = list(string)
  default     = []
}

variable "invocation_bucket" {
  description = "Create the invocation bucket and the gateway's rights on it: needed for Fargate hand-over only."
  type        = bool
  default     = true
}

variable "invocation_prefix" {
  description = "Key prefix in the invocation bucket the gateway writes invocations and results under."
  type        = string
  default     = "invocations/"
  validation {
    condition     = can(regex("^[a-z0-9-]+/$", var.invocation_prefix))
    error_message = "invocation_prefix: lowercase letters, digits and '-', ending in '/'."
  }
}

variable "invocation_expiry_days" {
  description = "Days after which the lifecycle deletes an invocation object (arguments, credentials, result) the gateway did not: a backstop, so 1, the shortest S3 allows."
  type        = number
  default     = 1
  validation {
    condition     = var.invocation_expiry_days == 1
    error_message = "invocation_expiry_days must be 1: an invocation object can hold a call's credentials, and a day is the shortest lifecycle expiry S3 has."
  }
}

variable "bucket_force_destroy" {
  description = "Let terraform destroy delete the invocation bucket with objects still in it."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the gateway's log group (its audit lines), in days."
  type        = number
  default     = 365
}

variable "image" {
  description = "The gateway's container image, pinned by digest (<repository>@sha256:<digest>; a bare repository name means this account's ECR)."
  type        = string

  validation {
    condition     = length(regexall("^[^@]+@sha256:[0-9a-f]{64}$", var.image)) > 0
    error_message = "The gateway image must be pinned by digest (<repository>@sha256:<64 hex digits>, as scripts/build-image prints it); a tag such as :latest can be moved to other code after review."
  }
}

variable "cpu" {
  description = "Gateway task CPU units."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Gateway task memory, MiB."
  type        = number
  default     = 1024
}

variable "container_port" {
  description = "Port the gateway listens on inside its task."
  type        = number
  default     = 8080
}

variable "command" {
  description = "The gateway container's command (the image's catalog path and the listen address)."
  type        = list(string)
  default     = ["serve", "--catalog", "/etc/switchboard/catalog.yaml", "--listen", "0.0.0.0:8080"]
}

variable "environment" {
  description = "Environment of the gateway container (the root passes SWITCHBOARD_BINDINGS here). The module adds SWITCHBOARD_PEERS when peer_discovery is on (a value given here wins) and SWITCHBOARD_SESSION_KEY from Secrets Manager."
  type        = map(string)
  default     = {}
  validation {
    condition     = !contains(keys(var.environment), "SWITCHBOARD_SESSION_KEY")
    error_message = "environment: SWITCHBOARD_SESSION_KEY comes from the module's Secrets Manager secret; a value here would be stored in plain text in the task definition and the state."
  }
}

variable "session_key_version" {
  description = "Version of the gateway's session key. Terraform writes session_key to the secret when this changes (a write-only value has nothing in the state to compare), and the task definition changes with it so the service rolls onto the new key; every open session then answers 404 (clients initialize again)."
  type        = number
  default     = 1
  validation {
    condition     = var.session_key_version >= 1 && floor(var.session_key_version) == var.session_key_version
    error_message = "session_key_version: a whole number, 1 or more."
  }
}

variable "session_key" {
  description = "SWITCHBOARD_SESSION_KEY, the same for every gateway task (32 bytes or more): pass an ephemeral value, such as the ephemeral aws_secretsmanager_random_password (infra/examples does). It is written to the module's secret as a write-only value, so it is in no plan and no state; Terraform writes it again only when session_key_version changes."
  type        = string
  ephemeral   = true
  sensitive   = true
  validation {
    condition     = length(var.session_key) >= 32
    error_message = "session_key: at least 32 characters (the gateway refuses a shorter key)."
  }
}

variable "peer_discovery" {
  description = "Register the gateway's tasks in a Cloud Map private DNS namespace (<name_prefix>.internal, one A record per task) and set SWITCHBOARD_PEERS to gateway.<name_prefix>.internal:<container_port>, so a cancellation or DELETE reaching one task is forwarded to the others. At most 8 tasks then (multivalue answers)."
  type        = bool
  default     = true
}

variable "expose" {
  description = "Create the load balancer (TLS), its listener and target group, and the ECS service. False deploys identities, bucket, clusters and the task definition only."
  type        = bool
  default     = true
}

variable "desired_count" {
  description = "Gateway tasks to run."
  type        = number
  default     = 1
}

variable "certificate_arn" {
  description = "ACM certificate for the load balancer's HTTPS listener (required when expose is true)."
  type        = string
  default     = null
}

variable "ingress_cidrs" {
  description = "Client address ranges allowed to reach the load balancer on 443."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "deletion_protection" {
  description = "Protect the load balancer and the approvals table from deletion."
  type        = bool
  default     = true
}

variable "health_check_path" {
  description = "Path the load balancer probes on the gateway."
  type        = string
  default     = "/readyz"
}

variable "public_paths" {
  description = "Paths the load balancer forwards to the gateway; everything else gets 404 at the edge."
  type        = list(string)
  default     = ["/mcp", "/mcp/*", "/.well-known/*"]
}

variable "container_insights" {
  description = "CloudWatch Container Insights on the two clusters (metrics are billed; see docs/deploy-aws.md)."
  type        = bool
  default     = true
}

variable "log_kms_key_arn" {
  description = "The deployment's KMS key for its log groups (modules/log-key): only CloudWatch Logs of this region uses it, for log groups under /switchboard/<name_prefix>/."
  type        = string
}
