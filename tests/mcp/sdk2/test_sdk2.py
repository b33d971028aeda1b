"""The official MCP Python SDK, current major (mcp 2.x, protocol 2026-07-28, stateless), against a
running `switchboard serve` over Streamable HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import httpx2
import mcp
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

MODERN = "2026-07-28"


def test_sdk_is_the_current_major():
    assert mcp.__version__.startswith("2.") if hasattr(mcp, "__version__") else True
    from importlib.metadata import version

    assert version("mcp").startswith("2."), version("mcp")


@contextlib.asynccontextmanager
async def connect(gw, token: str, mode: str = "auto") -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30.0, read=60.0),
    )
    async with http:
        async with Client(streamable_http_client(gw.mcp, http_client=http), mode=mode) as client:
            yield client


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_connects_stateless_at_2026_07_28(gw):
    async def body():
        async with connect(gw, gw.issuer.token()) as c:
            assert c.protocol_version == MODERN
            assert c.server_capabilities.tools is not None

    run(body())


def test_pinned_2026_07_28_without_probe(gw):
    async def body():
        async with connect(gw, gw.issuer.token(), mode=MODERN) as c:
            tools = await c.list_tools()
            assert "echo" in [t.name for t in tools.tools]

    run(body())


def test_lists_tools(gw):
    async def body():
        async with connect(gw, gw.issuer.token()) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert "echo" in tools
            echo = tools["echo"]
            assert echo.description
            assert echo.input_schema["type"] == "object"
            assert "message" in echo.input_schema["properties"]

    run(body())


def test_calls_echo(gw):
    async def body():
        async with connect(gw, gw.issuer.token()) as c:
            await c.list_tools()
            result = await c.call_tool("echo", {"message": "hello from the v2 SDK"})
            assert not result.is_error, text_of(result)
            assert "hello from the v2 SDK" in text_of(result)

    run(body())


def test_calls_echo_without_listing_first(gw):
    async def body():
        async with connect(gw, gw.issuer.token()) as c:
            result = await c.call_tool("echo", {"message": "cold call"})
            assert not result.is_error, text_of(result)
            assert "cold call" in text_of(result)

    run(body())


def test_es256_token_works_too(gw):
    async def body():
        async with connect(gw, gw.issuer.es256_token()) as c:
            result = await c.call_tool("echo", {"message": "es256"})
            assert "es256" in text_of(result)

    run(body())


def test_call_with_progress_token(gw):
    """The SDK sends a progressToken when given a callback. Whatever progress the tool reports
    arrives for this call, in order; the echo tool may report none, and then the call must still
    complete normally."""
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def body():
        async with connect(gw, gw.issuer.token()) as c:
            result = await c.call_tool("echo", {"message": "with progress"}, progress_callback=on_progress)
            assert not result.is_error, text_of(result)
            assert "with progress" in text_of(result)

    run(body())
    # The gateway itself reports the dispatch step; whatever the tool adds comes after, in order.
    assert seen, "no progress notification reached the SDK's callback"
    values = [p for p, _, _ in seen]
    assert values == sorted(values), seen


def test_caller_without_group_does_not_see_the_tool(gw):
    async def body():
        async with connect(gw, gw.issuer.token(sub="mallory", groups=["other"])) as c:
            names = [t.name for t in (await c.list_tools()).tools]
            assert "echo" not in names
            assert "echo-other" in names  # the filter is per tool, not all-or-nothing

    run(body())


async def failure(c: Client, name: str) -> tuple[str, int | None, str]:
    """How a call fails: ('error', code, message) or ('result', None, text)."""
    try:
        result = await c.call_tool(name, {"message": "hi"})
    except MCPError as e:
        return ("error", e.code, e.message.replace(name, "<name>"))
    assert result.is_error, f"{name} answered a caller who may not use it: {text_of(result)}"
    return ("result", None, text_of(result).replace(name, "<name>"))


def test_caller_without_group_gets_the_unknown_tool_error(gw):
    async def body():
        async with connect(gw, gw.issuer.token(sub="mallory", groups=["other"])) as c:
            forbidden = await failure(c, "echo")
            unknown = await failure(c, "no-such-tool")
        assert forbidden == unknown, (forbidden, unknown)
        assert re.search(r"unknown|not found", forbidden[2], re.I), forbidden

    run(body())


def test_schema_violation_names_the_field(gw):
    async def body():
        async with connect(gw, gw.issuer.token()) as c:
            try:
                result = await c.call_tool("echo", {"message": 42})
            except MCPError as e:
                assert "message" in e.message + str(e.data)
                return
            assert result.is_error and "message" in text_of(result)

    run(body())


def test_legacy_mode_against_the_same_server(gw):
    """The v2 SDK can still speak the handshake era; the gateway answers it too."""

    async def body():
        async with connect(gw, gw.issuer.token(), mode="legacy") as c:
            assert c.protocol_version != MODERN
            result = await c.call_tool("echo", {"message": "legacy"})
            assert "legacy" in text_of(result)

    run(body())


@pytest.mark.parametrize("bad", ["garbage", "expired"])
def test_sdk_sees_401_as_an_error(gw, bad):
    import time

    token = "garbage"
    if bad == "expired":
        now = int(time.time())
        token = gw.issuer.sign(gw.issuer.claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600))

    async def body():
        async with connect(gw, token) as c:
            await c.list_tools()

    with pytest.raises(BaseException) as info:
        run(body())
    errors = list(leaves(info.value))
    mcp_errors = [e for e in errors if isinstance(e, MCPError)]
    assert mcp_errors, errors
    assert "bearer token" in mcp_errors[0].message, mcp_errors[0]


def leaves(exc: BaseException):
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from leaves(e)
    else:
        yield exc
