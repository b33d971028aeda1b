variable "environment" {
  description = "Name of the environment, part of every resource name."
  type        = string
  default     = "staging"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.environment))
    error_message = "environment is 2 to 21 lower-case letters, digits and dashes."
  }
}

variable "retention_days" {
  description = "Days the access logs are kept."
  type        = number
  default     = 30
}

variable "public_https" {
  description = "Whether the web security group admits HTTPS from anywhere (a flagged change)."
  type        = bool
  default     = false
}
