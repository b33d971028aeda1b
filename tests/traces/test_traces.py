"""Traces of tool calls, received by a real OTLP receiver: the spans of each call, their
attributes and parent links, the traceparent the unit gets, the flush at shutdown, and no export
at all without an endpoint."""

from __future__ import annotations

import time

from conftest import new_traceparent

# OTLP's SpanKind SERVER and status codes.
SERVER = 2
STATUS_OK, STATUS_ERROR = 1, 2
STEPS = {"authenticate", "authorize", "dispatch"}


def traced(receiver, trace_id: str, names: set[str], timeout: float = 15.0) -> list:
    """The spans of one trace, once every name in `names` has arrived."""
    deadline = time.monotonic() + timeout
    while True:
        spans = [s for s in receiver.spans() if s.trace_id == trace_id]
        if names <= {s.name for s in spans} or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


def exporting(receiver) -> dict[str, str]:
    # A short batch delay, so spans arrive while the test waits for them.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def one(spans, name: str):
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r}: {[s.name for s in spans]}"
    return found[0]


def check_call_tree(spans, client_span_id: str | None, tool: str, invocation_id: str):
    """The call's spans: tools/call under the client's span (or a root), its steps under it, the
    unit under dispatch; each with the call's invocation id and tool, each within its parent."""
    call = one(spans, "tools/call")
    assert call.parent_span_id == (client_span_id or ""), call
    assert call.kind == SERVER
    by_id = {s.span_id: s for s in spans}
    for s in spans:
        assert s.attributes.get("switchboard.invocation_id") == invocation_id, s
        assert s.attributes.get("switchboard.tool") == tool, s
        if s is not call:
            parent = by_id.get(s.parent_span_id)
            assert parent is not None, f"{s.name}'s parent {s.parent_span_id} is not in the call's trace"
            assert parent.start_ns <= s.start_ns and s.end_ns <= parent.end_ns, (parent, s)
    for name in STEPS:
        assert one(spans, name).parent_span_id == call.span_id, name
    unit = one(spans, "unit")
    assert unit.parent_span_id == one(spans, "dispatch").span_id
    assert unit.attributes.get("switchboard.backend") == "local"
    assert unit.attributes.get("switchboard.unit_id"), unit
    assert call.attributes.get("switchboard.outcome") == "ok"
    assert call.attributes.get("switchboard.backend") == "local"
    assert call.status_code == STATUS_OK
    assert call.resource.get("service.name") == "switchboard"
    return call, unit


def invocation_of(gw, tool: str) -> str:
    lines = [a for a in gw.audit_lines() if a["tool"] == tool]
    assert len(lines) == 1, lines
    return lines[0]["invocation_id"]


def test_a_call_is_traced_under_the_clients_span_and_its_unit_gets_the_traceparent(start_gateway, receiver):
    gw = start_gateway(exporting(receiver))
    calls = {}
    for tool in ("echo", "env", "env_prepared"):
        traceparent, trace_id, span_id = new_traceparent()
        args = {"message": "hi"} if tool == "echo" else {}
        calls[tool] = (trace_id, span_id, gw.result(tool, args, traceparent))
    for tool, (trace_id, span_id, result) in calls.items():
        spans = traced(receiver, trace_id, STEPS | {"tools/call", "unit"})
        invocation_id = invocation_of(gw, tool)
        call, unit = check_call_tree(spans, span_id, tool, invocation_id)
        # The unit's traceparent names the gateway's unit span, in the client's trace.
        expected = f"00-{trace_id}-{unit.span_id}-01"
        if tool == "echo":
            continue
        seen = result["structuredContent"]
        assert seen["invocation"]["traceparent"] == expected
        assert seen["invocation"]["invocationId"] == invocation_id
        if tool == "env":
            assert seen["env"] == expected
        else:
            # Started before its call: no TRACEPARENT in its environment; it is in the invocation.
            assert seen["env"] == ""


