"""The approval of a call, end to end with the MCP Python SDK's current major (mcp 2.x, protocol
2026-07-28): the gateway answers the call with an `InputRequiredResult` holding a URL-mode
elicitation of its approval page; the SDK hands it to the client's elicitation callback, where a
person (headless Chromium) signs in and decides; the SDK retries with the sealed `requestState`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import version

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from switchboard_harness.browser import Approver, with_dev_token

MESSAGE_ARGS = "guarded_echo"


def test_sdk_is_the_current_major():
    assert version("mcp").startswith("2."), version("mcp")


@contextlib.asynccontextmanager
async def connect(run, token: str, on_url) -> AsyncIterator[Client]:
    """A 2026-07-28 client whose elicitation callback hands URL elicitations to `on_url`."""

    async def elicit(context, params):
        assert isinstance(params, types.ElicitRequestURLParams), params
        return types.ElicitResult(action=await asyncio.to_thread(on_url, params.url, params.message))

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0, read=60.0))
    async with http:
        async with Client(
            streamable_http_client(run.mcp, http_client=http), mode="2026-07-28", elicitation_callback=elicit
        ) as client:
            yield client


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def call(run, token: str, message: str, on_url):
    async def body():
        async with connect(run, token, on_url) as client:
            return await client.call_tool(MESSAGE_ARGS, {"message": message})

    return asyncio.run(asyncio.wait_for(body(), 120))


def test_the_tool_is_listed_as_destructive_and_needing_approval(run):
    async def body():
        async with connect(run, run.token("alice", "deployers"), lambda *_: "cancel") as client:
            return (await client.list_tools()).tools

    tools = {t.name: t for t in asyncio.run(body())}
    tool = tools[MESSAGE_ARGS]
    assert tool.annotations is not None and tool.annotations.destructive_hint is True
    assert "approval" in tool.description and "approvers" in tool.description


def test_a_person_approves_in_the_browser_and_the_call_runs_once(run, approver: Approver):
    asked = []

    def on_url(url: str, message: str) -> str:
        asked.append(url)
        assert url.startswith(run.gw.base + "/approvals/"), url
        assert url in message, message
        status = approver.decide(url, "approve", reason="reviewed in the test", shot="approval-page")
        assert status.startswith("Approved by bob"), status
        return "accept"

    result = call(run, run.token("alice", "deployers"), "ship it", on_url)
    assert not result.is_error, text_of(result)
    assert "ship it" in text_of(result) or result.structured_content, result
    assert len(asked) == 1, asked
    approval_id = asked[0].rsplit("/", 1)[1]
    lines = run.audit_lines()
    ran = [line for line in lines if line.get("tool") == MESSAGE_ARGS and line.get("outcome") == "ok"]
    assert [line["approval_id"] for line in ran if line.get("approval_id") == approval_id] == [approval_id]
    assert ran[-1]["approver"] == "bob"
    decided = [line for line in lines if line.get("event") == "approval_decided" and line["approval_id"] == approval_id]
    assert decided and decided[0]["decision"] == "approved" and decided[0]["reason"] == "reviewed in the test"
    # After the call, the page says it has run, and offers no decision.
    approver.open(asked[0])
    assert "the call has run" in approver.text("status")
    assert not approver.has("approve")


def test_a_denial_in_the_browser_refuses_the_call(run, approver: Approver):
    def on_url(url: str, _message: str) -> str:
        status = approver.decide(url, "deny", reason="not during the freeze")
        assert status.startswith("Denied by bob"), status
        return "accept"

    result = call(run, run.token("alice", "deployers"), "deny me", on_url)
    assert result.is_error
    assert "denied by bob: not during the freeze" in text_of(result), text_of(result)


def test_planted_html_and_script_in_the_arguments_do_not_run(run, approver: Approver):
    planted = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"

    def on_url(url: str, _message: str) -> str:
        approver.open(url)
        approver.screenshot("planted-arguments")
        driver = approver.driver
        assert driver.title != "pwned", driver.title
        assert planted in approver.text("arguments").replace('\\"', '"'), approver.text("arguments")
        # Nothing of the arguments became an element: the page's own markup has no script or image.
        assert driver.execute_script("return document.querySelectorAll('script, img').length") == 0
        approver.decide(url, "deny", reason="a test")
        assert driver.title != "pwned", driver.title
        return "accept"

    result = call(run, run.token("alice", "deployers"), planted, on_url)
    assert result.is_error


def test_the_caller_cannot_approve_its_own_call_in_the_browser(run):
    # alice is in the approvers group too: still not hers to approve.
    token = run.token("alice", "deployers", "approvers")
    alice = Approver(with_dev_token(token), run.shots)
    seen = {}

    def on_url(url: str, _message: str) -> str:
        alice.open(url)
        seen["cannot"] = alice.text("cannot-decide") if alice.has("cannot-decide") else None
        seen["approve"] = alice.has("approve")
        return "decline"

    try:
        result = call(run, token, "self-approval", on_url)
    finally:
        alice.close()
    assert seen == {"cannot": "You made this call: another person must approve it.", "approve": False}, seen
    assert result.is_error and "declined" in text_of(result), text_of(result)
