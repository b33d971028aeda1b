"""End to end: the official MCP Python SDK calls `lambda` tools through `switchboard serve
--bindings`; LocalStack runs the real `switchboard-tool` (Lambda mode) and the Lambda probe with
credentials the gateway's broker minted for each call (STS AssumeRole). The recording proxy
between the gateway and LocalStack shows what went over the wire (conftest.py).

`test_a_lambda_tool_call_costs_exactly_two_aws_calls` counts, for each of 20 sequential calls,
the AWS calls on the wire by operation (exactly AssumeRole and Invoke) and the time the call
spent outside them; it prints the figures and writes them as JSON to $BENCH_AWS_OUT when that is
set (awscost.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from datetime import UTC, datetime

from switchboard_harness import awscost, awswire
from conftest import ACCOUNT, LOCAL_TOOL, LOCAL_WORK_ROLE, SECRET_TOOL, STATE_TOOL, SUBJECT, TENANT, TERRAFORM_TOOL, WORK_ROLE

# STS's character set for SourceIdentity (and role session names): [\w+=,.@-].
STS_IDENTITY = re.compile(r"^[\w+=,.@-]+$")


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in result.content)


def parse_time(value: str) -> datetime:
    """An RFC 3339 / ISO 8601 time as STS, the SDK or IAM write it."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def whoami(e2e, arguments: dict | None = None) -> dict:
    result = e2e.call("whoami", arguments or {})
    assert not result.is_error, f"whoami failed: {text_of(result)}"
    content = result.structured_content
    assert isinstance(content, dict), f"whoami answered no structured content: {result}"
    return content


def test_sdk_lists_the_lambda_tools_and_the_local_one(e2e):
    names = {t.name for t in e2e.list_tools()}
    assert names == {"whoami", "fail", "sleep", "long-sleep", LOCAL_TOOL, SECRET_TOOL, STATE_TOOL, TERRAFORM_TOOL}, names


def test_whoami_runs_in_lambda_with_this_calls_credentials(e2e):
    mark = e2e.mark()
    result = e2e.call("whoami", {})
    assert not result.is_error, text_of(result)
    content = result.structured_content
    invocation = content["invocationId"]
    assert content["tool"] == "whoami"

    minted = e2e.assume_role_for(invocation)
    credentials = content["credentials"]
    assert credentials is not None, "whoami received no credentials"
    assert credentials["accessKeyId"] == minted.access_key_id
    assert content["sessionTags"]["invocation"] == minted.session_name == invocation
    assert (
        credentials["secretAccessKeySha256Prefix"]
        == hashlib.sha256(minted.secret_access_key.encode()).hexdigest()[:12]
    ), "the tool holds another secret key than the one STS issued for this call"
    skew = (parse_time(credentials["expiration"]) - parse_time(minted.expiration)).total_seconds()
    assert abs(skew) < 1, (credentials["expiration"], minted.expiration)

    # The Invoke on the wire carried this invocation, with these credentials, to whoami's
    # function, after the credentials were minted; and what the client got is what it answered.
    invoke = e2e.invoke_for(invocation)
    assert invoke.function_name == "switchboard-e2e-whoami", invoke.function
    assert invoke.payload["tool"] == "whoami"
    assert invoke.payload["credentials"]["accessKeyId"] == minted.access_key_id
    assert invoke.payload["sessionTags"]["invocation"] == invocation
    assert minted.exchange.seq < invoke.exchange.seq, "Lambda was invoked before the credentials were minted"
    assert invoke.function_error is None, invoke.answer
    assert invoke.answer["structuredContent"] == content
    # One STS call and one Invoke for one tool call (an earlier test's unit may still answer
    # late, hence the filter on the function).
    assert len(e2e.assume_roles(mark)) == 1
    assert len([i for i in e2e.invokes(mark) if i.function_name == "switchboard-e2e-whoami"]) == 1

    # The answer names the credentials without holding their secrets.
    wire = result.model_dump_json()
    assert minted.secret_access_key not in wire
    assert minted.session_token not in wire


