"""Signing keys the test gateway trusts, and tokens signed (or forged) with them.

The gateway under test runs in production auth mode with a JWKS file written here, so every
token in these tests is one a real identity provider could have issued, or a forgery of one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

RSA_KID = "sb-test-rsa"
EC_KID = "sb-test-ec"
# A key the gateway has never seen (signs the unknown-kid and bad-signature forgeries).
ROGUE_KID = "sb-test-rogue"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def _pem_private(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate(folder: Path) -> None:
    """Writes fresh keys and the JWKS the gateway will trust into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for name, key in (("rsa", rsa_key), ("ec", ec_key), ("rogue", rogue)):
        (folder / f"{name}.pem").write_bytes(_pem_private(key))
        (folder / f"{name}.pub.pem").write_bytes(_pem_public(key))
    rn = rsa_key.public_key().public_numbers()
    en = ec_key.public_key().public_numbers()
    jwks = {
        "keys": [
            {"kty": "RSA", "kid": RSA_KID, "use": "sig", "alg": "RS256", "n": _int_b64(rn.n), "e": _int_b64(rn.e)},
            {
                "kty": "EC",
                "kid": EC_KID,
                "use": "sig",
                "alg": "ES256",
                "crv": "P-256",
                "x": b64url(en.x.to_bytes(32, "big")),
                "y": b64url(en.y.to_bytes(32, "big")),
            },
        ]
    }
    (folder / "jwks.json").write_text(json.dumps(jwks, indent=2))


@dataclass(frozen=True)
class Issuer:
    """Mints tokens for one gateway (its issuer and audience) with the keys in `folder`."""

    folder: Path
    issuer: str
    audience: str

    def _key(self, name: str) -> bytes:
        return (self.folder / f"{name}.pem").read_bytes()

    def public_pem(self, name: str = "rsa") -> bytes:
        return (self.folder / f"{name}.pub.pem").read_bytes()

    def claims(self, sub: str = "alice", groups: list[str] | None = None, ttl: int = 600, **extra: Any) -> dict:
        now = int(time.time())
        c: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now - 5,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
            "groups": ["dev"] if groups is None else groups,
            "tenant": "tenant-a",
        }
        c.update(extra)
        return {k: v for k, v in c.items() if v is not None}

    def sign(self, claims: dict, *, key: str = "rsa", kid: str | None = RSA_KID, alg: str = "RS256") -> str:
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(claims, self._key(key), algorithm=alg, headers=headers)

    def token(self, sub: str = "alice", groups: list[str] | None = None, **extra: Any) -> str:
        """A valid RS256 token."""
        return self.sign(self.claims(sub=sub, groups=groups, **extra))

    def es256_token(self, sub: str = "alice", groups: list[str] | None = None) -> str:
        """A valid ES256 token (the second key in the JWKS)."""
        return self.sign(self.claims(sub=sub, groups=groups), key="ec", kid=EC_KID, alg="ES256")

    # Forgeries ---------------------------------------------------------------------------

    def alg_none(self, claims: dict) -> str:
        """An unsigned token (`alg: none`) naming a trusted key id."""
        header = {"alg": "none", "typ": "JWT", "kid": RSA_KID}
        return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."

    def hs256_with_public_key(self, claims: dict, secret: bytes | None = None) -> str:
        """The algorithm-confusion forgery: HS256 with the trusted RSA public key as HMAC secret.

        Built by hand because PyJWT (rightly) refuses to use a public key as an HMAC secret.
        """
        secret = self.public_pem("rsa") if secret is None else secret
        header = {"alg": "HS256", "typ": "JWT", "kid": RSA_KID}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(sig)}"

    def rogue(self, claims: dict, kid: str = ROGUE_KID) -> str:
        """Signed by a key the gateway does not know."""
        return self.sign(claims, key="rogue", kid=kid)
