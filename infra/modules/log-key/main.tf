# The deployment's key for its CloudWatch log groups (tools, gateway, VPC flow logs, DNS queries).
# The account administers it and does not use it; only CloudWatch Logs of this region encrypts and
# decrypts with it, and only for log groups under /switchboard/<name_prefix>/.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  policies   = "${path.module}/../../../policies"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
}

resource "aws_kms_key" "logs" {
  description             = "${var.name_prefix}: CloudWatch log groups under /switchboard/${var.name_prefix}/"
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  policy = templatefile("${local.policies}/log-key.json.tftpl", {
    partition             = local.partition
    region                = local.region
    account_id            = local.account_id
    dns_suffix            = data.aws_partition.current.dns_suffix
    log_group_arn_pattern = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/switchboard/${var.name_prefix}/*"
  })

  tags = { "switchboard:role" = "logs" }
}
