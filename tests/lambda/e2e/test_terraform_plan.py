"""The reference tool `terraform_plan` end to end: the official MCP Python SDK calls it through
`switchboard serve`; it runs terraform in the gateway's local sandbox on a project of the caller's
tenant (a copy of examples/tenants), with providers from the mirror of scripts/terraform-kit
only, credentials minted for the call by its own work role, and LocalStack reached only through
the sandbox's declared endpoints (sts, s3)."""

from __future__ import annotations

import json
import re
import urllib.request

from switchboard_harness import awswire
from conftest import TERRAFORM_TOOL, TERRAFORM_WORK_ROLE

# The shipped example project: what its plan creates, with the defaults of its variables.
STOREFRONT_CREATES = {
    "aws_s3_bucket": 2,
    "aws_s3_bucket_server_side_encryption_configuration": 2,
    "aws_s3_bucket_public_access_block": 1,
    "aws_s3_bucket_lifecycle_configuration": 1,
    "aws_sqs_queue": 1,
    "aws_iam_policy": 1,
    "aws_vpc": 1,
    "aws_security_group": 1,
}


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") or "" for c in result.content)


def refused(e2e) -> int:
    """switchboard_sandbox_egress_refused_total of terraform_plan, from /metrics."""
    with urllib.request.urlopen(e2e.gateway.base + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    m = re.search(r'^switchboard_sandbox_egress_refused_total\{tool="terraform_plan"\} (\d+)', metrics, re.M)
    return int(m.group(1)) if m else 0


def test_the_example_project_plans_with_its_counts_and_flags(e2e):
    mark = e2e.mark()
    result = e2e.call(TERRAFORM_TOOL, {"project": "storefront"})
    assert not result.is_error, text_of(result)
    plan = result.structured_content
    assert plan["project"] == "storefront" and plan["tenant"] == "acme", plan
    created = {t: c["create"] for t, c in plan["byType"].items()}
    assert created == STOREFRONT_CREATES, plan["byType"]
    assert plan["changes"] == {"create": 10, "update": 0, "delete": 0, "replace": 0}, plan["changes"]
    flags = {(f["kind"], f["address"]) for f in plan["flags"]}
    assert flags == {("iam", "aws_iam_policy.web"), ("security_group", "aws_security_group.web")}, plan["flags"]
    assert plan["planTruncated"] is False
    assert "aws_s3_bucket.assets will be created" in text_of(result), text_of(result)[:2000]

    # On the wire: the gateway minted this call's credentials, and terraform's provider asked STS
    # who it is with exactly those, after the mint, through the sandbox's declared endpoint.
    minted = [a for a in e2e.assume_roles(mark) if (a.role_arn or "").endswith(f":role/{TERRAFORM_WORK_ROLE}")]
    assert len(minted) == 1 and minted[0].succeeded, [a.role_arn for a in e2e.assume_roles(mark)]
    assert minted[0].tags.get("tenant") == "acme", minted[0].tags
    asked = [
        x
        for x in e2e.proxy.exchanges()[mark:]
        if awswire.sts_action(x) == "GetCallerIdentity"
        and f"Credential={minted[0].access_key_id}/" in (x.request_header("Authorization") or "")
    ]
    assert asked, "terraform's provider made no GetCallerIdentity with this call's credentials"
    assert all(minted[0].exchange.seq < x.seq for x in asked)
    # The minted secret is in no answer and no log.
    secret = minted[0].secret_access_key
    assert secret and secret not in text_of(result) + json.dumps(plan)
    assert secret.encode() not in e2e.log_bytes()


def test_variables_change_the_plan_and_public_exposure_is_flagged(e2e):
    result = e2e.call(TERRAFORM_TOOL, {"project": "storefront", "variables": {"public_https": True, "environment": "prod"}})
    assert not result.is_error, text_of(result)
    public = [f for f in result.structured_content["flags"] if f["kind"] == "public"]
    assert [f["address"] for f in public] == ["aws_security_group.web"], result.structured_content["flags"]
    assert "0.0.0.0/0" in public[0]["reason"], public
    assert "acme-storefront-prod-assets" in text_of(result)


def test_a_variable_that_is_not_a_name_and_a_value_is_refused(e2e):
    for variables in ({"public_https": ["a", "list"]}, {"not a name": "x"}):
        result = e2e.call(TERRAFORM_TOOL, {"project": "storefront", "variables": variables})
        assert result.is_error, variables
        assert "variables" in text_of(result), text_of(result)


def test_another_tenants_project_is_not_found(e2e):
    # ledger is globex's; an acme caller's sandbox holds acme's folder only.
    result = e2e.call(TERRAFORM_TOOL, {"project": "ledger"})
    assert result.is_error
    assert 'project "ledger" not found for this tenant' in text_of(result), text_of(result)
    assert "globex" not in text_of(result)


def test_a_provider_outside_the_mirror_fails_at_init_with_its_name(e2e):
    result = e2e.call(TERRAFORM_TOOL, {"project": "needs-random"})
    assert result.is_error
    said = text_of(result)
    assert "not in the tool's mirror: registry.terraform.io/hashicorp/random" in said, said
    assert "hashicorp/aws 5." in said, said  # what the mirror has


def test_a_provider_pointed_at_an_undeclared_host_is_refused_and_counted(e2e):
    before = refused(e2e)
    result = e2e.call(TERRAFORM_TOOL, {"project": "elsewhere"})
    assert result.is_error, text_of(result)
    said = text_of(result)
    assert "terraform plan failed" in said, said
    # The provider reports the refused read as its own error ("empty result" once its one retry
    # is spent), not the proxy's 403: the refusal itself is proven by the count and the log.
    assert "acme-probe" in said, said
    assert refused(e2e) > before, "the endpoint proxy counted no refusal"
    log = e2e.log_bytes()
    assert b"exfiltrate.example.com" in log, "the gateway log does not show the refused destination"
