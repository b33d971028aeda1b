"""Read-back assertions on the example root applied to the emulators (LocalStack + moto).

Everything is read through the AWS API and compared with the catalog file itself, not with what
Terraform says it did. Each security claim is its own test.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import ipaddress
import json
import os
import re

import pytest
from parliament import analyze_policy_string, enhance_finding

from conftest import REGION, REPO, PolicyDoc, as_document, as_list

SEVERITIES = ["MUTE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]


def documented_star_resource_sids() -> set[str]:
    """The Sids policies/README.md lists as the places a policy may use `*` as its resource."""
    text = (REPO / "policies" / "README.md").read_text()
    section = text.split("## Where a policy uses `*` as its resource", 1)[1].split("\n## ", 1)[0]
    # A row names one Sid, or several that share a reason (`A`, `B`).
    cells = re.findall(r"^\| ((?:`[A-Za-z0-9]+`(?:, )?)+) \|", section, flags=re.M)
    sids = {sid for cell in cells for sid in re.findall(r"`([A-Za-z0-9]+)`", cell)}
    assert sids, "policies/README.md documents no `*` resource exception; the table was not found"
    return sids


def principal_arns(statement: dict) -> list[str]:
    principal = statement.get("Principal", {})
    return as_list(principal.get("AWS")) if isinstance(principal, dict) else [principal]


def trust_statements(role: dict) -> list[dict]:
    return as_list(as_document(role["AssumeRolePolicyDocument"])["Statement"])


# --- units: one per catalog tool -----------------------------------------------------------------


def test_every_lambda_and_fargate_tool_is_deployed_and_nothing_else(lam, ecs, prefix, aws_tools, catalog):
    functions = {
        f["FunctionName"]
        for page in lam.get_paginator("list_functions").paginate()
        for f in page["Functions"]
        if f["FunctionName"].startswith(f"{prefix}-")
    }
    families = {
        f for f in ecs.list_task_definition_families(status="ACTIVE")["families"] if f.startswith(f"{prefix}-")
    }
    want_functions = {f"{prefix}-{n}" for n, t in aws_tools.items() if t["backend"] == "lambda"}
    want_families = {f"{prefix}-{n}" for n, t in aws_tools.items() if t["backend"] == "fargate"}
    assert functions == want_functions
    assert families - {f"{prefix}-gateway"} == want_families
    local_tools = [t["name"] for t in catalog["tools"] if t["backend"] == "local"]
    for name in local_tools:
        assert f"{prefix}-{name}" not in functions | families, f"local tool {name} was deployed"


def test_every_tool_has_its_own_execution_role(lam, ecs, roles, prefix, aws_tools):
    seen = {}
    for name, tool in aws_tools.items():
        if tool["backend"] == "lambda":
            arn = lam.get_function_configuration(FunctionName=f"{prefix}-{name}")["Role"]
        else:
            td = ecs.describe_task_definition(taskDefinition=f"{prefix}-{name}")["taskDefinition"]
            arn = td["executionRoleArn"]
        role_name = arn.rsplit("/", 1)[1]
        assert role_name == f"{prefix}-{name}-exec", f"{name} runs as {arn}"
        assert role_name in roles, f"{name}: execution role {arn} not found under the role path"
        assert arn not in seen.values(), f"{name} shares its execution role with another tool"
        seen[name] = arn


def test_tools_with_permissions_have_their_own_work_role_and_the_others_none(roles, prefix, aws_tools, bindings):
    work_arns = set()
    for name, tool in aws_tools.items():
        role = roles.get(f"{prefix}-{name}-work")
        if tool["permissions"]:
            assert role is not None, f"{name} has permissions but no work role"
            assert bindings["tools"][name]["work_role_arn"] == role["Arn"]
            work_arns.add(role["Arn"])
        else:
            assert role is None, f"{name} has no permissions but a work role"
            assert bindings["tools"][name]["work_role_arn"] is None
    assert len(work_arns) == sum(1 for t in aws_tools.values() if t["permissions"])


def test_a_local_tool_with_permissions_has_a_work_role_and_no_unit(roles, prefix, catalog, bindings, gateway_role):
    local = [t for t in catalog["tools"] if t["backend"] == "local" and t.get("permissions")]
    assert local, "the suite's catalog has no local tool with permissions (tests/infra/run.sh adds one)"
    for tool in local:
        name = tool["name"]
        role = roles.get(f"{prefix}-{name}-work")
        assert role is not None, f"local tool {name} has permissions but no work role"
        assert bindings["tools"][name] == {
            "backend": "local",
            "work_role_arn": role["Arn"],
            "session_tags": ["tool", "tenant", "principal", "invocation"],
        }
        assert name in bindings["local_tools"]
        assert f"{prefix}-{name}-exec" not in roles, f"local tool {name} got an execution role"
        # Its trust policy is checked with every work role's (test_work_roles_*).
        (policy,) = role["InlinePolicies"].values()
        granted = [a for st in as_list(policy["Statement"]) for a in as_list(st["Action"])]
        assert granted == [a for p in tool["permissions"] for a in p["actions"]]
    (doc,) = gateway_role["InlinePolicies"].values()
    mint = next(st for st in as_list(doc["Statement"]) if st["Sid"] == "MintToolCredentials")
    assert {bindings["tools"][t["name"]]["work_role_arn"] for t in local} <= set(as_list(mint["Resource"]))


def test_every_tool_role_carries_the_one_shared_permission_boundary(roles, prefix, outputs):
    boundary = outputs["gateway"]["tool_permission_boundary_arn"]
    tool_roles = [r for n, r in roles.items() if n.endswith(("-exec", "-work")) and not n.startswith(f"{prefix}-gateway")]
    assert tool_roles
    for role in tool_roles:
        assert role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn") == boundary, role["RoleName"]


def test_no_role_has_a_managed_policy_attached(roles):
    # Every right is an inline policy rendered from policies/; nothing else can widen a role.
    for name, role in roles.items():
        assert role["AttachedPolicies"] == [], f"{name} has attached policies"


# --- policies --------------------------------------------------------------------------------------


def test_no_policy_allows_a_wildcard_action(policy_documents):
    # A Deny may name `s3:*` (the invocation bucket's TLS denies): a wildcard there takes rights
    # away, never grants them.
    assert len(policy_documents) > 10
    for doc in policy_documents:
        for st in doc.statements():
            if st["Effect"] == "Deny" and "Action" in st:
                continue
            for action in as_list(st.get("Action")) + as_list(st.get("NotAction")):
                assert "*" not in action, f"{doc}: statement {st.get('Sid')} has action {action!r}"
            if "NotAction" in st:
                assert st["Effect"] == "Deny", f"{doc}: NotAction in an Allow statement"


def test_star_resource_only_in_documented_exceptions(policy_documents):
    allowed = documented_star_resource_sids()
    used = set()
    for doc in policy_documents:
        for st in doc.statements():
            if "*" in as_list(st.get("Resource")) or "NotResource" in st:
                assert "NotResource" not in st, f"{doc}: NotResource is not used anywhere"
                assert st.get("Sid") in allowed, f"{doc}: statement {st.get('Sid')} uses Resource * undocumented"
                used.add(st["Sid"])
    assert used, "no documented exception is in use: the test would not notice a new one"


@pytest.mark.parametrize("minimum", ["MEDIUM"])
def test_policies_pass_parliament_with_nothing_above_low(policy_documents, minimum):
    problems = []
    for doc in policy_documents:
        document = doc.document
        if doc.kind == "trust":
            # A trust policy is a resource policy on the role; parliament wants a Resource, so the
            # role it protects is filled in (IAM evaluates the statement against that role).
            document = {**document, "Statement": [{**st, "Resource": doc.resource_arn} for st in doc.statements()]}
        policy = analyze_policy_string(json.dumps(document))
        for finding in policy.findings:
            finding = enhance_finding(finding)
            if doc.kind == "bucket" and "s3:TlsVersion" in str(finding.detail) and finding.issue in (
                "MISMATCHED_TYPE",
                "UNKNOWN_CONDITION_FOR_ACTION",
            ):
                # The invocation bucket's deny of TLS older than 1.2. parliament's Number is
                # integers only (`^\d+$`; a JSON 1.2 crashes it), while s3:TlsVersion is a decimal
                # that AWS's own examples compare with 1.2. And under `s3:*` it names the few
                # account-level actions (access points, replication) that carry no TLS version:
                # for those the deny does not apply, and none of them acts on this bucket.
                continue
            if SEVERITIES.index(finding.severity) >= SEVERITIES.index(minimum):
                problems.append(f"{doc}: {finding.severity} {finding.issue} {finding.detail}")
    assert not problems, "\n".join(problems)


def test_work_roles_trust_only_the_gateway_role(roles, gateway_role, prefix):
    work_roles = [r for n, r in roles.items() if n.endswith("-work")]
    assert work_roles
    for role in work_roles:
        for st in trust_statements(role):
            if st["Effect"] == "Deny":
                # The refusals of malformed tag values (decided by tests/iam, [mint-malformed-*]).
                assert as_list(st["Action"]) == ["sts:TagSession"] and principal_arns(st) == ["*"], st
                continue
            assert st["Effect"] == "Allow"
            assert set(principal_arns(st)) == {gateway_role["Arn"]}, (role["RoleName"], st)
            assert set(as_list(st["Action"])) <= {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"}


def test_work_roles_require_a_source_identity(roles):
    for role in (r for n, r in roles.items() if n.endswith("-work")):
        for st in trust_statements(role):
            if set(as_list(st["Action"])) & {"sts:AssumeRole", "sts:SetSourceIdentity"}:
                assert st["Condition"]["Null"]["sts:SourceIdentity"] == "false", (role["RoleName"], st)


def test_work_roles_pin_session_tag_keys_to_the_catalog_list(roles, prefix, aws_tools):
    for name, tool in aws_tools.items():
        role = roles.get(f"{prefix}-{name}-work")
        if role is None:
            continue
        tagging = [st for st in trust_statements(role) if "sts:TagSession" in as_list(st["Action"]) and st["Effect"] == "Allow"]
        assert len(tagging) == 1, f"{name}: expected one TagSession statement"
        cond = tagging[0]["Condition"]
        assert sorted(as_list(cond["ForAllValues:StringEquals"]["aws:TagKeys"])) == sorted(tool["session_tags"])
        for tag in tool["session_tags"]:
            assert cond["Null"][f"aws:RequestTag/{tag}"] == "false", f"{name}: tag {tag} not required"
        assert cond["Null"]["sts:TransitiveTagKeys"] == "true", f"{name}: transitive tags allowed"
        if "tool" in tool["session_tags"]:
            assert cond["StringEquals"]["aws:RequestTag/tool"] == name


def test_work_role_permissions_are_the_catalogs_and_keep_principal_tag_scoping(roles, prefix, aws_tools):
    scoped = approved = 0
    for name, tool in aws_tools.items():
        role = roles.get(f"{prefix}-{name}-work")
        if role is None:
            continue
        (doc,) = role["InlinePolicies"].values()
        # The Denies that keep the credentials inside the tool subnets are checked on their own (below).
        got = [st for st in as_list(doc["Statement"]) if st["Effect"] != "Deny"]
        assert len(got) == len(tool["permissions"])
        for st, p in zip(got, tool["permissions"]):
            assert st["Effect"] == "Allow"
            assert sorted(as_list(st["Action"])) == sorted(p["actions"])
            assert sorted(as_list(st["Resource"])) == sorted(p["resources"])
            expected = p.get("condition")
            if p.get("require_approval"):
                # Only for a call whose credentials name an approver (decided by tests/iam, [approval-*]).
                own = expected or {}
                expected = {**own, "StringLike": {**own.get("StringLike", {}), "aws:PrincipalTag/approver": "?*"}}
                approved += 1
            if expected is None:
                assert "Condition" not in st, (name, st)
            else:
                assert st["Condition"] == expected, (name, st)
            scoped += any("${aws:PrincipalTag/tenant}" in r for r in as_list(st["Resource"]))
    assert scoped >= 2, "the example catalog's tenant scoping did not survive rendering"
    assert approved >= 1, "the example catalog has no permission that requires approval"


def test_in_vpc_tools_work_roles_deny_every_request_from_outside_the_tool_subnets(roles, prefix, aws_tools, vpc, ec2, outputs):
    # Issue 11 item 5: credentials a lambda or fargate tool hands out (in its result, say) fail
    # anywhere but through the tools' VPC endpoints. Requests an AWS service makes on the tool's
    # behalf (S3 asking KMS to decrypt) carry no aws:SourceVpc and stay allowed.
    checked = []
    for name, tool in aws_tools.items():
        role = roles.get(f"{prefix}-{name}-work")
        if role is None:
            continue
        (doc,) = role["InlinePolicies"].values()
        denies = {st["Sid"]: st for st in as_list(doc["Statement"]) if st["Effect"] == "Deny"}
        assert sorted(denies) == ["DenyOutsideTheToolSubnets", "DenyOutsideTheToolsVpc"], f"{name}: {denies}"
        for deny in denies.values():
            assert as_list(deny["Action"]) == ["*"] and as_list(deny["Resource"]) == ["*"], deny
            assert "NotAction" not in deny and "NotResource" not in deny
        assert denies["DenyOutsideTheToolsVpc"]["Condition"] == {
            "StringNotEquals": {"aws:SourceVpc": vpc["VpcId"]},
            "BoolIfExists": {"aws:ViaAWSService": "false"},
        }, f"{name}: {denies['DenyOutsideTheToolsVpc']['Condition']}"
        # Issue 32: the gateway's subnets share the VPC and its endpoints; only the tool subnets'
        # addresses pass (decided by tests/iam, [call-gateway-subnets]).
        tool_cidrs = sorted(
            s["CidrBlock"] for s in ec2.describe_subnets(SubnetIds=outputs["network"]["private_subnet_ids"])["Subnets"]
        )
        assert denies["DenyOutsideTheToolSubnets"]["Condition"] == {
            "NotIpAddressIfExists": {"aws:VpcSourceIp": tool_cidrs},
            "BoolIfExists": {"aws:ViaAWSService": "false"},
        }, f"{name}: {denies['DenyOutsideTheToolSubnets']['Condition']}"
        checked.append(name)
    assert len(checked) == sum(1 for t in aws_tools.values() if t["permissions"]) >= 3, checked


def test_local_tools_work_roles_are_the_documented_exception_to_the_vpc_condition(roles, prefix, catalog):
    # A local tool calls AWS from the gateway's machine, not through the tools' VPC endpoints
    # (docs/deploy-aws.md, "Credentials that work only from the tools' network").
    local = [t["name"] for t in catalog["tools"] if t["backend"] == "local" and t.get("permissions")]
    assert local
    for name in local:
        (doc,) = roles[f"{prefix}-{name}-work"]["InlinePolicies"].values()
        assert all(st["Effect"] == "Allow" for st in as_list(doc["Statement"])), name
        assert "aws:SourceVpc" not in json.dumps(doc), name


def test_execution_roles_trust_only_their_service(roles, prefix, aws_tools):
    for name, tool in aws_tools.items():
        role = roles[f"{prefix}-{name}-exec"]
        service = "lambda.amazonaws.com" if tool["backend"] == "lambda" else "ecs-tasks.amazonaws.com"
        for st in trust_statements(role):
            assert st["Principal"] == {"Service": service}, (name, st)
            assert as_list(st["Action"]) == ["sts:AssumeRole"]


def test_execution_roles_reach_only_their_own_logs_and_image(roles, prefix, aws_tools, outputs):
    for name, tool in aws_tools.items():
        role = roles[f"{prefix}-{name}-exec"]
        (doc,) = role["InlinePolicies"].values()
        log_group = f"/switchboard/{prefix}/tools/{name}"
        for st in as_list(doc["Statement"]):
            actions = set(as_list(st.get("Action")))
            if st["Effect"] == "Deny":
                # Lambda: the function's own code may use these credentials for logs only.
                assert tool["backend"] == "lambda"
                assert set(st["NotAction"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
                assert st["Condition"] == {"Null": {"lambda:SourceFunctionArn": "false"}}
                continue
            services = {a.split(":")[0] for a in actions}
            if services == {"logs"}:
                assert all(r.split(":log-group:")[1].startswith(f"{log_group}:") for r in as_list(st["Resource"])), st
            elif services == {"ecr"}:
                assert tool["backend"] == "fargate"
                resources = as_list(st["Resource"])
                if actions == {"ecr:GetAuthorizationToken"}:
                    assert resources == ["*"], st  # ECR login has no resource
                else:
                    repository = tool["fargate"]["image"].split("@")[0]
                    assert resources and all(r.endswith(f":repository/{repository}") for r in resources), st
            elif services == {"ec2"}:
                assert tool["backend"] == "lambda", "only Lambda's execution role manages interfaces"
                assert actions <= {
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                }
            else:
                pytest.fail(f"{name}: execution role grants {sorted(actions)}")
        has_deny = any(st["Effect"] == "Deny" for st in as_list(doc["Statement"]))
        assert has_deny == (tool["backend"] == "lambda"), f"{name}: Lambda code deny missing or misplaced"


def test_gateway_role_has_exactly_the_architecture_rights_on_tool_resources(gateway_role, roles, prefix, aws_tools, bindings, outputs):
    (doc,) = gateway_role["InlinePolicies"].values()
    by_sid = {st["Sid"]: st for st in as_list(doc["Statement"]) if st["Effect"] == "Allow"}
    denies = [st for st in as_list(doc["Statement"]) if st["Effect"] != "Allow"]
    granted = {a for st in by_sid.values() for a in as_list(st["Action"])}
    # The one Deny: nothing from outside the deployment's VPC (decided by tests/iam too).
    assert [st["Sid"] for st in denies] == ["OnlyFromTheDeploymentsVpc"]
    assert denies[0]["Condition"]["StringNotEquals"] == {"aws:SourceVpc": outputs["network"]["vpc_id"]}
    assert granted == {
        "sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity",
        "lambda:InvokeFunction",
        "ecs:RunTask", "ecs:StopTask", "ecs:DescribeTasks", "ecs:TagResource",
        "iam:PassRole",
        "s3:PutObject", "s3:GetObject", "s3:DeleteObject",
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
    }
    tools = bindings["tools"]
    work = {t["work_role_arn"] for t in tools.values() if t["work_role_arn"]}
    functions = {t["function_arn"] for t in tools.values() if t["backend"] == "lambda"}
    task_defs = {t["task_definition_arn"] for t in tools.values() if t["backend"] == "fargate"}
    fargate_exec = {roles[f"{prefix}-{n}-exec"]["Arn"] for n, t in aws_tools.items() if t["backend"] == "fargate"}
    bucket = bindings["invocation_bucket"]
    assert set(as_list(by_sid["MintToolCredentials"]["Resource"])) == work
    assert set(as_list(by_sid["InvokeToolFunctions"]["Resource"])) == functions
    assert set(as_list(by_sid["RunToolTasks"]["Resource"])) == task_defs
    assert by_sid["RunToolTasks"]["Condition"]["ArnEquals"]["ecs:cluster"] == outputs["gateway"]["tools_cluster_arn"]
    assert set(as_list(by_sid["PassToolTaskRoles"]["Resource"])) == fargate_exec
    assert by_sid["PassToolTaskRoles"]["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert as_list(by_sid["HandOverInvocations"]["Resource"]) == [f"arn:aws:s3:::{bucket['name']}/{bucket['prefix']}*"]
    # A bucket of the same name in another account never receives an invocation (issue 11 item 7).
    account = outputs["gateway"]["role_arn"].split(":")[4]
    assert by_sid["HandOverInvocations"]["Condition"] == {"StringEquals": {"s3:ResourceAccount": account}}
    cluster_name = outputs["gateway"]["tools_cluster_arn"].rsplit("/", 1)[1]
    for sid in ("WatchAndStopToolTasks", "TagToolTasksAtLaunch"):
        assert all(r.endswith(f":task/{cluster_name}/*") for r in as_list(by_sid[sid]["Resource"]))
    assert by_sid["TagToolTasksAtLaunch"]["Condition"] == {"StringEquals": {"ecs:CreateAction": "RunTask"}}
    # The approvals: items of that one table, and the query of its one index (no Scan, no other
    # table, no table management).
    table = outputs["gateway"]["approvals_table"]
    assert set(as_list(by_sid["KeepApprovals"]["Action"])) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert as_list(by_sid["KeepApprovals"]["Resource"]) == [table["arn"]]
    assert as_list(by_sid["FindOpenApprovals"]["Action"]) == ["dynamodb:Query"]
    assert as_list(by_sid["FindOpenApprovals"]["Resource"]) == [f"{table['arn']}/index/{table['index_name']}"]
    dynamodb_resources = {r for st in by_sid.values() if any(a.startswith("dynamodb:") for a in as_list(st["Action"])) for r in as_list(st["Resource"])}
    assert dynamodb_resources == {table["arn"], f"{table['arn']}/index/{table['index_name']}"}


def test_permission_boundary_allows_no_more_than_the_catalog_and_the_platform(iam, outputs, catalog):
    arn = outputs["gateway"]["tool_permission_boundary_arn"]
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    doc = as_document(iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"])
    # Every tool's permissions, local tools' included: their work roles carry this boundary too.
    catalog_actions = {a for t in catalog["tools"] for p in t.get("permissions", []) for a in p["actions"]}
    platform = {
        "logs:CreateLogStream", "logs:PutLogEvents",
        "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
        "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
        "ecr:GetAuthorizationToken",
    }
    allowed = {a for st in as_list(doc["Statement"]) if st["Effect"] == "Allow" for a in as_list(st["Action"])}
    assert catalog_actions <= allowed
    assert allowed <= catalog_actions | platform, sorted(allowed - catalog_actions - platform)


def deployed_boundary(iam, outputs) -> dict:
    arn = outputs["gateway"]["tool_permission_boundary_arn"]
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    return as_document(iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"])


def matches(pattern: str, action: str) -> bool:
    """IAM's action matching: `*` and `?` wildcards, no case."""
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


