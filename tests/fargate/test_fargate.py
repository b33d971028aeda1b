"""The gateway's Fargate backend end to end: the official MCP Python SDK calls `fargate` tools
through `switchboard serve --bindings`; moto is ECS, S3, STS and IAM; the player (player.py)
plays the Fargate agent, running the real `switchboard-tool` in container mode in a sandbox whose
only network is the S3 emulator (sandbox.py). The recording proxy shows the wire (conftest.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import UTC, datetime

import pytest
from conftest import (
    ACCOUNT,
    CONTAINER,
    PREFIX,
    SUBJECT,
    TENANT,
    WORK_ROLE,
    query_of,
    start_gateway,
    stop_gateway,
)

URL_NAMES = ["SWITCHBOARD_INVOCATION_URL", "SWITCHBOARD_RESULT_URL"]


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in result.content)


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def only_task_since(fg, mark: int) -> tuple[str, str]:
    """(invocation id, task ARN) of the one RunTask sent since `mark`."""
    runs = fg.ecs_calls("RunTask", mark)
    assert len(runs) == 1, f"expected one RunTask, found {[b.get('startedBy') for _, b in runs]}"
    exchange, body = runs[0]
    assert exchange.status == 200, exchange.response_body[:2000]
    arn = json.loads(exchange.response_body)["tasks"][0]["taskArn"]
    return body["startedBy"], arn


def assert_objects_gone(fg, invocation_id: str) -> None:
    left = [k for k in fg.s3_keys() if invocation_id in k]
    assert left == [], f"objects of {invocation_id} left in the bucket: {left}"


def wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- a call that works ------------------------------------------------------------------------


def test_echo_runs_as_a_task_and_reports_its_states_as_progress(fg):
    mark = fg.mark()
    progress: list[str] = []

    async def on_progress(value, total, message):
        progress.append(message or "")

    result = fg.call("echo", {"message": "hello from a fargate task"}, progress=on_progress)
    assert not result.is_error, text_of(result)
    assert "hello from a fargate task" in text_of(result), text_of(result)
    invocation, arn = only_task_since(fg, mark)
    played = fg.player.task_started_by(invocation)
    assert played.done.wait(10), played.states
    assert played.family == "run" and played.exit_code == 0, (played.exit_code, played.tool_stderr)
    # The tool ran in the sandbox, fetched its invocation and stored its result itself.
    assert played.error is None, played.error
    # Progress follows the task through the states the player set.
    states = [m for m in progress if m.startswith("task ")]
    assert states[:3] == ["task provisioning", "task pending", "task running"], progress
    audit = fg.audit_for(invocation)
    assert audit["outcome"] == "ok", audit
    assert audit["backend"] == "fargate", audit
    assert audit["unit_id"] == arn, audit
    assert_objects_gone(fg, invocation)


def test_run_task_on_the_wire_has_the_bindings_network_storage_and_tags(fg):
    mark = fg.mark()
    result = fg.call("whoami", {"marker": "marker-7f3a-in-the-arguments"})
    assert not result.is_error, text_of(result)
    content = result.structured_content
    invocation = content["invocationId"]
    exchange, body = fg.run_task_for(invocation)
    assert fg.ecs_calls("RunTask", mark) and exchange.status == 200
    d = fg.deployment
    assert body["cluster"] == d.cluster_arn, body
    assert body["taskDefinition"] == d.task_definitions["run"], body
    assert body["launchType"] == "FARGATE", body
    assert body["networkConfiguration"] == {
        "awsvpcConfiguration": {
            "subnets": d.subnets,
            "securityGroups": d.security_groups,
            "assignPublicIp": "DISABLED",
        }
    }, body["networkConfiguration"]
    assert body["startedBy"] == invocation, body
    assert body["clientToken"] == invocation, body
    assert sorted((t["key"], t["value"]) for t in body["tags"]) == [
        ("switchboard:invocation", invocation),
        ("switchboard:tool", "whoami"),
    ], body["tags"]
    # 30720 MB in the catalog: 30 GiB of ephemeral storage.
    assert body["overrides"]["ephemeralStorage"] == {"sizeInGiB": 30}, body["overrides"]


def test_overrides_hold_only_the_two_urls_and_no_argument_or_secret(fg):
    marker = "marker-c41d-never-in-overrides"
    result = fg.call("whoami", {"marker": marker})
    assert not result.is_error, text_of(result)
    content = result.structured_content
    invocation = content["invocationId"]
    exchange, body = fg.run_task_for(invocation)
    overrides = body["overrides"]
    assert set(overrides) == {"containerOverrides", "ephemeralStorage"}, overrides
    [container] = overrides["containerOverrides"]
    assert set(container) == {"name", "environment"}, container
    assert container["name"] == CONTAINER
    assert [e["name"] for e in container["environment"]] == URL_NAMES, container
    # The unit got this call's credentials, through the invocation object.
    [minted] = [a for a in fg.assume_roles() if a.session_name == invocation and a.succeeded]
    assert minted.role_arn.endswith(f"/{WORK_ROLE}"), minted.role_arn
    assert content["credentials"]["accessKeyId"] == minted.access_key_id, content
    secrets = {
        "argument value": marker,
        "SecretAccessKey": minted.secret_access_key,
        "SessionToken": minted.session_token,
        "AccessKeyId": minted.access_key_id,
    }
    # What anyone with ecs:DescribeTasks (and CloudTrail) sees: the RunTask request and every
    # DescribeTasks answer about this task.
    arn = json.loads(exchange.response_body)["tasks"][0]["taskArn"]
    visible = [("RunTask request", exchange.request_body), ("RunTask answer", exchange.response_body)]
    for e, b in fg.ecs_calls("DescribeTasks"):
        if arn in b.get("tasks", []):
            visible.append(("DescribeTasks answer", e.response_body))
    assert len(visible) > 2, "no DescribeTasks of the task on the wire"
    for name, secret in secrets.items():
        assert secret and len(secret) >= 16, name
        for where, text in visible:
            assert secret.encode() not in text, f"the {name} is in the {where}"
    # The presigned URLs carry no credential of the call, only the gateway's signature.
    for e in container["environment"]:
        q = query_of(e["value"])
        assert not q.get("X-Amz-Credential", "").startswith(minted.access_key_id), e["name"]


def test_each_url_expires_at_the_deadline(fg):
    before = len(fg.audit_lines())
    result = fg.call("echo", {"message": "expiry"})
    assert not result.is_error, text_of(result)
    audit = fg.last_audit("echo", before)
    _, body = fg.run_task_for(audit["invocation_id"])
    deadline = parse_time(audit["time"]).timestamp() + 30  # echo's timeout_seconds
    env = {e["name"]: e["value"] for e in body["overrides"]["containerOverrides"][0]["environment"]}
    assert set(env) == set(URL_NAMES), env
    for name, url in env.items():
        q = query_of(url)
        assert url.startswith("http://127.0.0.1:"), url
        assert f"/{PREFIX}{audit['invocation_id']}/" in url, url
        signed = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        expires = signed + int(q["X-Amz-Expires"])
        assert abs(expires - deadline) <= 2, f"{name} expires {expires - deadline:+.1f} s from the deadline"
    assert env["SWITCHBOARD_INVOCATION_URL"].split("?")[0].endswith("/invocation.json")
    assert env["SWITCHBOARD_RESULT_URL"].split("?")[0].endswith("/result.json")


# --- tasks that fail ----------------------------------------------------------------------------


def test_exit_code_1_is_a_clear_error(fg):
    mark = fg.mark()
    result = fg.call("exit1", {})
    assert result.is_error, result
    text = text_of(result)
    assert "exited with code 1" in text, text
    invocation, _ = only_task_since(fg, mark)
    assert fg.audit_for(invocation)["outcome"] != "ok"
    assert_objects_gone(fg, invocation)


def test_image_pull_failure_is_a_clear_error(fg):
    mark = fg.mark()
    result = fg.call("pullfail", {})
    assert result.is_error, result
    text = text_of(result)
    assert "CannotPullContainerError" in text and "TaskFailedToStart" in text, text
    invocation, _ = only_task_since(fg, mark)
    played = fg.player.task_started_by(invocation)
    assert "RUNNING" not in played.states, played.states
    assert_objects_gone(fg, invocation)


def test_result_over_the_cap_is_a_clear_error_and_the_gateway_keeps_serving(fg):
    mark = fg.mark()
    result = fg.call("oversize", {})
    assert result.is_error, result
    assert "over the limit of 4194304 bytes" in text_of(result), text_of(result)
    invocation, _ = only_task_since(fg, mark)
    assert_objects_gone(fg, invocation)
    after = fg.call("echo", {"message": "still serving"})
    assert not after.is_error and "still serving" in text_of(after), text_of(after)


def test_result_that_is_not_a_tool_output_is_a_clear_error_and_the_gateway_keeps_serving(fg):
    mark = fg.mark()
    result = fg.call("invalid", {})
    assert result.is_error, result
    assert "did not store a tool result" in text_of(result), text_of(result)
    invocation, _ = only_task_since(fg, mark)
    assert_objects_gone(fg, invocation)
    after = fg.call("echo", {"message": "still serving"})
    assert not after.is_error and "still serving" in text_of(after), text_of(after)


# --- stopping -----------------------------------------------------------------------------------


def test_cancel_ends_in_stop_task_naming_the_invocation(fg):
    mark = fg.mark()

    async def body():
        call = asyncio.create_task(fg.acall("hang", {}))
        played = await asyncio.to_thread(
            wait_for,
            lambda: next((p for p in fg.player.played.values() if "RUNNING" in p.states and not p.done.is_set()
                          and p.family == "hang" and not p.stopped_by_stoptask.is_set()), None),
            20,
            "the hang task to run",
        )  # fmt: skip
        await asyncio.sleep(0.5)
        call.cancel()
        cancelled_at = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await call
        return played, cancelled_at

    played, cancelled_at = asyncio.run(body())
    invocation, arn = only_task_since(fg, mark)
    assert played.started_by == invocation
    assert played.stopped_by_stoptask.wait(10), "no StopTask reached ECS after the cancel"
    stopped_after = time.monotonic() - cancelled_at
    # moto stops the task while it answers; the proxy records the exchange once the answer is out.
    stops = wait_for(lambda: fg.stop_tasks_for(arn, mark), 5, "the StopTask on the wire")
    assert len(stops) == 1, stops
    assert stops[0]["reason"] == f"switchboard: invocation {invocation} was cancelled", stops[0]
    assert played.stop_reason == stops[0]["reason"]
    assert stopped_after < 5, f"StopTask came {stopped_after:.1f} s after the cancel"
    audit = wait_for(lambda: [a for a in fg.audit_lines() if a["invocation_id"] == invocation], 10, "the audit line")
    assert audit[0]["outcome"] == "cancelled", audit
    wait_for(lambda: not [k for k in fg.s3_keys() if invocation in k], 10, "the objects to go")


def test_deadline_ends_in_stop_task_and_the_deadline_error_at_once(fg):
    mark = fg.mark()
    started = time.monotonic()
    result = fg.call("slow", {})
    elapsed = time.monotonic() - started
    assert result.is_error, result
    assert "deadline" in text_of(result), text_of(result)
    assert 2.5 <= elapsed < 6, f"the answer took {elapsed:.1f} s for a 3 s deadline"
    invocation, arn = only_task_since(fg, mark)
    played = fg.player.task_started_by(invocation)
    assert played.stopped_by_stoptask.wait(10), "no StopTask reached ECS after the deadline"
    # moto stops the task while it answers; the proxy records the exchange once the answer is out.
    stops = wait_for(lambda: fg.stop_tasks_for(arn, mark), 5, "the StopTask on the wire")
    assert len(stops) == 1, stops
    assert stops[0]["reason"] == f"switchboard: invocation {invocation} ran past its deadline", stops[0]
    assert fg.audit_for(invocation)["outcome"] == "deadline_exceeded"
    assert_objects_gone(fg, invocation)


def test_gateway_shutdown_stops_the_running_task(fargate_parts, fg):
    settings, _, deployment, proxy, player = fargate_parts
    own = start_gateway(settings, deployment, proxy, "shutdown-gateway")
    mark = fg.mark()
    try:

        async def body():
            call = asyncio.create_task(fg.acall("hang", {}, gateway=own))
            played = await asyncio.to_thread(
                wait_for,
                lambda: next((p for p in player.played.values() if p.family == "hang" and "RUNNING" in p.states
                              and not p.stopped_by_stoptask.is_set()), None),
                20,
                "the hang task to run",
            )  # fmt: skip
            own.process.send_signal(signal.SIGTERM)
            try:
                result = await asyncio.wait_for(call, 30)
            except Exception as e:  # noqa: BLE001 - the connection may end without an answer
                result = e
            return played, result

        played, _ = asyncio.run(body())
        status = own.process.wait(timeout=30)
        assert status == 0, f"the gateway exited {status}"
        invocation, arn = only_task_since(fg, mark)
        assert played.started_by == invocation
        assert played.stopped_by_stoptask.wait(5), "the gateway stopped and its task runs on"
        stops = wait_for(lambda: fg.stop_tasks_for(arn, mark), 5, "the StopTask on the wire")
        assert invocation in stops[0]["reason"] or "shutting down" in stops[0]["reason"], stops[0]
        assert_objects_gone(fg, invocation)
    finally:
        stop_gateway(own)


# --- last: nothing left, nothing leaked -----------------------------------------------------------


def test_every_object_is_gone_and_every_task_stopped(fg):
    assert fg.s3_keys() == [], fg.s3_keys()
    from moto.ecs.models import ecs_backends

    tasks = ecs_backends[ACCOUNT]["eu-west-1"].tasks
    running = [(t.task_arn, t.last_status) for ts in tasks.values() for t in ts.values() if t.last_status != "STOPPED"]
    assert running == [], running


def test_no_secret_in_logs_or_audit(fg):
    log = fg.gateway.log.read_bytes()
    audit = fg.gateway.audit.read_bytes()
    assert len(log) > 10_000, f"the gateway log is only {len(log)} bytes"
    minted = [a for a in fg.assume_roles() if a.succeeded]
    assert minted, "no AssumeRole answer on the wire"
    for call in minted:
        assert call.tags.get("principal") == SUBJECT and call.tags.get("tenant") == TENANT, call.tags
        for name, secret in (("SecretAccessKey", call.secret_access_key), ("SessionToken", call.session_token)):
            assert secret and len(secret) >= 16, (name, call.session_name)
            for where, text in (("gateway log", log), ("audit log", audit)):
                assert secret.encode() not in text, f"{name} of session {call.session_name} is in the {where}"
