variable "catalog_path" {
  description = "Path of the catalog file (the same file the gateway serves)."
  type        = string
}

variable "account_id" {
  description = "The deployment's account: a bare image repository name means this account's ECR."
  type        = string
}

variable "region" {
  description = "The deployment's region: a bare image repository name means this region's ECR."
  type        = string
}

variable "partition" {
  description = "The deployment's partition (aws, aws-cn, aws-us-gov)."
  type        = string
  default     = "aws"
}
