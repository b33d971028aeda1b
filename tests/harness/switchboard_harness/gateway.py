"""`switchboard serve` as the suites run it: started on a free loopback port with its output in a
log file, waited for until /healthz answers, read back (the log's tail), and stopped.

    gw = start(switchboard, ["--catalog", catalog, "--audit-log", audit], env=env, log=log)
    gw.base, gw.mcp, gw.process   # http://127.0.0.1:<port>, .../mcp, the Popen
    gw.tail()                     # the last lines of its log
    status = gw.stop()            # SIGTERM; SIGKILL after the grace; the exit status

The process gets SIGTERM when the Python process that started it dies, however it dies
(PR_SET_PDEATHSIG), so no gateway outlives its test run. A gateway that exits, or does not answer
within the timeout, is stopped and reported with its log's tail (GatewayError, an
AssertionError, so pytest reports it as a failure). A gateway a shell script started is waited for
the same way: `python -m switchboard_harness wait URL --pid PID --log FILE` (see __main__.py).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


class GatewayError(AssertionError):
    """A process under test that exited or did not answer; the message carries its log's tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def tail(path: Path | None, lines: int = 60) -> str:
    """The last `lines` lines of the file at `path`, or "(no log)"."""
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


def _pid_exit(pid: int) -> str | None:
    """How the process `pid` (not a child of this one) ended, or None while it runs."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "exited"
    return "exited" if state in ("Z", "X") else None


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether `url` answers a GET with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 300
    except OSError:
        return False


def wait_healthy(
    url: str,
    *,
    process: subprocess.Popen | None = None,
    pid: int | None = None,
    log: Path | None = None,
    timeout: float = 30.0,
    what: str = "switchboard serve",
) -> None:
    """Waits until `url` answers (2xx), at most `timeout` seconds; raises GatewayError early when
    the process (`process`, or `pid` when another process started it) exits first."""
    deadline = time.monotonic() + timeout
    where = f" ({log})" if log else ""
    while True:
        ended = None
        if process is not None and process.poll() is not None:
            ended = f"exited with status {process.returncode}"
        elif pid is not None and _pid_exit(pid):
            ended = "exited"
        if ended:
            raise GatewayError(f"{what} {ended} before answering {url}; its log{where}:\n{tail(log)}")
        if answers(url):
            return
        if time.monotonic() > deadline:
            raise GatewayError(f"{what} did not answer {url} within {timeout:g} s; its log{where}:\n{tail(log)}")
        time.sleep(0.2)


@dataclass
class Gateway:
    """One running `switchboard serve`."""

    process: subprocess.Popen
    log: Path
    listen: str

    @property
    def base(self) -> str:
        return f"http://{self.listen}"

    @property
    def mcp(self) -> str:
        return f"{self.base}/mcp"

    def tail(self, lines: int = 60) -> str:
        return tail(self.log, lines)

    def stop(self, grace: float = 20, expect: int | None = None) -> int:
        """SIGTERM, then SIGKILL when it has not exited after `grace` seconds; the exit status
        (negative: the signal that ended it). With `expect`, raises GatewayError on another."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        status = self.process.returncode
        if expect is not None and status != expect:
            raise GatewayError(f"switchboard serve exited with {status}, not {expect}; its log ({self.log}):\n{self.tail()}")
        return status


def start(
    switchboard: Path | str,
    args: list[str],
    *,
    env: dict[str, str],
    log: Path,
    port: int | None = None,
    timeout: float = 30.0,
) -> Gateway:
    """Starts `switchboard serve ARGS --listen 127.0.0.1:PORT` (a free port unless given) with
    exactly `env`, its stdout and stderr in `log`, and waits for /healthz. A gateway that does not
    come up is stopped before GatewayError is raised."""
    listen = f"127.0.0.1:{port or free_port()}"
    command = [str(switchboard), "serve", *map(str, args), "--listen", listen]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=die_with_parent
        )
    gw = Gateway(process=process, log=log, listen=listen)
    try:
        wait_healthy(gw.base + "/healthz", process=process, log=log, timeout=timeout)
    except BaseException:
        gw.stop(grace=5)
        raise
    return gw



@dataclass
class DevGateway(Gateway):
    """A running `switchboard serve --bindings` with dev auth, its audit log, and a dev token."""

    audit: Path
    dev_key: Path
    token: str


def start_dev(
    switchboard: Path | str,
    *,
    run: Path,
    log: Path,
    audit: Path,
    catalog: dict,
    bindings: dict,
    aws_endpoint: str,
    region: str,
    sub: str,
    group: str,
    tenant: str,
    **env: str,
) -> DevGateway:
    """`switchboard serve --bindings` with dev auth against an AWS emulator at `aws_endpoint` (its
    test credentials, `region`), logging at debug, in the environment of `clean_env` plus `env`
    (tests/lambda/e2e, tests/fargate). `catalog` and `bindings` go to run/catalog.yaml and
    run/bindings.json (JSON is YAML), the dev key is run/dev-key.pem, a stale `log` and `audit` are
    removed first; the token is `dev_token`'s for `sub`, `group` and `tenant`."""
    catalog_file, bindings_file, dev_key = run / "catalog.yaml", run / "bindings.json", run / "dev-key.pem"
    for stale in (log, audit):
        stale.unlink(missing_ok=True)
    catalog_file.write_text(json.dumps(catalog, indent=2))
    bindings_file.write_text(json.dumps(bindings, indent=2))
    env = clean_env(
        AWS_ENDPOINT_URL=aws_endpoint,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_REGION=region,
        RUST_LOG="debug",
        NO_COLOR="1",
        **env,
    )
    args = [
        "--catalog", str(catalog_file),
        "--bindings", str(bindings_file),
        "--dev", "--dev-key", str(dev_key),
        "--audit-log", str(audit),
    ]  # fmt: skip
    gw = start(switchboard, args, env=env, log=log)
    try:
        token = dev_token(switchboard, sub=sub, group=group, tenant=tenant, audience=gw.mcp, dev_key=dev_key)
    except BaseException:
        gw.stop()
        raise
    return DevGateway(process=gw.process, log=log, listen=gw.listen, audit=audit, dev_key=dev_key, token=token)
