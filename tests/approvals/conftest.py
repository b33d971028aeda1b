"""What the approval suite's tests share: one `switchboard serve --dev` whose catalog has a tool
that needs approval (the real `switchboard-tool echo`, in a sandbox per call), dev tokens for the
caller and the approvers, and browsers.

run.sh points SB_APPROVALS_BIN at the folder of the release binaries and SB_APPROVALS_WORK at a
scratch folder (screenshots go to its `shots/`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from switchboard_harness import gateway
from switchboard_harness.catalog import echo_tool

from switchboard_harness.browser import Approver, with_dev_token

BIN = Path(os.environ["SB_APPROVALS_BIN"])
WORK = Path(os.environ["SB_APPROVALS_WORK"])
SWITCHBOARD = BIN / "switchboard"


def approval_tool() -> dict:
    tool = echo_tool(BIN, name="guarded_echo", groups=("deployers",))
    tool["description"] = "Returns the message it is given, once a person has approved the call."
    tool["approval"] = {"groups": ["approvers"], "expires_seconds": 600}
    return tool


class Run:
    def __init__(self, gw: gateway.Gateway, dev_key: Path, audit: Path, shots: Path):
        self.gw = gw
        self.dev_key = dev_key
        self.audit = audit
        self.shots = shots
        self.mcp = gw.mcp

    def token(self, sub: str, *groups: str) -> str:
        """A dev token of `sub` in `groups`, tenant acme, for this gateway."""
        command = [str(SWITCHBOARD), "dev-token", "--sub", sub, "--tenant", "acme"]
        for group in groups:
            command += ["--group", group]
        command += ["--audience", self.mcp, "--dev-key", str(self.dev_key)]
        minted = subprocess.run(command, env=gateway.clean_env(), capture_output=True, text=True, timeout=30)
        assert minted.returncode == 0, f"switchboard dev-token failed: {minted.stderr}"
        return minted.stdout.strip()

    def audit_lines(self) -> list[dict]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def run():
    WORK.mkdir(parents=True, exist_ok=True)
    shots = WORK / "shots"
    shots.mkdir(exist_ok=True)
    catalog = {"version": 1, "tools": [echo_tool(BIN), approval_tool()]}
    catalog_file, dev_key, audit = WORK / "catalog.yaml", WORK / "dev-key.pem", WORK / "audit.jsonl"
    catalog_file.write_text(json.dumps(catalog, indent=2))
    audit.unlink(missing_ok=True)
    gw = gateway.start(
        SWITCHBOARD,
        ["--dev", "--dev-key", dev_key, "--catalog", catalog_file, "--audit-log", audit],
        env=gateway.clean_env(RUST_LOG="info", NO_COLOR="1"),
        log=WORK / "gateway.log",
    )
    try:
        yield Run(gw, dev_key, audit, shots)
    finally:
        gw.stop()


@pytest.fixture
def approver(run):
    """bob, of the approvers group, at his own browser."""
    person = Approver(with_dev_token(run.token("bob", "approvers")), run.shots)
    try:
        yield person
    finally:
        person.close()
