"""The approval page's sign-in through the authorization server (gateway.auth.approval_sign_in):
the gateway as an OpenID Connect client of oidc-provider for its page only. The caller is a
client-credentials client of the provider; the approver signs in at the provider's login page in
headless Chromium (authorization code + PKCE, state and nonce), reads the call and approves it;
the MCP SDK's retry runs it."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from switchboard_harness.browser import Approver

PAGE = re.compile(r"/approvals/[A-Za-z0-9_-]+$")


def at_the_provider(login: str) -> Callable[[Approver], None]:
    """Signs in at oidc-provider's login page as `login` and consents to what the page asks."""

    def sign_in(person: Approver) -> None:
        box = person.wait(ec.presence_of_element_located((By.NAME, "login")))
        box.send_keys(login)
        person.driver.find_element(By.NAME, "password").send_keys("any password")
        person.driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        consent = (By.CSS_SELECTOR, "input[name=prompt][value=consent]")
        person.wait(lambda d: "/approvals/" in d.current_url or d.find_elements(*consent))
        if person.driver.find_elements(*consent):
            person.driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    return sign_in


@pytest.fixture(scope="module")
def shots(run) -> Path:
    folder = Path(os.environ["SB_OIDC_RUN"]) / "shots"
    folder.mkdir(exist_ok=True)
    return folder


def person(login: str, shots: Path) -> Approver:
    return Approver(at_the_provider(login), shots)


def deployer_token(run, authserver) -> str:
    return authserver.client_credentials(run["clients"]["deployer"], resource=run["mcp"])["access_token"]


def call_guarded_echo(run, token: str, message: str, on_url: Callable[[str], str]):
    """A 2026-07-28 call of guarded_echo whose URL elicitation is handed to `on_url`."""

    async def elicit(context, params):
        assert isinstance(params, types.ElicitRequestURLParams), params
        return types.ElicitResult(action=await asyncio.to_thread(on_url, params.url))

    async def body():
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0, read=90.0)
        )
        async with http:
            async with Client(
                streamable_http_client(run["mcp"], http_client=http), mode="2026-07-28", elicitation_callback=elicit
            ) as client:
                return await client.call_tool("guarded_echo", {"message": message})

    return asyncio.run(asyncio.wait_for(body(), 150))


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_an_approver_signs_in_at_the_authorization_server_and_the_approved_call_runs(run, authserver, gw, shots):
    bob = person("bob", shots)
    seen: dict[str, str] = {}

    def approve(url: str) -> str:
        seen["url"] = url
        seen["status"] = bob.decide(url, "approve", reason="signed in at the provider", shot="oidc-approval")
        seen["signed_in_as"] = bob.driver.find_element(By.ID, "sign-out").find_element(By.XPATH, "..").text
        return "accept"

    try:
        result = call_guarded_echo(run, deployer_token(run, authserver), "approved through oidc", approve)
    finally:
        bob.close()
    assert not result.is_error, text_of(result)
    assert "approved through oidc" in text_of(result)
    assert PAGE.search(seen["url"]) and seen["url"].startswith(run["base"]), seen
    assert seen["status"].startswith("Approved by bob"), seen
    assert "Signed in as bob" in seen["signed_in_as"], seen
    # The code was redeemed at the provider's token endpoint (by the gateway: nothing else here
    # uses authorization codes), and the approval names the person the provider signed in.
    assert any(r["method"] == "POST" and r["path"] == "/token" and r["status"] == 200 for r in authserver.requests())
    log = gw.log()
    assert re.search(r"approval page sign-in.*approver.{0,5}bob", log), log[-3000:]
    assert re.search(r'"approver":\s*"bob"', log), "the call's audit line names the approver"