# What no tool ever needs (issue 11 item 6), by category, with the actions each category must
# refuse explicitly. policies/README.md ("What the boundary denies") explains each.
BOUNDARY_DENIES = {
    "IAM": ["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PassRole",
            "iam:DeleteRolePermissionsBoundary", "iam:CreateAccessKey", "iam:UpdateAssumeRolePolicy", "iam:GetRole"],
    "role chaining": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithSAML", "sts:AssumeRoot",
                      "sts:GetFederationToken", "sts:GetSessionToken", "sts:TagSession", "sts:SetSourceIdentity"],
    "Organizations": ["organizations:LeaveOrganization", "organizations:DetachPolicy", "organizations:DeletePolicy",
                      "account:PutAlternateContact"],
    "CloudTrail and Config tampering": [
        "cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "cloudtrail:UpdateTrail", "cloudtrail:PutEventSelectors",
        "config:DeleteConfigRule", "config:StopConfigurationRecorder", "config:DeleteConfigurationRecorder",
        "config:DeleteDeliveryChannel", "config:PutConfigurationRecorder", "logs:DeleteLogGroup",
        "logs:PutRetentionPolicy", "ec2:DeleteFlowLogs"],
    "KMS key deletion and disabling": ["kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy",
                                       "kms:DisableKeyRotation", "kms:CreateGrant", "kms:UpdateAlias"],
    "security groups, network ACLs, routes, VPC endpoints": [
        "ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress", "ec2:ModifySecurityGroupRules", "ec2:ModifyNetworkInterfaceAttribute",
        "ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute", "ec2:AssociateRouteTable",
        "ec2:CreateVpcEndpoint", "ec2:ModifyVpcEndpoint", "ec2:DeleteVpcEndpoints", "ec2:AttachInternetGateway",
        "ec2:CreateNatGateway", "ec2:CreateNetworkAclEntry", "ec2:ReplaceNetworkAclEntry",
        "ec2:ReplaceNetworkAclAssociation", "ec2:DeleteNetworkAclEntry", "ec2:DeleteNetworkAcl",
        "route53resolver:DisassociateFirewallRuleGroup",
        "route53resolver:UpdateFirewallConfig", "route53resolver:UpdateFirewallDomains",
        "route53resolver:DeleteResolverQueryLogConfig"],
    "resource policies, sharing, subscriptions and exports": [
        "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketAcl", "s3:PutObjectAcl",
        "s3:PutBucketOwnershipControls", "s3:PutBucketPublicAccessBlock", "s3:PutReplicationConfiguration",
        "s3:CreateAccessPoint", "s3:PutAccessPointPolicy", "secretsmanager:PutResourcePolicy",
        "secretsmanager:ReplicateSecretToRegions", "logs:PutSubscriptionFilter", "logs:CreateExportTask",
        "logs:PutResourcePolicy", "ec2:ModifySnapshotAttribute",
        "rds:ModifyDBSnapshotAttribute", "rds:ModifyDBClusterSnapshotAttribute", "servicediscovery:RegisterInstance",
        "route53:ChangeResourceRecordSets", "sns:AddPermission", "sqs:AddPermission", "ecr:SetRepositoryPolicy",
        "ram:CreateResourceShare"],
    "Lambda code and configuration": [
        "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:AddPermission",
        "lambda:CreateFunction", "lambda:DeleteFunction", "lambda:PutFunctionConcurrency",
        "lambda:CreateFunctionUrlConfig", "lambda:PublishLayerVersion", "ecs:RegisterTaskDefinition",
        "ecs:UpdateService"],
}