def test_assume_role_request_on_the_wire(e2e):
    content = whoami(e2e)
    invocation = content["invocationId"]
    call = e2e.assume_role_for(invocation)

    assert call.role_arn == e2e.deployment.work_role_arn
    assert call.session_name == invocation
    identity = call.source_identity
    assert identity, f"no SourceIdentity in {sorted(call.params)}"
    assert not identity.lower().startswith("aws:"), identity
    assert 2 <= len(identity) <= 64, identity
    assert STS_IDENTITY.match(identity), identity
    assert call.tags == {"tool": "whoami", "tenant": TENANT, "principal": SUBJECT, "invocation": invocation}
    assert call.duration_seconds == 900

    assert call.policy, f"no Policy in {sorted(call.params)}"
    policy = json.loads(call.policy)
    statements = policy["Statement"]
    assert isinstance(statements, list) and statements, policy
    sent = datetime.fromtimestamp(call.exchange.started, UTC)
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == ["sts:GetCallerIdentity"]
        assert statement["Resource"] == ["*"]
        limit = parse_time(statement["Condition"]["DateLessThan"]["aws:CurrentTime"])
        # The call's deadline: after the request went out, at most whoami's timeout (10 s)
        # after the call arrived (a second of slack for the clock's rounding).
        lead = (limit - sent).total_seconds()
        assert 0 < lead <= 11, f"aws:CurrentTime limit {limit} is {lead:.1f} s after the request"


def test_the_invoke_carries_the_clients_trace_in_its_client_context(e2e):
    # A client's W3C traceparent reaches the function in the Invoke's ClientContext
    # (X-Amz-Client-Context: base64 JSON, `custom.traceparent`) and in the invocation. This
    # gateway exports no traces, so what the unit gets is the client's own traceparent.
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{trace_id}-{span_id}-01"
    result = e2e.call("whoami", {}, headers={"traceparent": traceparent})
    assert not result.is_error, text_of(result)
    invoke = e2e.invoke_for(result.structured_content["invocationId"])
    header = invoke.exchange.request_header("X-Amz-Client-Context")
    assert header, f"no X-Amz-Client-Context on the Invoke: {invoke.exchange.request_headers}"
    context = json.loads(base64.b64decode(header))
    sent = context["custom"]["traceparent"]
    assert sent.split("-")[1] == trace_id, context
    assert sent == traceparent
    assert invoke.payload["traceparent"] == sent


def test_two_calls_get_two_sessions(e2e):
    first = whoami(e2e)
    second = whoami(e2e)
    assert first["invocationId"] != second["invocationId"]
    a = e2e.assume_role_for(first["invocationId"])
    b = e2e.assume_role_for(second["invocationId"])
    assert a.session_name != b.session_name
    assert a.access_key_id != b.access_key_id
    assert a.secret_access_key != b.secret_access_key
    assert a.assumed_role_arn != b.assumed_role_arn
    assert first["credentials"]["accessKeyId"] == a.access_key_id
    assert second["credentials"]["accessKeyId"] == b.access_key_id


def test_smuggled_tenant_argument_never_reaches_sts(e2e):
    content = whoami(e2e, {"tenant": "evil", "tool": "x"})
    invocation = content["invocationId"]
    call = e2e.assume_role_for(invocation)
    assert call.tags == {"tool": "whoami", "tenant": TENANT, "principal": SUBJECT, "invocation": invocation}
    assert "evil" not in call.exchange.request_body.decode(), "an argument reached the STS request"
    assert content["sessionTags"]["tenant"] == TENANT
    assert content["sessionTags"]["tool"] == "whoami"
    # The arguments themselves reach the tool unchanged: they are the tool's input, not its identity.
    invoke = e2e.invoke_for(invocation)
    assert invoke.payload["arguments"] == {"tenant": "evil", "tool": "x"}
    assert invoke.payload["sessionTags"]["tenant"] == TENANT


