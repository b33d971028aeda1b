"""Logs a person can read: at the default level (RUST_LOG unset) one line per call and none of
the libraries' per-request lines; with RUST_LOG=debug those lines are there; --log-json keeps
its shape (one JSON object per line: timestamp, level, fields, target)."""

from __future__ import annotations

import json
import time

CALLS = 6


def make_calls(gw) -> None:
    for i in range(CALLS - 1):
        gw.result("echo", {"message": f"m{i}"})
    # A call that fails (rmcp logs a warning per JSON-RPC error it sends).
    assert "error" in gw.call("no_such_tool").json()


def new_lines(gw, before: int) -> list[str]:
    # The call line is written before the answer; give the writer a moment anyway.
    time.sleep(0.2)
    return gw.log_lines()[before:]


def test_the_default_level_writes_one_line_per_call_and_no_library_chatter(start_gateway):
    gw = start_gateway()
    before = len(gw.log_lines())
    make_calls(gw)
    lines = new_lines(gw, before)
    assert len(lines) == CALLS, "\n".join(lines)
    assert all("tool call" in line for line in lines), "\n".join(lines)
    for audit in gw.audit_lines():
        mentioning = [line for line in lines if audit["invocation_id"] in line]
        assert len(mentioning) == 1, (audit, lines)
        assert f"outcome={audit['outcome']}" in mentioning[0]
    assert not [line for line in gw.log_lines() if "rmcp" in line], gw.log.read_text()


def test_debug_shows_the_transports_lines(start_gateway):
    gw = start_gateway({"RUST_LOG": "debug"})
    make_calls(gw)
    lines = new_lines(gw, 0)
    assert [line for line in lines if " rmcp::" in line], "\n".join(lines[-50:])
    assert len([line for line in lines if "tool call" in line]) == CALLS


def test_log_json_keeps_its_shape(start_gateway):
    gw = start_gateway(log_json=True)
    make_calls(gw)
    lines = new_lines(gw, 0)
    docs = [json.loads(line) for line in lines]
    for doc in docs:
        assert set(doc) == {"timestamp", "level", "fields", "target"}, doc
        assert "message" in doc["fields"], doc
    calls = [d for d in docs if d["fields"]["message"] == "tool call"]
    assert len(calls) == CALLS
    assert {d["fields"]["outcome"] for d in calls} == {"ok", "unknown_tool"}
    assert all(d["level"] == "INFO" and d["target"] == "switchboard_gateway::mcp::call" for d in calls)