@pytest.mark.parametrize("category", sorted(BOUNDARY_DENIES))
def test_permission_boundary_explicitly_denies_what_no_tool_needs(iam, outputs, category):
    doc = deployed_boundary(iam, outputs)
    denies = [st for st in as_list(doc["Statement"]) if st["Effect"] == "Deny"]
    for action in BOUNDARY_DENIES[category]:
        by = [st for st in denies if any(matches(p, action) for p in as_list(st.get("Action")))]
        assert by, f"{category}: the deployed boundary has no explicit Deny of {action}"
        # Unconditional and over every resource: no condition the caller could meet to escape it.
        assert all("Condition" not in st and as_list(st["Resource"]) == ["*"] for st in by), (action, by)


def test_permission_boundary_fits_iams_size_limit(iam, outputs):
    # IAM counts a managed policy's characters without whitespace and allows 6,144 (the emulator
    # does not enforce it); modules/catalog refuses at plan a catalog whose boundary would not fit.
    doc = deployed_boundary(iam, outputs)
    size = len(re.sub(r"\s", "", json.dumps(doc)))
    assert size <= 6144, size


def test_permission_boundary_denies_leave_every_allow_intact(iam, outputs):
    # The platform's rights (logs, Lambda's interfaces, image pulls) and every catalog grant must
    # survive the denies; the catalog module refuses a grant that would not (test_catalog_module.py).
    doc = deployed_boundary(iam, outputs)
    statements = as_list(doc["Statement"])
    denied = [p for st in statements if st["Effect"] == "Deny" for p in as_list(st["Action"])]
    assert denied
    for st in statements:
        if st["Effect"] != "Allow":
            continue
        for action in as_list(st["Action"]):
            hit = [p for p in denied if matches(p, action)]
            assert not hit, f"boundary statement {st['Sid']}: {action} is denied by {hit}"


