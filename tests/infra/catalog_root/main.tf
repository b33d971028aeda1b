# A provider-less root around infra/modules/catalog, for tests/infra/test_catalog_module.py:
# `terraform plan` here needs no AWS and no emulator.
terraform {
  required_version = ">= 1.6"
}

variable "catalog_path" {
  type = string
}

module "catalog" {
  source       = "../../../infra/modules/catalog"
  catalog_path = var.catalog_path
  account_id   = "123456789012"
  region       = "eu-west-1"
}

output "tools" {
  value = module.catalog.tools
}

output "endpoint_actions" {
  value = module.catalog.endpoint_actions
}

output "boundary_statements" {
  value = module.catalog.boundary_statements
}

output "ecr_repository_arns" {
  value = module.catalog.ecr_repository_arns
}

output "skipped_local_tools" {
  value = module.catalog.skipped_local_tools
}

output "has_fargate" {
  value = module.catalog.has_fargate
}

output "local_work_roles" {
  value = module.catalog.local_work_roles
}

output "gateway_dns_names" {
  value = module.catalog.gateway_dns_names
}

output "boundary_size" {
  value = module.catalog.boundary_size
}
