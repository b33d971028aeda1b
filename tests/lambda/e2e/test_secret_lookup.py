"""The reference tool `secret_lookup` end to end: the official MCP Python SDK calls it through
`switchboard serve`; it runs in the gateway's local sandbox with credentials minted for the call
by its own work role, and reaches LocalStack's Secrets Manager only through its declared
endpoint. It says whether the caller's tenant has the secret, never its value."""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import SECRET_TOOL, SECRET_WORK_ROLE

# Values planted in the secrets: searched for in every answer and log.
ACME_VALUE = f"planted-acme-{uuid.uuid4().hex}"
GLOBEX_VALUE = f"planted-globex-{uuid.uuid4().hex}"
SECRETS = {
    "switchboard/acme/db/password": ACME_VALUE,
    "switchboard/globex/deploy-key": GLOBEX_VALUE,
}


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in result.content)


def answer_of(result) -> str:
    return text_of(result) + json.dumps(result.structured_content)


@pytest.fixture(scope="module")
def secrets(e2e):
    for name, value in SECRETS.items():
        try:
            e2e.aws("secretsmanager", "delete-secret", "--secret-id", name, "--force-delete-without-recovery")
        except Exception:  # noqa: BLE001 - absent before the first run
            pass
        e2e.aws("secretsmanager", "create-secret", "--name", name, "--secret-string", value)
    yield SECRETS
    for name in SECRETS:
        e2e.aws("secretsmanager", "delete-secret", "--secret-id", name, "--force-delete-without-recovery")


def describe_calls(e2e, since: int):
    return [
        x
        for x in e2e.proxy.exchanges()[since:]
        if (x.request_header("X-Amz-Target") or "") == "secretsmanager.DescribeSecret"
    ]


def test_secret_lookup_finds_the_tenants_secret(e2e, secrets):
    result = e2e.call(SECRET_TOOL, {"name": "db/password"})
    assert not result.is_error, text_of(result)
    found = result.structured_content
    assert found["exists"] is True, found
    assert found["tenant"] == "acme" and found["secretId"] == "switchboard/acme/db/password"
    assert ":secret:switchboard/acme/db/password" in found["arn"], found
    assert any("AWSCURRENT" in stages for stages in found["versionStages"].values()), found
    assert found["lastChangedDate"], found
    assert "exists for tenant acme" in text_of(result)


def test_the_lookup_goes_out_signed_by_this_calls_own_session(e2e, secrets):
    mark = e2e.mark()
    result = e2e.call(SECRET_TOOL, {"name": "db/password"})
    assert not result.is_error, text_of(result)
    minted = [a for a in e2e.assume_roles(mark) if a.role_arn.endswith(f":role/{SECRET_WORK_ROLE}")]
    assert len(minted) == 1 and minted[0].succeeded, [a.role_arn for a in e2e.assume_roles(mark)]
    (asked,) = describe_calls(e2e, mark)
    authorization = asked.request_header("Authorization") or ""
    assert f"Credential={minted[0].access_key_id}/" in authorization, authorization
    assert "/secretsmanager/aws4_request" in authorization, authorization
    assert minted[0].exchange.seq < asked.seq
    assert json.loads(asked.request_body)["SecretId"] == "switchboard/acme/db/password"


def test_another_tenants_secret_of_that_name_is_not_found(e2e, secrets):
    # globex has deploy-key; an acme caller asking for it looks under acme's prefix only.
    result = e2e.call(SECRET_TOOL, {"name": "deploy-key"})
    assert not result.is_error, text_of(result)
    assert result.structured_content["exists"] is False, result.structured_content
    assert "not found for tenant acme" in text_of(result)
    assert "globex" not in answer_of(result)
    theirs = e2e.call(SECRET_TOOL, {"name": "deploy-key"}, token=e2e.token_for("globex"))
    assert not theirs.is_error, text_of(theirs)
    assert theirs.structured_content["exists"] is True
    assert theirs.structured_content["tenant"] == "globex"


def test_a_name_that_leaves_the_tenants_prefix_is_refused_before_any_request(e2e, secrets):
    mark = e2e.mark()
    for name in ("../globex/deploy-key", "/switchboard/globex/deploy-key", "a//b"):
        result = e2e.call(SECRET_TOOL, {"name": name})
        assert result.is_error, name
        assert "segment" in text_of(result), text_of(result)
    assert describe_calls(e2e, mark) == [], "a refused name reached Secrets Manager"


def test_no_secret_value_in_answers_logs_or_audit(e2e, secrets):
    answers = [
        answer_of(e2e.call(SECRET_TOOL, {"name": "db/password"})),
        answer_of(e2e.call(SECRET_TOOL, {"name": "deploy-key"}, token=e2e.token_for("globex"))),
    ]
    log = e2e.log_bytes()
    audit = e2e.gateway.audit.read_bytes()
    assert SECRET_TOOL.encode() in audit, "the lookups left no audit line to search"
    for value in SECRETS.values():
        for answer in answers:
            assert value not in answer, "a secret's value is in the tool's answer"
        assert value.encode() not in log, "a secret's value is in the gateway log"
        assert value.encode() not in audit, "a secret's value is in the audit log"
    # And nothing the sandbox asked for returned it: DescribeSecret carries no value.
    for x in describe_calls(e2e, 0):
        for value in SECRETS.values():
            assert value.encode() not in x.response_body