def test_tool_without_permissions_gets_no_credentials(e2e):
    mark = e2e.mark()
    e2e.call("fail", {})
    invokes = [i for i in e2e.invokes(mark) if i.function_name == "switchboard-e2e-fail"]
    assert len(invokes) == 1, invokes
    payload = invokes[0].payload
    assert "credentials" not in payload, "a tool without permissions received credentials"
    assert e2e.assume_roles(mark) == [], "the gateway asked STS for a tool without a work role"


def test_failing_tool_is_an_error_result_with_its_message(e2e):
    mark = e2e.mark()
    result = e2e.call("fail", {})
    assert result.is_error, result
    # test-tools/src/bin/switchboard-lambda-probe.rs, tool `fail` without a message.
    assert "the probe failed on purpose" in text_of(result), text_of(result)
    invokes = [i for i in e2e.invokes(mark) if i.function_name == "switchboard-e2e-fail"]
    assert len(invokes) == 1, invokes
    invoke = invokes[0]
    # The tool's failure is a function error on the wire (tool-runtime's Lambda mode).
    assert invoke.function_error, invoke.exchange.response_headers
    assert (invoke.answer or {}).get("errorType") == "ToolError", invoke.answer
    audit = e2e.audit_for(invoke.payload["invocationId"])
    assert audit["outcome"] == "tool_error", audit
    assert audit["unit_id"] == invoke.request_id, audit


def test_tool_past_its_timeout_returns_the_deadline_error(e2e):
    before = len(e2e.audit_lines())
    started = time.monotonic()
    result = e2e.call("sleep", {"seconds": 10})
    elapsed = time.monotonic() - started
    assert result.is_error, result
    assert "deadline" in text_of(result), text_of(result)
    # The answer came at the 3 s deadline, not after the 10 s sleep.
    assert 2.5 <= elapsed < 8, f"the answer took {elapsed:.1f} s"
    lines = [a for a in e2e.audit_lines()[before:] if a["tool"] == "sleep"]
    assert len(lines) == 1, lines
    assert lines[0]["outcome"] == "deadline_exceeded", lines[0]
    assert lines[0]["backend"] == "lambda", lines[0]
    # From the call's admission to its answer: the deadline, and at most half a second more.
    assert 3000 <= lines[0]["duration_ms"] < 3500, lines[0]


def test_a_call_longer_than_any_idle_timeout_runs_to_its_end(e2e):
    before = len(e2e.audit_lines())
    started = time.monotonic()
    result = e2e.call("long-sleep", {"seconds": 30})
    elapsed = time.monotonic() - started
    assert not result.is_error, text_of(result)
    assert result.structured_content["slept"] == 30, result
    assert elapsed >= 30, f"the answer took {elapsed:.1f} s"
    lines = [a for a in e2e.audit_lines()[before:] if a["tool"] == "long-sleep"]
    assert len(lines) == 1 and lines[0]["outcome"] == "ok", lines


def test_audit_lines_name_request_id_and_role_session(e2e):
    content = whoami(e2e)
    invocation = content["invocationId"]
    audit = e2e.audit_for(invocation)
    invoke = e2e.invoke_for(invocation)
    minted = e2e.assume_role_for(invocation)
    assert invoke.request_id, invoke.exchange.response_headers
    assert audit["unit_id"] == invoke.request_id, audit
    assert audit["role_session_arn"] == minted.assumed_role_arn, audit
    assert audit["role_session_arn"].endswith(f"/{WORK_ROLE}/{invocation}"), audit
    assert audit["outcome"] == "ok", audit
    assert audit["backend"] == "lambda", audit
    assert audit["tool"] == "whoami", audit
    assert audit["principal"] == SUBJECT, audit
    assert audit["tenant"] == TENANT, audit


