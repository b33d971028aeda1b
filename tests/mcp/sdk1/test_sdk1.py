"""The official MCP Python SDK, previous major (mcp<2, protocol 2025-11-25: initialize handshake
and Mcp-Session-Id), against a running `switchboard serve` over Streamable HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from importlib.metadata import version

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

LEGACY = "2025-11-25"


def test_sdk_is_the_previous_major():
    assert version("mcp").startswith("1."), version("mcp")


@contextlib.asynccontextmanager
async def connect(gw, token: str) -> AsyncIterator[tuple[ClientSession, object, object]]:
    http = httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(30.0, read=60.0),
    )
    async with http:
        async with streamable_http_client(gw.mcp, http_client=http) as (read, write, get_session_id):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                yield session, init, get_session_id


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_initializes_at_2025_11_25_with_a_session(gw):
    async def body():
        async with connect(gw, gw.issuer.token()) as (s, init, get_session_id):
            assert init.protocolVersion == LEGACY
            assert init.capabilities.tools is not None
            assert init.serverInfo.name
            sid = get_session_id()
            assert sid, "no Mcp-Session-Id after initialize"
            assert all(0x21 <= ord(ch) <= 0x7E for ch in sid), sid

    run(body())


def test_lists_tools(gw):
    async def body():
        async with connect(gw, gw.issuer.token()) as (s, _, _):
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert "echo" in tools
            assert tools["echo"].inputSchema["type"] == "object"
            assert "message" in tools["echo"].inputSchema["properties"]

    run(body())


def test_calls_echo(gw):
    async def body():
        async with connect(gw, gw.issuer.token()) as (s, _, _):
            result = await s.call_tool("echo", {"message": "hello from the v1 SDK"})
            assert not result.isError, text_of(result)
            assert "hello from the v1 SDK" in text_of(result)

    run(body())


def test_session_survives_several_calls(gw):
    async def body():
        async with connect(gw, gw.issuer.token()) as (s, _, get_session_id):
            first = get_session_id()
            for i in range(3):
                result = await s.call_tool("echo", {"message": f"call {i}"})
                assert f"call {i}" in text_of(result)
            await s.send_ping()
            assert get_session_id() == first

    run(body())


def test_call_with_progress_token(gw):
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def body():
        async with connect(gw, gw.issuer.token()) as (s, _, _):
            result = await s.call_tool("echo", {"message": "with progress"}, progress_callback=on_progress)
            assert not result.isError, text_of(result)
            assert "with progress" in text_of(result)

    run(body())
    # The gateway itself reports the dispatch step; whatever the tool adds comes after, in order.
    assert seen, "no progress notification reached the SDK's callback"
    values = [p for p, _, _ in seen]
    assert values == sorted(values), seen


def test_caller_without_group_does_not_see_the_tool(gw):
    async def body():
        async with connect(gw, gw.issuer.token(sub="mallory", groups=["other"])) as (s, _, _):
            names = [t.name for t in (await s.list_tools()).tools]
            assert "echo" not in names
            assert "echo-other" in names  # the filter is per tool, not all-or-nothing

    run(body())


async def failure(s: ClientSession, name: str) -> tuple[str, int | None, str]:
    try:
        result = await s.call_tool(name, {"message": "hi"})
    except McpError as e:
        return ("error", e.error.code, e.error.message.replace(name, "<name>"))
    assert result.isError, f"{name} answered a caller who may not use it: {text_of(result)}"
    return ("result", None, text_of(result).replace(name, "<name>"))


def test_caller_without_group_gets_the_unknown_tool_error(gw):
    async def body():
        async with connect(gw, gw.issuer.token(sub="mallory", groups=["other"])) as (s, _, _):
            forbidden = await failure(s, "echo")
            unknown = await failure(s, "no-such-tool")
        assert forbidden == unknown, (forbidden, unknown)
        assert re.search(r"unknown|not found", forbidden[2], re.I), forbidden

    run(body())


def test_session_is_bound_to_its_caller(gw):
    """A session id issued to one caller is useless with another caller's token."""

    sid = None

    async def grab():
        nonlocal sid
        http = httpx.AsyncClient(headers={"Authorization": f"Bearer {gw.issuer.token(sub='alice')}"})
        async with http:
            async with streamable_http_client(gw.mcp, http_client=http, terminate_on_close=False) as (r, w, gsid):
                async with ClientSession(r, w) as s:
                    await s.initialize()
                    sid = gsid()

    run(grab())
    assert sid
    other = gw.issuer.token(sub="mallory", groups=["dev"])
    resp = httpx.post(
        gw.mcp,
        headers={
            "Authorization": f"Bearer {other}",
            "Mcp-Session-Id": sid,
            "MCP-Protocol-Version": LEGACY,
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        json={"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}},
    )
    assert resp.status_code in (400, 403, 404), (resp.status_code, resp.text[:300])
