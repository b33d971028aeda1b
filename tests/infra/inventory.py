"""What exists in the emulators, as plain data: used to prove that `terraform destroy` leaves the
accounts as they were before `apply`.

    python inventory.py > before.json      (run.sh, before apply)
"""

from __future__ import annotations

import json
import os
import sys

import boto3

REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


def client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def aws_managed_keys(kms) -> set[str]:
    return {
        a["TargetKeyId"]
        for page in kms.get_paginator("list_aliases").paginate()
        for a in page["Aliases"]
        if a["AliasName"].startswith("alias/aws/") and "TargetKeyId" in a
    }


def inventory(localstack: str, moto: str) -> dict[str, list[str]]:
    iam, ec2 = client("iam", localstack), client("ec2", localstack)
    lam, logs = client("lambda", localstack), client("logs", localstack)
    s3, kms = client("s3", localstack), client("kms", localstack)
    resolver = client("route53resolver", localstack)
    secrets = client("secretsmanager", localstack)
    ecs, discovery = client("ecs", moto), client("servicediscovery", moto)
    dynamodb = client("dynamodb", moto)
    inv = {
        "iam roles": [r["Arn"] for r in iam.list_roles()["Roles"]],
        "iam policies": [p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]],
        "ec2 vpcs": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]],
        "ec2 subnets": [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]],
        "ec2 security groups": [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]],
        "ec2 security group rules": [
            r["SecurityGroupRuleId"] for r in ec2.describe_security_group_rules()["SecurityGroupRules"]
        ],
        "ec2 route tables": [t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]],
        "ec2 internet gateways": [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]],
        # A deleted endpoint stays listed in state "deleted" for a while, as on AWS.
        "ec2 vpc endpoints": [
            e["VpcEndpointId"]
            for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
            if e["State"].lower() != "deleted"
        ],
        "ec2 flow logs": [f["FlowLogId"] for f in ec2.describe_flow_logs()["FlowLogs"]],
        "ec2 network interfaces": [n["NetworkInterfaceId"] for n in ec2.describe_network_interfaces()["NetworkInterfaces"]],
        "lambda functions": [f["FunctionArn"] for f in lam.list_functions()["Functions"]],
        "logs groups": [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]],
        "logs resource policies": [p["policyName"] for p in logs.describe_resource_policies()["resourcePolicies"]],
        # DNS Firewall and query logging. (The emulator lists no rule group associations, and makes
        # a firewall configuration for every VPC it is asked about, as AWS does: neither is listed.)
        "route53resolver firewall domain lists": [
            d["Id"] for d in resolver.list_firewall_domain_lists()["FirewallDomainLists"]
        ],
        "route53resolver firewall rule groups": [
            g["Id"] for g in resolver.list_firewall_rule_groups()["FirewallRuleGroups"]
        ],
        "route53resolver query log configs": [
            c["Id"] for c in resolver.list_resolver_query_log_configs()["ResolverQueryLogConfigs"]
        ],
        "route53resolver query log associations": [
            a["Id"]
            for a in resolver.list_resolver_query_log_config_associations()["ResolverQueryLogConfigAssociations"]
            if a["Status"] not in ("DELETING", "DESTROYED")
        ],
        "s3 buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]],
        # An AWS managed key (alias/aws/<service>) is the account's, never a stack's: the provider's
        # read of a DynamoDB table describes alias/aws/dynamodb, and LocalStack creates that key
        # on first use, as AWS does. No stack can name an alias/aws/ alias.
        "kms keys": [
            k["KeyId"]
            for k in kms.list_keys()["Keys"]
            if kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] != "PendingDeletion"
            and k["KeyId"] not in aws_managed_keys(kms)
        ],
        # A deleted cluster stays listed as INACTIVE, as on AWS.
        "ecs clusters": [
            c["clusterArn"]
            for c in (
                ecs.describe_clusters(clusters=ecs.list_clusters()["clusterArns"])["clusters"]
                if ecs.list_clusters()["clusterArns"]
                else []
            )
            if c["status"] == "ACTIVE"
        ],
        "ecs active task definitions": ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"],
        "ecs services": [
            s for c in ecs.list_clusters()["clusterArns"] for s in ecs.list_services(cluster=c)["serviceArns"]
        ],
        # The gateway's session key (deleted without a recovery window) and its peers' discovery.
        "secretsmanager secrets": [s["ARN"] for s in secrets.list_secrets()["SecretList"]],
        "servicediscovery namespaces": [n["Id"] for n in discovery.list_namespaces()["Namespaces"]],
        "servicediscovery services": [s["Id"] for s in discovery.list_services()["Services"]],
        # The gateway's approvals table.
        "dynamodb tables": dynamodb.list_tables()["TableNames"],
    }
    return {k: sorted(v) for k, v in inv.items()}


if __name__ == "__main__":
    json.dump(
        inventory(os.environ["LOCALSTACK_ENDPOINT"], os.environ["MOTO_ENDPOINT"]),
        sys.stdout,
        indent=1,
    )
