"""The replicas phase of tests/mcp/run.sh: two `switchboard serve` processes with one session key,
each the other's peer, behind haproxy (round robin). SB_MCP_REPLICAS names the JSON run.sh wrote:
the proxy's, each replica's URL and its audit log. Nothing here starts or stops a process."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Replicas:
    proxy: str
    a: str
    b: str
    audit_a: Path
    audit_b: Path
    log_a: Path
    log_b: Path
    inspector: Path

    def audit(self, which: str) -> list[dict]:
        """Every audit line one replica wrote so far."""
        path = self.audit_a if which == "a" else self.audit_b
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def replicas() -> Replicas:
    path = os.environ.get("SB_MCP_REPLICAS")
    if not path:
        pytest.fail("SB_MCP_REPLICAS is not set: run the suite with tests/mcp/run.sh")
    r = json.loads(Path(path).read_text())
    return Replicas(
        r["proxy"], r["a"], r["b"], Path(r["audit_a"]), Path(r["audit_b"]),
        Path(r["log_a"]), Path(r["log_b"]), Path(r["inspector"]),
    )


@pytest.fixture
def subject() -> str:
    """A subject of this test only, to find its audit lines."""
    return f"replica-test-{uuid.uuid4().hex[:12]}"
