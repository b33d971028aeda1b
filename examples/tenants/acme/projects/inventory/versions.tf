terraform {
  required_version = ">= 1.5"
  required_providers {
    # The only provider in the terraform_plan tool's mirror: a project that needs another one
    # fails at `terraform init` with that provider's name.
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}
