"""Client credentials with a resource indicator: tokens the authorization server (oidc-provider)
issues for the gateway, for another resource, and for no resource at all."""

from __future__ import annotations

import asyncio
import time

import httpx2
import jwt
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from harness.gateway import assert_refused_as_invalid_token, tool_names


def claims_of(token: str) -> tuple[dict, dict]:
    """The header and claims of a JWT, unverified: what the authorization server put in it."""
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def test_a_token_for_the_gateways_resource_is_a_jwt_for_its_uri(run, authserver):
    answer = authserver.client_credentials(run["clients"]["dev"], resource=run["mcp"], scope=run["scope"])
    assert answer["token_type"].lower() == "bearer"
    header, claims = claims_of(answer["access_token"])
    assert header["typ"] == "at+jwt", header
    assert header["alg"] == "ES256", header
    assert header["kid"] == authserver.state()["kids"][0], header
    assert claims["aud"] == run["mcp"], claims
    assert claims["iss"] == run["issuer"], claims
    assert claims["sub"] == run["clients"]["dev"]["client_id"], claims
    assert claims["groups"] == ["dev"], claims
    assert claims["scope"] == run["scope"], claims


def test_the_gateway_accepts_it_for_tools_list_and_a_tool_call(run, authserver, gw):
    token = authserver.client_credentials(run["clients"]["dev"], resource=run["mcp"])["access_token"]

    async def body():
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(30.0, read=60.0),
        )
        async with http:
            async with Client(streamable_http_client(gw.mcp, http_client=http)) as client:
                tools = [t.name for t in (await client.list_tools()).tools]
                assert tools == ["echo"], tools
                result = await client.call_tool("echo", {"message": "from oidc-provider"})
                assert not result.is_error, result
                text = " ".join(getattr(c, "text", "") for c in result.content)
                assert "from oidc-provider" in text, text

    asyncio.run(asyncio.wait_for(body(), 90))
    # The audit line names the client the authorization server authenticated.
    assert f'"principal":"{run["clients"]["dev"]["client_id"]}"' in gw.log().replace(" ", "")


def test_the_gateway_fetches_the_jwks_from_the_providers_url(run, authserver, gw):
    """The gateway's keys come from the provider's jwks_uri, fetched again once its cache window
    has passed (and not for every token within it)."""
    assert authserver.metadata()["jwks_uri"] == run["jwks_url"]
    token = authserver.client_credentials(run["clients"]["dev"], resource=run["mcp"])["access_token"]

    def fetches() -> int:
        return sum(1 for r in authserver.requests() if r["method"] == "GET" and r["path"] == "/jwks")

    time.sleep(run["cache_seconds"] + 0.5)
    before = fetches()
    for _ in range(3):
        assert gw.list_tools(token).status_code == 200
    # Nothing in this suite but the gateway asks the provider for its keys.
    assert fetches() == before + 1, authserver.requests()[-10:]
    assert all(r["status"] == 200 for r in authserver.requests() if r["path"] == "/jwks")


def test_a_token_for_another_resource_is_refused(run, authserver, gw):
    """Wrong audience: a valid token from the same server and the same client, signed with the
    same key, issued for another resource server, is refused with 401."""
    token = authserver.client_credentials(run["clients"]["dev"], resource=run["other_resource"])["access_token"]
    _, claims = claims_of(token)
    assert claims["aud"] == run["other_resource"], claims
    assert claims["iss"] == run["issuer"], claims
    assert_refused_as_invalid_token(gw, gw.list_tools(token))
    assert "InvalidAudience" in gw.log()


def test_a_token_without_a_resource_indicator_is_refused(run, authserver, gw):
    """Without `resource` the server issues an opaque token for its userinfo endpoint only; the
    gateway cannot read it and refuses it with 401."""
    token = authserver.client_credentials(run["clients"]["dev"], resource=None)["access_token"]
    assert token.count(".") != 2, "expected an opaque token"
    assert_refused_as_invalid_token(gw, gw.list_tools(token))


def test_a_valid_token_granting_no_tool_is_forbidden(run, authserver, gw):
    """The control for the refusals above: a token of the right audience from a client with no
    group and no scope is authenticated (not 401) but may use nothing (403 insufficient_scope)."""
    token = authserver.client_credentials(run["clients"]["nobody"], resource=run["mcp"])["access_token"]
    resp = gw.list_tools(token)
    assert resp.status_code == 403, resp.text[:500]
    assert 'error="insufficient_scope"' in resp.headers.get("WWW-Authenticate", "")


def test_the_tool_list_is_what_the_token_grants(run, authserver, gw):
    token = authserver.client_credentials(run["clients"]["dev"], resource=run["mcp"])["access_token"]
    resp = gw.list_tools(token)
    assert resp.status_code == 200, resp.text[:500]
    assert tool_names(resp) == ["echo"]
