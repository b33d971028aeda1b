"""The MCP Python SDK's OAuth client end to end against the authorization server: it finds the
server through the gateway's 401 and protected-resource metadata, registers itself (dynamic client
registration, RFC 7591), runs authorization code + PKCE with a resource indicator, and lists and
calls a tool with the token it got. The login and consent pages are answered by a headless
browser (harness.browser); nothing is pre-registered and no token is made by the suite."""

from __future__ import annotations

import asyncio

import httpx2
import jwt
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from harness.browser import Browser

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never reached: the browser stops at the redirect


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def test_the_sdk_authorizes_with_code_and_pkce_and_calls_a_tool(run, authserver, gw):
    storage = MemoryStorage()
    browser = Browser(login="alice", password="not checked by dev interactions", redirect_uri=REDIRECT_URI)
    callback: dict[str, str] = {}
    authorization_urls: list[str] = []

    async def redirect_handler(url: str) -> None:
        authorization_urls.append(url)
        callback.update(await browser.authorize(url))

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=callback["code"], state=callback.get("state"), iss=callback.get("iss"))

    oauth = OAuthClientProvider(
        server_url=gw.mcp,
        client_metadata=OAuthClientMetadata(
            client_name="switchboard oidc suite",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async def body():
        async with httpx2.AsyncClient(auth=oauth, timeout=httpx2.Timeout(30.0, read=60.0)) as http:
            async with Client(streamable_http_client(gw.mcp, http_client=http)) as client:
                tools = [t.name for t in (await client.list_tools()).tools]
                assert tools == ["echo"], tools
                result = await client.call_tool("echo", {"message": "signed in through the SDK"})
                assert not result.is_error, result
                text = " ".join(getattr(c, "text", "") for c in result.content)
                assert "signed in through the SDK" in text, text

    asyncio.run(asyncio.wait_for(body(), 120))

    # One authorization: the browser saw the login page, then the consent page.
    assert len(authorization_urls) == 1, authorization_urls
    assert browser.pages == ["login", "consent"], browser.pages
    url = authorization_urls[0]
    assert url.startswith(run["issuer"] + "/auth?"), url
    for part in ("code_challenge_method=S256", "code_challenge=", "resource=", "scope=mcp%3Atools"):
        assert part in url, (part, url)
    assert callback.get("iss") == run["issuer"], callback

    # The client registered itself at the provider, and the token is the provider's JWT for the
    # gateway, for alice, carrying the consented scope (alice has no group: the scope is what lets
    # her use echo).
    assert storage.client is not None and storage.client.client_id
    assert any(r["method"] == "POST" and r["path"] == "/reg" and r["status"] == 201 for r in authserver.requests())
    token = storage.tokens.access_token
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["typ"] == "at+jwt" and header["kid"] == authserver.state()["kids"][0], header
    assert claims["aud"] == run["mcp"], claims
    assert claims["iss"] == run["issuer"], claims
    assert claims["sub"] == "alice", claims
    assert claims["client_id"] == storage.client.client_id, claims
    assert claims["scope"] == run["scope"], claims
    assert claims["groups"] == [], claims
