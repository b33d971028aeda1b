"""What the suites that run `switchboard serve` share (tests/lambda/e2e and tests/fargate): a
clean environment for the processes they start, a free port, a child that dies with pytest, the
tail of a log, and dev tokens minted by the gateway's own `dev-token` command.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
from pathlib import Path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any AWS or Switchboard setting of the caller's, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and not k.startswith("SWITCHBOARD_") and k != "RUST_LOG"
    }
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when pytest dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def tail(path: Path | None, lines: int = 60) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def dev_token(switchboard: Path, *, sub: str, group: str, tenant: str, audience: str, dev_key: Path) -> str:
    """A token signed with the gateway's dev key (`switchboard dev-token`)."""
    minted = subprocess.run(
        [
            str(switchboard), "dev-token",
            "--sub", sub, "--group", group, "--tenant", tenant,
            "--audience", audience, "--dev-key", str(dev_key),
        ],  # fmt: skip
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert minted.returncode == 0, f"switchboard dev-token failed: {minted.stderr}"
    return minted.stdout.strip()