def test_a_call_without_a_traceparent_is_a_trace_of_its_own(start_gateway, receiver):
    gw = start_gateway(exporting(receiver))
    seen = gw.result("env")["structuredContent"]
    _, trace_id, parent_id, _ = seen["env"].split("-")
    spans = traced(receiver, trace_id, STEPS | {"tools/call", "unit"})
    _, unit = check_call_tree(spans, None, "env", invocation_of(gw, "env"))
    assert parent_id == unit.span_id


def test_refused_calls_are_traced_with_their_outcome(start_gateway, receiver):
    gw = start_gateway(exporting(receiver))
    tp_unknown, unknown_trace, _ = new_traceparent()
    resp = gw.call("no_such_tool", traceparent=tp_unknown)
    assert "error" in resp.json()
    tp_token, token_trace, client_span = new_traceparent()
    resp = gw.call("echo", {"message": "x"}, traceparent=tp_token, token="not-a-token")
    assert resp.status == 401

    spans = traced(receiver, unknown_trace, {"tools/call", "authenticate", "authorize"})
    call = one(spans, "tools/call")
    assert call.attributes["switchboard.outcome"] == "unknown_tool"
    assert call.status_code == STATUS_ERROR
    assert "dispatch" not in {s.name for s in spans}

    spans = traced(receiver, token_trace, {"tools/call", "authenticate"})
    call = one(spans, "tools/call")
    assert call.parent_span_id == client_span
    assert call.attributes["switchboard.outcome"] == "unauthenticated"
    assert call.attributes["switchboard.tool"] == "echo"
    assert one(spans, "authenticate").parent_span_id == call.span_id
    assert {s.name for s in spans} == {"tools/call", "authenticate"}


def test_spans_still_buffered_are_sent_when_the_gateway_stops(start_gateway, receiver):
    # A batch delay far longer than the test: only the flush at shutdown can send these spans.
    gw = start_gateway({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "600000"})
    traceparent, trace_id, span_id = new_traceparent()
    gw.result("echo", {"message": "last"}, traceparent)
    time.sleep(0.5)
    assert not [s for s in receiver.spans() if s.trace_id == trace_id], "exported before the stop"
    assert gw.stop() == 0, gw.log.read_text()
    spans = [s for s in receiver.spans() if s.trace_id == trace_id]
    check_call_tree(spans, span_id, "echo", invocation_of(gw, "echo"))


def test_without_an_endpoint_nothing_is_exported_and_the_clients_traceparent_goes_to_the_unit(
    start_gateway, receiver
):
    receiver_requests = receiver.requests
    # Every other OTEL_ variable may be set: without an endpoint there is still no exporter.
    gw = start_gateway({"OTEL_SERVICE_NAME": "switchboard-test", "OTEL_BSP_SCHEDULE_DELAY": "100"})
    traceparent, trace_id, _ = new_traceparent()
    seen = gw.result("env", traceparent=traceparent)["structuredContent"]
    # No span of the gateway's: the unit joins the client's trace directly.
    assert seen["env"] == traceparent
    assert seen["invocation"]["traceparent"] == traceparent
    threads = gw.thread_names()
    assert not [t for t in threads if t.startswith("OpenTelemetry")], threads
    assert gw.stop() == 0
    assert receiver.requests == receiver_requests
    assert not [s for s in receiver.spans() if s.trace_id == trace_id]
    assert "exporting traces" not in gw.log.read_text()


def test_with_an_endpoint_the_exporter_runs_and_says_where(start_gateway, receiver):
    gw = start_gateway(exporting(receiver))
    assert [t for t in gw.thread_names() if t.startswith("OpenTelemetry")], gw.thread_names()
    assert f"exporting traces over OTLP (http/protobuf) endpoint={receiver.endpoint}" in gw.log.read_text()


def test_a_malformed_traceparent_is_ignored(start_gateway, receiver):
    gw = start_gateway(exporting(receiver))
    seen = gw.result("env", traceparent="00-not-a-trace-01")["structuredContent"]
    version, trace_id, _, flags = seen["env"].split("-")
    assert (version, flags) == ("00", "01") and len(trace_id) == 32
    spans = traced(receiver, trace_id, STEPS | {"tools/call", "unit"})
    check_call_tree(spans, None, "env", invocation_of(gw, "env"))
