"""The reference tools' AWS mode end to end: with a `bucket` argument, `state_validate` and
`terraform_plan` read the caller's tenant's files from S3 (`<tenant>/...` of the bucket) instead of
a tenant folder, with credentials minted for the call, reaching LocalStack's S3 only through the
sandbox's declared endpoint. The bucket holds a copy of examples/tenants, as a deployment keeps
them; the official MCP Python SDK calls the tools through `switchboard serve`."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from conftest import REPO, STATE_TOOL, STATE_WORK_ROLE, TENANTS_BUCKET, TERRAFORM_TOOL, TERRAFORM_WORK_ROLE
from test_terraform_plan import STOREFRONT_CREATES

# examples/tenants/acme/states/violations.tfstate breaks each of these rules once.
RULES = {
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
}


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") or "" for c in result.content)


@pytest.fixture(scope="module")
def bucket(e2e):
    try:
        e2e.aws("s3api", "create-bucket", "--bucket", TENANTS_BUCKET)
    except Exception:  # noqa: BLE001 - left by an earlier run against the same LocalStack
        pass
    e2e.aws("s3", "sync", "--only-show-errors", "--delete", str(REPO / "examples" / "tenants"), f"s3://{TENANTS_BUCKET}/")
    # A folder marker and a .terraform folder, as a console upload or a careless sync leaves them:
    # the plan skips both.
    for key in ("acme/projects/storefront/", "acme/projects/storefront/.terraform/terraform.tfstate"):
        e2e.aws("s3api", "put-object", "--bucket", TENANTS_BUCKET, "--key", key)
    yield TENANTS_BUCKET


def s3_requests(e2e, since: int, minted=None):
    """The requests to the tenants' bucket since `since`, as (method, key or listing prefix, exchange)."""
    found = []
    for x in e2e.proxy.exchanges()[since:]:
        url = urllib.parse.urlsplit(x.path)
        path = urllib.parse.unquote(url.path)
        if not path.startswith(f"/{TENANTS_BUCKET}"):
            continue
        if minted is not None:
            assert f"Credential={minted.access_key_id}/" in (x.request_header("Authorization") or ""), x.summary()
            assert "/s3/aws4_request" in (x.request_header("Authorization") or ""), x.summary()
        query = urllib.parse.parse_qs(url.query)
        if "list-type" in query:
            found.append(("LIST", query.get("prefix", [""])[0], x))
        else:
            found.append((x.method, path.removeprefix(f"/{TENANTS_BUCKET}/"), x))
    return found


def minted_for(e2e, mark: int, role: str):
    minted = [a for a in e2e.assume_roles(mark) if (a.role_arn or "").endswith(f":role/{role}")]
    assert len(minted) == 1 and minted[0].succeeded, [a.role_arn for a in e2e.assume_roles(mark)]
    return minted[0]


def test_state_validate_reads_the_tenants_state_from_the_bucket_with_this_calls_credentials(e2e, bucket):
    mark = e2e.mark()
    result = e2e.call(STATE_TOOL, {"bucket": bucket, "state": "states/violations.tfstate"})
    assert not result.is_error, text_of(result)
    report = result.structured_content
    assert report["bucket"] == bucket and report["tenant"] == "acme" and report["passed"] is False, report
    assert sorted(f["rule"] for f in report["findings"]) == sorted(RULES), report["findings"]
    for f in report["findings"]:
        assert f"{f['rule']} {f['address']}" in text_of(result)

    # On the wire: one GetObject of acme's key, path-style, signed by this call's minted session
    # (tagged with the caller's tenant), after the mint.
    minted = minted_for(e2e, mark, STATE_WORK_ROLE)
    assert minted.tags.get("tenant") == "acme", minted.tags
    requests = s3_requests(e2e, mark, minted)
    assert [(m, k) for m, k, _ in requests] == [("GET", "acme/states/violations.tfstate")], requests
    assert minted.exchange.seq < requests[0][2].seq
    secret = minted.secret_access_key
    assert secret and secret not in text_of(result) + json.dumps(report)
    assert secret.encode() not in e2e.log_bytes()