def test_credentials_authenticate_as_the_invocation_session(e2e):
    content = whoami(e2e)
    invocation = content["invocationId"]
    minted = e2e.assume_role_for(invocation)
    identity = e2e.aws(
        "sts",
        "get-caller-identity",
        credentials={
            "AWS_ACCESS_KEY_ID": minted.access_key_id,
            "AWS_SECRET_ACCESS_KEY": minted.secret_access_key,
            "AWS_SESSION_TOKEN": minted.session_token,
        },
    )
    assert identity["Arn"].endswith(f"/{WORK_ROLE}/{invocation}"), identity
    assert identity["Arn"] == minted.assumed_role_arn, identity


# --- a unit that calls AWS itself: the local tool through its declared sts endpoint -------------


def caller_identity_calls(e2e, since: int) -> list:
    return [x for x in e2e.proxy.exchanges()[since:] if awswire.sts_action(x) == "GetCallerIdentity"]


def test_a_local_tool_calls_sts_with_this_calls_credentials_and_sts_names_its_session(e2e):
    mark = e2e.mark()
    result = e2e.call(LOCAL_TOOL, {"sts": True})
    assert not result.is_error, text_of(result)
    content = result.structured_content
    invocation = content["invocationId"]
    minted = e2e.assume_role_for(invocation)
    assert minted.role_arn.endswith(f":role/{LOCAL_WORK_ROLE}"), minted.role_arn
    assert content["credentials"]["accessKeyId"] == minted.access_key_id

    # What STS answered the tool: the role session of exactly this invocation.
    expected_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{LOCAL_WORK_ROLE}/{invocation}"
    assert content["callerIdentity"]["arn"] == expected_arn, content["callerIdentity"]
    assert content["callerIdentity"]["account"] == ACCOUNT

    # On the wire: the sandbox's request went out through the endpoint proxy, after the mint,
    # signed with the minted access key, and STS's answer named the session.
    (asked,) = caller_identity_calls(e2e, mark)
    authorization = asked.request_header("Authorization") or ""
    assert f"Credential={minted.access_key_id}/" in authorization, authorization
    assert asked.request_header("X-Amz-Security-Token"), "the request carried no session token"
    assert minted.exchange.seq < asked.seq
    assert asked.status == 200 and expected_arn.encode() in asked.response_body, asked.response_body[:2000]


def test_two_local_calls_reach_sts_as_two_sessions(e2e):
    mark = e2e.mark()
    arns = []
    for _ in range(2):
        result = e2e.call(LOCAL_TOOL, {"sts": True})
        assert not result.is_error, text_of(result)
        arns.append(result.structured_content["callerIdentity"]["arn"])
    assert arns[0] != arns[1], arns
    signed_with = {
        re.search(r"Credential=([A-Z0-9]+)/", x.request_header("Authorization") or "").group(1)
        for x in caller_identity_calls(e2e, mark)
    }
    assert len(signed_with) == 2, signed_with


def test_a_local_tool_without_the_sts_argument_makes_no_aws_request_of_its_own(e2e):
    mark = e2e.mark()
    result = e2e.call(LOCAL_TOOL, {})
    assert not result.is_error, text_of(result)
    assert "callerIdentity" not in result.structured_content
    assert caller_identity_calls(e2e, mark) == []
    # It still got credentials minted for it (the binding names a work role).
    assert result.structured_content["credentials"] is not None


# --- what a call costs on the wire (issue 12, item 5) ------------------------------------------

# Sequential calls of the series (one SDK client, the tools listed once before it).
SERIES = 20
# What one call of a Lambda tool with a work role costs: one STS AssumeRole (the call's
# credentials; RoleSessionName = the invocation id) and one Lambda Invoke (RequestResponse; the
# payload carries the invocation id). Nothing else: no lookup of the function or the role, no
# second STS call, no retry (the SDK's retries are off; the backend retries only throttling).
LAMBDA_CALL_COST = {"AssumeRole": 1, "Invoke": 1}


