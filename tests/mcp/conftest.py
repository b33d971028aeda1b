"""Fixtures shared by every MCP test: the running gateway (started by run.sh) and a token issuer.

run.sh prepares a run folder with harness.setup, starts `switchboard serve` on it, and points
SB_MCP_RUN at the folder. Nothing here starts or stops the gateway.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from switchboard_harness import jwtkit, rawhttp


@dataclass(frozen=True)
class Gateway:
    base: str
    mcp: str
    issuer: jwtkit.Issuer

    def healthy(self) -> bool:
        try:
            return rawhttp.request(self.base + "/healthz", timeout=5).status == 200
        except OSError:
            return False


@pytest.fixture(scope="session")
def gw() -> Gateway:
    run_dir = os.environ.get("SB_MCP_RUN")
    if not run_dir:
        pytest.fail("SB_MCP_RUN is not set: run the suite with tests/mcp/run.sh")
    run = json.loads((Path(run_dir) / "run.json").read_text())
    issuer = jwtkit.Issuer(Path(run["keys"]), run["issuer"], run["mcp"])
    g = Gateway(run["base"], run["mcp"], issuer)
    assert g.healthy(), f"the gateway at {g.base} does not answer /healthz"
    return g
