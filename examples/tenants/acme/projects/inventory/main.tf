# A deployed project of tenant acme that carries its own state (terraform.tfstate, as a project
# on the local backend does): one queue, whose visibility timeout this change raises from 30 to
# 60 s. An offline plan reads the queue from that state as it is (`-refresh=false`) and plans one
# in-place update; it never asks AWS. The provider's region, endpoints and credentials come from
# the terraform_plan tool, never from this project.
provider "aws" {}

resource "aws_sqs_queue" "orders" {
  name                       = "acme-inventory-orders"
  message_retention_seconds  = 345600
  visibility_timeout_seconds = 60
}