# --- network -----------------------------------------------------------------------------------------


def test_tool_security_groups_have_no_open_egress(tool_security_groups, sg_rules, endpoint_group_names, outputs):
    s3_prefix_list = outputs["network"]["s3_prefix_list_id"]
    for name, group in tool_security_groups.items():
        for rule in sg_rules(group["GroupId"]):
            if not rule["IsEgress"]:
                continue
            assert rule["IpProtocol"] == "tcp" and rule["FromPort"] == 443 and rule["ToPort"] == 443, (name, rule)
            assert "CidrIpv4" not in rule and "CidrIpv6" not in rule, f"{name}: egress to an address range {rule}"
            target = rule.get("ReferencedGroupInfo", {}).get("GroupId") or rule.get("PrefixListId")
            assert target in endpoint_group_names or target == s3_prefix_list, f"{name}: egress to {target}"


def test_tools_without_endpoints_have_no_egress_rule_at_all(tool_security_groups, sg_rules, aws_tools):
    quiet = [n for n, t in aws_tools.items() if not t["reach"]]
    assert quiet, "the example catalog should have a tool with no network"
    for name in quiet:
        group = tool_security_groups[name]
        assert group.get("IpPermissionsEgress", []) == [], f"{name}: {group['IpPermissionsEgress']}"
        assert [r for r in sg_rules(group["GroupId"]) if r["IsEgress"]] == []


def test_tool_security_groups_reach_exactly_the_declared_endpoints(tool_security_groups, sg_rules, endpoint_group_names, aws_tools, outputs):
    s3_prefix_list = outputs["network"]["s3_prefix_list_id"]
    for name, group in tool_security_groups.items():
        reached = set()
        for rule in sg_rules(group["GroupId"]):
            if rule["IsEgress"]:
                target = rule.get("ReferencedGroupInfo", {}).get("GroupId") or rule.get("PrefixListId")
                reached.add("s3" if target == s3_prefix_list else endpoint_group_names[target])
        assert reached == aws_tools[name]["reach"], name


def test_tool_security_groups_admit_no_inbound_traffic(tool_security_groups, sg_rules):
    for name, group in tool_security_groups.items():
        assert group.get("IpPermissions", []) == [], f"{name}: {group['IpPermissions']}"
        assert [r for r in sg_rules(group["GroupId"]) if not r["IsEgress"]] == [], name


def test_endpoint_security_groups_admit_only_the_tools_that_declare_them_and_the_gateway(
    ec2, vpc, prefix, sg_rules, endpoint_group_names, tool_security_groups, aws_tools
):
    # Private DNS makes the whole VPC use the interface endpoints, the gateway's own STS, Logs
    # and ECR calls included; so each endpoint admits the declaring tools and the gateway tasks.
    (gateway,) = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}, {"Name": "group-name", "Values": [f"{prefix}-gateway"]}]
    )["SecurityGroups"]
    by_group = {g["GroupId"]: n for n, g in tool_security_groups.items()} | {gateway["GroupId"]: "(gateway)"}
    for group_id, endpoint in endpoint_group_names.items():
        admitted = set()
        for rule in sg_rules(group_id):
            assert rule["IsEgress"] is False, f"endpoint {endpoint}: has an egress rule {rule}"
            assert rule["FromPort"] == 443 and rule["ToPort"] == 443 and rule["IpProtocol"] == "tcp"
            source = rule.get("ReferencedGroupInfo", {}).get("GroupId")
            assert source in by_group, f"endpoint {endpoint}: ingress from {rule}"
            admitted.add(by_group[source])
        assert admitted == {n for n, t in aws_tools.items() if endpoint in t["reach"]} | {"(gateway)"}, endpoint


