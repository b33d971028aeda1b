"""The official MCP Python SDK 1.x (2025-11-25: initialize, Mcp-Session-Id, DELETE at the end)
runs a whole session through the round-robin proxy: its requests alternate between the replicas,
and both serve it."""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version

import httpx
from switchboard_harness import rawhttp
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

LEGACY = "2025-11-25"


def test_sdk_is_the_previous_major():
    assert version("mcp").startswith("1."), version("mcp")


def test_a_whole_session_alternates_between_replicas(gw, replicas, subject, caplog):
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def body() -> str:
        http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {gw.issuer.token(sub=subject)}"},
            timeout=httpx.Timeout(30.0, read=60.0),
        )
        async with http:
            async with streamable_http_client(replicas.proxy, http_client=http) as (read, write, get_session_id):
                async with ClientSession(read, write) as s:
                    init = await s.initialize()
                    assert init.protocolVersion == LEGACY
                    sid = get_session_id()
                    assert sid
                    assert "echo" in [t.name for t in (await s.list_tools()).tools]
                    for i in range(6):
                        result = await s.call_tool("echo", {"message": f"call {i}"})
                        assert not result.isError and f"call {i}" in result.content[0].text
                    result = await s.call_tool("echo", {"message": "with progress"}, progress_callback=on_progress)
                    assert not result.isError
                    await s.send_ping()
                    assert get_session_id() == sid
                    return sid

    with caplog.at_level(logging.DEBUG):
        sid = asyncio.run(asyncio.wait_for(body(), 90))
    served = {w: [r for r in replicas.audit(w) if r.get("session") == sid] for w in ("a", "b")}
    assert len(served["a"]) + len(served["b"]) == 7, served
    assert served["a"] and served["b"], f"one replica served the whole session: {served}"
    assert all(r["principal"] == subject and r["outcome"] == "ok" for w in served.values() for r in w)
    assert progress, "no progress notification reached the SDK's callback"
    # Leaving the client sends DELETE; the SDK logs a warning unless it gets 200 or 204.
    warnings = [r.getMessage() for r in caplog.records if "termination" in r.getMessage().lower()]
    assert not any("failed" in w.lower() for w in warnings), warnings
    # And the session is gone on both replicas.
    token = gw.issuer.token(sub=subject)
    for url in (replicas.a, replicas.b):
        resp = rawhttp.post_mcp(
            url, token, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, version=LEGACY,
            extra={"Mcp-Session-Id": sid},
        )
        assert resp.status == 404, (url, resp.status, resp.text())
