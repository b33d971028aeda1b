provider "aws" {
  region = var.region

  # Emulators (infra/envs/localstack): per-service endpoints and no real-account checks. With
  # emulator_endpoints left null this is a plain provider for a real account.
  skip_credentials_validation = var.emulator_endpoints != null
  skip_metadata_api_check     = var.emulator_endpoints != null
  s3_use_path_style           = var.emulator_endpoints != null

  dynamic "endpoints" {
    for_each = var.emulator_endpoints == null ? [] : [var.emulator_endpoints]
    content {
      acm              = lookup(endpoints.value, "acm", null)
      cloudwatchlogs   = lookup(endpoints.value, "logs", null)
      dynamodb         = lookup(endpoints.value, "dynamodb", null)
      ec2              = lookup(endpoints.value, "ec2", null)
      ecs              = lookup(endpoints.value, "ecs", null)
      elbv2            = lookup(endpoints.value, "elbv2", null)
      iam              = lookup(endpoints.value, "iam", null)
      kms              = lookup(endpoints.value, "kms", null)
      lambda           = lookup(endpoints.value, "lambda", null)
      route53resolver  = lookup(endpoints.value, "route53resolver", null)
      s3               = lookup(endpoints.value, "s3", null)
      secretsmanager   = lookup(endpoints.value, "secretsmanager", null)
      servicediscovery = lookup(endpoints.value, "servicediscovery", null)
      sts              = lookup(endpoints.value, "sts", null)
    }
  }

  default_tags {
    tags = merge({ "switchboard:stack" = var.name_prefix }, var.tags)
  }
}
