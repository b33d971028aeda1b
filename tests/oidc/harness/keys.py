"""Signing keys for the authorization server: EC P-256 private JWKs (ES256), each with its own kid."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def new_key(label: str) -> dict:
    """A new private JWK whose kid starts with `label` and ends with random hex, so that no two
    runs (and no two keys of one run) share a kid."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(pub.x),
        "y": _b64(pub.y),
        "d": _b64(key.private_numbers().private_value),
        "use": "sig",
        "alg": "ES256",
        "kid": f"{label}-{secrets.token_hex(4)}",
    }


def write(path: Path, keys: list[dict]) -> None:
    """The key set the provider serves from its next (re)start; it signs with the first."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": keys}))
    tmp.chmod(0o600)
    tmp.replace(path)
