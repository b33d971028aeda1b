"""infra/modules/catalog on its own: defaults, derived values and refusals, through `terraform plan`
of a provider-less root (catalog_root/). Offline; no emulator needed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO

ROOT = Path(__file__).parent / "catalog_root"

BASE_TOOL = {
    "description": "d",
    "input_schema": {"type": "object"},
    "allow": {"groups": ["dev"]},
}


@pytest.fixture(scope="module")
def tf_env(tmp_path_factory) -> dict:
    env = {**os.environ, "TF_DATA_DIR": str(tmp_path_factory.mktemp("tfdata")), "TF_IN_AUTOMATION": "1"}
    subprocess.run(["terraform", f"-chdir={ROOT}", "init", "-input=false", "-no-color"], env=env, check=True, capture_output=True)
    return env


def plan(tf_env, tmp_path, catalog: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    out = tmp_path / "plan.bin"
    return subprocess.run(
        ["terraform", f"-chdir={ROOT}", "plan", "-input=false", "-no-color", "-lock=false",
         f"-var=catalog_path={path}", f"-out={out}"],
        env=tf_env, capture_output=True, text=True,
    )


def outputs(tf_env, tmp_path, catalog: dict) -> dict:
    result = plan(tf_env, tmp_path, catalog)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = subprocess.run(
        ["terraform", f"-chdir={ROOT}", "show", "-json", str(tmp_path / "plan.bin")],
        env=tf_env, check=True, capture_output=True, text=True,
    )
    return {k: v["value"] for k, v in json.loads(shown.stdout)["planned_values"]["outputs"].items()}


def refused(tf_env, tmp_path, catalog: dict) -> str:
    result = plan(tf_env, tmp_path, catalog)
    assert result.returncode != 0, "terraform plan accepted a catalog the gateway refuses"
    return " ".join((result.stdout + result.stderr).split())


def tool(**fields) -> dict:
    return {**BASE_TOOL, **fields}


def test_example_catalog_defaults_and_platform_endpoints(tf_env, tmp_path):
    catalog = yaml.safe_load((REPO / "examples" / "catalog.aws.yaml").read_text())
    out = outputs(tf_env, tmp_path, catalog)
    echo, plan_tool, files = out["tools"]["echo"], out["tools"]["terraform_plan"], out["tools"]["tenant-files"]
    secrets, states = out["tools"]["secret_lookup"], out["tools"]["state_validate"]
    assert echo["reach"] == [] and echo["statements"] == []
    assert echo["session_tags"] == ["tool", "tenant", "principal", "invocation"]
    assert echo["lambda"]["package_path"].endswith("/../target/lambda/switchboard-tool/bootstrap.zip")
    assert plan_tool["reach"] == ["ecr.api", "ecr.dkr", "logs", "s3", "sts"]
    assert states["reach"] == ["s3"] and states["lambda"]["package_path"] == echo["lambda"]["package_path"]
    assert plan_tool["fargate"]["image"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/switchboard-tools@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    assert plan_tool["fargate"]["ecr_repository_arn"] == "arn:aws:ecr:eu-west-1:123456789012:repository/switchboard-tools"
    assert files["reach"] == ["s3", "sts"]
    assert secrets["reach"] == ["secretsmanager"]
    assert set(out["endpoint_actions"]) == {"ecr.api", "ecr.dkr", "logs", "s3", "secretsmanager", "sts"}
    # The platform needs nothing of Secrets Manager: its endpoint admits only what the tool may do.
    assert out["endpoint_actions"]["secretsmanager"] == ["secretsmanager:DescribeSecret"]
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= set(out["endpoint_actions"]["s3"])
    # The gateway's own STS calls resolve to the endpoint (private DNS): minting must pass it.
    assert {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"} <= set(out["endpoint_actions"]["sts"])
    sids = [s["Sid"] for s in out["boundary_statements"]]
    assert "TenantFilesReadWriteTenantObjects" in sids and "TerraformPlanReadTenantProjects" in sids
    assert "TerraformPlanListTenantProjects" in sids and "StateValidateReadTenantStates" in sids
    assert "SecretLookupDescribeTenantSecrets" in sids
    assert out["has_fargate"] is True


def test_local_tools_are_left_out(tf_env, tmp_path):
    out = outputs(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="here", backend="local", local={"command": ["/bin/true"]}),
        tool(name="there", backend="lambda", **{"lambda": {"package": "x.zip"}}),
    ]})
    assert list(out["tools"]) == ["there"] and out["skipped_local_tools"] == ["here"]
    assert out["tools"]["there"]["timeout_seconds"] == 30 and out["tools"]["there"]["memory_mb"] == 256
    assert out["tools"]["there"]["ephemeral_storage_mb"] == 512
    assert out["tools"]["there"]["lambda"]["architecture"] == "x86_64"
    assert out["has_fargate"] is False and out["endpoint_actions"] == {}


def test_a_local_tool_with_permissions_gets_a_work_role_and_nothing_else(tf_env, tmp_path):
    out = outputs(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="plain", backend="local", local={"command": ["/bin/true"]}),
        tool(name="who-am-i", backend="local", local={"command": ["/bin/true"]}, endpoints=["sts"],
             session_tags=["tool", "invocation"],
             permissions=[{"sid": "Identity", "actions": ["sts:GetCallerIdentity"], "resources": ["*"]}]),
    ]})
    assert out["tools"] == {} and out["skipped_local_tools"] == ["plain", "who-am-i"]
    assert out["local_work_roles"] == {"who-am-i": {
        "name": "who-am-i",
        "session_tags": ["tool", "invocation"],
        "statements": [{"Sid": "Identity", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": ["*"]}],
    }}
    # The shared permission boundary must allow what the work role grants, or the role could do nothing.
    assert [s["Sid"] for s in out["boundary_statements"]] == ["WhoAmIIdentity"]
    # No unit, so no VPC endpoint: the tool reaches AWS from the gateway's machine.
    assert out["endpoint_actions"] == {}


def test_a_registry_image_is_kept_and_an_ecr_image_in_another_account_is_named(tf_env, tmp_path):
    out = outputs(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="fargate", memory_mb=512, ephemeral_storage_mb=21504,
             fargate={"image": "210987654321.dkr.ecr.us-west-2.amazonaws.com/team/tool@sha256:abababababababababababababababababababababababababababababababab"}),
    ]})
    assert out["tools"]["t"]["fargate"]["ecr_repository_arn"] == "arn:aws:ecr:us-west-2:210987654321:repository/team/tool"


def test_wildcard_actions_are_refused(tf_env, tmp_path):
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}},
             permissions=[{"actions": ["s3:*"], "resources": ["arn:aws:s3:::b/*"]}]),
    ]})
    assert "wildcard" in text


def test_unknown_endpoints_are_refused(tf_env, tmp_path):
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}}, endpoints=["dynamodb"]),
    ]})
    assert "endpoints may only be" in text


def test_non_ecr_images_are_refused(tf_env, tmp_path):
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="fargate", memory_mb=512, ephemeral_storage_mb=21504,
             fargate={"image": "docker.io/library/alpine@sha256:abababababababababababababababababababababababababababababababab"}),
    ]})
    assert "ECR" in text


def test_images_not_pinned_by_digest_are_refused(tf_env, tmp_path):
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="fargate", memory_mb=512, ephemeral_storage_mb=21504,
             fargate={"image": "switchboard-tools:latest"}),
    ]})
    assert "pinned by digest" in text


def test_repeated_sids_are_refused(tf_env, tmp_path):
    statement = {"sid": "Same", "actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::b/*"]}
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}}, permissions=[statement, statement]),
    ]})
    assert "same sid" in text


def test_a_resource_in_any_account_is_refused_unless_its_statement_pins_the_account(tf_env, tmp_path):
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}},
             permissions=[{"actions": ["sqs:SendMessage"], "resources": ["arn:aws:sqs:*:*:jobs"]}]),
    ]})
    assert "names any account" in text and "arn:aws:sqs:*:*:jobs" in text, text
    pinned = {"StringEquals": {"aws:ResourceAccount": "${aws:PrincipalAccount}"}}
    out = outputs(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}},
             permissions=[{"actions": ["sqs:SendMessage"], "resources": ["arn:aws:sqs:*:*:jobs"], "condition": pinned},
                          {"actions": ["sqs:ReceiveMessage"], "resources": ["arn:aws:sqs:eu-west-1:123456789012:jobs", "arn:aws:s3:::bucket/*"]}]),
    ]})
    assert out["boundary_statements"][0]["Condition"] == pinned


def test_other_versions_are_refused(tf_env, tmp_path):
    text = refused(tf_env, tmp_path, {"version": 2, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}}),
    ]})
    assert "version must be 1" in text


# --- the tool permission boundary's denies (issue 11 item 6) -------------------------------------


@pytest.mark.parametrize("action, deny", [
    ("iam:PassRole", "DenyIam"),
    ("sts:AssumeRole", "DenyRoleChaining"),
    ("organizations:LeaveOrganization", "DenyOrganizations"),
    ("cloudtrail:StopLogging", "DenyAuditTampering"),
    ("config:DeleteConfigurationRecorder", "DenyAuditTampering"),
    ("kms:ScheduleKeyDeletion", "DenyKeyDestruction"),
    ("ec2:AuthorizeSecurityGroupEgress", "DenyNetworkChanges"),
    ("lambda:UpdateFunctionCode", "DenyToolCodeChanges"),
    ("s3:PutBucketPolicy", "DenySharingOutward"),
    ("logs:PutSubscriptionFilter", "DenySharingOutward"),
    ("ram:CreateResourceShare", "DenySharingOutward"),
    # Globs meet the denies too, and case does not hide an action from IAM.
    ("ec2:*SecurityGroupIngress", "DenyNetworkChanges"),
    ("ec2:Create?oute", "DenyNetworkChanges"),
    ("KMS:putkeypolicy", "DenyKeyDestruction"),
    ("lambda:Up*", "DenyToolCodeChanges"),
])
def test_a_grant_the_boundary_denies_is_refused_naming_tool_and_action(tf_env, tmp_path, action, deny):
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="fine", backend="lambda", **{"lambda": {"package": "x.zip"}},
             permissions=[{"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::b/*"]}]),
        tool(name="greedy", backend="lambda", **{"lambda": {"package": "x.zip"}},
             permissions=[{"actions": ["s3:GetObject", action], "resources": ["*"]}]),
    ]})
    assert "tool permission boundary denies" in text
    assert f"greedy grants {action}, which {deny} denies" in text, text
    assert "fine grants" not in text


def test_a_local_tools_grant_the_boundary_denies_is_refused(tf_env, tmp_path):
    # A local tool's work role carries the same boundary.
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="here", backend="local", local={"command": ["/bin/true"]},
             permissions=[{"actions": ["iam:CreateAccessKey"], "resources": ["*"]}]),
    ]})
    assert "here grants iam:CreateAccessKey, which DenyIam denies" in text


def test_grants_next_to_the_denies_are_accepted(tf_env, tmp_path):
    # Reads and data-plane uses of the same services stay grantable: the denies are not a
    # service-wide refusal (except IAM and Organizations).
    near = ["ec2:DescribeSecurityGroups", "ec2:DescribeRouteTables", "kms:Decrypt", "kms:DescribeKey",
            "sts:GetCallerIdentity", "lambda:InvokeFunction", "lambda:GetFunction", "cloudtrail:LookupEvents",
            "config:GetComplianceDetailsByConfigRule", "logs:GetLogEvents", "ec2:Get*", "kms:Generate*"]
    out = outputs(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}},
             permissions=[{"actions": near, "resources": ["*"]}]),
    ]})
    assert out["boundary_statements"][0]["Action"] == near


def test_a_sid_that_repeats_one_of_the_boundarys_own_is_refused(tf_env, tmp_path):
    # Tool "deny" with sid "Iam" would be the boundary's "DenyIam".
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="deny", backend="lambda", **{"lambda": {"package": "x.zip"}},
             permissions=[{"sid": "Iam", "actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::b/*"]}]),
    ]})
    assert "would share a Sid" in text


def test_a_malformed_action_is_refused(tf_env, tmp_path):
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}},
             permissions=[{"actions": ["s3.GetObject"], "resources": ["arn:aws:s3:::b/*"]}]),
    ]})
    assert "not of the form service:ActionName" in text


def test_the_jwks_host_is_a_name_the_gateway_resolves(tf_env, tmp_path):
    # The tools' VPC answers only listed names (DNS Firewall); a gateway there fetches its keys here.
    base = {"version": 1, "tools": [tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}})]}
    auth = {"issuer": "https://login.example.com/", "jwks": {"url": "https://Keys.Example.com:8443/tenant/jwks.json"}}
    assert outputs(tf_env, tmp_path, {**base, "gateway": {"auth": auth}})["gateway_dns_names"] == ["keys.example.com"]
    assert outputs(tf_env, tmp_path, base)["gateway_dns_names"] == []
    file_keys = {"issuer": "https://login.example.com/", "jwks": {"file": "jwks.json"}}
    assert outputs(tf_env, tmp_path, {**base, "gateway": {"auth": file_keys}})["gateway_dns_names"] == []


APPROVED = {"approval": {"groups": ["approvers"]}, "session_tags": ["tool", "tenant", "approver"]}
PUBLISH = {"sid": "Publish", "actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::b/${aws:PrincipalTag/tenant}/*"],
           "require_approval": True}


def test_a_permission_that_requires_approval_needs_a_non_empty_approver_in_the_work_role(tf_env, tmp_path):
    example = outputs(tf_env, tmp_path, yaml.safe_load((REPO / "examples" / "catalog.aws.yaml").read_text()))
    read, publish = example["tools"]["tenant-publish"]["statements"]
    assert "Condition" not in read, read
    assert publish["Condition"] == {"StringLike": {"aws:PrincipalTag/approver": "?*"}}, publish
    # The shared boundary holds the statement as the catalog wrote it.
    (in_boundary,) = [s for s in example["boundary_statements"] if s["Sid"] == "TenantPublishPublish"]
    assert "Condition" not in in_boundary, in_boundary


def test_the_catalogs_own_approver_patterns_are_narrowed_and_its_other_conditions_kept(tf_env, tmp_path):
    condition = {"StringLike": {"aws:principaltag/Approver": ["", "alice", "*"], "s3:prefix": "x/*"},
                 "StringEquals": {"aws:ResourceAccount": "123456789012"}}
    out = outputs(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}}, **APPROVED,
             permissions=[{**PUBLISH, "condition": condition},
                          {**PUBLISH, "sid": "Whole", "condition": {"StringLike": {"aws:PrincipalTag/approver": "**"}}}]),
    ]})
    narrowed, whole = out["tools"]["t"]["statements"]
    # The same narrowing as the gateway's session policy (gateway/src/credentials/policy.rs).
    assert narrowed["Condition"] == {"StringLike": {"aws:PrincipalTag/approver": ["alice", "?*"], "s3:prefix": "x/*"},
                                     "StringEquals": {"aws:ResourceAccount": "123456789012"}}, narrowed
    assert whole["Condition"] == {"StringLike": {"aws:PrincipalTag/approver": "?*"}}, whole


@pytest.mark.parametrize("fields, why", [
    ({"session_tags": ["tool", "tenant"]}, "permission Publish has require_approval but the tool has no approval section"),
    ({"approval": {"groups": ["approvers"]}}, "permission Publish has require_approval but session_tags does not list approver"),
    ({**APPROVED, "condition": {"StringLike": {"aws:PrincipalTag/approver": "${aws:username}"}}}, "holds a policy variable"),
    ({**APPROVED, "condition": {"StringLike": {"aws:PrincipalTag/approver": ""}}}, "admits no non-empty approver"),
])
def test_a_permission_that_requires_approval_is_refused_where_it_could_never_hold(tf_env, tmp_path, fields, why):
    condition = {"condition": fields["condition"]} if "condition" in fields else {}
    tool_fields = {k: v for k, v in fields.items() if k != "condition"}
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}}, **tool_fields, permissions=[{**PUBLISH, **condition}]),
    ]})
    assert "a permission with require_approval holds only for credentials that name an approver" in text, text
    assert "tool t: " in text and why in text, text


def test_a_catalog_that_outgrows_the_boundary_is_refused_at_plan(tf_env, tmp_path):
    # IAM allows a managed policy 6,144 characters; the boundary holds every tool's statements.
    statements = [
        {"sid": f"Read{i}", "actions": ["s3:GetObject"],
         "resources": [f"arn:aws:s3:::switchboard-example-bucket-number-{i}/${{aws:PrincipalTag/tenant}}/reports/*"]}
        for i in range(60)
    ]
    text = refused(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}}, permissions=statements),
    ]})
    assert "the tool permission boundary would hold up to" in text and "IAM allows a managed policy 6144" in text
    # A sixth of them fits, and the example catalog leaves room for more tools.
    out = outputs(tf_env, tmp_path, {"version": 1, "tools": [
        tool(name="t", backend="lambda", **{"lambda": {"package": "x.zip"}}, permissions=statements[:10]),
    ]})
    assert out["boundary_size"] <= 6144
    # The example catalog leaves room for about two more statements (about 140 characters each).
    # The boundary's own denies take most of it since DenySharingOutward (issue 32).
    example = outputs(tf_env, tmp_path, yaml.safe_load((REPO / "examples" / "catalog.aws.yaml").read_text()))
    assert example["boundary_size"] <= 6144 - 280, example["boundary_size"]
