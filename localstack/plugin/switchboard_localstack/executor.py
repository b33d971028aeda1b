"""A Lambda runtime executor for LocalStack in host mode that manages functions but runs none.

LocalStack's only shipped executor (``docker``) prepares every new function version by
downloading its runtime-init binary and pulling a runtime image. Neither works on a machine
without Docker or internet, so every function lands in state ``Failed`` and Terraform's
``aws_lambda_function`` (which waits for ``Active``) fails. This executor makes preparation a
no-op, so the control plane (create, configure, VPC config, tags, delete) behaves as on AWS, and
any attempt to *run* a function fails with a clear message.

A later executor that really runs the function (e.g. in a local sandbox) registers a second entry
point in this package's ``pyproject.toml`` and is chosen with ``LAMBDA_RUNTIME_EXECUTOR``.
"""

from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

_NO_EXECUTION = (
    "the switchboard-control-plane Lambda executor runs no code; it only lets LocalStack "
    "manage functions (see localstack/README.md)"
)


class ControlPlaneOnlyExecutor(RuntimeExecutor):
    """Accepts every function version; refuses to start an execution environment."""

    def start(self, env_vars: dict[str, str]) -> None:
        raise LambdaRuntimeException(_NO_EXECUTION)

    def stop(self) -> None:
        pass

    def get_address(self) -> str:
        raise LambdaRuntimeException(_NO_EXECUTION)

    def get_endpoint_from_executor(self) -> str:
        raise LambdaRuntimeException(_NO_EXECUTION)

    def get_runtime_endpoint(self) -> str:
        raise LambdaRuntimeException(_NO_EXECUTION)

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        raise LambdaRuntimeException(_NO_EXECUTION)

    def get_logs(self) -> str:
        return ""

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        # Nothing to download or build: this executor never runs the code.
        return None

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        return None

    @classmethod
    def validate_environment(cls) -> bool:
        return True


class ControlPlaneOnlyExecutorPlugin(RuntimeExecutorPlugin):
    name = "switchboard-control-plane"

    def load(self, *args, **kwargs):
        return ControlPlaneOnlyExecutor
