"""Bearer-token authentication at POST /mcp: every bad token gets 401 and nothing else.

The gateway runs in production auth mode (not --dev) and trusts only the JWKS harness.setup wrote,
so each forgery below is made the way an attacker would make it.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from switchboard_harness import jwtkit, rawhttp
from switchboard_harness.rawhttp import LEGACY, MODERN

RESOURCE_METADATA = re.compile(r'resource_metadata="([^"]+)"')


def list_tools(gw, token: str | None, version: str = MODERN) -> rawhttp.Response:
    if version == MODERN:
        msg = rawhttp.rpc("tools/list")
    else:
        msg = rawhttp.rpc(
            "initialize",
            {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
            version=LEGACY,
        )
    return rawhttp.post_mcp(gw.mcp, token, msg, version=version)


def assert_401_only(gw, resp: rawhttp.Response, token_presented: bool = True) -> None:
    """401 with a Bearer challenge pointing at the protected-resource metadata, and nothing else."""
    assert resp.status == 401, f"expected 401, got {resp.status}: {resp.text()[:500]}"
    challenge = resp.header("WWW-Authenticate")
    assert challenge, "401 without WWW-Authenticate"
    assert challenge.lower().startswith("bearer "), challenge
    m = RESOURCE_METADATA.search(challenge)
    assert m, f"no resource_metadata in {challenge!r}"
    assert m.group(1).startswith(gw.base + "/.well-known/oauth-protected-resource"), m.group(1)
    if token_presented:
        assert 'error="invalid_token"' in challenge, challenge
    # Nothing else: no session, no JSON-RPC result, no tool data.
    assert resp.header("Mcp-Session-Id") is None
    body = resp.text()
    assert "echo" not in body and '"result"' not in body and '"tools"' not in body, body[:500]
    assert gw.healthy()


# --- the control: valid tokens are accepted -------------------------------------------------


def test_valid_rs256_token_is_accepted(gw):
    resp = list_tools(gw, gw.issuer.token())
    assert resp.status == 200, resp.text()[:500]
    assert resp.header("Mcp-Session-Id") is None  # 2026-07-28 is stateless
    names = [t["name"] for t in resp.json()["result"]["tools"]]
    assert "echo" in names


def test_valid_es256_token_is_accepted(gw):
    resp = list_tools(gw, gw.issuer.es256_token())
    assert resp.status == 200, resp.text()[:500]
    assert "echo" in [t["name"] for t in resp.json()["result"]["tools"]]


def test_protected_resource_metadata(gw):
    resp = list_tools(gw, None)
    url = RESOURCE_METADATA.search(resp.header("WWW-Authenticate") or "").group(1)
    meta = rawhttp.request(url)
    assert meta.status == 200, meta.text()
    doc = meta.json()
    assert doc["resource"] == gw.mcp
    assert gw.issuer.issuer in doc["authorization_servers"]
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        r = rawhttp.request(gw.base + path)
        assert r.status == 200, (path, r.status)
        assert r.json()["resource"] == gw.mcp


# --- every bad token: 401 and nothing else ---------------------------------------------------


@pytest.mark.parametrize("version", [MODERN, LEGACY])
def test_no_token(gw, version):
    assert_401_only(gw, list_tools(gw, None, version), token_presented=False)


def test_no_token_on_sse_get(gw):
    resp = rawhttp.request(gw.mcp, "GET", headers={"Accept": "text/event-stream", "MCP-Protocol-Version": LEGACY})
    assert_401_only(gw, resp, token_presented=False)


def test_expired_token(gw):
    now = int(time.time())
    claims = gw.issuer.claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    assert_401_only(gw, list_tools(gw, gw.issuer.sign(claims)))


def test_not_yet_valid_token(gw):
    now = int(time.time())
    claims = gw.issuer.claims(iat=now, nbf=now + 3600, exp=now + 7200)
    assert_401_only(gw, list_tools(gw, gw.issuer.sign(claims)))


def test_wrong_audience(gw):
    claims = gw.issuer.claims(aud="http://127.0.0.1:1/mcp")
    assert_401_only(gw, list_tools(gw, gw.issuer.sign(claims)))


def test_wrong_issuer(gw):
    claims = gw.issuer.claims(iss="https://evil.example.com")
    assert_401_only(gw, list_tools(gw, gw.issuer.sign(claims)))


def test_alg_none(gw):
    assert_401_only(gw, list_tools(gw, gw.issuer.alg_none(gw.issuer.claims())))


def test_hs256_signed_with_public_key(gw):
    assert_401_only(gw, list_tools(gw, gw.issuer.hs256_with_public_key(gw.issuer.claims())))


def test_hs256_signed_with_public_jwk(gw):
    """The same confusion, with the public key as the JWKS serves it instead of as PEM."""
    jwks = json.loads((gw.issuer.folder / "jwks.json").read_text())
    rsa_jwk = next(k for k in jwks["keys"] if k["kid"] == jwtkit.RSA_KID)
    secret = json.dumps(rsa_jwk, separators=(",", ":")).encode()
    assert_401_only(gw, list_tools(gw, gw.issuer.hs256_with_public_key(gw.issuer.claims(), secret)))


def test_unknown_kid(gw):
    assert_401_only(gw, list_tools(gw, gw.issuer.rogue(gw.issuer.claims())))


def test_bad_signature_with_known_kid(gw):
    assert_401_only(gw, list_tools(gw, gw.issuer.rogue(gw.issuer.claims(), kid=jwtkit.RSA_KID)))


def test_garbage(gw):
    assert_401_only(gw, list_tools(gw, "this-is-not-a-jwt"))


def test_garbage_three_segments(gw):
    assert_401_only(gw, list_tools(gw, "eyJhbGciOiJSUzI1NiJ9.!!!.@@@"))


def test_not_a_bearer_scheme(gw):
    msg = rawhttp.rpc("tools/list")
    headers = rawhttp.mcp_headers(None, msg)
    headers["Authorization"] = "Basic YWxpY2U6c2VjcmV0"
    resp = rawhttp.request(gw.mcp, "POST", json.dumps(msg).encode(), headers)
    # Not a bearer token at all: RFC 6750 leaves the error attribute out or in; both are fine.
    assert_401_only(gw, resp, token_presented=False)


# --- a valid token that grants nothing -------------------------------------------------------


def test_valid_token_granting_no_tool_is_refused(gw):
    """Authenticated but no group or scope that any tool accepts: 403 insufficient_scope."""
    resp = list_tools(gw, gw.issuer.token(sub="nobody", groups=["no-such-group"]))
    assert resp.status == 403, resp.text()[:300]
    challenge = resp.header("WWW-Authenticate") or ""
    assert 'error="insufficient_scope"' in challenge, challenge
    assert RESOURCE_METADATA.search(challenge), challenge
    assert "echo" not in resp.text()


def test_token_lists_only_the_tools_its_groups_allow(gw):
    dev = [t["name"] for t in list_tools(gw, gw.issuer.token(groups=["dev"])).json()["result"]["tools"]]
    other = [t["name"] for t in list_tools(gw, gw.issuer.token(groups=["other"])).json()["result"]["tools"]]
    both = [t["name"] for t in list_tools(gw, gw.issuer.token(groups=["dev", "other"])).json()["result"]["tools"]]
    assert "echo" in dev and "echo-other" not in dev
    assert "echo-other" in other and "echo" not in other
    assert {"echo", "echo-other"} <= set(both)