def test_a_lambda_tool_call_costs_exactly_two_aws_calls(e2e, capsys):
    begun = time.time()
    mark = e2e.mark()
    series = awscost.timed_calls(e2e.gateway.mcp, e2e.gateway.token, "whoami", [{} for _ in range(SERIES)])
    ids = awscost.invocation_ids(series)

    # Each exchange belongs to the call whose invocation id it carries: AssumeRole's session name,
    # the Invoke payload's invocationId. The proxy records an exchange before it answers the
    # gateway, so a call's exchanges are all recorded once its answer reached the client.
    # Exchanges that started before the series (an earlier test's unit answering late) are not
    # its own.
    by_call: dict[str, list] = {i: [] for i in ids}
    other = []
    for x in e2e.proxy.exchanges()[mark:]:
        if x.started < begun:
            continue
        op = awswire.operation(x)
        if op == "AssumeRole":
            owner = awswire.assume_role(x).session_name
        elif op == "Invoke":
            owner = (awswire.invokes([x])[0].payload or {}).get("invocationId")
        else:
            owner = None
        (by_call[owner] if owner in by_call else other).append(x)
    audit = {a["invocation_id"]: a for a in e2e.audit_lines()}
    costs = [
        awscost.CallCost(i, wall, by_call[i], audit_ms=audit.get(i, {}).get("duration_ms"))
        for i, (_, wall) in zip(ids, series, strict=True)
    ]
    summary = awscost.summarize("lambda", "whoami", costs, expected_per_call=LAMBDA_CALL_COST)
    awscost.show(summary, capsys)

    assert other == [], f"AWS calls during the series that belong to none of its calls: {[x.summary() for x in other]}"
    for cost in costs:
        assert dict(cost.counts) == LAMBDA_CALL_COST, (cost.invocation_id, cost.operations)
        # The credentials first, then the Invoke that carries them; both answered.
        assert cost.operations == ["AssumeRole", "Invoke"], (cost.invocation_id, cost.operations)
        assert all(x.status == 200 for x in cost.exchanges), [x.summary() for x in cost.exchanges]
        assert cost.exchanges[0].finished <= cost.exchanges[1].started, "Invoke went out before AssumeRole answered"
        assert cost.audit_ms is not None, f"no audit line for {cost.invocation_id}"
        assert 0 < cost.aws_ms < cost.wall * 1000, (cost.aws_ms, cost.wall)
    awscost.write(summary)


# --- last: nothing leaked, in all that ran above ----------------------------------------------


def test_no_secret_in_logs_or_audit(e2e):
    # Last in the file, so that every session minted above is searched for: the Lambda calls',
    # and the local tool's (whose sandbox held its secrets in its environment).
    local = e2e.call(LOCAL_TOOL, {"sts": True})
    assert not local.is_error, text_of(local)
    content = whoami(e2e)
    invocation = content["invocationId"]
    log = e2e.log_bytes()
    audit = e2e.gateway.audit.read_bytes()
    # The search means something: debug logging is on, and this call went through the log.
    assert len(log) > 10_000, f"the gateway log is only {len(log)} bytes"
    assert invocation.encode() in log, "the whoami call left no trace in the gateway's debug log"
    assert invocation.encode() in audit
    minted = [a for a in e2e.assume_roles() if a.succeeded]
    assert minted, "no AssumeRole answer on the wire"
    assert any(a.role_arn.endswith(f"/{LOCAL_WORK_ROLE}") for a in minted), "no local session searched"
    for call in minted:
        for name, secret in (("SecretAccessKey", call.secret_access_key), ("SessionToken", call.session_token)):
            assert secret and len(secret) >= 16, (name, call.session_name)
            half = secret[: len(secret) // 2].encode()
            for where, text in (("gateway log", log), ("audit log", audit)):
                assert secret.encode() not in text, f"{name} of session {call.session_name} is in the {where}"
                assert half not in text, f"half of the {name} of session {call.session_name} is in the {where}"
