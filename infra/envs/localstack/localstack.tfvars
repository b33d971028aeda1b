# Provider settings for the emulators localstack/start runs on this machine (ports are its defaults).
#   terraform -chdir=infra/examples apply -var-file=../envs/localstack/localstack.tfvars
# LocalStack (host mode) serves IAM, STS, EC2, Lambda, Logs, S3, KMS, Secrets Manager (the
# gateway's session key) and Route 53 Resolver (DNS Firewall, query logging); moto_server serves
# ECS and Cloud Map (the gateway's service discovery), which LocalStack's community edition does
# not have, and DynamoDB (the approvals table; LocalStack's needs DynamoDB Local, a Java download).
region      = "us-east-1"
name_prefix = "switchboard"

emulator_endpoints = {
  iam              = "http://127.0.0.1:4566"
  sts              = "http://127.0.0.1:4566"
  ec2              = "http://127.0.0.1:4566"
  lambda           = "http://127.0.0.1:4566"
  logs             = "http://127.0.0.1:4566"
  s3               = "http://127.0.0.1:4566"
  kms              = "http://127.0.0.1:4566"
  route53resolver  = "http://127.0.0.1:4566"
  secretsmanager   = "http://127.0.0.1:4566"
  ecs              = "http://127.0.0.1:5000"
  servicediscovery = "http://127.0.0.1:5000"
  dynamodb         = "http://127.0.0.1:5000"
}

# No load balancer and no ECS service: LocalStack's community edition has no ELBv2, and moto checks
# a service's subnets against its own EC2, which does not hold LocalStack's subnets. Everything else
# of the gateway module (identities, boundary, bucket, clusters, task definition, security groups)
# is deployed. See infra/envs/localstack/README.md.
expose_gateway = false

# Emulated stacks are thrown away after each run.
deletion_protection  = false
bucket_force_destroy = true
