variable "catalog_path" {
  description = "The catalog to deploy; defaults to examples/catalog.aws.yaml of this repository."
  type        = string
  default     = null
}

variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (1 to 15 of a-z, 0-9, '-')."
  type        = string
  default     = "switchboard"
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "az_count" {
  description = "Availability zones to spread subnets and interface endpoints over (each interface endpoint is billed per zone)."
  type        = number
  default     = 2
}

variable "log_retention_days" {
  description = "Retention of tool, flow log and DNS query log groups, in days."
  type        = number
  default     = 30
}

variable "gateway_log_retention_days" {
  description = "Retention of the gateway's log group (audit lines), in days."
  type        = number
  default     = 365
}

variable "gateway_image" {
  description = "The gateway's container image, pinned by digest: <repository>@sha256:<digest> as scripts/build-image gateway prints it (a bare repository name means this account's ECR)."
  type        = string
}

variable "expose_gateway" {
  description = "Create the gateway's load balancer and ECS service (needs certificate_arn)."
  type        = bool
  default     = true
}

variable "certificate_arn" {
  description = "ACM certificate for the gateway's public name (required when expose_gateway is true)."
  type        = string
  default     = null
}

variable "ingress_cidrs" {
  description = "Client ranges allowed to reach the gateway's load balancer on 443."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion."
  type        = bool
  default     = true
}

variable "bucket_force_destroy" {
  description = "Let destroy delete the invocation bucket with objects still in it."
  type        = bool
  default     = false
}

variable "gateway_session_key_version" {
  description = "Change it (2, 3, ...) to give the gateway a new session key: the service rolls onto it and every open MCP session has to be initialized again."
  type        = number
  default     = 1
}

variable "emulator_endpoints" {
  description = "Endpoints by service (iam, sts, ec2, lambda, logs, s3, kms, secretsmanager, route53resolver, ecs, servicediscovery, dynamodb, elbv2, acm) for emulators; null for a real account. See infra/envs/localstack."
  type        = map(string)
  default     = null
}

variable "dns_allowed_domains" {
  description = "Names the tools' VPC resolves besides the endpoints' and the gateway's own (DNS Firewall blocks every other name); say, a telemetry collector the gateway sends to."
  type        = list(string)
  default     = []
}

variable "gateway_perimeter" {
  description = "The gateway role's rights hold only from the deployment's VPC (OnlyFromTheDeploymentsVpc: its calls go through the VPC's endpoints). false only for a gateway played from outside the VPC against the stack, as scripts/smoke-aws does from the operator's machine."
  type        = bool
  default     = true
}

variable "trail" {
  description = "Deploy infra/modules/trail: a CloudTrail trail recording the tools' S3 object reads and writes (the buckets their permissions name, and the invocation bucket), their Lambda invocations and management events, in a bucket and under a key of its own. Off by default: LocalStack's community edition (localstack-core 2026.3.0, localstack/requirements.lock) serves no CloudTrail, so the emulator run could not apply it; data events are billed per event (0.10 USD per 100,000)."
  type        = bool
  default     = false
}
