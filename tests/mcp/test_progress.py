"""Progress notifications at the wire level: a call that carries a progressToken gets its
notifications on the call's own SSE stream, tagged with that token, in order, before the result."""

from __future__ import annotations

import json

from switchboard_harness import rawhttp


def sse_messages(resp: rawhttp.Response) -> list[dict]:
    out = []
    for event in resp.text().replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
        if data.strip():
            out.append(json.loads(data))
    return out


def call_with_progress(gw, token_value):
    msg = rawhttp.rpc(
        "tools/call",
        {"name": "echo", "arguments": {"message": "progress please"}, "_meta": {"progressToken": token_value}},
        id=41,
    )
    resp = rawhttp.post_mcp(gw.mcp, gw.issuer.token(), msg)
    assert resp.status == 200, resp.text()[:300]
    ctype = resp.header("content-type") or ""
    messages = sse_messages(resp) if ctype.startswith("text/event-stream") else [resp.json()]
    return messages


def check(messages, token_value):
    final = messages[-1]
    assert final.get("id") == 41 and "result" in final, final
    assert "progress please" in json.dumps(final["result"])
    progress = [m for m in messages if m.get("method") == "notifications/progress"]
    # The gateway reports at least its own dispatch step; the tool may add more.
    assert progress, f"no progress notification for a call that asked for it: {messages}"
    values = []
    for p in progress:
        assert p["params"]["progressToken"] == token_value, p
        values.append(p["params"]["progress"])
    assert values == sorted(values), values
    # Nothing but progress notifications and the one response.
    assert all(m.get("method") == "notifications/progress" for m in messages[:-1]), messages


def test_progress_with_string_token(gw):
    check(call_with_progress(gw, "tok-1"), "tok-1")


def test_progress_with_integer_token(gw):
    check(call_with_progress(gw, 12345), 12345)


def test_no_progress_without_token(gw):
    msg = rawhttp.rpc("tools/call", {"name": "echo", "arguments": {"message": "quiet"}}, id=42)
    resp = rawhttp.post_mcp(gw.mcp, gw.issuer.token(), msg)
    assert resp.status == 200
    ctype = resp.header("content-type") or ""
    messages = sse_messages(resp) if ctype.startswith("text/event-stream") else [resp.json()]
    assert not [m for m in messages if m.get("method") == "notifications/progress"], messages
    assert messages[-1]["id"] == 42
