"""Read-back of what lets every gateway task serve every MCP session (docs/architecture.md,
"Sessions (2025-11-25) carry their own state"): one SWITCHBOARD_SESSION_KEY for all tasks, from
Secrets Manager, in no task definition and no Terraform state; SWITCHBOARD_PEERS naming a service
discovery record of every task; the tasks admitting each other on the container port.

The emulators run no ECS service (infra/envs/localstack: expose_gateway = false), so that the
service registers its tasks in the discovery service is shown by `terraform test` of
infra/modules/gateway (tests/sessions.tftest.hcl), not here.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
from parliament import analyze_policy_string, enhance_finding

from conftest import REGION, as_document, as_list, client, env

SEVERITIES = ["MUTE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]


@pytest.fixture(scope="module")
def secrets(localstack):
    return client("secretsmanager", localstack)


@pytest.fixture(scope="module")
def discovery(moto):
    return client("servicediscovery", moto)


@pytest.fixture(scope="module")
def gateway(outputs) -> dict:
    return outputs["gateway"]


@pytest.fixture(scope="module")
def container(ecs, prefix) -> dict:
    td = ecs.describe_task_definition(taskDefinition=f"{prefix}-gateway")["taskDefinition"]
    (c,) = td["containerDefinitions"]
    return c


@pytest.fixture(scope="module")
def container_port(container) -> int:
    (mapping,) = container["portMappings"]
    return mapping["containerPort"]


@pytest.fixture(scope="module")
def session_key(secrets, gateway) -> str:
    return secrets.get_secret_value(SecretId=gateway["session_key_secret_arn"])["SecretString"]


@pytest.fixture(scope="module")
def key_policy(kms, gateway) -> dict:
    return as_document(kms.get_key_policy(KeyId=gateway["session_key_kms_key_arn"], PolicyName="default")["Policy"])


@pytest.fixture(scope="module")
def execution_statements(roles, prefix) -> list[dict]:
    role = roles[f"{prefix}-gateway-exec"]
    return [st for doc in role["InlinePolicies"].values() for st in as_list(doc["Statement"])]


def lint(document: dict) -> list[str]:
    problems = []
    for finding in analyze_policy_string(json.dumps(document)).findings:
        finding = enhance_finding(finding)
        if SEVERITIES.index(finding.severity) >= SEVERITIES.index("MEDIUM"):
            problems.append(f"{finding.severity} {finding.issue} {finding.detail}")
    return problems


# --- the key ---------------------------------------------------------------------------------------


def test_gateway_task_takes_the_session_key_from_its_secret(container, gateway):
    assert container["secrets"] == [
        {"name": "SWITCHBOARD_SESSION_KEY", "valueFrom": gateway["session_key_secret_arn"]}
    ], container.get("secrets")
    assert "SWITCHBOARD_SESSION_KEY" not in {e["name"] for e in container.get("environment", [])}


def test_the_session_key_is_long_enough_for_the_gateway(session_key):
    # The gateway refuses fewer than 32 bytes (sessions::MIN_KEY_BYTES); Secrets Manager made 64.
    assert len(session_key.encode()) >= 32


def test_the_session_key_is_in_no_task_definition_output_or_state(ecs, prefix, session_key):
    families = ecs.list_task_definition_families(familyPrefix=f"{prefix}-", status="ACTIVE")["families"]
    assert f"{prefix}-gateway" in families
    for family in families:
        td = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        assert session_key not in json.dumps(td), f"the session key is in task definition {family}"
    state = Path(env("SWITCHBOARD_TF_STATE")).read_text()
    outputs = Path(env("SWITCHBOARD_TF_OUTPUTS")).read_text()
    assert session_key not in state, "the session key is in terraform.tfstate"
    assert session_key not in outputs, "the session key is in the Terraform outputs"
    # The version is recorded as write-only: no secret_string of any kind in the state.
    (version,) = [
        i["attributes"]
        for r in json.loads(state)["resources"]
        if r["type"] == "aws_secretsmanager_secret_version"
        for i in r["instances"]
    ]
    assert version["has_secret_string_wo"] is True and not version.get("secret_string"), version


def test_the_session_key_secret_is_encrypted_with_its_own_rotated_key(secrets, kms, gateway):
    secret = secrets.describe_secret(SecretId=gateway["session_key_secret_arn"])
    key = kms.describe_key(KeyId=secret["KmsKeyId"])["KeyMetadata"]
    assert key["Arn"] == gateway["session_key_kms_key_arn"], secret["KmsKeyId"]
    assert key["KeyManager"] == "CUSTOMER" and key["KeyState"] == "Enabled", key
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True


def test_the_session_key_key_is_used_only_through_secrets_manager_for_that_secret(key_policy, bindings, gateway):
    account = bindings["account_id"]
    statements = {st["Sid"]: st for st in as_list(key_policy["Statement"])}
    assert set(statements) == {"TheAccountAdministersTheKey", "UsedOnlyThroughSecretsManagerForTheSessionKey"}
    admin = statements["TheAccountAdministersTheKey"]
    assert not {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"} & set(as_list(admin["Action"]))
    use = statements["UsedOnlyThroughSecretsManagerForTheSessionKey"]
    assert use["Effect"] == "Allow" and use["Principal"] == {"AWS": f"arn:aws:iam::{account}:root"}
    assert set(as_list(use["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert use["Condition"]["StringEquals"] == {
        "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
        "kms:CallerAccount": account,
    }
    (pattern,) = as_list(use["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"])
    assert fnmatch.fnmatchcase(gateway["session_key_secret_arn"], pattern), pattern


def test_the_session_key_key_policy_passes_parliament_with_nothing_above_low(key_policy):
    problems = lint(key_policy)
    assert not problems, "\n".join(problems)


# --- who may read it ---------------------------------------------------------------------------------


def test_the_execution_role_may_read_exactly_the_session_key(execution_statements, gateway):
    secret_arn, key_arn = gateway["session_key_secret_arn"], gateway["session_key_kms_key_arn"]
    reads = [st for st in execution_statements if any(a.startswith("secretsmanager:") for a in as_list(st["Action"]))]
    assert len(reads) == 1, reads
    assert reads[0]["Effect"] == "Allow"
    assert as_list(reads[0]["Action"]) == ["secretsmanager:GetSecretValue"]
    assert as_list(reads[0]["Resource"]) == [secret_arn]
    decrypts = [st for st in execution_statements if any(a.startswith("kms:") for a in as_list(st["Action"]))]
    assert len(decrypts) == 1, decrypts
    assert as_list(decrypts[0]["Action"]) == ["kms:Decrypt"] and as_list(decrypts[0]["Resource"]) == [key_arn]
    assert decrypts[0]["Condition"] == {
        "StringEquals": {
            "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
            "kms:EncryptionContext:SecretARN": secret_arn,
        }
    }


def test_the_gateways_code_cannot_read_the_session_key(gateway_role):
    # The task role (what the gateway's code runs as) gets the key only through its environment.
    for doc in gateway_role["InlinePolicies"].values():
        for st in as_list(doc["Statement"]):
            assert not [a for a in as_list(st["Action"]) if a.startswith(("secretsmanager:", "kms:"))], st


def test_the_execution_roles_session_key_policy_passes_parliament_with_nothing_above_low(roles, prefix):
    policy = roles[f"{prefix}-gateway-exec"]["InlinePolicies"]["read-session-key"]
    problems = lint(policy)
    assert not problems, "\n".join(problems)


def test_a_secretsmanager_endpoint_lets_ecs_fetch_the_key(endpoints):
    # Private DNS sends the task's own Secrets Manager call to the VPC's endpoint when there is one
    # (secret_lookup brings it), whose policy would otherwise admit the tools' actions only.
    assert "secretsmanager" in endpoints, "the example catalog should bring a secretsmanager endpoint"
    actions = {
        a for st in as_list(as_document(endpoints["secretsmanager"]["PolicyDocument"])["Statement"])
        for a in as_list(st["Action"])
    }
    assert "secretsmanager:GetSecretValue" in actions, sorted(actions)


# --- peers ---------------------------------------------------------------------------------------------


def test_the_gateway_tasks_reach_each_other_on_the_container_port_only(ec2, vpc, prefix, sg_rules, container_port):
    (group,) = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}, {"Name": "group-name", "Values": [f"{prefix}-gateway"]}]
    )["SecurityGroups"]
    own = [r for r in sg_rules(group["GroupId"]) if r.get("ReferencedGroupInfo", {}).get("GroupId") == group["GroupId"]]
    assert sorted((r["IsEgress"], r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in own) == [
        (False, "tcp", container_port, container_port),
        (True, "tcp", container_port, container_port),
    ], own


def test_peers_name_the_discovery_record_of_every_task(container, gateway, prefix, container_port, discovery):
    env_vars = {e["name"]: e["value"] for e in container.get("environment", [])}
    # peer_discovery is on in the emulated stack too: moto serves Cloud Map.
    assert gateway["peers"] is not None and gateway["discovery_service_arn"], gateway
    assert gateway["peers"] == f"gateway.{prefix}.internal:{container_port}"
    assert env_vars["SWITCHBOARD_PEERS"] == gateway["peers"]
    service = discovery.get_service(Id=gateway["discovery_service_arn"].rsplit("/", 1)[1])["Service"]
    assert service["Name"] == "gateway"
    assert service["DnsConfig"]["RoutingPolicy"] == "MULTIVALUE"
    assert [r["Type"] for r in service["DnsConfig"]["DnsRecords"]] == ["A"]
    # AWS names the namespace at the top and in DnsConfig; moto only in DnsConfig.
    namespace_id = service.get("NamespaceId") or service["DnsConfig"]["NamespaceId"]
    namespace = discovery.get_namespace(Id=namespace_id)["Namespace"]
    assert namespace["Name"] == f"{prefix}.internal" and namespace["Type"] == "DNS_PRIVATE", namespace
