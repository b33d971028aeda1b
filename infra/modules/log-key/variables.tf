variable "name_prefix" {
  description = "Prefix of every name (the same as the other modules'): the key serves the log groups under /switchboard/<name_prefix>/."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}$", var.name_prefix))
    error_message = "name_prefix: 1 to 15 of a-z, 0-9, '-', starting with a letter."
  }
}

variable "deletion_window_in_days" {
  description = "Days between terraform destroy and the key's deletion (7 to 30); the logs it encrypted become unreadable then."
  type        = number
  default     = 30
  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days: 7 to 30, as KMS allows."
  }
}
