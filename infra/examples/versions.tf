terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
    }
  }

  # Local state; `terraform init -backend-config=path=...` puts it elsewhere (the tests do). For a
  # real account use a shared backend instead, e.g. `backend "s3"` (docs/deploy-aws.md).
  backend "local" {}
}
