"""The test side of the authorization server: its token endpoint, its request log, and key
rotation (a restart of the provider with a new key set, see provider.mjs)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import keys


@dataclass(frozen=True)
class AuthServer:
    issuer: str
    keys_file: Path
    state_file: Path
    log_file: Path
    pid_file: Path

    def client_credentials(self, client: dict, resource: str | None, scope: str | None = None) -> dict:
        """The token endpoint's answer to a client credentials grant (RFC 6749 4.4), with
        `resource` (RFC 8707) when given. Raises on an error answer."""
        form = {
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
        }
        if resource is not None:
            form["resource"] = resource
        if scope is not None:
            form["scope"] = scope
        req = urllib.request.Request(
            self.issuer + "/token",
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"token endpoint answered {e.code}: {e.read()[:500]!r}") from e

    def metadata(self) -> dict:
        with urllib.request.urlopen(self.issuer + "/.well-known/openid-configuration", timeout=10) as resp:
            return json.loads(resp.read())

    def requests(self) -> list[dict]:
        """Every request the provider has answered so far, oldest first."""
        out = []
        for line in self.log_file.read_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("event") == "request":
                    out.append(entry)
        return out

    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def restart_with_keys(self, key_set: list[dict], timeout: float = 15.0) -> None:
        """Restarts the provider with `key_set` as its `jwks` (it signs with the first key) and
        waits until the new provider answers."""
        before = self.state()["generation"]
        keys.write(self.keys_file, key_set)
        os.kill(int(self.pid_file.read_text()), signal.SIGHUP)
        wanted = [k["kid"] for k in key_set]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state["generation"] > before:
                assert state["kids"] == wanted, state
                return
            time.sleep(0.05)
        raise AssertionError(f"the provider did not restart with {wanted} within {timeout} s")
