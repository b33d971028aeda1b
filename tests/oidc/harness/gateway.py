"""The gateway under test, as plain HTTP: one MCP request with a bearer token, and its log."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import httpx2

MODERN = "2026-07-28"
RESOURCE_METADATA = re.compile(r'resource_metadata="([^"]+)"')


@dataclass(frozen=True)
class Gateway:
    base: str
    mcp: str
    log_file: Path

    def list_tools(self, token: str | None) -> httpx2.Response:
        """A 2026-07-28 `tools/list` (stateless: no session) with `token` as the bearer."""
        msg = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/list",
            "params": {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MODERN,
                    "io.modelcontextprotocol/clientInfo": {"name": "switchboard-oidc-tests", "version": "0"},
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            },
        }
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN,
            "Mcp-Method": "tools/list",
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx2.post(self.mcp, content=json.dumps(msg), headers=headers, timeout=30)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def tool_names(resp: httpx2.Response) -> list[str]:
    """The tool names of a `tools/list` answer (JSON, or the first message of an SSE stream)."""
    text = resp.text
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:") and line[5:].strip())
    return [t["name"] for t in json.loads(text)["result"]["tools"]]


def assert_refused_as_invalid_token(gw: Gateway, resp: httpx2.Response) -> None:
    """401 with a Bearer challenge saying invalid_token and pointing at the resource metadata, and
    no tool data."""
    assert resp.status_code == 401, f"expected 401, got {resp.status_code}: {resp.text[:500]}"
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert challenge.lower().startswith("bearer "), challenge
    assert 'error="invalid_token"' in challenge, challenge
    m = RESOURCE_METADATA.search(challenge)
    assert m and m.group(1).startswith(gw.base + "/.well-known/oauth-protected-resource"), challenge
    assert "echo" not in resp.text and '"result"' not in resp.text, resp.text[:500]
