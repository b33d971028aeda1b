"""Fixtures of the end-to-end suite: LocalStack resources, a recording proxy, and a running
`switchboard serve --bindings` whose Lambda tools run in LocalStack and whose one local tool
runs in the gateway's sandbox.

    MCP Python SDK ──▶ switchboard serve ──▶ recproxy ──▶ LocalStack (STS, Lambda)
                          │                    ▲ │                 └─▶ switchboard-localstack-lambda-host ─▶ switchboard-tool
                          │                    │ └─ every exchange recorded, read by the tests
                          └─▶ sandbox (whoami-local) ─▶ endpoint proxy (CONNECT, sts only)

tests/lambda/run.sh starts LocalStack and runs pytest here with (environment):

    LOCALSTACK_ENDPOINT   http://127.0.0.1:<port>
    AWS_CLI               the aws CLI of LocalStack's venv
    SWITCHBOARD_BIN       target/release/switchboard
    SWITCHBOARD_TOOL_BIN  target/release/switchboard-tool (the local tool's command)
    LAMBDA_TOOLS_ZIP      the reference tools' package (scripts/package-lambda)
    LAMBDA_PROBE_ZIP      the Lambda probe zipped as bootstrap
    E2E_RUN_DIR           where the catalog, bindings, gateway log, audit log and the recorded
                          exchanges (wire.jsonl) go; a temporary folder when unset

Session fixtures set everything up once: `deployment` (IAM roles and Lambda functions, deleted
again at the end), `proxy`, `gateway` (started with AWS_ENDPOINT_URL at the proxy, stopped with
SIGTERM at the end whatever happens). Tests use `e2e`, which bundles them with helpers. A failing
test's report carries the tail of the gateway log and the last exchanges on the wire.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from switchboard_harness import awswire
from switchboard_harness.faults import faults, proxy_faults  # noqa: F401 - fixtures, found by pytest here
from switchboard_harness.gateway import DevGateway, clean_env, dev_token, start_dev
from switchboard_harness.recproxy import RecordingProxy, recording
from switchboard_harness.report import failure_report_hook, failure_sections
from switchboard_harness.settings import required, run_dir

REGION = "us-east-1"
ACCOUNT = "000000000000"
WORK_ROLE = "switchboard-e2e-whoami-work"
LOCAL_WORK_ROLE = "switchboard-e2e-whoami-local-work"
# The local tool: whoami in the gateway's sandbox, reaching STS only through its declared endpoint.
LOCAL_TOOL = "whoami-local"
# The reference tool secret_lookup in the gateway's sandbox, reaching Secrets Manager only.
SECRET_TOOL = "secret_lookup"
SECRET_WORK_ROLE = "switchboard-e2e-secret-lookup-work"
SECRET_PERMISSIONS = [
    {
        "actions": ["secretsmanager:DescribeSecret"],
        "resources": ["arn:aws:secretsmanager:*:*:secret:switchboard/${aws:PrincipalTag/tenant}/*"],
        # An ARN of any account is refused unless its statement pins one (issue 32).
        "condition": {"StringEquals": {"aws:ResourceAccount": "${aws:PrincipalAccount}"}},
    }
]
# The reference tool terraform_plan in the gateway's sandbox: terraform and the provider mirror of
# scripts/terraform-kit, the tenants' projects of a copy of examples/tenants, STS and S3 only.
TERRAFORM_TOOL = "terraform_plan"
TERRAFORM_WORK_ROLE = "switchboard-e2e-terraform-plan-work"
# The bucket of the tenants' files for the tools' AWS mode (`bucket` argument): a copy of
# examples/tenants under <tenant>/, as a deployment keeps them.
TENANTS_BUCKET = "switchboard-e2e-tenants"
READ_TENANT_PREFIX = [
    {
        "sid": "ListTenantPrefix",
        "actions": ["s3:ListBucket"],
        "resources": [f"arn:aws:s3:::{TENANTS_BUCKET}"],
        "condition": {"StringLike": {"s3:prefix": ["${aws:PrincipalTag/tenant}/*"]}},
    },
    {
        "sid": "ReadTenantObjects",
        "actions": ["s3:GetObject"],
        "resources": [f"arn:aws:s3:::{TENANTS_BUCKET}/${{aws:PrincipalTag/tenant}}/*"],
    },
]
TERRAFORM_PERMISSIONS = [
    {"sid": "WhoAmI", "actions": ["sts:GetCallerIdentity"], "resources": ["*"]},
    {
        "sid": "ReadTenantBuckets",
        "actions": ["s3:GetBucketLocation", "s3:ListBucket"],
        "resources": ["arn:aws:s3:::${aws:PrincipalTag/tenant}-*"],
    },
    *READ_TENANT_PREFIX,
]
# The reference tool state_validate in AWS mode, in the gateway's sandbox: it reads the state
# from the tenants' bucket with credentials minted for the call, reaching S3 only.
STATE_TOOL = "state_validate"
STATE_WORK_ROLE = "switchboard-e2e-state-validate-work"
STATE_INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "bucket": {"type": "string", "enum": [TENANTS_BUCKET]},
        "state": {"type": "string", "minLength": 1, "maxLength": 1024},
    },
    "required": ["bucket", "state"],
    "additionalProperties": False,
}
REPO = Path(__file__).resolve().parents[3]
_AWS_PROVIDER = """terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}
"""
# Projects of the suite's own, beside the shipped examples in its copy of examples/tenants.
TEST_PROJECTS = {
    # Needs a provider that is not in the mirror: init fails at once, naming it.
    "acme/projects/needs-random/main.tf": """terraform {
  required_providers {
    random = { source = "hashicorp/random" }
  }
}
resource "random_id" "suffix" {
  byte_length = 4
}
""",
    # Points the provider at a host no endpoint declares: the proxy refuses the tunnel.
    "acme/projects/elsewhere/main.tf": _AWS_PROVIDER
    + """provider "aws" {
  s3_use_path_style = true
  endpoints {
    s3 = "https://exfiltrate.example.com"
  }
}
data "aws_s3_bucket" "probe" {
  bucket = "acme-probe"
}
""",
}
# As examples/catalog.yaml declares it, and the bucket of examples/catalog.aws.yaml's (optional
# here: without it the project is read from the tenant folder).
TERRAFORM_INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "bucket": {"type": "string", "enum": [TENANTS_BUCKET]},
        "project": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
        "variables": {
            "type": "object",
            "maxProperties": 64,
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_-]{0,63}$"},
            "additionalProperties": {"type": ["string", "number", "boolean"], "maxLength": 4096},
        },
    },
    "required": ["project"],
    "additionalProperties": False,
}
EXEC_ROLE = "switchboard-e2e-exec"
SUBJECT = "alice@example.com"
TENANT = "acme"
GROUP = "dev"

# Any principal of the account may assume the work role, tag the session and set its source
# identity (LocalStack does not enforce trust policies; this is what the test needs on AWS too).
TRUST_ANY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
        }
    ],
}
TRUST_LAMBDA = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


@dataclass(frozen=True)
class Function:
    tool: str  # the catalog name, also the `tool` of the invocation (the probe picks its behaviour by it)
    name: str
    package: str  # "tools" or "probe"
    timeout: int  # the function's timeout, seconds
    catalog_timeout: int  # the catalog's timeout_seconds
    input_schema: dict
    permissions: list


FUNCTIONS = [
    Function(
        "whoami",
        "switchboard-e2e-whoami",
        "tools",
        10,
        10,
        {"type": "object"},
        [{"actions": ["sts:GetCallerIdentity"], "resources": ["*"]}],
    ),
    Function("fail", "switchboard-e2e-fail", "probe", 10, 10, {"type": "object"}, []),
    Function(
        "sleep",
        "switchboard-e2e-sleep",
        "probe",
        3,
        3,
        {"type": "object", "properties": {"seconds": {"type": "number"}}},
        [],
    ),
    # A call longer than any idle timeout on its way (connection pools, the runtime's idle threads).
    Function(
        "long-sleep",
        "switchboard-e2e-long-sleep",
        "probe",
        60,
        60,
        {"type": "object", "properties": {"seconds": {"type": "number"}}},
        [],
    ),
]
SESSION_TAGS = ["tool", "tenant", "principal", "invocation"]


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    localstack: str
    aws_cli: Path
    switchboard: Path
    tool_bin: Path
    terraform_kit: Path
    tools_zip: Path
    probe_zip: Path
    run_dir: Path


def _required(name: str, is_path: bool = False) -> str:
    return required(name, "tests/lambda/run.sh", is_path)


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    path = run_dir("E2E_RUN_DIR", tmp_path_factory, "e2e")
    return Settings(
        localstack=_required("LOCALSTACK_ENDPOINT").rstrip("/"),
        aws_cli=Path(_required("AWS_CLI", is_path=True)),
        switchboard=Path(_required("SWITCHBOARD_BIN", is_path=True)),
        tool_bin=Path(_required("SWITCHBOARD_TOOL_BIN", is_path=True)).resolve(),
        terraform_kit=Path(_required("TERRAFORM_KIT", is_path=True)),
        tools_zip=Path(_required("LAMBDA_TOOLS_ZIP", is_path=True)).resolve(),
        probe_zip=Path(_required("LAMBDA_PROBE_ZIP", is_path=True)).resolve(),
        run_dir=path,
    )


# --- the aws CLI, straight at LocalStack -------------------------------------------------------


class AwsError(Exception):
    def __init__(self, args: tuple[str, ...], status: int, stderr: str):
        self.stderr = stderr
        super().__init__(f"aws {' '.join(args)} exited {status}: {stderr.strip()}")


class Aws:
    """Runs the aws CLI against LocalStack (not through the proxy). Credentials go in the
    environment, never on the command line."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __call__(self, *args: str, credentials: dict[str, str] | None = None, timeout: float = 120) -> dict | None:
        creds = credentials or {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        env = clean_env(AWS_DEFAULT_REGION=REGION, AWS_PAGER="", **creds)
        command = [str(self.settings.aws_cli), "--endpoint-url", self.settings.localstack, "--output", "json", *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AwsError(args, done.returncode, done.stderr)
        return json.loads(done.stdout) if done.stdout.strip() else None


@pytest.fixture(scope="session")
def aws(settings) -> Aws:
    return Aws(settings)


# --- LocalStack resources ---------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    work_role_arn: str
    local_work_role_arn: str
    secret_work_role_arn: str
    terraform_work_role_arn: str
    state_work_role_arn: str
    exec_role_arn: str
    function_arns: dict[str, str]  # by tool


def ensure_role(aws: Aws, name: str, trust: dict) -> str:
    try:
        created = aws("iam", "create-role", "--role-name", name, "--assume-role-policy-document", json.dumps(trust))
        return created["Role"]["Arn"]
    except AwsError as e:
        if "EntityAlreadyExists" not in e.stderr:
            raise
        return aws("iam", "get-role", "--role-name", name)["Role"]["Arn"]


def delete_function(aws: Aws, name: str) -> None:
    try:
        aws("lambda", "delete-function", "--function-name", name)
    except AwsError as e:
        if "ResourceNotFoundException" not in e.stderr:
            raise


@pytest.fixture(scope="session")
def deployment(aws, settings):
    """The work role, the functions' execution role and one function per catalog tool. A function
    left by an earlier run against the same LocalStack is replaced; the functions are deleted
    at the end (which stops their execution environments)."""
    work_role = ensure_role(aws, WORK_ROLE, TRUST_ANY)
    local_work_role = ensure_role(aws, LOCAL_WORK_ROLE, TRUST_ANY)
    secret_work_role = ensure_role(aws, SECRET_WORK_ROLE, TRUST_ANY)
    terraform_work_role = ensure_role(aws, TERRAFORM_WORK_ROLE, TRUST_ANY)
    state_work_role = ensure_role(aws, STATE_WORK_ROLE, TRUST_ANY)
    exec_role = ensure_role(aws, EXEC_ROLE, TRUST_LAMBDA)
    arns = {}
    try:
        for f in FUNCTIONS:
            delete_function(aws, f.name)
            package = settings.tools_zip if f.package == "tools" else settings.probe_zip
            created = aws(
                "lambda", "create-function",
                "--function-name", f.name,
                "--runtime", "provided.al2023",
                "--handler", "bootstrap",
                "--architectures", "x86_64",
                "--role", exec_role,
                "--timeout", str(f.timeout),
                "--memory-size", "128",
                "--ephemeral-storage", "Size=512",
                "--zip-file", f"fileb://{package}",
            )  # fmt: skip
            arns[f.tool] = created["FunctionArn"]
        for f in FUNCTIONS:
            aws("lambda", "wait", "function-active-v2", "--function-name", f.name)
        yield Deployment(
            work_role_arn=work_role,
            local_work_role_arn=local_work_role,
            secret_work_role_arn=secret_work_role,
            terraform_work_role_arn=terraform_work_role,
            state_work_role_arn=state_work_role,
            exec_role_arn=exec_role,
            function_arns=arns,
        )
    finally:
        for f in FUNCTIONS:
            try:
                delete_function(aws, f.name)
            except (AwsError, subprocess.TimeoutExpired) as e:
                print(f"e2e: could not delete {f.name}: {e}", file=sys.stderr)


# --- the recording proxy ----------------------------------------------------------------------

_proxy: RecordingProxy | None = None
_gateway_log: Path | None = None


@pytest.fixture(scope="session")
def proxy(settings):
    """Between the gateway and LocalStack. At the end, every exchange goes to wire.jsonl in the
    run folder (LocalStack's throwaway credentials included: that is what was on the wire)."""
    global _proxy
    with recording(settings.localstack, settings.run_dir / "wire.jsonl") as _proxy:
        yield _proxy
    _proxy = None


# --- the gateway ------------------------------------------------------------------------------


def catalog_document(settings: Settings) -> dict:
    tools = []
    for f in FUNCTIONS:
        package = settings.tools_zip if f.package == "tools" else settings.probe_zip
        tool = {
            "name": f.tool,
            "description": f"The end-to-end suite's {f.tool} tool (Lambda function {f.name}).",
            "input_schema": f.input_schema,
            "backend": "lambda",
            "lambda": {"package": str(package)},
            "timeout_seconds": f.catalog_timeout,
            "memory_mb": 128,
            "ephemeral_storage_mb": 512,
            "allow": {"groups": [GROUP]},
        }
        if f.permissions:
            tool["permissions"] = f.permissions
        tools.append(tool)
    tools.append(
        {
            "name": LOCAL_TOOL,
            "description": "The end-to-end suite's whoami in the local sandbox, with the sts endpoint.",
            "input_schema": {"type": "object", "properties": {"sts": {"type": "boolean"}}},
            "backend": "local",
            "local": {"command": [str(settings.tool_bin), "whoami"]},
            "endpoints": ["sts"],
            "timeout_seconds": 20,
            "memory_mb": 256,
            "allow": {"groups": [GROUP]},
            "permissions": [{"actions": ["sts:GetCallerIdentity"], "resources": ["*"]}],
        }
    )
    tools.append(
        {
            "name": SECRET_TOOL,
            "description": "Says whether a secret of the caller's tenant exists, never its value.",
            "input_schema": {
                "type": "object",
                "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 256}},
                "required": ["name"],
                "additionalProperties": False,
            },
            "backend": "local",
            "local": {"command": [str(settings.tool_bin), "secret_lookup"]},
            "endpoints": ["secretsmanager"],
            "timeout_seconds": 20,
            "memory_mb": 256,
            "allow": {"groups": [GROUP]},
            "permissions": SECRET_PERMISSIONS,
        }
    )
    tools.append(
        {
            "name": TERRAFORM_TOOL,
            "description": "Plans a Terraform project of the caller's tenant, read-only.",
            "input_schema": TERRAFORM_INPUT_SCHEMA,
            "backend": "local",
            "local": {
                "command": [str(settings.tool_bin), "terraform_plan"],
                "tenant_root": str(settings.run_dir / "tenants"),
                "read_only_paths": [
                    {"path": str(settings.terraform_kit / "terraform"), "at": "/opt/switchboard/terraform/terraform"},
                    {"path": str(settings.terraform_kit / "providers"), "at": "/opt/switchboard/terraform/providers"},
                ],
            },
            "endpoints": ["sts", "s3"],
            "timeout_seconds": 120,
            "memory_mb": 1536,
            "ephemeral_storage_mb": 64,
            "allow": {"groups": [GROUP]},
            "permissions": TERRAFORM_PERMISSIONS,
        }
    )
    tools.append(
        {
            "name": STATE_TOOL,
            "description": "Checks a Terraform state of the caller's tenant, read from the tenants' bucket.",
            "input_schema": STATE_INPUT_SCHEMA,
            "backend": "local",
            "local": {"command": [str(settings.tool_bin), "state_validate"]},
            "endpoints": ["s3"],
            "timeout_seconds": 20,
            "memory_mb": 256,
            "allow": {"groups": [GROUP]},
            "permissions": READ_TENANT_PREFIX[1:],
        }
    )
    return {"version": 1, "tools": tools}


def bindings_document(deployment: Deployment) -> dict:
    lambda_tools = {
        f.tool: {
            "backend": "lambda",
            "function_arn": deployment.function_arns[f.tool],
            "work_role_arn": deployment.work_role_arn if f.permissions else None,
            "log_group": None,
            "subnets": [],
            "security_groups": [],
            "session_tags": SESSION_TAGS,
        }
        for f in FUNCTIONS
    }
    # What infra/examples writes for a local tool with permissions: only its work role.
    local_tool = {"backend": "local", "work_role_arn": deployment.local_work_role_arn, "session_tags": SESSION_TAGS}
    secret_tool = {"backend": "local", "work_role_arn": deployment.secret_work_role_arn, "session_tags": SESSION_TAGS}
    terraform_tool = {
        "backend": "local",
        "work_role_arn": deployment.terraform_work_role_arn,
        "session_tags": SESSION_TAGS,
    }
    state_tool = {"backend": "local", "work_role_arn": deployment.state_work_role_arn, "session_tags": SESSION_TAGS}
    return {
        "version": 1,
        "region": REGION,
        "account_id": ACCOUNT,
        "gateway_role_arn": None,
        "invocation_bucket": None,
        "local_tools": [LOCAL_TOOL, SECRET_TOOL, TERRAFORM_TOOL, STATE_TOOL],
        "tools": {
            **lambda_tools,
            LOCAL_TOOL: local_tool,
            SECRET_TOOL: secret_tool,
            TERRAFORM_TOOL: terraform_tool,
            STATE_TOOL: state_tool,
        },
    }


# A running gateway: base, mcp, token, log, audit, process, dev_key (switchboard_harness.gateway).
Gateway = DevGateway


@pytest.fixture(scope="session")
def gateway(settings, deployment, proxy):
    global _gateway_log
    run = settings.run_dir
    log = run / "gateway.log"
    tenants = run / "tenants"
    shutil.rmtree(tenants, ignore_errors=True)
    shutil.copytree(REPO / "examples" / "tenants", tenants)
    for relative, text in TEST_PROJECTS.items():
        (tenants / relative).parent.mkdir(parents=True, exist_ok=True)
        (tenants / relative).write_text(text)
    _gateway_log = log
    gw = start_dev(
        settings.switchboard, run=run, log=log, audit=run / "audit.jsonl",
        catalog=catalog_document(settings), bindings=bindings_document(deployment),
        aws_endpoint=proxy.url, region=REGION, sub=SUBJECT, group=GROUP, tenant=TENANT,
        # The local tool's sts endpoint: its tunnel goes to the recording proxy too.
        SWITCHBOARD_LOCAL_ENDPOINTS=",".join(
            f"{name}={proxy.url.removeprefix('http://')}" for name in ("sts", "s3", "secretsmanager")
        ),
    )  # fmt: skip
    try:
        yield gw
    finally:
        print(f"e2e: switchboard serve stopped with status {gw.stop(grace=20)}", file=sys.stderr)


# --- what the tests use -------------------------------------------------------------------------


class E2E:
    """The running setup and the questions the tests ask of it."""

    def __init__(self, settings: Settings, aws: Aws, deployment: Deployment, proxy: RecordingProxy, gateway: Gateway):
        self.settings = settings
        self.aws = aws
        self.deployment = deployment
        self.proxy = proxy
        self.gateway = gateway

    # calls through the SDK

    def token_for(self, tenant: str) -> str:
        """A dev token like the suite's own, for another tenant."""
        return dev_token(
            self.settings.switchboard,
            sub=SUBJECT,
            group=GROUP,
            tenant=tenant,
            audience=self.gateway.mcp,
            dev_key=self.gateway.dev_key,
        )

    def call(self, tool: str, arguments: dict | None = None, token: str | None = None, headers: dict | None = None):
        """One tools/call through the official MCP SDK (2.x, Streamable HTTP, bearer token), with
        `headers` on every request of it besides."""
        return asyncio.run(asyncio.wait_for(self.acall(tool, arguments, token, headers), 90))

    async def acall(self, tool: str, arguments: dict | None = None, token: str | None = None, headers: dict | None = None):
        """[`call`], as a coroutine a test can cancel (the client then hangs up on its request)."""
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token or self.gateway.token}", **(headers or {})},
            timeout=httpx2.Timeout(30.0, read=60.0),
        )
        async with http:
            async with Client(streamable_http_client(self.gateway.mcp, http_client=http)) as client:
                return await client.call_tool(tool, arguments or {})

    def list_tools(self) -> list:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        async def body():
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.gateway.token}"}, timeout=30.0)
            async with http:
                async with Client(streamable_http_client(self.gateway.mcp, http_client=http)) as client:
                    return (await client.list_tools()).tools

        return asyncio.run(asyncio.wait_for(body(), 60))

    # the wire

    def mark(self) -> int:
        """A point in the recording: pass it as `since` to see only what came after."""
        return len(self.proxy.exchanges())

    def assume_roles(self, since: int = 0) -> list[awswire.AssumeRole]:
        return awswire.assume_roles(self.proxy.exchanges()[since:])

    def invokes(self, since: int = 0) -> list[awswire.Invoke]:
        return awswire.invokes(self.proxy.exchanges()[since:])

    def assume_role_for(self, invocation_id: str) -> awswire.AssumeRole:
        """The one AssumeRole whose RoleSessionName is this invocation, answered with credentials."""
        found = [a for a in self.assume_roles() if a.session_name == invocation_id]
        assert len(found) == 1, (
            f"expected one AssumeRole with RoleSessionName={invocation_id}, found {len(found)}; "
            f"AssumeRole sessions on the wire: {[a.session_name for a in self.assume_roles()]}"
        )
        call = found[0]
        assert call.succeeded, (
            f"AssumeRole for {invocation_id} answered {call.exchange.status}: {call.exchange.response_body[:2000]!r}"
        )
        return call

    def invoke_for(self, invocation_id: str) -> awswire.Invoke:
        found = [i for i in self.invokes() if (i.payload or {}).get("invocationId") == invocation_id]
        assert len(found) == 1, (
            f"expected one Lambda Invoke carrying invocation {invocation_id}, found {len(found)}; "
            f"Invokes on the wire: {[(i.function_name, (i.payload or {}).get('invocationId')) for i in self.invokes()]}"
        )
        return found[0]

    # the gateway's own records

    def audit_lines(self) -> list[dict]:
        if not self.gateway.audit.exists():
            return []
        return [json.loads(line) for line in self.gateway.audit.read_text().splitlines() if line.strip()]

    def audit_for(self, invocation_id: str) -> dict:
        found = [a for a in self.audit_lines() if a.get("invocation_id") == invocation_id]
        assert len(found) == 1, f"expected one audit line for {invocation_id}, found {found}"
        return found[0]

    def log_bytes(self) -> bytes:
        return self.gateway.log.read_bytes()


@pytest.fixture(scope="session")
def e2e(settings, aws, deployment, proxy, gateway) -> E2E:
    return E2E(settings, aws, deployment, proxy, gateway)


# --- failure reports: the gateway's side of the story ----------------------------------------


pytest_runtest_makereport = failure_report_hook(lambda: failure_sections(_gateway_log, _proxy))
