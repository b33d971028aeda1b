"""Bad input gets a clear error, and the gateway keeps serving: /healthz answers 200 after each."""

from __future__ import annotations

import json

import pytest

from switchboard_harness import rawhttp
from switchboard_harness.rawhttp import MODERN


@pytest.fixture(autouse=True)
def still_serving(gw):
    yield
    assert gw.healthy(), "the gateway stopped answering /healthz"
    # And it still does real work.
    resp = rawhttp.post_mcp(gw.mcp, gw.issuer.token(), rawhttp.rpc("tools/list"))
    assert resp.status == 200, resp.text()[:300]


def post_raw(gw, body: bytes, headers: dict | None = None, token: str | None = "valid") -> rawhttp.Response:
    h = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
    }
    if token == "valid":
        token = gw.issuer.token()
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    return rawhttp.request(gw.mcp, "POST", body, h)


def error_of(resp: rawhttp.Response) -> dict:
    doc = resp.json()
    assert isinstance(doc, dict) and "error" in doc, doc
    err = doc["error"]
    assert isinstance(err.get("code"), int) and err.get("message"), err
    return err


def call_echo(gw, arguments) -> rawhttp.Response:
    msg = rawhttp.rpc("tools/call", {"name": "echo", "arguments": arguments})
    return rawhttp.post_mcp(gw.mcp, gw.issuer.token(), msg)


def failure_text(resp: rawhttp.Response) -> str:
    """A call that failed validation: a JSON-RPC error, or a tool result with isError."""
    doc = resp.json()
    if "error" in doc:
        return doc["error"]["message"] + json.dumps(doc["error"].get("data"))
    result = doc["result"]
    assert result.get("isError") is True, result
    return " ".join(c.get("text", "") for c in result["content"])