def test_vpc_endpoints_are_exactly_those_the_tools_and_the_gateway_reach(endpoints, aws_tools, private_subnet_ids, bindings):
    # The gateway's role works only from the VPC, so its own APIs have endpoints there too: STS
    # (work roles to mint for), Lambda (Lambda tools), ECS and S3 (Fargate tools), DynamoDB (the
    # approvals table, always).
    tools = bindings["tools"].values()
    gateway = (
        ({"sts"} if any(t.get("work_role_arn") for t in tools) else set())
        | ({"lambda"} if any(t["backend"] == "lambda" for t in tools) else set())
        | ({"ecs", "s3"} if any(t["backend"] == "fargate" for t in tools) else set())
        | {"dynamodb"}
    )
    want = set().union(*(t["reach"] for t in aws_tools.values())) | gateway
    assert set(endpoints) == want
    for name, e in endpoints.items():
        if name in ("s3", "dynamodb"):
            assert e["VpcEndpointType"] == "Gateway"
        else:
            assert e["VpcEndpointType"] == "Interface"
            assert e["PrivateDnsEnabled"] is True
            assert set(e["SubnetIds"]) and not set(e["SubnetIds"]) & private_subnet_ids, name
            assert len(e["Groups"]) == 1, f"{name} should have its own security group"
    groups = [g["GroupId"] for e in endpoints.values() for g in e.get("Groups", [])]
    assert len(groups) == len(set(groups)), "two endpoints share a security group"


def test_endpoint_policies_admit_only_this_accounts_principals_on_its_own_resources(endpoints, bindings):
    # Decided by the policy engine too (tests/iam/deployed.test.mjs, [endpoint-*]); this is the
    # shape: the one exception is the AWS-owned bucket ECR serves image layers from.
    for name, e in endpoints.items():
        for st in as_document(e["PolicyDocument"])["Statement"]:
            assert st["Effect"] == "Allow"
            if st["Sid"] == "AwsOwnedResources":
                assert name == "s3" and as_list(st["Action"]) == ["s3:GetObject"], st
                assert as_list(st["Resource"]) == [f"arn:aws:s3:::prod-{REGION}-starport-layer-bucket/*"], st
                continue
            assert st["Condition"]["StringEquals"]["aws:PrincipalAccount"] == bindings["account_id"], name
            assert st["Condition"]["StringEquals"]["aws:ResourceAccount"] == bindings["account_id"], name


def test_private_subnets_have_no_route_to_an_internet_gateway_or_nat(ec2, private_subnet_ids, endpoints):
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": sorted(private_subnet_ids)}])["RouteTables"]
    associated = {a["SubnetId"] for t in tables for a in t["Associations"] if "SubnetId" in a}
    assert private_subnet_ids <= associated, "a private subnet uses the VPC's main route table"
    for table in tables:
        for route in table["Routes"]:
            assert not route.get("GatewayId", "").startswith("igw-"), route
            assert "NatGatewayId" not in route and "EgressOnlyInternetGatewayId" not in route, route
            assert "InstanceId" not in route and "TransitGatewayId" not in route, route
            target = route.get("GatewayId")
            assert target == "local" or (
                "s3" in endpoints and target == endpoints["s3"]["VpcEndpointId"]
            ), route
            if route.get("DestinationCidrBlock") == "0.0.0.0/0":
                pytest.fail(f"default route in a private subnet: {route}")


def test_default_security_group_has_no_rules(ec2, vpc):
    (group,) = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"]
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []


def acl_verdict(acl: dict, egress: bool, cidr: str) -> tuple[str, list[dict]]:
    """What the ACL does with traffic to or from every address of `cidr`, protocol and port aside.

    Entries are evaluated in rule-number order and the first that matches decides. Returns
    ("deny", []) when the first entry overlapping `cidr` is a deny of every protocol covering all of
    it; otherwise ("open", the entries that let some of it through before such a deny)."""
    net = ipaddress.ip_network(cidr)
    entries = sorted(
        (e for e in acl["Entries"] if e["Egress"] is egress and "CidrBlock" in e),
        key=lambda e: e["RuleNumber"],
    )
    for e in entries:
        block = ipaddress.ip_network(e["CidrBlock"])
        if not block.overlaps(net):
            continue
        if e["RuleAction"] == "deny" and e["Protocol"] == "-1" and net.subnet_of(block):
            return "deny", []
        return "open", [e]
    return "open", []  # only the implicit final deny: denied, but by nothing this stack states


def subnet_acl(ec2, subnet_id: str) -> dict:
    (acl,) = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["NetworkAcls"]
    return acl


def subnets_of_tier(ec2, vpc, tier: str) -> list[dict]:
    return ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}, {"Name": "tag:switchboard:tier", "Values": [tier]}]
    )["Subnets"]


def test_tool_subnets_cannot_reach_the_gateway_subnets(ec2, vpc, outputs):
    tools, gateway = subnets_of_tier(ec2, vpc, "private"), subnets_of_tier(ec2, vpc, "public")
    assert tools and gateway, "the example deploys tool and gateway (public) subnets"
    for subnet in gateway:
        acl = subnet_acl(ec2, subnet["SubnetId"])
        assert acl["NetworkAclId"] == outputs["network"]["gateway_network_acl_id"], subnet["SubnetId"]
        assert acl["IsDefault"] is False, f"{subnet['SubnetId']} uses the VPC's default ACL (allows all)"
        for tool in tools:
            for egress in (False, True):
                verdict, through = acl_verdict(acl, egress, tool["CidrBlock"])
                assert verdict == "deny", (
                    f"gateway subnet {subnet['CidrBlock']}: {'to' if egress else 'from'} tool subnet "
                    f"{tool['CidrBlock']} is let through by {through}"
                )


def test_gateway_subnets_cannot_reach_the_tool_subnets(ec2, vpc, outputs):
    tools, gateway = subnets_of_tier(ec2, vpc, "private"), subnets_of_tier(ec2, vpc, "public")
    for subnet in tools:
        acl = subnet_acl(ec2, subnet["SubnetId"])
        assert acl["NetworkAclId"] == outputs["network"]["tools_network_acl_id"], subnet["SubnetId"]
        assert acl["IsDefault"] is False, f"{subnet['SubnetId']} uses the VPC's default ACL (allows all)"
        for other in gateway:
            for egress in (False, True):
                verdict, through = acl_verdict(acl, egress, other["CidrBlock"])
                assert verdict == "deny", (
                    f"tool subnet {subnet['CidrBlock']}: {'to' if egress else 'from'} gateway subnet "
                    f"{other['CidrBlock']} is let through by {through}"
                )


def test_tool_subnets_send_only_https_and_admit_only_answers(ec2, vpc, outputs):
    (acl,) = ec2.describe_network_acls(NetworkAclIds=[outputs["network"]["tools_network_acl_id"]])["NetworkAcls"]
    for e in acl["Entries"]:
        if e["RuleAction"] != "allow" or e["RuleNumber"] == 32767:
            continue
        assert e["Protocol"] in ("6", "tcp"), f"tool subnets: an allow beyond TCP {e}"
        ports = (e["PortRange"]["From"], e["PortRange"]["To"])
        if e["Egress"]:
            assert ports == (443, 443), f"tool subnets may send {e}"
        else:
            assert ports == (1024, 65535), f"tool subnets admit {e}"


def test_interface_endpoints_sit_apart_from_the_tool_and_gateway_subnets(ec2, vpc, endpoints, private_subnet_ids, outputs):
    endpoint_subnets = {s["SubnetId"] for s in subnets_of_tier(ec2, vpc, "endpoints")}
    assert endpoint_subnets == set(outputs["network"]["endpoint_subnet_ids"])
    interface = {n: e for n, e in endpoints.items() if e["VpcEndpointType"] == "Interface"}
    assert interface, "the example deploys interface endpoints"
    for name, e in interface.items():
        assert set(e["SubnetIds"]) == endpoint_subnets, name
        assert not set(e["SubnetIds"]) & (private_subnet_ids | set(outputs["network"]["public_subnet_ids"])), name


def test_no_route_leaves_the_vpc_from_the_tool_or_endpoint_subnets_but_to_s3(ec2, vpc, endpoints, private_subnet_ids, outputs):
    # Within one VPC the local route joins every subnet (the ACLs above separate the tiers); what
    # must not exist is a route from the tools' side to the internet gateway the gateway uses.
    ids = sorted(private_subnet_ids | set(outputs["network"]["endpoint_subnet_ids"]))
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": ids}])["RouteTables"]
    assert {a["SubnetId"] for t in tables for a in t["Associations"] if "SubnetId" in a} == set(ids)
    for table in tables:
        for route in table["Routes"]:
            target = route.get("GatewayId")
            assert target == "local" or ("s3" in endpoints and target == endpoints["s3"]["VpcEndpointId"]), route


