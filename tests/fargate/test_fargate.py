"""The gateway's Fargate backend end to end: the official MCP Python SDK calls `fargate` tools
through `switchboard serve --bindings`; moto is ECS, S3, STS and IAM; the player (player.py)
plays the Fargate agent, running the real `switchboard-tool` in container mode in a sandbox whose
only network is the S3 emulator (sandbox.py). The recording proxy shows the wire (conftest.py).

`test_a_fargate_tool_call_costs_a_bounded_number_of_aws_calls` counts, for each of 20 sequential
calls, the gateway's AWS calls on the wire by operation (a fixed part exactly, plus N polls of
DescribeTasks and GetObject within a stated bound) and the unit's own two presigned requests, and
the time the call spent outside the AWS calls and outside the wait for the task; it prints the
figures and writes them as JSON to $BENCH_AWS_OUT when that is set (tests/lambda/e2e/awscost.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from datetime import UTC, datetime

import pytest
from switchboard_harness import awscost, awswire
from conftest import (
    ACCOUNT,
    BUCKET,
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
    # The call's result key, as the unit read it with the invocation (its presigned GET).
    [fetched] = [
        x
        for x in fg.exchanges()
        if awswire.presigned(x) and awswire.operation(x) == "GetObject" and f"/{invocation}/invocation.json" in x.path
    ]
    secrets = {
        "argument value": marker,
        "SecretAccessKey": minted.secret_access_key,
        "SessionToken": minted.session_token,
        "AccessKeyId": minted.access_key_id,
        "result key": json.loads(fetched.response_body)["resultKey"],
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


def test_a_clients_traceparent_is_the_one_more_variable_of_the_overrides(fg):
    # The trace context is ids only, no secret: it travels as TRACEPARENT beside the two URLs
    # (this gateway exports no traces, so it is the client's own), and in the invocation object.
    traceparent = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
    result = fg.call("whoami", {}, headers={"traceparent": traceparent})
    assert not result.is_error, text_of(result)
    _, body = fg.run_task_for(result.structured_content["invocationId"])
    [container] = body["overrides"]["containerOverrides"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert set(env) == {*URL_NAMES, "TRACEPARENT"}, env
    assert env["TRACEPARENT"] == traceparent


def url_expiry(url: str) -> tuple[float, int]:
    """(Unix time the presigned URL was signed as of, its X-Amz-Expires)."""
    q = query_of(url)
    signed = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    return signed, int(q["X-Amz-Expires"])


def urls_of_call(fg, tool: str) -> tuple[dict, dict[str, str]]:
    """One call of `tool` (which must succeed): its audit line and the URLs of its RunTask on the wire."""
    before = len(fg.audit_lines())
    result = fg.call(tool, {"message": "expiry"} if tool == "echo" else {})
    assert not result.is_error, text_of(result)
    audit = fg.last_audit(tool, before)
    _, body = fg.run_task_for(audit["invocation_id"])
    env = {e["name"]: e["value"] for e in body["overrides"]["containerOverrides"][0]["environment"]}
    assert set(env) == set(URL_NAMES), env
    for url in env.values():
        assert url.startswith("http://127.0.0.1:"), url
        assert f"/{PREFIX}{audit['invocation_id']}/" in url, url
    assert env["SWITCHBOARD_INVOCATION_URL"].split("?")[0].endswith("/invocation.json")
    assert env["SWITCHBOARD_RESULT_URL"].split("?")[0].endswith("/result.json")
    return audit, env


def test_the_invocation_url_expires_with_the_start_window_and_the_result_url_at_the_deadline(fg):
    # echo: a start window of 10 s in a 30 s timeout (conftest.TOOLS). The GET of the invocation is
    # signed as of the start of the call's staging and valid for exactly the window; the PUT of the
    # result is valid until the deadline.
    audit, env = urls_of_call(fg, "echo")
    admitted = parse_time(audit["time"]).timestamp()
    signed, expires = url_expiry(env["SWITCHBOARD_INVOCATION_URL"])
    print(f"echo: GET X-Amz-Expires={expires}, signed {signed - admitted:+.1f} s from admission")
    assert expires == 10, f"the invocation's GET is valid for {expires} s, not the 10 s start window"
    assert -1 <= signed - admitted <= 2, f"the GET is signed as of {signed - admitted:+.1f} s from admission"
    signed, expires = url_expiry(env["SWITCHBOARD_RESULT_URL"])
    deadline = admitted + 30
    print(f"echo: PUT X-Amz-Expires={expires}, expiring {signed + expires - deadline:+.1f} s from the deadline")
    assert 27 <= expires <= 30, f"the result's PUT is valid for {expires} s"
    assert abs(signed + expires - deadline) <= 2, f"the PUT expires {signed + expires - deadline:+.1f} s from the deadline"


def test_the_default_start_window_is_clamped_to_the_timeout(fg):
    # whoami: no start_timeout_seconds (120 s by default) in a 30 s timeout: both URLs expire at
    # the deadline.
    audit, env = urls_of_call(fg, "whoami")
    deadline = parse_time(audit["time"]).timestamp() + 30
    for name, url in env.items():
        signed, expires = url_expiry(url)
        assert 27 <= expires <= 30, f"{name} is valid for {expires} s"
        assert abs(signed + expires - deadline) <= 2, f"{name} expires {signed + expires - deadline:+.1f} s from the deadline"


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


# How late the start-window error may come after the window's end, from the client's side: the
# poll at the window's end, StopTask and the two deletes (all answered at once by moto) come first.
START_SLACK = 1.0


def test_a_task_that_does_not_start_in_its_window_fails_at_the_window_and_is_stopped(fg):
    # nostart: held in PENDING (player.py), a start window of 3 s in a 30 s timeout.
    mark = fg.mark()
    timing: dict = {}
    result = asyncio.run(asyncio.wait_for(fg.acall("nostart", {}, timing=timing), 60))
    took = timing["answered"] - timing["sent"]
    print(f"nostart: the start-window error came {took:.3f} s after the call (window 3 s, timeout 30 s)")
    assert result.is_error, result
    text = text_of(result)
    assert "did not start within 3 s" in text and "fargate.start_timeout_seconds" in text, text
    assert 3.0 <= took < 3.0 + START_SLACK, f"the start-window error came {took:.2f} s after the call"
    invocation, arn = only_task_since(fg, mark)
    played = fg.player.task_started_by(invocation)
    assert "RUNNING" not in played.states, played.states
    # The GET of the invocation, in the RunTask on the wire, was valid for the window alone.
    _, body = fg.run_task_for(invocation)
    env = {e["name"]: e["value"] for e in body["overrides"]["containerOverrides"][0]["environment"]}
    assert url_expiry(env["SWITCHBOARD_INVOCATION_URL"])[1] == 3, env["SWITCHBOARD_INVOCATION_URL"]
    # Every DescribeTasks of the task showed it not started.
    statuses = [
        t["lastStatus"]
        for e, b in fg.ecs_calls("DescribeTasks", mark)
        if arn in b.get("tasks", [])
        for t in json.loads(e.response_body).get("tasks", [])
    ]
    assert statuses and set(statuses) <= {"PROVISIONING", "PENDING"}, statuses
    # Stopped, and both objects deleted before the call answered.
    stops = wait_for(lambda: fg.stop_tasks_for(arn, mark), 5, "the StopTask on the wire")
    assert len(stops) == 1, stops
    assert stops[0]["reason"] == f"switchboard: invocation {invocation} did not start within 3 s", stops[0]
    assert played.stopped_by_stoptask.wait(5), "the task was not stopped"
    assert played.stop_reason == stops[0]["reason"]
    deletes = [x for x in fg.exchanges(mark) if awswire.operation(x) == "DeleteObject" and invocation in x.path]
    assert sorted(x.path.split("?")[0].rsplit("/", 1)[-1] for x in deletes) == ["invocation.json", "result.json"]
    assert all(x.finished <= timing["answered_at"] for x in deletes), "the objects were deleted after the answer"
    assert_objects_gone(fg, invocation)
    audit = fg.audit_for(invocation)
    assert audit["outcome"] == "start_timeout", audit
    assert "did not start within 3 s" in audit["reason"], audit
    assert audit["unit_id"] == arn, audit


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


def put_result(url: str, body: bytes) -> int:
    """PUTs `body` through a presigned result URL; the HTTP status."""
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def test_a_result_put_through_the_result_url_alone_is_refused_as_forged(fg):
    # A forger who read the RunTask overrides (ecs:DescribeTasks, CloudTrail) but never the
    # invocation: it holds the result URL, valid until the deadline, but not the call's result
    # key. The task (hang) runs and stores nothing of its own.
    mark = fg.mark()
    forged = json.dumps({"content": [{"type": "text", "text": "an answer the tool never gave"}]}).encode()

    async def body():
        call = asyncio.create_task(fg.acall("hang", {}))
        runs = await asyncio.to_thread(
            wait_for, lambda: [(e, b) for e, b in fg.ecs_calls("RunTask", mark) if e.status == 200], 20, "the RunTask"
        )
        exchange, run = runs[0]
        env = {e["name"]: e["value"] for e in run["overrides"]["containerOverrides"][0]["environment"]}
        status = await asyncio.to_thread(put_result, env["SWITCHBOARD_RESULT_URL"], forged)
        return await asyncio.wait_for(call, 30), run["startedBy"], task_of_run_task(exchange), status

    result, invocation, arn, status = asyncio.run(body())
    # S3 took the object: the URL alone is enough for that, but not for the gateway.
    assert status == 200, status
    assert result.is_error, result
    text = text_of(result)
    assert "refused as forged" in text and "no MAC" in text, text
    assert "never gave" not in text, text
    audit = fg.audit_for(invocation)
    assert audit["outcome"] == "forged_result", audit
    assert audit["unit_id"] == arn, audit
    # The task is stopped (it may be running still) and both objects go.
    assert_stopped_and_gone(fg, invocation, arn, "got a forged result", mark, 10)


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


# --- stopping while AWS is slow (issue 31): the call answers at its deadline or cancel, and what
# AWS did after that is undone once it answers ----------------------------------------------------

# How late a deadline answer may come, from the client's side.
ANSWER_SLACK = 0.5
# How long RunTask's answer is held back: longer than the 3 s deadline and the shutdown grace, less
# than the gateway's SETTLE_TIMEOUT (15 s, fargate.rs), so the clean-up still reads it.
HELD = 12


def task_of_run_task(exchange) -> str:
    """The ARN of the task a RunTask started (moto answered at once; only the relay was held)."""
    assert exchange.status == 200, exchange.response_body[:2000]
    return json.loads(exchange.response_body)["tasks"][0]["taskArn"]


def assert_stopped_and_gone(fg, invocation: str, arn: str, reason: str, since: int, within: float) -> list[dict]:
    """The task got a StopTask with `reason` and both objects of the call went, within `within` s."""
    played = fg.player.task_started_by(invocation)
    assert played.stopped_by_stoptask.wait(within), f"the task of {invocation} was never stopped"
    stops = wait_for(lambda: fg.stop_tasks_for(arn, since), 5, "the StopTask on the wire")
    assert len(stops) == 1, stops
    assert stops[0]["reason"] == f"switchboard: invocation {invocation} {reason}", stops[0]
    wait_for(lambda: not [k for k in fg.s3_keys() if invocation in k], 10, "the objects to go")
    return stops


def answers_the_deadline_on_time(fg, held: str) -> None:
    """A call of `slow` (3 s timeout) answers its deadline error at the deadline, within ANSWER_SLACK."""
    timing: dict = {}
    result = asyncio.run(asyncio.wait_for(fg.acall("slow", {}, timing=timing), 60))
    late = timing["answered"] - timing["sent"] - 3
    print(f"deadline answer {late:+.3f} s from the 3 s deadline, {held}")
    assert result.is_error and "deadline" in text_of(result), text_of(result)
    assert -0.05 <= late < ANSWER_SLACK, f"the deadline error came {late:+.2f} s from the deadline"


def test_a_held_run_task_answers_the_deadline_on_time_and_its_task_is_stopped_once_it_answers(fg, faults):
    mark = fg.mark()
    held = faults.hold("RunTask", HELD)
    answers_the_deadline_on_time(fg, f"RunTask held {HELD} s")
    assert held.seen.is_set() and not held.released.is_set(), "RunTask was answered before the deadline"
    [exchange] = held.exchanges
    invocation, arn = json.loads(exchange.request_body)["startedBy"], task_of_run_task(exchange)
    assert fg.audit_for(invocation)["outcome"] == "deadline_exceeded"
    # Once RunTask answers, the task it started is stopped and the objects are deleted.
    assert held.released.wait(HELD + 5)
    assert_stopped_and_gone(fg, invocation, arn, "ran past its deadline", mark, 10)


def test_a_cancel_during_a_held_run_task_answers_at_once_and_its_task_is_stopped_once_it_answers(fg, faults):
    mark = fg.mark()
    held = faults.hold("RunTask", HELD)
    cancelled_at = held.cancel_once_seen(lambda: fg.acall("hang", {}), "RunTask")
    [exchange] = held.exchanges
    invocation, arn = json.loads(exchange.request_body)["startedBy"], task_of_run_task(exchange)
    # The call ended (its audit line is written when the dispatch returns) while RunTask was held.
    audit = wait_for(lambda: [a for a in fg.audit_lines() if a["invocation_id"] == invocation], 5, "the audit line")
    ended_after = time.monotonic() - cancelled_at
    print(f"audit line {ended_after:.3f} s after the cancel, RunTask held {HELD} s")
    assert audit[0]["outcome"] == "cancelled", audit
    assert not held.released.is_set(), "the call ended only once RunTask answered"
    assert ended_after < 1.0, f"the call ended {ended_after:.2f} s after the cancel"
    assert_stopped_and_gone(fg, invocation, arn, "was cancelled", mark, HELD + 10)


def test_a_held_put_object_answers_the_deadline_on_time_and_both_objects_go_once_it_answers(fg, faults):
    mark = fg.mark()
    held = faults.hold("PutObject", 5)
    answers_the_deadline_on_time(fg, "PutObject held 5 s")
    [exchange] = held.exchanges
    _, key = awswire.s3_object(exchange)
    assert key.startswith(PREFIX) and key.endswith("/invocation.json"), key
    invocation = key[len(PREFIX) :].split("/", 1)[0]
    assert fg.audit_for(invocation)["outcome"] == "deadline_exceeded"
    # The object was stored (moto acted at once); once the answer is out, both objects are deleted.
    assert held.released.wait(10)
    def deletes():
        found = [x for x in fg.exchanges(mark) if awswire.operation(x) == "DeleteObject" and invocation in x.path]
        return found if len(found) == 2 else None

    assert all(x.started >= exchange.started for x in wait_for(deletes, 10, "both DeleteObjects"))
    wait_for(lambda: not [k for k in fg.s3_keys() if invocation in k], 5, "the objects to go")
    # The call never got as far as RunTask.
    assert [b for _, b in fg.ecs_calls("RunTask", mark) if b.get("startedBy") == invocation] == []


def test_shutdown_during_a_held_run_task_waits_stops_the_task_and_audits_the_call(fargate_parts, fg, faults):
    settings, _, deployment, proxy, player = fargate_parts
    own = start_gateway(settings, deployment, proxy, "held-shutdown-gateway")
    mark = fg.mark()
    held = faults.hold("RunTask", HELD)
    try:

        async def body():
            call = asyncio.create_task(fg.acall("hang", {}, gateway=own))
            assert await asyncio.to_thread(held.seen.wait, 20), "no RunTask reached moto"
            own.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            try:
                await asyncio.wait_for(call, 40)
            except Exception:  # noqa: BLE001 - the connection may end without an answer
                pass
            return signalled

        signalled = asyncio.run(body())
        status = own.process.wait(timeout=40)
        exited_after = time.monotonic() - signalled
        # The gateway waited for RunTask's answer, stopped the task and deleted the objects before it
        # exited, and not much longer (its clean-ups are bounded: SHUTDOWN_WAIT, fargate.rs).
        assert held.released_at is not None, f"the gateway exited {exited_after:.1f} s after SIGTERM, before RunTask answered"
        released_after = held.released_at - signalled
        print(f"SIGTERM: RunTask answered after {released_after:.1f} s, the gateway exited after {exited_after:.1f} s")
        assert status == 0, f"the gateway exited {status}"
        [exchange] = held.exchanges
        invocation, arn = json.loads(exchange.request_body)["startedBy"], task_of_run_task(exchange)
        assert exited_after > released_after, "the gateway exited before RunTask answered"
        assert exited_after < HELD + 15, f"the gateway took {exited_after:.1f} s to exit"
        stops = fg.stop_tasks_for(arn, mark)
        assert len(stops) == 1 and invocation in stops[0]["reason"], stops
        assert player.task_started_by(invocation).stopped_by_stoptask.wait(5)
        assert_objects_gone(fg, invocation)
        audit = [a for a in fg.audit_lines(own) if a["invocation_id"] == invocation]
        assert len(audit) == 1 and audit[0]["outcome"] == "shutdown", audit
    finally:
        stop_gateway(own)


def test_a_long_task_succeeds_and_one_past_its_timeout_answers_the_deadline_on_time(fg):
    # Both at once: one task of 30 s, within its 60 s timeout and past its 10 s one.
    from player import LONG_TASK_SECONDS, LONG_TASK_TEXT

    mark = fg.mark()

    async def body():
        within: dict = {}
        past: dict = {}
        results = await asyncio.gather(
            asyncio.wait_for(fg.acall("long", {}, timing=within), 90),
            asyncio.wait_for(fg.acall("long_late", {}, timing=past), 90),
        )
        return results, within, past

    (ok, late_result), within, past = asyncio.run(body())
    took = within["answered"] - within["sent"]
    late = past["answered"] - past["sent"] - 10
    print(f"long: answered after {took:.1f} s (task {LONG_TASK_SECONDS} s, timeout 60 s); "
          f"long_late: deadline answer {late:+.3f} s from its 10 s deadline")  # fmt: skip
    assert not ok.is_error and LONG_TASK_TEXT in text_of(ok), text_of(ok)
    assert LONG_TASK_SECONDS <= took < LONG_TASK_SECONDS + 5, took
    assert late_result.is_error and "deadline" in text_of(late_result), text_of(late_result)
    assert -0.05 <= late < ANSWER_SLACK, f"the deadline error came {late:+.2f} s from the deadline"
    runs = {b["startedBy"]: task_of_run_task(e) for e, b in fg.ecs_calls("RunTask", mark)}
    assert len(runs) == 2, runs
    outcomes = {i: fg.audit_for(i)["outcome"] for i in runs}
    assert sorted(outcomes.values()) == ["deadline_exceeded", "ok"], outcomes
    [(late_invocation, late_arn)] = [(i, a) for i, a in runs.items() if outcomes[i] == "deadline_exceeded"]
    [ok_invocation] = [i for i in runs if outcomes[i] == "ok"]
    assert_stopped_and_gone(fg, late_invocation, late_arn, "ran past its deadline", mark, 10)
    assert_objects_gone(fg, ok_invocation)
    assert fg.stop_tasks_for(runs[ok_invocation], mark) == []


# --- what a call costs on the wire (issue 12, item 5) ------------------------------------------

# Sequential calls of the series (one SDK client, the tools listed once before it).
SERIES = 20
# Where the AWS calls of one call of a fargate tool come from (gateway/src/backend/fargate.rs).
# The fixed part (in the order they go out; the deletes come after the polls):
FARGATE_FIXED = {
    "AssumeRole": 1,  # the call's credentials, before dispatch (a tool with a work role; 0 without)
    "PutObject": 1,  # stage: the invocation, to <prefix><invocation id>/invocation.json
    "RunTask": 1,  # one task (clientToken = the invocation id: no retry can start a second)
    "DeleteObject": 2,  # clean: invocation.json and result.json, however the call ends
}
# Then N polls (wait), each one DescribeTasks of the task and, since it answered with the task,
# one GetObject of result.json (404 until the unit has stored it). The presigned URLs are signed
# in the gateway, with no request; no StopTask for a call that ends with its result (only cancel,
# deadline and shutdown send one).
FARGATE_POLL = {"DescribeTasks": 1, "GetObject": 1}
# N depends on how long the task takes to store its result and on the backoff: the pause after
# the k-th poll is uniform in [0, min(3 s, 0.25 s * 2^(k-1))] (`polling()`, full jitter), so no
# time bounds N for certain, and the test bounds it by a constant instead. With this player N is
# at least 4: it holds PROVISIONING, PENDING and RUNNING each until a DescribeTasks has seen it and
# starts the tool only then, and a later poll finds the result. More polls come from a pause
# shorter than the player's reaction (a state seen twice) and from pauses shorter than the tool's
# run after RUNNING (here under 0.1 s of a task's 0.5 s); 6 more would take six such pauses in
# a row, or a task running for several seconds (the pauses' ceilings add up to 6.75 s by the
# fifth). A call thus costs 5 + 2N AWS calls (4 + 2N without a work role): 13 to 25 here.
MIN_POLLS = 4
MAX_POLLS = 10
# The gap allowed over a pause's ceiling between one poll's answer and the next poll (timer and
# scheduling slack on a busy machine).
PAUSE_SLACK = 0.5
# What the unit itself sends, through the presigned URLs (not the gateway's calls; counted apart).
UNIT_REQUESTS = [("GetObject", "invocation.json"), ("PutObject", "result.json")]


def pause_ceiling(k: int) -> float:
    """The ceiling of the pause after the k-th poll (fargate.rs `polling()`)."""
    return min(3.0, 0.25 * 2 ** (k - 1))


def test_a_fargate_tool_call_costs_a_bounded_number_of_aws_calls(fg, capsys):
    begun = time.time()
    mark = fg.mark()
    series = awscost.timed_calls(fg.gateway.mcp, fg.gateway.token, "whoami", [{} for _ in range(SERIES)])
    ids = awscost.invocation_ids(series)

    # Each exchange belongs to the call whose invocation id it carries: AssumeRole's session name,
    # RunTask's startedBy (and DescribeTasks/StopTask by the task ARN RunTask answered), the S3
    # key <prefix><invocation id>/... The proxy records an exchange before it answers, so a
    # call's exchanges are all recorded once its answer reached the client.
    window = sorted((x for x in fg.exchanges(mark) if x.started >= begun), key=lambda x: x.started)
    task_of: dict[str, str] = {}
    for x in window:
        if awswire.operation(x) == "RunTask" and x.status == 200:
            owner = json.loads(x.request_body).get("startedBy")
            for task in json.loads(x.response_body).get("tasks", []):
                task_of[task["taskArn"]] = owner
    gateway_side: dict[str, list] = {i: [] for i in ids}
    unit_side: dict[str, list] = {i: [] for i in ids}
    other = []
    for x in window:
        op = awswire.operation(x)
        owner = None
        if op == "AssumeRole":
            owner = awswire.assume_role(x).session_name
        elif op == "RunTask":
            owner = json.loads(x.request_body).get("startedBy")
        elif op in ("DescribeTasks", "StopTask"):
            body = json.loads(x.request_body)
            tasks = body.get("tasks") or [body.get("task")]
            owners = {task_of.get(t) for t in tasks}
            owner = owners.pop() if len(owners) == 1 else None
        elif (found := awswire.s3_object(x)) is not None:
            bucket, key = found
            if bucket == BUCKET and key.startswith(PREFIX):
                owner = key[len(PREFIX) :].split("/", 1)[0]
        if owner not in gateway_side:
            other.append(x)
        elif awswire.presigned(x):
            unit_side[owner].append(x)
        else:
            gateway_side[owner].append(x)
    assert other == [], f"AWS calls during the series that belong to none of its calls: {[x.summary() for x in other]}"

    audit = {a["invocation_id"]: a for a in fg.audit_lines()}
    costs = []
    problems = []
    for i, (_, wall) in zip(ids, series, strict=True):
        exchanges = sorted(gateway_side[i], key=lambda x: x.started)
        unit = sorted(unit_side[i], key=lambda x: x.started)
        ops = [awswire.operation(x) for x in exchanges]
        polls = (len(ops) - 5) // 2
        expected = ["AssumeRole", "PutObject", "RunTask", *(["DescribeTasks", "GetObject"] * polls)]
        expected += ["DeleteObject", "DeleteObject"]
        if ops != expected:
            problems.append(f"{i}: the gateway's AWS calls were {ops}")
            continue
        keys = [awswire.s3_object(x)[1].rsplit("/", 1)[-1] if awswire.s3_object(x) else None for x in exchanges]
        assert keys[1] == "invocation.json" and keys[-2:] == ["invocation.json", "result.json"], (i, keys)
        assert set(keys[4:-2:2]) == {"result.json"}, (i, keys)
        unit_ops = [(awswire.operation(x), awswire.s3_object(x)[1].rsplit("/", 1)[-1]) for x in unit]
        assert unit_ops == UNIT_REQUESTS, f"{i}: the unit's requests were {unit_ops}"
        run_task = exchanges[2]
        poll_reads = exchanges[4:-2:2]
        found = poll_reads[-1]
        stored = unit[1]
        # The reads of result.json before the one that found it are 404 (not stored yet); every
        # other answer is a success (DeleteObject's is 204).
        statuses = [x.status for x in poll_reads]
        assert statuses == [404] * (polls - 1) + [200], (i, [x.summary() for x in poll_reads])
        others = [x for x in exchanges + unit if not any(x is r for r in poll_reads)]
        assert all(200 <= x.status < 300 for x in others), [x.summary() for x in others]
        # The poll that found the result came after the unit stored it, and no other poll did.
        assert found.started >= stored.started, (i, found.summary(), stored.summary())
        assert [x for x in poll_reads if x.started >= stored.finished] in ([], [found]), i
        # The pauses between polls stay within the backoff's ceilings.
        for k in range(1, polls):
            gap = exchanges[3 + 2 * k].started - exchanges[2 + 2 * k].finished
            assert gap <= pause_ceiling(k) + PAUSE_SLACK, f"{i}: pause {k} was {gap:.3f} s"
        # Times: the wait for the task (RunTask answered .. the read that found the result
        # started: the task's run, the polls and the pauses), and what is left outside the AWS
        # calls and that wait.
        wait = found.started - run_task.finished
        around = sum(x.elapsed for x in exchanges if not run_task.finished <= x.started < found.started)
        audit_ms = audit.get(i, {}).get("duration_ms")
        extra = {
            "wait_ms": wait * 1000,
            "task_ms": (stored.finished - run_task.finished) * 1000,
            "result_found_after_ms": (found.started - stored.finished) * 1000,
            "outside_aws_and_wait_ms": (wall - wait - around) * 1000,
        }
        if audit_ms is not None:
            extra["audit_outside_aws_and_wait_ms"] = audit_ms - (wait + around) * 1000
        costs.append(awscost.CallCost(i, wall, exchanges, audit_ms=audit_ms, extra_ms=extra))
    assert problems == [], "\n".join(problems)

    polls = [c.counts["DescribeTasks"] for c in costs]
    fixed = sum(FARGATE_FIXED.values())
    per_poll = sum(FARGATE_POLL.values())
    summary = awscost.summarize(
        "fargate",
        "whoami",
        costs,
        bound={
            "fixed": FARGATE_FIXED,
            "per_poll": FARGATE_POLL,
            "polls": {"min": MIN_POLLS, "max": MAX_POLLS, "seen": awscost.three(polls)},
            "total": f"{fixed} + {per_poll}N",
            "total_range": [fixed + per_poll * MIN_POLLS, fixed + per_poll * MAX_POLLS],
        },
        unit_requests_per_call=dict(UNIT_REQUESTS),
    )
    awscost.show(summary, capsys)
    for cost in costs:
        n = cost.counts["DescribeTasks"]
        assert dict(cost.counts) == {**FARGATE_FIXED, **{op: n * k for op, k in FARGATE_POLL.items()}}, cost.operations
        assert MIN_POLLS <= n <= MAX_POLLS, f"{cost.invocation_id}: {n} polls"
        assert sum(cost.counts.values()) == fixed + per_poll * n
        assert cost.audit_ms is not None, f"no audit line for {cost.invocation_id}"
    awscost.write(summary)


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
