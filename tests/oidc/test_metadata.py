"""The gateway's protected-resource metadata (RFC 9728) names the authorization server the suite
runs, and that server's own metadata agrees."""

from __future__ import annotations

import httpx2

from harness.gateway import RESOURCE_METADATA


def test_protected_resource_metadata_names_the_provider(run, authserver, gw):
    challenge = gw.list_tools(None).headers.get("WWW-Authenticate", "")
    m = RESOURCE_METADATA.search(challenge)
    assert m, challenge
    assert m.group(1) == gw.base + "/.well-known/oauth-protected-resource/mcp"
    for url in (m.group(1), gw.base + "/.well-known/oauth-protected-resource"):
        resp = httpx2.get(url, timeout=10)
        assert resp.status_code == 200, (url, resp.status_code)
        doc = resp.json()
        assert doc["resource"] == run["mcp"], doc
        assert doc["authorization_servers"] == [run["issuer"]], doc
        assert doc["scopes_supported"] == [run["scope"]], doc


def test_the_named_server_is_the_one_issuing_the_tokens(run, authserver):
    """What a client finds by following the metadata: the provider's discovery document, whose
    issuer is the one named, with the grants and endpoints this suite uses."""
    meta = authserver.metadata()
    assert meta["issuer"] == run["issuer"]
    assert meta["jwks_uri"] == run["jwks_url"]
    assert {"authorization_code", "client_credentials"} <= set(meta["grant_types_supported"])
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["registration_endpoint"].startswith(run["issuer"])
