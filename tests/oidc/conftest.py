"""Fixtures of the OIDC suite: the authorization server and the gateway that run.sh started.

run.sh prepares a run folder with harness.setup, starts oidc-provider and `switchboard serve` on
it, and points SB_OIDC_RUN at the folder. Nothing here starts or stops either of them (the rotation
tests restart the provider in place, which its process does itself on SIGHUP).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# `harness` is tests/oidc/harness: pytest puts a conftest's folder on sys.path (import mode prepend).
from harness.authserver import AuthServer
from harness.gateway import Gateway


@pytest.fixture(scope="session")
def run() -> dict:
    run_dir = os.environ.get("SB_OIDC_RUN")
    if not run_dir:
        pytest.fail("SB_OIDC_RUN is not set: run the suite with tests/oidc/run.sh")
    return json.loads((Path(run_dir) / "run.json").read_text())


@pytest.fixture(scope="session")
def authserver(run) -> AuthServer:
    return AuthServer(
        issuer=run["issuer"],
        keys_file=Path(run["keys_file"]),
        state_file=Path(run["provider_state"]),
        log_file=Path(run["provider_log"]),
        pid_file=Path(run["provider_pid_file"]),
    )


@pytest.fixture(scope="session")
def gw(run) -> Gateway:
    return Gateway(run["base"], run["mcp"], Path(run["gateway_log"]))