def test_a_person_outside_the_approver_groups_signs_in_but_cannot_see_the_call(run, authserver, shots):
    alice = person("alice", shots)
    seen: dict[str, str] = {}

    def look(url: str) -> str:
        alice.driver.get(url)
        alice.sign_in(alice)
        alice.wait(lambda d: d.current_url == url and d.find_elements(By.TAG_NAME, "h1"))
        seen["heading"] = alice.driver.find_element(By.TAG_NAME, "h1").text
        return "cancel"

    try:
        result = call_guarded_echo(run, deployer_token(run, authserver), "not for alice", look)
    finally:
        alice.close()
    assert result.is_error, text_of(result)
    assert seen["heading"] == "Not yours to see", seen


def test_the_sign_in_sends_the_browser_to_the_provider_with_pkce_state_and_nonce(run):
    starts = []
    for _ in range(2):
        resp = httpx2.get(f"{run['base']}/approvals/sign-in", params={"next": "/approvals/abc"}, timeout=30)
        assert resp.status_code == 303, resp.text[:300]
        starts.append(resp)
    where = urlsplit(starts[0].headers["location"])
    assert f"{where.scheme}://{where.netloc}" == run["issuer"], where
    query = {k: v[0] for k, v in parse_qs(where.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == run["page_client"]["client_id"]
    assert query["redirect_uri"] == f"{run['base']}/approvals/callback"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["resource"] == run["mcp"]
    assert query["scope"].split() == ["openid", run["scope"]]
    other = {k: v[0] for k, v in parse_qs(urlsplit(starts[1].headers["location"]).query).items()}
    for fresh in ("state", "nonce", "code_challenge"):
        assert query[fresh] != other[fresh] and len(query[fresh]) >= 43, fresh
    cookie = starts[0].headers["set-cookie"]
    assert cookie.startswith("switchboard_sign_in="), cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=600" in cookie, cookie
    # Nothing of the sign-in's secrets is readable in the cookie.
    for fresh in ("state", "nonce"):
        assert query[fresh] not in cookie


def test_a_callback_without_its_sign_in_is_refused(run):
    resp = httpx2.get(f"{run['base']}/approvals/callback", params={"code": "x", "state": "y"}, timeout=30)
    assert resp.status_code == 401, resp.text[:300]
    assert "expired or was started in another browser" in resp.text
    assert "set-cookie" not in resp.headers or "switchboard_approver" not in resp.headers["set-cookie"]


def test_a_callback_with_another_state_is_refused_and_its_sign_in_is_spent(run):
    start = httpx2.get(f"{run['base']}/approvals/sign-in", params={"next": "/approvals/abc"}, timeout=30)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    jar = {"switchboard_sign_in": start.cookies["switchboard_sign_in"]}
    wrong = httpx2.get(
        f"{run['base']}/approvals/callback", params={"code": "x", "state": state + "x"}, cookies=jar, timeout=30
    )
    assert wrong.status_code == 401, wrong.text[:300]
    assert "state does not match" in wrong.text
    assert "switchboard_approver" not in wrong.headers.get("set-cookie", "")
    # The refused callback removed the sign-in's cookie (Max-Age=0): the browser cannot try again
    # with the right state.
    assert "switchboard_sign_in=;" in wrong.headers["set-cookie"] and "Max-Age=0" in wrong.headers["set-cookie"]


def test_a_refusal_by_the_provider_is_shown_and_starts_no_session(run):
    start = httpx2.get(f"{run['base']}/approvals/sign-in", params={"next": "/approvals/abc"}, timeout=30)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    jar = {"switchboard_sign_in": start.cookies["switchboard_sign_in"]}
    resp = httpx2.get(
        f"{run['base']}/approvals/callback",
        params={"error": "access_denied", "error_description": "<b>no</b>", "state": state},
        cookies=jar,
        timeout=30,
    )
    assert resp.status_code == 401, resp.text[:300]
    assert "access_denied" in resp.text and "&lt;b&gt;no&lt;/b&gt;" in resp.text, resp.text
    assert "switchboard_approver" not in resp.headers.get("set-cookie", "")


def test_the_page_clients_secret_is_in_no_log(run, gw):
    secret = run["page_client"]["client_secret"]
    assert secret not in gw.log()
    assert secret not in (Path(os.environ["SB_OIDC_RUN"]) / "catalog.yaml").read_text()
