variable "name_prefix" {
  description = "Prefix of every name (the same as the other modules'): the trail is <name_prefix>-trail, its bucket <name_prefix>-trail-<account>-<region>."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}$", var.name_prefix))
    error_message = "name_prefix: 1 to 15 of a-z, 0-9, '-', starting with a letter."
  }
}

variable "s3_bucket_arns" {
  description = "Buckets whose object reads and writes (S3 data events: GetObject, PutObject, DeleteObject, ...) the trail records: the buckets the catalog's tools are granted and the invocation bucket. Bucket ARNs (arn:aws:s3:::name), not object ARNs; every object of each bucket is selected."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.s3_bucket_arns : can(regex("^arn:aws(-[a-z]+)*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", a))])
    error_message = "s3_bucket_arns: each must be a bucket ARN, arn:<partition>:s3:::<bucket>, with no key, wildcard or policy variable (the trail selects every object of the bucket)."
  }
}

variable "lambda_function_arns" {
  description = "Lambda functions whose invocations (Lambda data events: Invoke) the trail records: the catalog's Lambda tools. Unqualified function ARNs, as the gateway invokes them."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.lambda_function_arns : can(regex("^arn:aws(-[a-z]+)*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}$", a))])
    error_message = "lambda_function_arns: each must be an unqualified function ARN, arn:<partition>:lambda:<region>:<account>:function:<name> (no version, alias or wildcard)."
  }
}

variable "management_events" {
  description = "Also record management events (read and write) of every region: the gateway's sts:AssumeRole per call (with its source identity and session tags), secretsmanager:GetSecretValue, changes to the stack. Free for the first trail of an account; a second copy (another trail already records them) costs 2 USD per 100,000 events."
  type        = bool
  default     = true
}

variable "log_expiry_days" {
  description = "Days a log or digest file is kept in the trail's bucket before S3 expires it (and days a replaced or deleted one is kept as a noncurrent version)."
  type        = number
  default     = 365
  validation {
    condition     = var.log_expiry_days >= 1 && var.log_expiry_days <= 3650 && floor(var.log_expiry_days) == var.log_expiry_days
    error_message = "log_expiry_days: a whole number of days, 1 to 3650."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete the trail's bucket with log files still in it (the evidence goes with it)."
  type        = bool
  default     = false
}

variable "key_deletion_window_in_days" {
  description = "Days between terraform destroy and the deletion of the trail's KMS key (7 to 30); the log files it encrypted become unreadable then."
  type        = number
  default     = 30
  validation {
    condition     = var.key_deletion_window_in_days >= 7 && var.key_deletion_window_in_days <= 30
    error_message = "key_deletion_window_in_days: 7 to 30, as KMS allows."
  }
}
