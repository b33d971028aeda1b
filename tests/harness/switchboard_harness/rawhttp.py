"""Plain HTTP to the gateway with the standard library, so a test controls every header and byte
(Host, Origin, a malformed body) without a client library correcting it first."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# The newest protocol revision (stateless) and the last handshake one.
MODERN = "2026-07-28"
LEGACY = "2025-11-25"


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> Any:
        """The JSON body, or the first JSON-RPC message of an SSE body."""
        ctype = (self.header("content-type") or "").lower()
        text = self.body.decode("utf-8", "replace")
        if ctype.startswith("text/event-stream"):
            for line in text.splitlines():
                if line.startswith("data:") and line[5:].strip():
                    return json.loads(line[5:].strip())
            raise AssertionError(f"no data event in SSE body: {text[:500]!r}")
        return json.loads(text)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Response:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        hdrs = dict(headers or {})
        # skip_host lets a test send its own Host header (or none at all).
        conn.putrequest(method, path, skip_host="Host" in hdrs, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None:
            # A server may answer (413, 401) and close before it has read a large body: stop
            # sending then, and read the answer it already sent.
            view = memoryview(body)
            try:
                for i in range(0, len(view), 65536):
                    conn.sock.sendall(view[i : i + 65536])
            except (BrokenPipeError, ConnectionResetError):
                pass
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.headers, data)
    finally:
        conn.close()


def meta(version: str = MODERN) -> dict:
    """The per-request `_meta` a 2026-07-28 request carries."""
    return {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientInfo": {"name": "switchboard-tests", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def rpc(method: str, params: dict | None = None, id: int | str | None = 1, version: str = MODERN) -> dict:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        msg["id"] = id
    p = dict(params or {})
    if version == MODERN:
        p["_meta"] = {**meta(version), **p.get("_meta", {})}
    msg["params"] = p
    return msg


def mcp_headers(token: str | None, msg: dict | None = None, version: str = MODERN) -> dict[str, str]:
    """Headers of a well-formed MCP POST: content type, Accept, version and routing headers."""
    h = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": version,
    }
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if msg is not None and version == MODERN:
        h["Mcp-Method"] = msg["method"]
        name = (msg.get("params") or {}).get("name")
        if msg["method"] == "tools/call" and isinstance(name, str):
            h["Mcp-Name"] = name
    return h


def post_mcp(url: str, token: str | None, msg: dict, version: str = MODERN, extra: dict | None = None) -> Response:
    headers = mcp_headers(token, msg, version)
    headers.update(extra or {})
    return request(url, "POST", json.dumps(msg).encode(), headers)
