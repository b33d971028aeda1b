"""What the trace suite's tests share: the OTLP receiver, and gateways they start themselves
(each test needs its own environment: an OTLP endpoint or none, RUST_LOG set or not).

run.sh points SB_TRACES_BIN at the folder of the release binaries and SB_TRACES_WORK at a
scratch folder. Tokens, plain HTTP and the gateway's process are the suites' shared harness
(tests/harness).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest
from switchboard_harness import gateway, jwtkit, rawhttp
from switchboard_harness.catalog import ISSUER, echo_tool

from otlp_receiver import Receiver

HERE = Path(__file__).resolve().parent

NO_ARGS = {"type": "object", "properties": {}, "additionalProperties": False}


def env_tool(name: str, prepared: int = 0) -> dict:
    local: dict = {"command": [str(HERE / "fixtures" / "env-tool")]}
    if prepared:
        local["prepared"] = prepared
    return {
        "name": name,
        "description": "Shows the TRACEPARENT its sandbox got and the invocation it read.",
        "input_schema": NO_ARGS,
        "backend": "local",
        "local": local,
        "timeout_seconds": 20,
        "memory_mb": 128,
        "ephemeral_storage_mb": 4,
        "allow": {"groups": ["dev"]},
    }


def new_traceparent() -> tuple[str, str, str]:
    """A client's traceparent (sampled), with its trace id and span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


class Gateway:
    """One `switchboard serve` on a free loopback port, with a catalog of `echo`, `env` (a fresh
    sandbox per call) and `env_prepared` (a sandbox started ahead of its call)."""

    def __init__(self, work: Path, bin_dir: Path, env: dict[str, str], log_json: bool = False):
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        keys = work.parent / "keys"
        if not keys.exists():
            jwtkit.generate(keys)
        port = gateway.free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.mcp = f"{self.base}/mcp"
        self.issuer = jwtkit.Issuer(keys, ISSUER, self.mcp)
        catalog = {
            "version": 1,
            "gateway": {
                "public_url": self.mcp,
                "auth": {
                    "issuer": ISSUER,
                    "jwks": {"file": str(keys / "jwks.json")},
                    "algorithms": ["RS256"],
                },
            },
            "tools": [echo_tool(bin_dir), env_tool("env"), env_tool("env_prepared", prepared=1)],
        }
        (work / "catalog.yaml").write_text(json.dumps(catalog, indent=2))
        self.log = work / "gateway.log"
        self.audit = work / "audit.jsonl"
        # Nothing of the caller's environment that would change logs or traces.
        base_env = {
            k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in ("RUST_LOG", "NO_COLOR")
        }
        base_env["NO_COLOR"] = "1"
        args = ["--catalog", str(work / "catalog.yaml"), "--audit-log", str(self.audit)]
        if log_json:
            args.append("--log-json")
        self.serve = gateway.start(bin_dir / "switchboard", args, env={**base_env, **env}, log=self.log, port=port)
        self.proc = self.serve.process

    def call(self, tool: str, arguments: dict | None = None, traceparent: str | None = None,
             token: str | None = None) -> rawhttp.Response:
        msg = rawhttp.rpc("tools/call", {"name": tool, "arguments": arguments or {}})
        extra = {"traceparent": traceparent} if traceparent else {}
        return rawhttp.post_mcp(self.mcp, token or self.issuer.token(), msg, extra=extra)

    def result(self, tool: str, arguments: dict | None = None, traceparent: str | None = None) -> dict:
        resp = self.call(tool, arguments, traceparent)
        assert resp.status == 200, resp.text()
        doc = resp.json()
        assert "result" in doc and not doc["result"].get("isError"), doc
        return doc["result"]

    def audit_lines(self) -> list[dict]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def thread_names(self) -> list[str]:
        tasks = Path(f"/proc/{self.proc.pid}/task")
        return [(t / "comm").read_text().strip() for t in tasks.iterdir()]

    def stop(self) -> int:
        return self.serve.stop(grace=30)


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    b = os.environ.get("SB_TRACES_BIN")
    if not b:
        pytest.fail("SB_TRACES_BIN is not set: run the suite with tests/traces/run.sh")
    return Path(b)


@pytest.fixture(scope="session")
def work() -> Path:
    w = os.environ.get("SB_TRACES_WORK")
    if not w:
        pytest.fail("SB_TRACES_WORK is not set: run the suite with tests/traces/run.sh")
    return Path(w)


@pytest.fixture(scope="session")
def receiver():
    r = Receiver.start()
    yield r
    r.stop()


@pytest.fixture
def start_gateway(work, bin_dir, request):
    """Starts gateways for one test; stops them all when it ends."""
    started: list[Gateway] = []

    def start(env: dict[str, str] | None = None, log_json: bool = False, name: str = "") -> Gateway:
        folder = work / f"{request.node.name}{name}"
        g = Gateway(folder, bin_dir, env or {}, log_json)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()