def test_invalid_json(gw):
    resp = post_raw(gw, b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", ', {"Mcp-Method": "tools/list"})
    assert resp.status == 400, resp.text()
    assert error_of(resp)["code"] == -32700


def test_not_json_at_all(gw):
    resp = post_raw(gw, b"\xff\xfe garbage \x00", {"Mcp-Method": "tools/list"})
    assert resp.status == 400, resp.text()
    assert error_of(resp)["code"] == -32700


def test_wrong_jsonrpc_version(gw):
    msg = rawhttp.rpc("tools/list")
    msg["jsonrpc"] = "1.0"
    resp = post_raw(gw, json.dumps(msg).encode(), {"Mcp-Method": "tools/list"})
    assert resp.status == 400, resp.text()
    assert error_of(resp)["code"] == -32600


def test_missing_jsonrpc_member(gw):
    msg = rawhttp.rpc("tools/list")
    del msg["jsonrpc"]
    resp = post_raw(gw, json.dumps(msg).encode(), {"Mcp-Method": "tools/list"})
    assert resp.status == 400, resp.text()
    assert error_of(resp)["code"] == -32600


def test_batch_is_refused(gw):
    batch = [rawhttp.rpc("tools/list", id=1), rawhttp.rpc("tools/list", id=2)]
    resp = post_raw(gw, json.dumps(batch).encode(), {"Mcp-Method": "tools/list"})
    assert resp.status == 400, resp.text()
    err = error_of(resp)
    assert err["code"] == -32600
    assert "batch" in err["message"].lower(), err


def test_ten_megabyte_body(gw):
    filler = "x" * (10 * 1024 * 1024)
    msg = rawhttp.rpc("tools/call", {"name": "echo", "arguments": {"message": filler}})
    resp = post_raw(gw, json.dumps(msg).encode(), {"Mcp-Method": "tools/call", "Mcp-Name": "echo"})
    assert resp.status == 413, resp.text()[:300]


def test_ten_megabyte_body_without_token(gw):
    """The size limit holds before authentication too (an anonymous caller cannot make it buffer
    10 MB): either answer is acceptable, but not a 2xx and not a crash."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"' + b"x" * (10 * 1024 * 1024) + b'"}}'
    resp = post_raw(gw, body, {"Mcp-Method": "tools/list"}, token=None)
    assert resp.status in (401, 413), resp.status


def test_ten_thousand_deep_nesting(gw):
    depth = 10_000
    nested = "[" * depth + "]" * depth
    body = (
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi","deep":'
        + nested
        + "},"
        + json.dumps({"_meta": rawhttp.meta()})[1:-1]
        + "}}"
    ).encode()
    # Valid JSON (balanced; Python's own parser would hit its recursion limit on it).
    assert body.count(b"[") == body.count(b"]") and body.count(b"{") == body.count(b"}")
    resp = post_raw(gw, body, {"Mcp-Method": "tools/call", "Mcp-Name": "echo"})
    assert resp.status == 400, resp.text()[:300]
    err = error_of(resp)
    assert any(w in err["message"].lower() for w in ("depth", "deep", "nest")), err


def test_ten_thousand_deep_objects(gw):
    depth = 10_000
    nested = '{"a":' * depth + "1" + "}" * depth
    body = ('{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":' + nested + "}}").encode()
    resp = post_raw(gw, body, {"Mcp-Method": "tools/list"})
    assert resp.status == 400, resp.text()[:300]
    error_of(resp)


def test_mcp_method_header_mismatch(gw):
    msg = rawhttp.rpc("tools/call", {"name": "echo", "arguments": {"message": "hi"}})
    headers = rawhttp.mcp_headers(gw.issuer.token(), msg)
    headers["Mcp-Method"] = "tools/list"
    resp = rawhttp.request(gw.mcp, "POST", json.dumps(msg).encode(), headers)
    assert resp.status == 400, resp.text()
    err = error_of(resp)
    assert err["code"] == -32020, err
    assert "method" in err["message"].lower(), err


def test_mcp_name_header_mismatch(gw):
    msg = rawhttp.rpc("tools/call", {"name": "echo", "arguments": {"message": "hi"}})
    headers = rawhttp.mcp_headers(gw.issuer.token(), msg)
    headers["Mcp-Name"] = "something-else"
    resp = rawhttp.request(gw.mcp, "POST", json.dumps(msg).encode(), headers)
    assert resp.status == 400, resp.text()
    assert error_of(resp)["code"] == -32020


def test_bad_origin(gw):
    msg = rawhttp.rpc("tools/list")
    resp = rawhttp.post_mcp(gw.mcp, gw.issuer.token(), msg, extra={"Origin": "http://evil.example.com"})
    assert resp.status == 403, resp.text()


def test_bad_host(gw):
    msg = rawhttp.rpc("tools/list")
    resp = rawhttp.post_mcp(gw.mcp, gw.issuer.token(), msg, extra={"Host": "evil.example.com"})
    assert resp.status == 403, resp.text()


def test_bad_host_without_token(gw):
    """DNS-rebinding protection comes before authentication."""
    msg = rawhttp.rpc("tools/list")
    resp = rawhttp.post_mcp(gw.mcp, None, msg, extra={"Host": "evil.example.com:80"})
    assert resp.status == 403, resp.text()


def test_loopback_origin_is_accepted(gw):
    msg = rawhttp.rpc("tools/list")
    resp = rawhttp.post_mcp(gw.mcp, gw.issuer.token(), msg, extra={"Origin": gw.base})
    assert resp.status == 200, resp.text()


def test_argument_of_wrong_type_names_the_field(gw):
    resp = call_echo(gw, {"message": 12345})
    assert "message" in failure_text(resp)


def test_unexpected_argument_names_the_field(gw):
    resp = call_echo(gw, {"message": "hi", "surprise": True})
    assert "surprise" in failure_text(resp)


def test_missing_required_argument_names_the_field(gw):
    resp = call_echo(gw, {})
    assert "message" in failure_text(resp)


def test_too_long_argument_names_the_field(gw):
    resp = call_echo(gw, {"message": "x" * 5000})
    assert "message" in failure_text(resp)


def test_arguments_not_an_object(gw):
    resp = call_echo(gw, ["message", "hi"])
    failure_text(resp)  # a clear failure, not a crash


def test_unknown_method(gw):
    msg = rawhttp.rpc("tools/frobnicate")
    resp = rawhttp.post_mcp(gw.mcp, gw.issuer.token(), msg)
    assert resp.status in (200, 404), resp.status
    assert error_of(resp)["code"] == -32601
