"""Shared fixtures of the infra suite: AWS clients on the emulators, the catalog, Terraform's outputs,
and every policy document of the deployment as read back through the AWS API.

run.sh sets the environment: LOCALSTACK_ENDPOINT, MOTO_ENDPOINT, SWITCHBOARD_CATALOG (the catalog
Terraform deployed), SWITCHBOARD_TF_OUTPUTS (`terraform output -json`), SWITCHBOARD_NAME_PREFIX.
A missing variable is an error, never a skip.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")

DEFAULT_SESSION_TAGS = ["tool", "tenant", "principal", "invocation"]
# What a Fargate task reaches whatever the catalog says: image pull, logs, hand-over URLs.
FARGATE_PLATFORM_ENDPOINTS = {"s3", "ecr.api", "ecr.dkr", "logs"}


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set; run this suite through tests/infra/run.sh")
    return value


def client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def as_document(raw) -> dict:
    """IAM and EC2 return policies as dicts, JSON strings or URL-encoded JSON strings."""
    if isinstance(raw, dict):
        return raw
    text = urllib.parse.unquote(raw) if raw.lstrip().startswith("%7B") else raw
    return json.loads(text)


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class PolicyDoc:
    kind: str  # trust | inline | managed | endpoint | bucket
    name: str
    document: dict
    resource_arn: str | None = None  # for trust policies: the role they protect

    def statements(self) -> list[dict]:
        return as_list(self.document.get("Statement"))

    def __str__(self) -> str:
        return f"{self.kind} policy {self.name}"


# --- clients -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def localstack() -> str:
    return env("LOCALSTACK_ENDPOINT")


@pytest.fixture(scope="session")
def moto() -> str:
    return env("MOTO_ENDPOINT")


@pytest.fixture(scope="session")
def iam(localstack):
    return client("iam", localstack)


@pytest.fixture(scope="session")
def ec2(localstack):
    return client("ec2", localstack)


@pytest.fixture(scope="session")
def lam(localstack):
    return client("lambda", localstack)


@pytest.fixture(scope="session")
def logs(localstack):
    return client("logs", localstack)


@pytest.fixture(scope="session")
def s3(localstack):
    return client("s3", localstack)


@pytest.fixture(scope="session")
def kms(localstack):
    return client("kms", localstack)


@pytest.fixture(scope="session")
def resolver(localstack):
    return client("route53resolver", localstack)


@pytest.fixture(scope="session")
def ecs(moto):
    return client("ecs", moto)


@pytest.fixture(scope="session")
def dynamodb(moto):
    return client("dynamodb", moto)


# --- the deployment's inputs and outputs -------------------------------------------------------


@pytest.fixture(scope="session")
def prefix() -> str:
    return env("SWITCHBOARD_NAME_PREFIX")


@pytest.fixture(scope="session")
def catalog() -> dict:
    return yaml.safe_load(Path(env("SWITCHBOARD_CATALOG")).read_text())


@pytest.fixture(scope="session")
def catalog_dir() -> Path:
    return Path(env("SWITCHBOARD_CATALOG")).parent


@pytest.fixture(scope="session")
def aws_tools(catalog) -> dict[str, dict]:
    """The catalog's lambda and fargate tools with the gateway's defaults applied."""
    tools = {}
    for t in catalog["tools"]:
        if t["backend"] not in ("lambda", "fargate"):
            continue
        declared = set(t.get("endpoints", []))
        tools[t["name"]] = {
            **t,
            "timeout_seconds": t.get("timeout_seconds", 30),
            "memory_mb": t.get("memory_mb", 256),
            "ephemeral_storage_mb": t.get("ephemeral_storage_mb", 512),
            "session_tags": t.get("session_tags", DEFAULT_SESSION_TAGS),
            "permissions": t.get("permissions", []),
            "declared": declared,
            "reach": declared | (FARGATE_PLATFORM_ENDPOINTS if t["backend"] == "fargate" else set()),
        }
    assert tools, "the catalog deployed has no lambda or fargate tool"
    return tools


@pytest.fixture(scope="session")
def outputs() -> dict:
    raw = json.loads(Path(env("SWITCHBOARD_TF_OUTPUTS")).read_text())
    return {name: o["value"] for name, o in raw.items()}


@pytest.fixture(scope="session")
def bindings(outputs) -> dict:
    return outputs["switchboard_bindings"]


@pytest.fixture(scope="session")
def role_path(prefix) -> str:
    return f"/switchboard/{prefix}/"


@pytest.fixture(scope="session")
def roles(iam, role_path) -> dict[str, dict]:
    """Every role of the deployment (by name), read back with its inline policies."""
    found = {}
    for page in iam.get_paginator("list_roles").paginate(PathPrefix=role_path):
        for r in page["Roles"]:
            role = iam.get_role(RoleName=r["RoleName"])["Role"]
            role["InlinePolicies"] = {
                name: as_document(
                    iam.get_role_policy(RoleName=r["RoleName"], PolicyName=name)["PolicyDocument"]
                )
                for name in iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"]
            }
            role["AttachedPolicies"] = iam.list_attached_role_policies(RoleName=r["RoleName"])[
                "AttachedPolicies"
            ]
            found[r["RoleName"]] = role
    assert found, f"no role under path {role_path}"
    return found


@pytest.fixture(scope="session")
def gateway_role(roles, prefix) -> dict:
    return roles[f"{prefix}-gateway"]


@pytest.fixture(scope="session")
def vpc(ec2, outputs) -> dict:
    return ec2.describe_vpcs(VpcIds=[outputs["network"]["vpc_id"]])["Vpcs"][0]


@pytest.fixture(scope="session")
def private_subnet_ids(ec2, vpc) -> set[str]:
    subnets = ec2.describe_subnets(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
            {"Name": "tag:switchboard:tier", "Values": ["private"]},
        ]
    )["Subnets"]
    assert subnets, "no private subnet found by tag"
    return {s["SubnetId"] for s in subnets}


@pytest.fixture(scope="session")
def endpoints(ec2, vpc) -> dict[str, dict]:
    """VPC endpoints of the deployment by catalog name (s3, sts, ecr.api, ...)."""
    found = {}
    for e in ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "VpcEndpoints"
    ]:
        name = e["ServiceName"].split(f".{REGION}.", 1)[1]
        found[name] = e
    return found


@pytest.fixture(scope="session")
def endpoint_group_names(endpoints) -> dict[str, str]:
    """Security group id -> catalog endpoint name, for interface endpoints."""
    return {
        g["GroupId"]: name
        for name, e in endpoints.items()
        for g in e.get("Groups", [])
    }


@pytest.fixture(scope="session")
def tool_security_groups(ec2, vpc, prefix, aws_tools) -> dict[str, dict]:
    """Each tool's security group, found by its name in the VPC."""
    found = {}
    for name in aws_tools:
        groups = ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                {"Name": "group-name", "Values": [f"{prefix}-tool-{name}"]},
            ]
        )["SecurityGroups"]
        assert len(groups) == 1, f"tool {name}: expected one security group, found {len(groups)}"
        found[name] = groups[0]
    return found


