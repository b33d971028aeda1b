terraform {
  required_version = ">= 1.11" # write-only arguments (the session key never enters the state)
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.88, < 6.0" # aws_secretsmanager_secret_version.secret_string_wo
    }
  }
}
