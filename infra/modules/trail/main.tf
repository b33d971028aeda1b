# An optional CloudTrail trail that records what the tools read and wrote: S3 object-level events
# of the buckets the catalog grants (and the invocation bucket), Lambda Invoke events of the tool
# functions, and (by default) management events. Multi-region: S3 data events are delivered to
# trails of the bucket's region, and a catalog's buckets need not be in the deployment's region.
# Its log files are encrypted with a key of its own and delivered to a bucket of its own, which only
# this trail writes.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  policies   = "${path.module}/../../../policies"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  trail_name  = "${var.name_prefix}-trail"
  bucket_name = "${var.name_prefix}-trail-${local.account_id}-${local.region}"
  bucket_arn  = "arn:${local.partition}:s3:::${local.bucket_name}"
  # Known before the trail exists: its bucket's and key's policies name it (aws:SourceArn).
  trail_arn = "arn:${local.partition}:cloudtrail:${local.region}:${local.account_id}:trail/${local.trail_name}"

  # Every object of each bucket: the object ARN prefix ends with "/", so that bucket "files"
  # does not also select "files-archive".
  s3_object_prefixes = sort(distinct([for a in var.s3_bucket_arns : "${a}/"]))
  function_arns      = sort(distinct(var.lambda_function_arns))
}

# --- the key ------------------------------------------------------------------------------------

resource "aws_kms_key" "trail" {
  description             = "${var.name_prefix}: CloudTrail log files of trail ${local.trail_name}"
  enable_key_rotation     = true
  deletion_window_in_days = var.key_deletion_window_in_days
  policy = templatefile("${local.policies}/trail-key.json.tftpl", {
    partition  = local.partition
    region     = local.region
    account_id = local.account_id
    trail_arn  = local.trail_arn
  })

  tags = { "switchboard:role" = "trail" }
}

# --- the bucket ---------------------------------------------------------------------------------

resource "aws_s3_bucket" "trail" {
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  # checkov:skip=CKV_AWS_18:Server access logs of the trail's bucket would need a second bucket; its only writer is this trail (bucket policy), and its reads need the trail key, whose every use is itself a CloudTrail management event.
  # checkov:skip=CKV_AWS_144:The log files stay in the deployment's region; copying them to another region or a log-archive account is an organisation's choice (an organization trail does it better), not this stack's.
  # checkov:skip=CKV2_AWS_62:Nothing consumes bucket events; log files are read when someone investigates.

  tags = { "switchboard:role" = "trail" }
}

resource "aws_s3_bucket_public_access_block" "trail" {
  bucket                  = aws_s3_bucket.trail.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "trail" {
  bucket = aws_s3_bucket.trail.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# A replaced or deleted log file stays as a noncurrent version (log-file validation then names it).
resource "aws_s3_bucket_versioning" "trail" {
  bucket = aws_s3_bucket.trail.id
  versioning_configuration {
    status = "Enabled"
  }
}

# CloudTrail encrypts each file with the trail's key itself (kms_key_id below); the default applies
# only to a write without an encryption header, which the bucket policy admits from no one. No
# bucket key: it would replace the aws:cloudtrail:arn encryption context the key policy requires.
resource "aws_s3_bucket_server_side_encryption_configuration" "trail" {
  bucket = aws_s3_bucket.trail.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.trail.arn
    }
    bucket_key_enabled = false
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "trail" {
  bucket = aws_s3_bucket.trail.id

  rule {
    id     = "expire-log-files"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_expiry_days
    }
    noncurrent_version_expiration {
      noncurrent_days = var.log_expiry_days
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.trail]
}

resource "aws_s3_bucket_policy" "trail" {
  bucket = aws_s3_bucket.trail.id
  policy = templatefile("${local.policies}/trail-bucket.json.tftpl", {
    account_id = local.account_id
    bucket_arn = local.bucket_arn
    trail_arn  = local.trail_arn
  })

  depends_on = [aws_s3_bucket_public_access_block.trail]
}

# --- the trail ----------------------------------------------------------------------------------

resource "aws_cloudtrail" "this" {
  name                          = local.trail_name
  s3_bucket_name                = aws_s3_bucket.trail.id
  kms_key_id                    = aws_kms_key.trail.arn
  enable_log_file_validation    = true
  is_multi_region_trail         = true
  include_global_service_events = true
  enable_logging                = true
  # checkov:skip=CKV_AWS_252:No SNS topic: nothing acts on each delivery; the log files are read when someone investigates.
  # checkov:skip=CKV2_AWS_10:No CloudWatch Logs delivery: it would bill ingestion for every data event and need a role; the bucket is the record (infra/modules/trail/README.md).

  dynamic "advanced_event_selector" {
    for_each = var.management_events ? [1] : []
    content {
      name = "Management events, read and write"
      field_selector {
        field  = "eventCategory"
        equals = ["Management"]
      }
    }
  }

  dynamic "advanced_event_selector" {
    for_each = length(local.s3_object_prefixes) > 0 ? [1] : []
    content {
      name = "S3 object reads and writes in the tools' buckets"
      field_selector {
        field  = "eventCategory"
        equals = ["Data"]
      }
      field_selector {
        field  = "resources.type"
        equals = ["AWS::S3::Object"]
      }
      field_selector {
        field       = "resources.ARN"
        starts_with = local.s3_object_prefixes
      }
    }
  }

  dynamic "advanced_event_selector" {
    for_each = length(local.function_arns) > 0 ? [1] : []
    content {
      name = "Invocations of the tool functions"
      field_selector {
        field  = "eventCategory"
        equals = ["Data"]
      }
      field_selector {
        field  = "resources.type"
        equals = ["AWS::Lambda::Function"]
      }
      field_selector {
        field  = "resources.ARN"
        equals = local.function_arns
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.management_events || length(local.s3_object_prefixes) + length(local.function_arns) > 0
      error_message = "The trail would select nothing, and a trail without selectors records every management event: give buckets or functions, or set management_events."
    }
    precondition {
      condition     = length(local.s3_object_prefixes) + length(local.function_arns) <= 495
      error_message = "More than 495 buckets and functions together: a trail's advanced event selectors hold 500 values in all, 5 of them this module's own."
    }
    precondition {
      condition     = !contains(local.s3_object_prefixes, "${local.bucket_arn}/")
      error_message = "s3_bucket_arns names the trail's own bucket: each delivery would be an event that is delivered again."
    }
  }

  tags = { "switchboard:role" = "trail" }

  # CloudTrail checks at creation that it may write to the bucket and use the key.
  depends_on = [aws_s3_bucket_policy.trail]
}
