"""The player's stand-in for a Fargate task's network: switchboard-tool runs in a bubblewrap
sandbox with its own, empty network namespace, whose one way out is the S3 emulator.

    sandbox (netns: loopback only)                          host
    switchboard-tool ──▶ 127.0.0.1:<S3 port> ─ forwarder ─▶ unix socket ─ relay ─▶ 127.0.0.1:<S3 port>

The presigned URLs name the S3 emulator's address (127.0.0.1 and the recording proxy's port in
front of moto); inside the sandbox the forwarder (this file run as a script, under Debian's
python3) listens on that same address, so the URLs work unchanged, and passes each connection to
a unix socket bind-mounted from the host, where `Relay` connects it to the emulator. Nothing else
is reachable: no other address answers in the namespace, and the sandbox sees no other socket of
the host. The tool sees only its environment (the two URLs), a read-only root, and a /tmp.

    python3 sandbox.py <port> <unix socket> -- <command...>    (inside the sandbox)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _splice(a: socket.socket, b: socket.socket) -> None:
    t = threading.Thread(target=_pipe, args=(b, a), daemon=True)
    t.start()
    _pipe(a, b)
    t.join()
    a.close()
    b.close()


class Relay:
    """Host side: a unix socket whose every connection is passed to `upstream` (host, port)."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.dir = Path(tempfile.mkdtemp(prefix="fargate-relay-"))
        self.path = self.dir / "s3.sock"
        self.connections = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self.path))
        self._server.listen(64)
        self._thread = threading.Thread(target=self._accept, name="s3-relay", daemon=True)

    def start(self) -> Relay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            try:
                up = socket.create_connection(self.upstream, timeout=30)
                up.settimeout(None)
            except OSError:
                client.close()
                continue
            threading.Thread(target=_splice, args=(client, up), daemon=True).start()


def run_in_sandbox(tool: Path, relay: Relay, port: int, environment: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Runs `tool` (switchboard-tool) in a fresh sandbox with exactly `environment`; its exit code
    and stderr."""
    python = "/usr/bin/python3"
    command = [
        "bwrap",
        "--unshare-all",  # net included: a namespace with loopback only
        "--die-with-parent",
        "--new-session",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        "--ro-bind", "/etc/ssl", "/etc/ssl",
        "--proc", "/proc",
        "--dev", "/dev",
        "--tmpfs", "/tmp",
        "--ro-bind", str(tool), "/switchboard-tool",
        "--ro-bind", str(HERE / "sandbox.py"), "/forwarder.py",
        "--bind", str(relay.dir), "/run/s3",
        "--chdir", "/",
        python, "/forwarder.py", str(port), "/run/s3/s3.sock", "--", "/switchboard-tool",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        env={"PATH": "/usr/bin", **environment},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    return done.returncode, done.stderr.decode(errors="replace")


# --- inside the sandbox -----------------------------------------------------------------------


def _forward(port: int, unix_path: str, command: list[str]) -> int:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                up.connect(unix_path)
            except OSError:
                client.close()
                continue
            threading.Thread(target=_splice, args=(client, up), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    # The tool gets the task's environment: what this process got, less the PATH bwrap needed.
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    args = sys.argv[1:]
    split = args.index("--")
    sys.exit(_forward(int(args[0]), args[1], args[split + 1 :]))
