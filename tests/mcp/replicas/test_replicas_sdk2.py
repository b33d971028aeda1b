"""The official MCP Python SDK 2.x through the round-robin proxy, in both of its modes: the
2026-07-28 revision (no session at all) and its legacy mode (2025-11-25, a session). Each runs a
whole session whose requests alternate between the replicas."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
def test_a_whole_session_alternates_between_replicas(gw, replicas, subject, mode):
    async def body() -> None:
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {gw.issuer.token(sub=subject)}"},
            timeout=httpx2.Timeout(30.0, read=60.0),
        )
        async with http:
            async with Client(streamable_http_client(replicas.proxy, http_client=http), mode=mode) as c:
                assert "echo" in [t.name for t in (await c.list_tools()).tools]
                for i in range(6):
                    result = await c.call_tool("echo", {"message": f"{mode} {i}"})
                    assert not result.is_error and f"{mode} {i}" in result.content[0].text

    asyncio.run(asyncio.wait_for(body(), 90))
    served = {w: [r for r in replicas.audit(w) if r["principal"] == subject] for w in ("a", "b")}
    assert len(served["a"]) + len(served["b"]) == 6, served
    assert served["a"] and served["b"], f"one replica served the whole session: {served}"
    sessions = {r.get("session") for w in served.values() for r in w}
    if mode == "legacy":
        assert len(sessions) == 1 and None not in sessions, sessions
    else:
        assert sessions == {None}, sessions
