"""The approval of a call with the MCP Python SDK's previous major (mcp 1.x, protocol 2025-11-25,
sessions): the gateway answers the call with the URL-elicitation-required error (-32042) naming
its approval page; a person (headless Chromium) approves there; the client calls again with the
same arguments and the call runs, once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import version

import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from switchboard_harness.browser import Approver

TOOL = "guarded_echo"


def test_sdk_is_the_previous_major():
    assert version("mcp").startswith("1."), version("mcp")


@contextlib.asynccontextmanager
async def connect(run, token: str) -> AsyncIterator[ClientSession]:
    async def elicit(context, params):
        # Declares URL elicitation; this revision asks by the error, not by a request.
        return types.ElicitResult(action="cancel")

    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(30.0, read=60.0))
    async with http:
        async with streamable_http_client(run.mcp, http_client=http) as (read, write, _):
            async with ClientSession(read, write, elicitation_callback=elicit) as session:
                init = await session.initialize()
                assert init.protocolVersion == "2025-11-25", init.protocolVersion
                yield session


def test_the_url_elicitation_error_then_approval_in_the_browser_then_the_retry_runs(run, approver: Approver):
    async def body():
        async with connect(run, run.token("carol", "deployers")) as session:
            try:
                await session.call_tool(TOOL, {"message": "from a session"})
            except McpError as e:
                error = e.error
            else:
                raise AssertionError("the call ran without approval")
            assert error.code == -32042, error
            elicitation = error.data["elicitations"][0]
            assert elicitation["mode"] == "url", elicitation
            url = elicitation["url"]
            assert url == f"{run.gw.base}/approvals/{elicitation['elicitationId']}", url
            status = await asyncio.to_thread(approver.decide, url, "approve")
            assert status.startswith("Approved by bob"), status
            result = await session.call_tool(TOOL, {"message": "from a session"})
            assert not result.isError, result
            # Used: the same call again asks for a new approval.
            try:
                await session.call_tool(TOOL, {"message": "from a session"})
            except McpError as e:
                again = e.error.data["elicitations"][0]
            else:
                raise AssertionError("an approval ran two calls")
            assert again["elicitationId"] != elicitation["elicitationId"]
            return elicitation["elicitationId"]

    approval_id = asyncio.run(asyncio.wait_for(body(), 120))
    ran = [line for line in run.audit_lines() if line.get("approval_id") == approval_id and line.get("outcome") == "ok"]
    assert len(ran) == 1 and ran[0]["approver"] == "bob", ran
