# Tenant globex's project: out of an acme caller's reach (terraform_plan of "ledger" as acme
# answers "not found").
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  default_tags {
    tags = { tenant = "globex", project = "ledger" }
  }
}

resource "aws_s3_bucket" "ledger" {
  bucket = "globex-ledger"
}
