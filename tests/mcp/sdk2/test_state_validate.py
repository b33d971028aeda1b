"""The reference tool `state_validate` through the gateway with the MCP Python SDK 2.x: each call
sees its caller's tenant's folder of examples/tenants (read-only) and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

TENANTS = Path(__file__).resolve().parents[3] / "examples" / "tenants"
RULES = [
    "state-serial",
    "state-lineage",
    "sg-open-all-ports",
    "sg-open-admin-port",
    "iam-wildcard-action",
    "iam-wildcard-resource",
    "s3-public-access",
    "s3-public-policy",
    "s3-unencrypted",
    "volume-unencrypted",
    "output-secret-not-sensitive",
    "output-sensitive-in-state",
    "tenant-tag-missing",
]


@contextlib.asynccontextmanager
async def connect(gw, token: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0, read=60.0)
    )
    async with http:
        async with Client(streamable_http_client(gw.mcp, http_client=http)) as client:
            yield client


def call(gw, state: str, **claims):
    claims.setdefault("tenant", "acme")

    async def body():
        async with connect(gw, gw.issuer.token(**claims)) as c:
            return await c.call_tool("state_validate", {"state": state})

    return asyncio.run(asyncio.wait_for(body(), 90))


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_state_validate_is_listed_with_its_schema(gw):
    async def body():
        async with connect(gw, gw.issuer.token(tenant="acme")) as c:
            return {t.name: t for t in (await c.list_tools()).tools}

    tools = asyncio.run(asyncio.wait_for(body(), 90))
    schema = tools["state_validate"].input_schema
    assert schema["required"] == ["state"]
    assert schema["additionalProperties"] is False


def test_the_clean_example_passes(gw):
    result = call(gw, "states/clean.tfstate")
    assert not result.is_error, text_of(result)
    report = result.structured_content
    assert report["passed"] is True, report
    assert report["findings"] == [] and report["tenant"] == "acme", report
    assert report["resourceInstances"] >= 5, report
    assert "no findings" in text_of(result)


def test_every_planted_violation_is_found_with_its_address(gw):
    result = call(gw, "states/violations.tfstate")
    assert not result.is_error, text_of(result)
    report = result.structured_content
    assert report["passed"] is False
    assert sorted(f["rule"] for f in report["findings"]) == sorted(RULES), report["findings"]
    by_rule = {f["rule"]: f for f in report["findings"]}
    assert by_rule["sg-open-all-ports"]["address"] == "aws_security_group.open_all"
    assert by_rule["sg-open-admin-port"]["address"] == "aws_security_group.bastion"
    assert by_rule["s3-public-policy"]["address"] == "aws_s3_bucket_policy.assets"
    assert by_rule["s3-unencrypted"]["address"] == "aws_s3_bucket.logs"
    assert by_rule["tenant-tag-missing"]["address"] == "aws_sqs_queue.jobs"
    assert by_rule["output-secret-not-sensitive"]["address"] == "output.db_password"
    assert by_rule["state-serial"]["address"] == "state"
    for f in report["findings"]:
        assert f["severity"] in {"critical", "high", "medium", "low"}, f
        assert f["reason"] and "\n" not in f["reason"], f
        assert f"{f['rule']} {f['address']}" in text_of(result)
    assert sum(report["counts"].values()) == len(RULES)


def test_output_values_are_never_repeated(gw):
    planted = json.loads((TENANTS / "acme/states/violations.tfstate").read_text())["outputs"]
    result = call(gw, "states/violations.tfstate")
    answer = text_of(result) + json.dumps(result.structured_content)
    for name in ("db_password", "api_token"):
        assert planted[name]["value"] not in answer, name


def test_another_tenants_state_is_not_there(gw):
    # globex's state exists in the repository; an acme caller's sandbox does not hold it.
    assert (TENANTS / "globex/states/production.tfstate").is_file()
    result = call(gw, "states/production.tfstate")
    assert result.is_error
    assert "not found for this tenant" in text_of(result), text_of(result)


def test_a_path_out_of_the_tenant_folder_is_refused(gw):
    for path, why in [
        ("../globex/states/production.tfstate", "must not contain `..`"),
        ("/etc/passwd", "must be relative"),
    ]:
        result = call(gw, path)
        assert result.is_error, path
        assert why in text_of(result), text_of(result)
        assert "globex-ledger" not in text_of(result)


def test_the_same_path_for_globex_is_globex_state(gw):
    result = call(gw, "states/production.tfstate", tenant="globex")
    assert not result.is_error, text_of(result)
    assert result.structured_content["passed"] is True
    assert result.structured_content["tenant"] == "globex"


def test_a_malformed_state_is_a_clear_error(gw):
    result = call(gw, "states/malformed.tfstate")
    assert result.is_error
    assert "is not a Terraform state" in text_of(result), text_of(result)


def test_a_tenant_without_a_folder_finds_nothing(gw):
    result = call(gw, "states/clean.tfstate", tenant="initech")
    assert result.is_error
    assert "not found for this tenant" in text_of(result), text_of(result)


def test_a_caller_without_a_tenant_is_refused(gw):
    result = call(gw, "states/clean.tfstate", tenant=None)
    assert result.is_error
    assert "names no tenant" in text_of(result), text_of(result)


def test_a_tenant_that_is_not_a_folder_name_is_refused(gw):
    result = call(gw, "states/clean.tfstate", tenant="../acme")
    assert result.is_error
    assert "cannot name a folder" in text_of(result), text_of(result)