def test_tool_security_groups_have_no_egress_to_the_gateway(ec2, vpc, prefix, tool_security_groups, sg_rules):
    groups = {
        g["GroupName"]: g["GroupId"]
        for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["SecurityGroups"]
    }
    gateway_side = {groups[f"{prefix}-gateway"], groups[f"{prefix}-gateway-lb"]}
    for name, group in tool_security_groups.items():
        for rule in sg_rules(group["GroupId"]):
            if rule["IsEgress"]:
                assert rule.get("ReferencedGroupInfo", {}).get("GroupId") not in gateway_side, (name, rule)
                assert "CidrIpv4" not in rule, (name, rule)
    # ... and neither gateway group admits a tool's group.
    tool_ids = {g["GroupId"] for g in tool_security_groups.values()}
    for group_id in gateway_side:
        for rule in sg_rules(group_id):
            if not rule["IsEgress"]:
                assert rule.get("ReferencedGroupInfo", {}).get("GroupId") not in tool_ids, rule


def test_load_balancer_admits_only_its_listeners_cidrs_and_reaches_only_the_gateway_tasks(ec2, vpc, prefix, sg_rules, outputs):
    groups = {
        g["GroupName"]: g["GroupId"]
        for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["SecurityGroups"]
    }
    lb, gateway = groups[f"{prefix}-gateway-lb"], groups[f"{prefix}-gateway"]
    rules = sg_rules(lb)
    ingress = [r for r in rules if not r["IsEgress"]]
    assert {(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in ingress} == {("tcp", 443, 443)}
    assert sorted(r["CidrIpv4"] for r in ingress) == sorted(outputs["gateway"]["load_balancer_ingress_cidrs"])
    egress = [r for r in rules if r["IsEgress"]]
    assert len(egress) == 1 and egress[0]["ReferencedGroupInfo"]["GroupId"] == gateway, egress


def test_gateway_tasks_are_reachable_from_the_load_balancer_only(ec2, sg_rules, prefix, vpc):
    groups = {
        g["GroupName"]: g["GroupId"]
        for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["SecurityGroups"]
    }
    gateway, lb = groups[f"{prefix}-gateway"], groups[f"{prefix}-gateway-lb"]
    # Besides the rules between the tasks themselves (forwarded cancellations and DELETEs), which
    # test_gateway_sessions.py checks.
    rules = [r for r in sg_rules(gateway) if r.get("ReferencedGroupInfo", {}).get("GroupId") != gateway]
    ingress = [r for r in rules if not r["IsEgress"]]
    assert len(ingress) == 1 and ingress[0]["ReferencedGroupInfo"]["GroupId"] == lb
    egress = [r for r in rules if r["IsEgress"]]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in egress] == [("tcp", 443, 443)]


# --- units' configuration --------------------------------------------------------------------------


def test_every_lambda_sits_in_the_private_subnets_with_its_own_group(lam, prefix, aws_tools, private_subnet_ids, tool_security_groups):
    for name, tool in aws_tools.items():
        if tool["backend"] != "lambda":
            continue
        config = lam.get_function_configuration(FunctionName=f"{prefix}-{name}")
        assert set(config["VpcConfig"]["SubnetIds"]) == private_subnet_ids, name
        assert config["VpcConfig"]["SecurityGroupIds"] == [tool_security_groups[name]["GroupId"]], name


def test_every_lambda_matches_its_catalog_entry(lam, prefix, aws_tools, catalog_dir):
    for name, tool in aws_tools.items():
        if tool["backend"] != "lambda":
            continue
        config = lam.get_function_configuration(FunctionName=f"{prefix}-{name}")
        package = (catalog_dir / tool["lambda"]["package"]).read_bytes()
        assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(package).digest()).decode(), (
            f"{name}: not the package the catalog names"
        )
        assert config["Runtime"] == "provided.al2023" and config["Handler"] == "bootstrap"
        assert config["Timeout"] == tool["timeout_seconds"]
        assert config["MemorySize"] == tool["memory_mb"]
        assert config["EphemeralStorage"]["Size"] == tool["ephemeral_storage_mb"]
        assert config["Architectures"] == [tool["lambda"].get("architecture", "x86_64")]
        assert config["LoggingConfig"]["LogGroup"] == f"/switchboard/{prefix}/tools/{name}"
        assert not config.get("Environment", {}).get("Variables"), f"{name}: unexpected environment"


def test_every_task_definition_is_awsvpc_with_a_read_only_root(ecs, prefix, aws_tools):
    families = [f"{prefix}-{n}" for n, t in aws_tools.items() if t["backend"] == "fargate"] + [f"{prefix}-gateway"]
    for family in families:
        td = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        assert td["networkMode"] == "awsvpc", family
        assert td["requiresCompatibilities"] == ["FARGATE"], family
        for container in td["containerDefinitions"]:
            assert container["readonlyRootFilesystem"] is True, (family, container["name"])
            assert container.get("privileged") in (None, False)
            assert container["logConfiguration"]["logDriver"] == "awslogs"
            assert container["linuxParameters"]["capabilities"]["drop"] == ["ALL"]


def test_fargate_tasks_match_the_catalog_and_have_no_task_role(ecs, prefix, aws_tools):
    for name, tool in aws_tools.items():
        if tool["backend"] != "fargate":
            continue
        td = ecs.describe_task_definition(taskDefinition=f"{prefix}-{name}")["taskDefinition"]
        assert "taskRoleArn" not in td or not td["taskRoleArn"], f"{name}: the task has an AWS identity"
        assert td["cpu"] == str(tool["fargate"].get("cpu", 256))
        assert td["memory"] == str(tool["memory_mb"])
        assert td["ephemeralStorage"]["sizeInGiB"] * 1024 >= tool["ephemeral_storage_mb"]
        (container,) = td["containerDefinitions"]
        assert container["logConfiguration"]["options"]["awslogs-group"] == f"/switchboard/{prefix}/tools/{name}"
        assert container["command"] == tool["fargate"]["command"]
        assert container["image"].endswith(".amazonaws.com/" + tool["fargate"]["image"])
        assert not container.get("environment"), f"{name}: arguments or credentials must not ride in the environment"


def test_every_log_group_has_retention(logs, prefix):
    groups = logs.describe_log_groups(logGroupNamePrefix=f"/switchboard/{prefix}/")["logGroups"]
    assert len(groups) >= 3
    for g in groups:
        assert g.get("retentionInDays"), g["logGroupName"]


