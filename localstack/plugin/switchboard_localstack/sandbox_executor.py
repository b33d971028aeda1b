"""A Lambda runtime executor for LocalStack in host mode that runs functions without Docker.

LocalStack's ``docker`` executor starts one container per execution environment and runs its
runtime-init in it. This executor starts one ``switchboard-localstack-lambda-host`` process per execution
environment instead (the project's Rust runtime host, crate ``localstack-lambda-host/``). The host speaks
LocalStack's executor protocol (``POST /invoke`` in; ``status/<id>/ready|error`` and
``invocations/<id>/logs|response|error`` back) and runs the function's ``bootstrap`` in a
bubblewrap sandbox whose only way out is the Lambda Runtime API. See docs/localstack-lambda.md.

Selected with ``LAMBDA_RUNTIME_EXECUTOR=switchboard-sandbox`` (localstack/start chooses it when
no Docker engine answers). Settings (LocalStack's environment):

- ``SWITCHBOARD_LAMBDA_HOST``: the host binary (default: ``switchboard-localstack-lambda-host`` on ``PATH``);
- ``SWITCHBOARD_LAMBDA_WORK``: a short folder for the environments' sockets, logs and uid
  leases (default ``<tmp>/switchboard-lambda``).

Only OS-only runtimes (``provided.al2023``, ``provided.al2``) and zip packages run; anything else
is managed (created, configured, deleted) but fails with a clear message when invoked.
"""

import atexit
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from localstack import config
from localstack.aws.api.lambda_ import PackageType
from localstack.services.lambda_.invocation.executor_endpoint import (
    ExecutorEndpoint,
    StatusErrorException,
)
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

LOG = logging.getLogger(__name__)

SUPPORTED_RUNTIMES = ("provided.al2023", "provided.al2")
HOST_BINARY = "switchboard-localstack-lambda-host"
# How long stop() waits for a host to end by itself before it kills it.
STOP_GRACE_SECONDS = 3
# How much of a host's log get_logs() returns.
LOG_TAIL_BYTES = 64 * 1024

# Every host still running, so that LocalStack's exit ends them even if stop() was never called.
_LIVE: set["SandboxRuntimeExecutor"] = set()
_LIVE_LOCK = threading.Lock()


def _host_binary() -> str | None:
    configured = os.environ.get("SWITCHBOARD_LAMBDA_HOST")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which(HOST_BINARY)


def _work_root() -> Path:
    root = Path(
        os.environ.get("SWITCHBOARD_LAMBDA_WORK")
        or Path(tempfile.gettempdir()) / "switchboard-lambda"
    )
    # Sandboxes run under other uids and must reach their socket below envs/.
    for path, mode in ((root, 0o711), (root / "envs", 0o711), (root / "logs", 0o700)):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
    return root