@pytest.fixture(scope="session")
def sg_rules(ec2):
    def rules(group_id: str) -> list[dict]:
        return ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group_id]}]
        )["SecurityGroupRules"]

    return rules


@pytest.fixture(scope="session")
def policy_documents(roles, iam, role_path, endpoints, s3, logs, prefix, outputs) -> list[PolicyDoc]:
    """Every policy document of the deployment, as AWS returns it."""
    docs: list[PolicyDoc] = []
    for name, role in roles.items():
        docs.append(
            PolicyDoc("trust", name, as_document(role["AssumeRolePolicyDocument"]), role["Arn"])
        )
        for policy_name, doc in role["InlinePolicies"].items():
            docs.append(PolicyDoc("inline", f"{name}/{policy_name}", doc))
    for page in iam.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=role_path):
        for p in page["Policies"]:
            version = iam.get_policy_version(PolicyArn=p["Arn"], VersionId=p["DefaultVersionId"])
            docs.append(
                PolicyDoc("managed", p["PolicyName"], as_document(version["PolicyVersion"]["Document"]))
            )
    for name, e in endpoints.items():
        docs.append(PolicyDoc("endpoint", name, as_document(e["PolicyDocument"])))
    # CloudWatch Logs resource policies of this deployment (Resolver's delivery of DNS query logs).
    for p in logs.describe_resource_policies()["resourcePolicies"]:
        if f"/switchboard/{prefix}/" in p["policyDocument"]:
            docs.append(PolicyDoc("logs", p["policyName"], as_document(p["policyDocument"])))
    bucket = outputs["gateway"]["invocation_bucket"]["name"]
    docs.append(PolicyDoc("bucket", bucket, as_document(s3.get_bucket_policy(Bucket=bucket)["Policy"])))
    return docs