def test_invocation_bucket_is_private_encrypted_and_expires(s3, kms, bindings, gateway_role):
    bucket = bindings["invocation_bucket"]["name"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    # Encrypted with the deployment's own key, which only the gateway role may use, through S3
    # (issue 11 item 7); the account administers it and nothing more.
    default = rules[0]["ApplyServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms" and rules[0].get("BucketKeyEnabled") is True, rules
    key = kms.describe_key(KeyId=default["KMSMasterKeyID"])["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER" and key["KeyState"] == "Enabled", key
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    key_policy = as_document(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    users = [st for st in key_policy["Statement"] if {"kms:Decrypt", "kms:GenerateDataKey"} & set(as_list(st["Action"]))]
    assert len(users) == 1 and users[0]["Principal"] == {"AWS": gateway_role["Arn"]}, users
    assert set(as_list(users[0]["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert users[0]["Condition"]["StringEquals"]["kms:ViaService"].startswith("s3."), users
    for st in key_policy["Statement"]:
        assert st["Effect"] == "Allow" and "*" not in json.dumps(st["Principal"]), st
        if st is not users[0]:
            using = {"kms:*", "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncrypt*"}
            assert not using & set(as_list(st["Action"])), st
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    expiring = [r for r in lifecycle if r["Status"] == "Enabled" and "Expiration" in r]
    assert expiring and expiring[0]["Expiration"]["Days"] == 1
    assert any("AbortIncompleteMultipartUpload" in r for r in lifecycle)
    policy = as_document(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    by_sid = {st["Sid"]: st for st in policy["Statement"]}
    deny = by_sid["OnlyTheGatewayReadsAndWritesInvocations"]
    assert deny["Effect"] == "Deny"
    assert set(as_list(deny["Action"])) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == gateway_role["Arn"]
    # Every S3 action over plain HTTP, and over TLS older than 1.2, is refused (issue 11 item 7).
    resources = {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    for sid, condition in (
        ("TlsOnly", {"Bool": {"aws:SecureTransport": "false"}}),
        ("Tls12OrLater", {"NumericLessThan": {"s3:TlsVersion": "1.2"}}),
    ):
        st = by_sid[sid]
        assert st["Effect"] == "Deny" and as_list(st["Action"]) == ["s3:*"], st
        assert set(as_list(st["Resource"])) == resources and st["Condition"] == condition, st


# --- the approvals table (docs/approvals.md) --------------------------------------------------------


def test_approvals_table_is_the_one_the_gateway_reads_and_writes(dynamodb, bindings, outputs, prefix):
    table = outputs["gateway"]["approvals_table"]
    assert bindings["approvals"] == {"table_name": table["name"]} and table["name"] == f"{prefix}-approvals"
    t = dynamodb.describe_table(TableName=table["name"])["Table"]
    assert t["TableArn"] == table["arn"]
    assert t["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    # As gateway/src/approval/dynamo.rs reads and writes it: items by id, and the sparse index of
    # unsettled approvals by binding, newest first, keys only (no arguments copied into it).
    assert t["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    (index,) = t["GlobalSecondaryIndexes"]
    assert index["IndexName"] == table["index_name"] == "open_binding"
    assert index["KeySchema"] == [
        {"AttributeName": "open_binding", "KeyType": "HASH"},
        {"AttributeName": "created_unix", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    types = {a["AttributeName"]: a["AttributeType"] for a in t["AttributeDefinitions"]}
    assert types == {"id": "S", "open_binding": "S", "created_unix": "N"}


def test_approvals_expire_by_ttl_and_can_be_recovered_to_a_point_in_time(dynamodb, outputs):
    name = outputs["gateway"]["approvals_table"]["name"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}, ttl
    backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED", backups


def test_approvals_table_is_encrypted_with_its_own_key_only_the_gateway_uses(dynamodb, kms, outputs, gateway_role):
    table = outputs["gateway"]["approvals_table"]
    sse = dynamodb.describe_table(TableName=table["name"])["Table"]["SSEDescription"]
    assert sse["Status"] == "ENABLED" and sse["SSEType"] == "KMS", sse
    assert sse["KMSMasterKeyArn"] == table["kms_key_arn"], sse
    key = kms.describe_key(KeyId=table["kms_key_arn"])["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER" and key["KeyState"] == "Enabled", key
    assert key["KeySpec"] == "SYMMETRIC_DEFAULT" and key["KeyUsage"] == "ENCRYPT_DECRYPT", key
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    policy = as_document(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    by_sid = {st["Sid"]: st for st in policy["Statement"]}
    assert set(by_sid) == {
        "TheAccountAdministersTheKeyButDoesNotUseIt",
        "OnlyTheGatewayReadsAndWritesApprovalsThroughDynamoDB",
        "GrantsOnlyForDynamoDBsOwnUseOfTheTable",
    }
    account = gateway_role["Arn"].split(":")[4]
    through_dynamodb = {"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com", "kms:CallerAccount": account}
    using = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext"}
    gateway = by_sid["OnlyTheGatewayReadsAndWritesApprovalsThroughDynamoDB"]
    assert gateway["Principal"] == {"AWS": gateway_role["Arn"]}, gateway
    assert set(as_list(gateway["Action"])) == using | {"kms:DescribeKey"}
    assert gateway["Condition"] == {"StringEquals": through_dynamodb}, gateway
    # Grants only for DynamoDB's own use of the table (it makes one when the table is created or
    # restored), never one a principal could hand itself or another.
    grants = by_sid["GrantsOnlyForDynamoDBsOwnUseOfTheTable"]
    assert as_list(grants["Action"]) == ["kms:CreateGrant"], grants
    assert set(as_list(grants["Principal"]["AWS"])) == {f"arn:aws:iam::{account}:root", gateway_role["Arn"]}, grants
    assert grants["Condition"] == {"StringEquals": through_dynamodb, "Bool": {"kms:GrantIsForAWSResource": "true"}}, grants
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow" and "*" not in json.dumps(st["Principal"]), st
        if st is not gateway:
            assert not (using | {"kms:*", "kms:ReEncrypt*", "kms:GenerateDataKey*"}) & set(as_list(st["Action"])), st


def test_approvals_table_is_reached_from_the_gateways_subnets_only(ec2, endpoints, outputs):
    # A gateway endpoint, routed from the gateway's (public) subnets' route table and not from the
    # tools' or the endpoints' (test_no_route_leaves_the_vpc_from_the_tool_or_endpoint_subnets_but_to_s3).
    endpoint = endpoints["dynamodb"]
    tables = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": outputs["network"]["public_subnet_ids"]}]
    )["RouteTables"]
    assert set(endpoint["RouteTableIds"]) == {t["RouteTableId"] for t in tables}
    assert outputs["network"]["private_route_table_id"] not in endpoint["RouteTableIds"]
    policy = as_document(endpoint["PolicyDocument"])
    actions = {a for st in policy["Statement"] for a in as_list(st["Action"])}
    assert actions == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}


# --- bindings: what the gateway will read --------------------------------------------------------------


def test_bindings_name_what_is_deployed(bindings, lam, ecs, iam, aws_tools, private_subnet_ids, tool_security_groups, outputs):
    local_bound = {n for n, b in bindings["tools"].items() if b["backend"] == "local"}
    assert set(bindings["tools"]) - local_bound == set(aws_tools)
    assert bindings["gateway_role_arn"] == outputs["gateway"]["role_arn"]
    for name, b in bindings["tools"].items():
        if name in local_bound:
            continue  # test_a_local_tool_with_permissions_has_a_work_role_and_no_unit
        assert b["backend"] == aws_tools[name]["backend"]
        assert set(b["subnets"]) == private_subnet_ids
        assert b["security_groups"] == [tool_security_groups[name]["GroupId"]]
        assert b["session_tags"] == aws_tools[name]["session_tags"]
        if b["backend"] == "lambda":
            assert lam.get_function_configuration(FunctionName=b["function_arn"])["FunctionArn"] == b["function_arn"]
            assert "task_definition_arn" not in b
        else:
            td = ecs.describe_task_definition(taskDefinition=b["task_definition_arn"])["taskDefinition"]
            assert td["taskDefinitionArn"] == b["task_definition_arn"]
            assert td["status"] == "ACTIVE"
            (cluster,) = ecs.describe_clusters(clusters=[b["cluster_arn"]])["clusters"]
            assert cluster["status"] == "ACTIVE"
            assert b["container_name"] in {c["name"] for c in td["containerDefinitions"]}
        if b["work_role_arn"]:
            assert iam.get_role(RoleName=b["work_role_arn"].rsplit("/", 1)[1])["Role"]["Arn"] == b["work_role_arn"]


def test_gateway_task_receives_the_bindings_in_its_environment(ecs, prefix, bindings):
    td = ecs.describe_task_definition(taskDefinition=f"{prefix}-gateway")["taskDefinition"]
    (container,) = td["containerDefinitions"]
    env = {e["name"]: e["value"] for e in container.get("environment", [])}
    assert json.loads(env["SWITCHBOARD_BINDINGS"]) == bindings
    assert td["taskRoleArn"] == bindings["gateway_role_arn"]


def test_gateway_task_runs_its_image_pinned_by_digest(ecs, prefix):
    td = ecs.describe_task_definition(taskDefinition=f"{prefix}-gateway")["taskDefinition"]
    (container,) = td["containerDefinitions"]
    image = os.environ["SWITCHBOARD_GATEWAY_IMAGE"]
    assert re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", image)
    assert container["image"].endswith(".amazonaws.com/" + image), container["image"]
    assert container["user"] == "65534:65534" and container["readonlyRootFilesystem"] is True


def test_everything_is_tagged_with_the_stack(iam, roles, prefix):
    for name, role in roles.items():
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]}
        assert tags.get("switchboard:stack") == prefix, name


# --- DNS: the resolver answers only the endpoints' names (issue 11 item 4) ------------------------


def expected_dns_names(endpoints: dict) -> set[str]:
    """What a client in the VPC resolves to reach each deployed endpoint: an interface endpoint's
    private DNS name; for S3's gateway endpoint, S3's regional names, bucket-style included."""
    names = {
        "s3": {f"s3.{REGION}.amazonaws.com", f"*.s3.{REGION}.amazonaws.com"},
        "sts": {f"sts.{REGION}.amazonaws.com"},
        "logs": {f"logs.{REGION}.amazonaws.com"},
        "kms": {f"kms.{REGION}.amazonaws.com"},
        "ecr.api": {f"api.ecr.{REGION}.amazonaws.com"},
        "ecr.dkr": {f"*.dkr.ecr.{REGION}.amazonaws.com"},
        "secretsmanager": {f"secretsmanager.{REGION}.amazonaws.com"},
        "lambda": {f"lambda.{REGION}.amazonaws.com"},
        "ecs": {f"ecs.{REGION}.amazonaws.com"},
        "dynamodb": {f"dynamodb.{REGION}.amazonaws.com"},
    }
    return set().union(*(names[e] for e in endpoints))


def firewall_rules(resolver, outputs) -> list[dict]:
    group = outputs["network"]["dns_firewall_rule_group_id"]
    return sorted(resolver.list_firewall_rules(FirewallRuleGroupId=group)["FirewallRules"], key=lambda r: r["Priority"])


def domains(resolver, list_id: str) -> set[str]:
    return {d.rstrip(".") for d in resolver.list_firewall_domains(FirewallDomainListId=list_id)["Domains"]}


def test_dns_firewall_guards_the_tools_vpc(resolver, outputs, vpc):
    association = resolver.get_firewall_rule_group_association(
        FirewallRuleGroupAssociationId=outputs["network"]["dns_firewall_association_id"]
    )["FirewallRuleGroupAssociation"]
    assert association["VpcId"] == vpc["VpcId"]
    assert association["FirewallRuleGroupId"] == outputs["network"]["dns_firewall_rule_group_id"]


def test_dns_firewall_allows_only_the_endpoints_names(resolver, outputs, endpoints, bindings):
    allow, _ = firewall_rules(resolver, outputs)
    assert allow["Action"] == "ALLOW"
    # The gateway is not exposed in the emulators (no tasks in the VPC), so nothing else is listed.
    assert bindings and not outputs["gateway"]["dns_names"]
    assert domains(resolver, allow["FirewallDomainListId"]) == expected_dns_names(endpoints)


def test_dns_firewall_blocks_every_other_name_with_nxdomain_after_the_allow(resolver, outputs):
    rules = firewall_rules(resolver, outputs)
    assert len(rules) == 2, rules
    allow, block = rules
    assert allow["Priority"] < block["Priority"]
    assert block["Action"] == "BLOCK" and block["BlockResponse"] == "NXDOMAIN", block
    assert domains(resolver, block["FirewallDomainListId"]) == {"*"}


def test_dns_firewall_fails_closed(resolver, vpc):
    config = resolver.get_firewall_config(ResourceId=vpc["VpcId"])["FirewallConfig"]
    assert config["FirewallFailOpen"] == "DISABLED", config


def test_every_dns_query_of_the_vpc_is_logged_with_retention(resolver, logs, outputs, vpc):
    associations = resolver.list_resolver_query_log_config_associations(
        Filters=[{"Name": "ResourceId", "Values": [vpc["VpcId"]]}]
    )["ResolverQueryLogConfigAssociations"]
    associations = [a for a in associations if a["ResourceId"] == vpc["VpcId"]]
    assert len(associations) == 1 and associations[0]["Status"] in ("ACTIVE", "CREATING"), associations
    config = resolver.get_resolver_query_log_config(
        ResolverQueryLogConfigId=associations[0]["ResolverQueryLogConfigId"]
    )["ResolverQueryLogConfig"]
    name = outputs["network"]["dns_query_log_group_name"]
    (group,) = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert config["DestinationArn"] == group["arn"].removesuffix(":*")
    assert group["retentionInDays"] > 0
    # Resolver may write there and nowhere else.
    policies = [
        as_document(p["policyDocument"]) for p in logs.describe_resource_policies()["resourcePolicies"]
        if name in p["policyDocument"]
    ]
    assert len(policies) == 1
    for st in policies[0]["Statement"]:
        assert st["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
        assert all(r.startswith(group["arn"].removesuffix(":*") + ":") for r in as_list(st["Resource"]))


# --- the log groups' key -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def log_key(kms, outputs) -> dict:
    arn = outputs["log_key_arn"]
    return {
        "arn": arn,
        "metadata": kms.describe_key(KeyId=arn)["KeyMetadata"],
        "policy": as_document(kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"]),
    }


def test_every_log_group_is_encrypted_with_the_deployments_log_key(logs, prefix, aws_tools, outputs, log_key):
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix=f"/switchboard/{prefix}/")["logGroups"]}
    want = {f"/switchboard/{prefix}/tools/{n}" for n in aws_tools} | {
        outputs["gateway"]["log_group_name"],
        f"/switchboard/{prefix}/vpc-flow-logs",
        outputs["network"]["dns_query_log_group_name"],
    }
    assert want <= set(groups), sorted(want - set(groups))
    for name, g in groups.items():
        assert g.get("kmsKeyId") == log_key["arn"], f"{name}: kmsKeyId {g.get('kmsKeyId')!r}"


def test_log_key_is_a_rotated_symmetric_customer_key(kms, log_key):
    meta = log_key["metadata"]
    assert meta["KeyManager"] == "CUSTOMER" and meta["KeyState"] == "Enabled"
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT" and meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert kms.get_key_rotation_status(KeyId=log_key["arn"])["KeyRotationEnabled"] is True


def test_log_key_is_used_only_by_cloudwatch_logs_of_this_region_for_these_log_groups(log_key, bindings, prefix):
    account, region = bindings["account_id"], bindings["region"]
    statements = {st["Sid"]: st for st in as_list(log_key["policy"]["Statement"])}
    assert set(statements) == {
        "TheAccountAdministersTheKeyButDoesNotUseIt",
        "OnlyCloudWatchLogsOfThisRegionUsesItForTheseLogGroups",
    }
    use = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext"}
    admin = statements["TheAccountAdministersTheKeyButDoesNotUseIt"]
    assert admin["Effect"] == "Allow" and principal_arns(admin) == [f"arn:aws:iam::{account}:root"]
    granted = as_list(admin["Action"])
    assert not [a for a in use if any(matches(p, a) for p in granted)], f"the account may use the key: {granted}"
    logs_st = statements["OnlyCloudWatchLogsOfThisRegionUsesItForTheseLogGroups"]
    assert logs_st["Effect"] == "Allow"
    assert logs_st["Principal"] == {"Service": f"logs.{region}.amazonaws.com"}
    assert set(as_list(logs_st["Action"])) == use
    assert logs_st["Condition"] == {
        "StringLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account}:log-group:/switchboard/{prefix}/*"}
    }


def test_log_key_policy_passes_parliament_with_nothing_above_low(log_key):
    problems = []
    for finding in analyze_policy_string(json.dumps(log_key["policy"])).findings:
        finding = enhance_finding(finding)
        if SEVERITIES.index(finding.severity) >= SEVERITIES.index("MEDIUM"):
            problems.append(f"{finding.severity} {finding.issue} {finding.detail}")
    assert not problems, "\n".join(problems)