def _error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class SandboxRuntimeExecutor(RuntimeExecutor):
    """One execution environment: one ``switchboard-localstack-lambda-host`` process and its sandbox."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.executor_endpoint = ExecutorEndpoint(self.id)
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._stopped = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, env_vars: dict[str, str]) -> None:
        cfg = self.function_version.config
        if cfg.package_type != PackageType.Zip or not cfg.code:
            raise LambdaRuntimeException(
                "the switchboard-sandbox executor runs zip packages only, not container images"
            )
        if cfg.runtime not in SUPPORTED_RUNTIMES:
            raise LambdaRuntimeException(
                f"the switchboard-sandbox executor runs the OS-only runtimes "
                f"({', '.join(SUPPORTED_RUNTIMES)}), not {cfg.runtime}"
            )
        host = _host_binary()
        if not host:
            raise LambdaRuntimeException(
                f"{HOST_BINARY} not found (set SWITCHBOARD_LAMBDA_HOST or put it on PATH; "
                "build it with: cargo build --release -p switchboard-localstack-lambda-host)"
            )
        if cfg.layers:
            LOG.warning(
                "function %s has layers; the switchboard-sandbox executor does not mount them",
                self.function_version.qualified_arn,
            )
        root = _work_root()
        self.log_path = root / "logs" / f"{self.id}.log"
        host_config = {
            "runtime_id": self.id,
            "function_name": self.function_version.id.function_name,
            "function_version": self.function_version.id.qualifier,
            "runtime_endpoint": self.get_runtime_endpoint(),
            "code_dir": str(cfg.code.get_unzipped_code_location()),
            "timeout_seconds": int(cfg.timeout),
            "memory_mb": int(cfg.memory_size),
            "ephemeral_storage_mb": int(cfg.ephemeral_storage.size),
            "environment": {k: str(v) for k, v in env_vars.items()},
            "work_dir": str(root / "envs" / self.id),
            "uid_lock_dir": str(root / "uids"),
        }
        self.executor_endpoint.start()
        with open(self.log_path, "wb") as log_file:
            # Same process group as LocalStack: localstack/stop's signal reaches the hosts too.
            self.process = subprocess.Popen(
                [
                    host,
                    "serve",
                    "--function",
                    self.function_version.id.function_name,
                    "--runtime-id",
                    self.id,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                close_fds=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            # The host keeps reading stdin: it stops when this pipe closes (stop(), or LocalStack
            # exiting however it exits).
            self.process.stdin.write(json.dumps(host_config).encode() + b"\n")
            self.process.stdin.flush()
            announced = self.process.stdout.readline()
        except OSError as e:
            raise LambdaRuntimeException(f"{HOST_BINARY} did not start: {e}") from e
        if not announced:
            raise LambdaRuntimeException(
                f"{HOST_BINARY} exited before it was ready: {self._log_tail(2048)}"
            )
        self.executor_endpoint.container_address = "127.0.0.1"
        self.executor_endpoint.container_port = int(json.loads(announced)["port"])
        threading.Thread(
            target=self._watch, name=f"switchboard-sandbox-{self.id}", daemon=True
        ).start()
        self.executor_endpoint.wait_for_startup()

    def _watch(self) -> None:
        """Fails a pending start when the host dies before it reported ready or error."""
        process = self.process
        if process is None:
            return
        code = process.wait()
        future = self.executor_endpoint.startup_future
        if future is not None and not future.done() and not self._stopped.is_set():
            future.set_exception(
                StatusErrorException(
                    "Environment startup failed",
                    payload=_error_payload(
                        "Runtime.Unknown",
                        f"{HOST_BINARY} exited with status {code}: {self._log_tail(2048)}",
                    ),
                )
            )

    def stop(self) -> None:
        self._stopped.set()
        process = self.process
        if process is not None:
            try:
                if process.stdin:
                    process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_GRACE_SECONDS)
            if process.stdout:
                process.stdout.close()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        try:
            self.executor_endpoint.shutdown()
        except Exception as e:  # noqa: BLE001 - shutdown of an endpoint that never started
            LOG.debug("stopping the executor endpoint of %s: %s", self.id, e)

    # --- addresses ------------------------------------------------------------------------------

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return (
            f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}"
            f"{self.executor_endpoint.get_endpoint_prefix()}"
        )

    # --- invocations ----------------------------------------------------------------------------

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        return self.executor_endpoint.invoke(payload)

    def get_logs(self) -> str:
        return self._log_tail(LOG_TAIL_BYTES)

    def _log_tail(self, limit: int) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")

    # --- versions -------------------------------------------------------------------------------

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        # Unzip the code once per version; environments mount it read-only at /var/task.
        code = function_version.config.code
        if function_version.config.package_type == PackageType.Zip and code:
            code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        # LocalStack removes the unzipped code itself; environments are stopped before this.
        return None

    @classmethod
    def validate_environment(cls) -> bool:
        ok = True
        if not _host_binary():
            LOG.warning(
                "switchboard-sandbox: %s not found (set SWITCHBOARD_LAMBDA_HOST); Lambda "
                "functions will fail to start",
                HOST_BINARY,
            )
            ok = False
        if not shutil.which("bwrap"):
            LOG.warning("switchboard-sandbox: bubblewrap (bwrap) is not installed")
            ok = False
        return ok


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for executor in live:
        try:
            executor.stop()
        except Exception as e:  # noqa: BLE001 - best effort at interpreter exit
            LOG.debug("stopping %s at exit: %s", executor.id, e)


class SandboxRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "switchboard-sandbox"

    def load(self, *args, **kwargs):
        return SandboxRuntimeExecutor