def test_state_validate_finds_nothing_in_the_clean_state_in_the_bucket(e2e, bucket):
    result = e2e.call(STATE_TOOL, {"bucket": bucket, "state": "states/clean.tfstate"})
    assert not result.is_error, text_of(result)
    assert result.structured_content["passed"] is True, result.structured_content
    assert "no findings" in text_of(result)


def test_another_tenants_state_in_the_bucket_is_not_found(e2e, bucket):
    # globex has states/production.tfstate; an acme caller asks under acme/ only.
    mark = e2e.mark()
    result = e2e.call(STATE_TOOL, {"bucket": bucket, "state": "states/production.tfstate"})
    assert result.is_error
    assert 'state "states/production.tfstate" not found for this tenant' in text_of(result), text_of(result)
    assert [(m, k) for m, k, _ in s3_requests(e2e, mark)] == [("GET", "acme/states/production.tfstate")]
    # The same name for a globex caller is globex's own state.
    result = e2e.call(STATE_TOOL, {"bucket": bucket, "state": "states/production.tfstate"}, token=e2e.token_for("globex"))
    assert not result.is_error, text_of(result)
    assert result.structured_content["tenant"] == "globex", result.structured_content


def test_names_that_leave_the_tenants_prefix_are_refused_before_any_request(e2e, bucket):
    for name, why in (
        ("../globex/states/production.tfstate", "must not contain `..`"),
        ("/globex/states/production.tfstate", "must be relative"),
        ("states//clean.tfstate", "empty or `.` segment"),
    ):
        mark = e2e.mark()
        result = e2e.call(STATE_TOOL, {"bucket": bucket, "state": name})
        assert result.is_error, name
        assert why in text_of(result), text_of(result)
        assert s3_requests(e2e, mark) == [], name


def test_a_bucket_the_catalog_does_not_name_is_refused_by_the_gateway(e2e, bucket):
    mark = e2e.mark()
    result = e2e.call(STATE_TOOL, {"bucket": "someone-elses-bucket", "state": "states/clean.tfstate"})
    assert result.is_error
    assert "invalid arguments" in text_of(result) and "field /bucket" in text_of(result), text_of(result)
    assert e2e.assume_roles(mark) == [], "credentials were minted for a call the schema refuses"


def test_a_malformed_state_in_the_bucket_gives_a_clear_error(e2e, bucket):
    result = e2e.call(STATE_TOOL, {"bucket": bucket, "state": "states/malformed.tfstate"})
    assert result.is_error
    assert "is not a Terraform state" in text_of(result), text_of(result)


def test_terraform_plan_plans_the_tenants_project_from_the_bucket(e2e, bucket):
    mark = e2e.mark()
    result = e2e.call(TERRAFORM_TOOL, {"bucket": bucket, "project": "storefront"})
    assert not result.is_error, text_of(result)
    plan = result.structured_content
    assert plan["bucket"] == bucket and plan["tenant"] == "acme" and plan["offline"] is False, plan
    created = {t: c["create"] for t, c in plan["byType"].items()}
    assert created == STOREFRONT_CREATES, plan["byType"]

    # On the wire, with this call's session: one listing of acme's project prefix, then one
    # GetObject per file of the project (the folder marker and .terraform skipped).
    minted = minted_for(e2e, mark, TERRAFORM_WORK_ROLE)
    requests = [(m, k) for m, k, _ in s3_requests(e2e, mark, minted)]
    files = sorted(p.name for p in (REPO / "examples/tenants/acme/projects/storefront").iterdir())
    assert requests[0] == ("LIST", "acme/projects/storefront/"), requests
    assert sorted(requests[1:]) == [("GET", f"acme/projects/storefront/{f}") for f in files], requests


def test_terraform_plan_of_another_tenants_project_in_the_bucket_is_not_found(e2e, bucket):
    mark = e2e.mark()
    result = e2e.call(TERRAFORM_TOOL, {"bucket": bucket, "project": "ledger"})
    assert result.is_error
    assert 'project "ledger" not found for this tenant' in text_of(result), text_of(result)
    assert "globex" not in text_of(result)
    assert [(m, k) for m, k, _ in s3_requests(e2e, mark)] == [("LIST", "acme/projects/ledger/")]
