"""Every policy document of the deployed stack, read back through the AWS API, as one JSON file
for the policy engine of tests/iam (deployed.test.mjs).

Run by run.sh while the stack is up (same environment as the pytest files): it prints the file on
stdout. Nothing here is rendered from Terraform or the templates: each document is what the
emulators answer for the deployed resource, and each fact (subnet ranges, endpoint ids, cluster
ARNs) is what they hold.
"""

from __future__ import annotations

import json
import sys

import yaml

from conftest import REGION, as_document, client, env


def main() -> None:
    localstack, moto = env("LOCALSTACK_ENDPOINT"), env("MOTO_ENDPOINT")
    prefix = env("SWITCHBOARD_NAME_PREFIX")
    outputs = {n: o["value"] for n, o in json.load(open(env("SWITCHBOARD_TF_OUTPUTS"))).items()}
    iam, ec2, s3, kms, secrets, sts = (
        client(s, localstack) for s in ("iam", "ec2", "s3", "kms", "secretsmanager", "sts")
    )
    ecs = client("ecs", moto)
    account = sts.get_caller_identity()["Account"]
    role_path = f"/switchboard/{prefix}/"

    roles = {}
    for page in iam.get_paginator("list_roles").paginate(PathPrefix=role_path):
        for r in page["Roles"]:
            name = r["RoleName"]
            role = iam.get_role(RoleName=name)["Role"]
            roles[name] = {
                "arn": role["Arn"],
                "trust": as_document(role["AssumeRolePolicyDocument"]),
                "inline": {
                    p: as_document(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"])
                    for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
                },
                "attached": [
                    p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
                ],
                "boundary": (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn"),
            }
    managed = {}
    for page in iam.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=role_path):
        for p in page["Policies"]:
            version = iam.get_policy_version(PolicyArn=p["Arn"], VersionId=p["DefaultVersionId"])
            managed[p["Arn"]] = as_document(version["PolicyVersion"]["Document"])

    vpc_id = outputs["network"]["vpc_id"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    by_id = {s["SubnetId"]: s["CidrBlock"] for s in subnets}
    network = {
        "vpc_id": vpc_id,
        "cidr": ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["CidrBlock"],
        "tool_cidrs": sorted(by_id[i] for i in outputs["network"]["private_subnet_ids"]),
        "gateway_cidrs": sorted(by_id[i] for i in outputs["network"]["public_subnet_ids"]),
        "endpoint_cidrs": sorted(by_id[i] for i in outputs["network"]["endpoint_subnet_ids"]),
    }
    endpoints = {}
    for e in ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["VpcEndpoints"]:
        name = e["ServiceName"].split(f".{REGION}.", 1)[1]
        endpoints[name] = {
            "id": e["VpcEndpointId"],
            "type": e["VpcEndpointType"],
            "policy": as_document(e["PolicyDocument"]),
        }

    gateway = outputs["gateway"]
    bucket = gateway["invocation_bucket"]["name"]
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    invocation_key = encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"]

    def key(arn: str) -> dict:
        meta = kms.describe_key(KeyId=arn)["KeyMetadata"]
        return {"arn": meta["Arn"], "policy": as_document(kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"])}

    secret = gateway["session_key_secret_arn"]
    secret_policy = secrets.get_resource_policy(SecretId=secret).get("ResourcePolicy")
    clusters = ecs.describe_clusters(clusters=[gateway["tools_cluster_arn"], gateway["gateway_cluster_arn"]])["clusters"]

    json.dump(
        {
            "account": account,
            "region": REGION,
            "prefix": prefix,
            "catalog_path": env("SWITCHBOARD_CATALOG"),
            "catalog": yaml.safe_load(open(env("SWITCHBOARD_CATALOG"))),
            "roles": roles,
            "managed": managed,
            "network": network,
            "endpoints": endpoints,
            "bucket": {
                "name": bucket,
                "arn": f"arn:aws:s3:::{bucket}",
                "prefix": gateway["invocation_bucket"].get("prefix", "invocations/"),
                "policy": as_document(s3.get_bucket_policy(Bucket=bucket)["Policy"]),
            },
            "keys": {
                "invocations": key(invocation_key),
                "session": key(gateway["session_key_kms_key_arn"]),
                "logs": key(outputs["log_key_arn"]),
                "approvals": key(gateway["approvals_table"]["kms_key_arn"]),
            },
            "session_key_secret": {"arn": secret, "policy": as_document(secret_policy) if secret_policy else None},
            "clusters": {c["clusterName"]: c["clusterArn"] for c in clusters},
            "gateway": {
                "role": gateway["role_arn"],
                "execution_role": gateway["execution_role_arn"],
                "task_definition": gateway["task_definition_arn"],
                "tools_cluster": gateway["tools_cluster_arn"],
                "gateway_cluster": gateway["gateway_cluster_arn"],
                "approvals_table": gateway["approvals_table"],
            },
            "tools": outputs["tools"],
        },
        sys.stdout,
        indent=1,
        sort_keys=True,
    )


if __name__ == "__main__":
    main()
