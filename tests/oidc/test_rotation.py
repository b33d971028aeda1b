"""Key rotation at the authorization server, picked up by the gateway through the JWKS URL.

The provider is restarted with a new `jwks` configuration twice, as an operator rotates keys: first
the new key in front of the old one (it signs with the new one, the old one still verifies), then
the new key alone. The gateway keeps a fetched JWKS for gateway.auth.jwks_cache_seconds (3 s in
this suite's catalog). The tests run in file order; each step starts from the one before.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest

from harness import keys
from harness.gateway import assert_refused_as_invalid_token


@pytest.fixture(scope="module")
def rotation(run, authserver) -> dict:
    """The key set before the rotation, a new key, and a token signed with the old key."""
    old_set = json.loads(authserver.keys_file.read_text())["keys"]
    token = authserver.client_credentials(run["clients"]["dev"], resource=run["mcp"])["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == old_set[0]["kid"]
    return {"old_set": old_set, "old_token": token, "new_key": keys.new_key("rotated")}


def test_a_new_key_at_the_provider_is_accepted(run, authserver, gw, rotation):
    assert gw.list_tools(rotation["old_token"]).status_code == 200

    authserver.restart_with_keys([rotation["new_key"], *rotation["old_set"]])
    token = authserver.client_credentials(run["clients"]["dev"], resource=run["mcp"])["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == rotation["new_key"]["kid"]
    resp = gw.list_tools(token)
    assert resp.status_code == 200, resp.text[:500]
    # The old key is still in the set: tokens it signed still work.
    assert gw.list_tools(rotation["old_token"]).status_code == 200


def test_a_removed_key_is_refused_after_the_cache_window(run, authserver, gw, rotation):
    """Once the provider no longer publishes a key, tokens it signed stop working within the
    gateway's cache window (plus the time one request takes), though they have not expired."""
    authserver.restart_with_keys([rotation["new_key"]])
    removed_at = time.monotonic()
    window = run["cache_seconds"]
    while True:
        resp = gw.list_tools(rotation["old_token"])
        waited = time.monotonic() - removed_at
        if resp.status_code != 200 or waited > window + 5:
            break
        time.sleep(0.2)
    assert_refused_as_invalid_token(gw, resp)
    assert waited <= window + 2, f"refused only after {waited:.1f} s; the cache window is {window} s"
    assert jwt.decode(rotation["old_token"], options={"verify_signature": False})["exp"] > time.time()
    # Refused because the key is gone, not for any other reason.
    assert f'no key with id Some("{rotation["old_set"][0]["kid"]}")' in gw.log(), gw.log()[-2000:]

    # The new key goes on working.
    token = authserver.client_credentials(run["clients"]["dev"], resource=run["mcp"])["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == rotation["new_key"]["kid"]
    assert gw.list_tools(token).status_code == 200
