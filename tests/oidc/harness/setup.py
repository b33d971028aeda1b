"""Prepares one run of the OIDC suite: the authorization server's configuration and first key, the
gateway's catalog (JWKS by URL from that server), free ports, and run.json.

    python -m harness.setup --out DIR --bin TARGET_DIR

run.sh starts `node provider.mjs DIR/provider.json` and `switchboard serve --catalog DIR/catalog.yaml`;
the tests read DIR/run.json.
"""

from __future__ import annotations

import json
import secrets

from switchboard_harness.catalog import echo_tool, setup_arguments, write_run
from switchboard_harness.gateway import free_port

from . import keys

# How long the gateway keeps a fetched JWKS (gateway.auth.jwks_cache_seconds): short, so that the
# rotation test sees a removed key refused within seconds.
CACHE_SECONDS = 3
# The one scope of the gateway's resource at the authorization server; the echo tool allows it.
SCOPE = "mcp:tools"
# A resource server the authorization server also knows, which is not this gateway.
OTHER_RESOURCE = "https://other.switchboard.test/mcp"
# The environment variable holding the approval page client's secret.
PAGE_SECRET_ENV = "SB_OIDC_APPROVAL_PAGE_SECRET"


def guarded_echo(bin_dir) -> dict:
    """The echo tool under another name, for the deployers group, each call approved by a member
    of approvers who is not the caller."""
    tool = echo_tool(bin_dir, name="guarded_echo", groups=("deployers",))
    tool["description"] = "Returns the message it is given, once a person has approved the call."
    tool["approval"] = {"groups": ["approvers"], "expires_seconds": 600}
    return tool


def main() -> None:
    out, bin_dir = setup_arguments()

    as_port, gw_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{as_port}"
    base = f"http://127.0.0.1:{gw_port}"
    mcp = f"{base}/mcp"
    jwks_url = f"{issuer}/jwks"

    first = keys.new_key("first")
    keys_file = out / "provider-keys.json"
    keys.write(keys_file, [first])

    clients = {
        # may use the echo tool (group dev)
        "dev": {"client_id": "ci-dev", "client_secret": secrets.token_urlsafe(24), "groups": ["dev"]},
        # a valid client of the same server whose tokens grant no tool of the gateway
        "nobody": {"client_id": "ci-nobody", "client_secret": secrets.token_urlsafe(24), "groups": []},
        # may call guarded_echo, whose every call a person approves
        "deployer": {"client_id": "ci-deployer", "client_secret": secrets.token_urlsafe(24), "groups": ["deployers"]},
    }
    # The approval page's own client: a confidential web client, authorization code + PKCE, its
    # secret given to the gateway in the environment (run.sh), never in the catalog.
    page_client = {
        "client_id": "switchboard-approvals",
        "client_secret": secrets.token_urlsafe(32),
        "redirect_uris": [f"{base}/approvals/callback"],
    }
    provider = {
        "issuer": issuer,
        "port": as_port,
        "keys_file": str(keys_file),
        "state_file": str(out / "provider-state.json"),
        "cookie_key": secrets.token_urlsafe(32),
        "access_token_ttl": 600,
        "resources": {mcp: {"scope": SCOPE}, OTHER_RESOURCE: {"scope": SCOPE}},
        "clients": list(clients.values()),
        "page_clients": [page_client],
        # The login page's accounts. alice belongs to no group: what she may use comes from the
        # scope she consents to. bob approves guarded_echo's calls.
        "accounts": {"alice": {"groups": []}, "bob": {"groups": ["approvers"]}},
    }
    (out / "provider.json").write_text(json.dumps(provider, indent=2))

    catalog = {
        "version": 1,
        "gateway": {
            "public_url": mcp,
            "auth": {
                "issuer": issuer,
                "jwks": {"url": jwks_url},
                "jwks_cache_seconds": CACHE_SECONDS,
                "algorithms": ["ES256"],
                # oidc-provider's JWT access tokens are RFC 9068 tokens (typ at+jwt); requiring
                # the type keeps its ID tokens, signed by the same keys, out.
                "required_typ": "at+jwt",
                "approval_sign_in": {
                    "client_id": page_client["client_id"],
                    "client_secret_env": PAGE_SECRET_ENV,
                    "scopes": [SCOPE],
                },
            },
        },
        # Client-credentials clients get echo through their group, people through the scope they
        # consented to; guarded_echo is the deployers' and needs an approver's approval.
        "tools": [echo_tool(bin_dir, scopes=(SCOPE,)), guarded_echo(bin_dir)],
    }
    run = {
        "base": base,
        "mcp": mcp,
        "listen": f"127.0.0.1:{gw_port}",
        "issuer": issuer,
        "jwks_url": jwks_url,
        "cache_seconds": CACHE_SECONDS,
        "scope": SCOPE,
        "other_resource": OTHER_RESOURCE,
        "clients": clients,
        "page_client": page_client,
        "page_secret_env": PAGE_SECRET_ENV,
        "first_kid": first["kid"],
        "keys_file": str(keys_file),
        "provider_state": provider["state_file"],
        "provider_log": str(out / "provider.log"),
        "provider_pid_file": str(out / "provider.pid"),
        "gateway_log": str(out / "gateway.log"),
    }
    write_run(out, catalog, run)


if __name__ == "__main__":
    main()
