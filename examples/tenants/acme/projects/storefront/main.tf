# A small storefront of tenant acme: a bucket for assets and one for logs (encrypted, private),
# a queue for orders, a read-only policy for the web tier and its security group. The provider's
# region, endpoints and credentials come from the terraform_plan tool, never from this project.
provider "aws" {
  default_tags {
    tags = {
      tenant      = "acme"
      project     = "storefront"
      environment = var.environment
    }
  }
}

locals {
  name = "acme-storefront-${var.environment}"
}

resource "aws_s3_bucket" "assets" {
  bucket = "${local.name}-assets"
}

resource "aws_s3_bucket_server_side_encryption_configuration" "assets" {
  bucket = aws_s3_bucket.assets.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "assets" {
  bucket                  = aws_s3_bucket.assets.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket" "logs" {
  bucket = "${local.name}-logs"
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire"
    status = "Enabled"
    filter {}
    expiration {
      days = var.retention_days
    }
  }
}

resource "aws_sqs_queue" "orders" {
  name                    = "${local.name}-orders"
  sqs_managed_sse_enabled = true
}

data "aws_iam_policy_document" "web" {
  statement {
    sid       = "ReadAssets"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.assets.arn}/*"]
  }
  statement {
    sid       = "SendOrders"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.orders.arn]
  }
}

resource "aws_iam_policy" "web" {
  name   = "${local.name}-web"
  policy = data.aws_iam_policy_document.web.json
}

resource "aws_vpc" "main" {
  cidr_block = "10.20.0.0/16"
}

resource "aws_security_group" "web" {
  name        = "${local.name}-web"
  description = "HTTPS to the web tier"
  vpc_id      = aws_vpc.main.id

  ingress {
    description = "HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = var.public_https ? ["0.0.0.0/0"] : [aws_vpc.main.cidr_block]
  }
}
