"""Fixtures of the Fargate suite: moto (ECS, EC2, S3, STS, IAM) in this process, a recording
proxy in front of it, the player that runs the tasks, and a running `switchboard serve --bindings`
whose tools are all `fargate`.

    MCP Python SDK ──▶ switchboard serve ──▶ recproxy ──▶ moto (STS, S3, ECS)
                                               ▲   │            │ the task table, read in-process
        switchboard-tool (container mode) ─────┘   │            ▼
        in a sandbox whose only network            │          player (plays the Fargate agent)
        is the S3 emulator (sandbox.py)            └─ every exchange recorded, read by the tests

tests/fargate/run.sh runs pytest here with (environment):

    SWITCHBOARD_BIN       target/release/switchboard
    SWITCHBOARD_TOOL_BIN  target/release/switchboard-tool (what the player runs for `run` tasks)
    FARGATE_RUN_DIR       where the catalog, bindings, gateway log, audit log and the recorded
                          exchanges (wire.jsonl) go; a temporary folder when unset

Session fixtures set everything up once and take it down at the end whatever happens. Tests use
`fg`, which bundles them with helpers. A failing test's report carries the tail of the gateway
log, the last exchanges on the wire and what the player did.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The recording proxy and the wire parsers are the Lambda suite's (tests/lambda/e2e).
sys.path.insert(1, str(HERE.parent / "lambda" / "e2e"))

import awswire  # noqa: E402
import player as playmod  # noqa: E402
from faults import faults, proxy_faults  # noqa: E402,F401 - fixtures, found by pytest here
from procs import clean_env, dev_token, die_with_parent, free_port, tail  # noqa: E402
from recproxy import Exchange, RecordingProxy  # noqa: E402
from sandbox import Relay, run_in_sandbox  # noqa: E402

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's
CLUSTER = "switchboard-e2e"
CONTAINER = "tool"
BUCKET = "switchboard-e2e-invocations"
PREFIX = "invocations/"
WORK_ROLE = "switchboard-e2e-fargate-work"
SUBJECT = "alice@example.com"
TENANT = "acme"
GROUP = "dev"
SESSION_TAGS = ["tool", "tenant", "principal", "invocation"]
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/switchboard-tools@sha256:" + "ab" * 32
FAMILIES = ["run", "exit1", "pullfail", "hang", "nostart", "long", "oversize", "invalid"]


@dataclass(frozen=True)
class Tool:
    name: str
    family: str  # what the player does with its task (player.py)
    timeout: int
    storage_mb: int
    permissions: list
    input_schema: dict
    start_timeout: int | None = None  # fargate.start_timeout_seconds; the default (120 s) when None


TOOLS = [
    # A start window of 10 s within a 30 s timeout; whoami has the default (120 s), clamped to 30.
    Tool("echo", "run", 30, 21504, [], {"type": "object", "properties": {"message": {"type": "string"}}}, 10),
    Tool(
        "whoami",
        "run",
        30,
        30720,
        [{"actions": ["sts:GetCallerIdentity"], "resources": ["*"]}],
        {"type": "object", "properties": {"marker": {"type": "string"}}},
    ),
    Tool("exit1", "exit1", 30, 21504, [], {"type": "object"}),
    Tool("pullfail", "pullfail", 30, 21504, [], {"type": "object"}),
    Tool("hang", "hang", 60, 21504, [], {"type": "object"}),
    Tool("slow", "hang", 3, 21504, [], {"type": "object"}),
    # A task held in PENDING, with a start window of 3 s and a timeout of 30 s.
    Tool("nostart", "nostart", 30, 21504, [], {"type": "object"}, 3),
    # A task of player.LONG_TASK_SECONDS (30 s): within its timeout, and past it. `long` has a start
    # window of 8 s: it binds the task's start only, not its run.
    Tool("long", "long", 60, 21504, [], {"type": "object"}, 8),
    Tool("long_late", "long", 10, 21504, [], {"type": "object"}),
    Tool("oversize", "oversize", 30, 21504, [], {"type": "object"}),
    Tool("invalid", "invalid", 30, 21504, [], {"type": "object"}),
]


@dataclass(frozen=True)
class Settings:
    switchboard: Path
    tool_bin: Path
    run_dir: Path


def _required(name: str) -> Path:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"{name} is not set: run this suite with tests/fargate/run.sh", pytrace=False)
    if not Path(value).exists():
        pytest.fail(f"{name}={value}: no such file", pytrace=False)
    return Path(value).resolve()


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    run_dir = os.environ.get("FARGATE_RUN_DIR", "").strip()
    if run_dir:
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("fargate")
    return Settings(
        switchboard=_required("SWITCHBOARD_BIN"),
        tool_bin=_required("SWITCHBOARD_TOOL_BIN"),
        run_dir=path,
    )


# --- moto and what is deployed in it ------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_url():
    playmod.patch_moto()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class Deployment:
    cluster_arn: str
    subnets: list[str]
    security_groups: list[str]
    task_definitions: dict[str, str]  # by family
    work_role_arn: str


def client(moto_url: str, service: str):
    import boto3

    return boto3.client(
        service,
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture(scope="session")
def deployment(moto_url) -> Deployment:
    """What infra/ would have made: a VPC with one private subnet and a security group, the
    cluster, one task definition per player behaviour, the invocation bucket and a work role."""
    ec2 = client(moto_url, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    # moto's RunTask with awsvpc answers 500 unless the VPC has DNS hostnames.
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="switchboard-e2e-tools", Description="no egress", VpcId=vpc)["GroupId"]
    ecs = client(moto_url, "ecs")
    cluster = ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"]
    definitions = {}
    for family in FAMILIES:
        registered = ecs.register_task_definition(
            family=f"switchboard-e2e-{family}",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": CONTAINER,
                    "image": IMAGE,
                    "memory": 512,
                    "essential": True,
                    "readonlyRootFilesystem": True,
                }
            ],
        )
        definitions[family] = registered["taskDefinition"]["taskDefinitionArn"]
    s3 = client(moto_url, "s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    iam = client(moto_url, "iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}],
    }
    role = iam.create_role(RoleName=WORK_ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    return Deployment(
        cluster_arn=cluster, subnets=[subnet], security_groups=[sg], task_definitions=definitions, work_role_arn=role
    )


# --- the recording proxy, the relay into the sandboxes, the player ---------------------------

_proxy: RecordingProxy | None = None
_gateway_log: Path | None = None
_player: playmod.Player | None = None


@pytest.fixture(scope="session")
def proxy(settings, moto_url):
    global _proxy
    p = RecordingProxy(moto_url).start()
    _proxy = p
    try:
        yield p
    finally:
        _proxy = None
        p.stop()
        with open(settings.run_dir / "wire.jsonl", "w", encoding="utf-8") as out:
            for exchange in p.exchanges():
                out.write(json.dumps(exchange.to_json()) + "\n")


@pytest.fixture(scope="session")
def relay(proxy):
    r = Relay(("127.0.0.1", proxy.port)).start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="session")
def ecs_player(settings, deployment, proxy, relay):
    global _player

    def run_tool(environment: dict) -> tuple[int, str]:
        return run_in_sandbox(settings.tool_bin, relay, proxy.port, environment)

    p = playmod.Player(ACCOUNT, REGION, CLUSTER, run_tool).start()
    _player = p
    try:
        yield p
    finally:
        _player = None
        p.stop()


# --- the gateway ------------------------------------------------------------------------------


def catalog_document() -> dict:
    tools = []
    for t in TOOLS:
        tool = {
            "name": t.name,
            "description": f"The Fargate suite's {t.name} tool (task family {t.family}).",
            "input_schema": t.input_schema,
            "backend": "fargate",
            "fargate": {"image": IMAGE, "cpu": 256},
            "timeout_seconds": t.timeout,
            "memory_mb": 512,
            "ephemeral_storage_mb": t.storage_mb,
            "allow": {"groups": [GROUP]},
        }
        if t.start_timeout is not None:
            tool["fargate"]["start_timeout_seconds"] = t.start_timeout
        if t.permissions:
            tool["permissions"] = t.permissions
        tools.append(tool)
    # A short grace, so that the shutdown test's gateway cancels its running call soon.
    return {"version": 1, "gateway": {"limits": {"shutdown_grace_seconds": 1}}, "tools": tools}


def bindings_document(d: Deployment) -> dict:
    return {
        "version": 1,
        "region": REGION,
        "account_id": ACCOUNT,
        "gateway_role_arn": None,
        "invocation_bucket": {"name": BUCKET, "prefix": PREFIX},
        "local_tools": [],
        "tools": {
            t.name: {
                "backend": "fargate",
                "task_definition_arn": d.task_definitions[t.family],
                "cluster_arn": d.cluster_arn,
                "container_name": CONTAINER,
                "work_role_arn": d.work_role_arn if t.permissions else None,
                "log_group": None,
                "subnets": d.subnets,
                "security_groups": d.security_groups,
                "session_tags": SESSION_TAGS,
            }
            for t in TOOLS
        },
    }


@dataclass
class Gateway:
    base: str
    mcp: str
    token: str
    log: Path
    audit: Path
    process: subprocess.Popen


def start_gateway(settings: Settings, deployment: Deployment, proxy: RecordingProxy, name: str) -> Gateway:
    run = settings.run_dir
    catalog = run / "catalog.yaml"
    bindings = run / "bindings.json"
    dev_key = run / "dev-key.pem"
    log = run / f"{name}.log"
    audit = run / f"{name}-audit.jsonl"
    for stale in (log, audit):
        stale.unlink(missing_ok=True)
    catalog.write_text(json.dumps(catalog_document(), indent=2))  # JSON is YAML
    bindings.write_text(json.dumps(bindings_document(deployment), indent=2))
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    env = clean_env(
        AWS_ENDPOINT_URL=proxy.url,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_REGION=REGION,
        RUST_LOG="debug",
        NO_COLOR="1",
    )
    command = [
        str(settings.switchboard), "serve",
        "--catalog", str(catalog),
        "--bindings", str(bindings),
        "--dev", "--dev-key", str(dev_key),
        "--listen", listen,
        "--audit-log", str(audit),
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=die_with_parent
        )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(
                f"switchboard serve exited with status {process.returncode} before answering /healthz; "
                f"its log ({log}):\n{tail(log)}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"switchboard serve did not answer /healthz within 30 s; its log:\n{tail(log)}")
        time.sleep(0.2)
    token = dev_token(
        settings.switchboard, sub=SUBJECT, group=GROUP, tenant=TENANT, audience=f"{base}/mcp", dev_key=dev_key
    )
    return Gateway(base=base, mcp=f"{base}/mcp", token=token, log=log, audit=audit, process=process)


def stop_gateway(gateway: Gateway, timeout: float = 20) -> int:
    if gateway.process.poll() is None:
        gateway.process.send_signal(signal.SIGTERM)
        try:
            gateway.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            gateway.process.kill()
            gateway.process.wait(timeout=10)
    return gateway.process.returncode


@pytest.fixture(scope="session")
def gateway(settings, deployment, proxy, ecs_player):
    global _gateway_log
    g = start_gateway(settings, deployment, proxy, "gateway")
    _gateway_log = g.log
    try:
        yield g
    finally:
        print(f"fargate: switchboard serve stopped with status {stop_gateway(g)}", file=sys.stderr)


# --- what the tests use -------------------------------------------------------------------------


class Fargate:
    """The running setup and the questions the tests ask of it."""

    def __init__(self, moto_url: str, deployment: Deployment, proxy: RecordingProxy, player, gateway: Gateway):
        self.moto_url = moto_url
        self.deployment = deployment
        self.proxy = proxy
        self.player = player
        self.gateway = gateway

    async def acall(
        self,
        tool: str,
        arguments: dict | None = None,
        progress=None,
        gateway: Gateway | None = None,
        headers: dict | None = None,
        timing: dict | None = None,
    ):
        """One tools/call; with `timing`, its "sent" and "answered" (time.monotonic() around the
        tools/call alone, the session already open) go there, and "answered_at" (time.time(), the
        recording proxy's clock)."""
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        gw = gateway or self.gateway
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {gw.token}", **(headers or {})},
            timeout=httpx2.Timeout(30.0, read=90.0),
        )
        async with http:
            async with Client(streamable_http_client(gw.mcp, http_client=http)) as c:
                if timing is not None:
                    timing["sent"] = time.monotonic()
                result = await c.call_tool(tool, arguments or {}, progress_callback=progress)
                if timing is not None:
                    timing["answered"] = time.monotonic()
                    timing["answered_at"] = time.time()
                return result

    def call(self, tool: str, arguments: dict | None = None, progress=None, headers: dict | None = None):
        """One tools/call through the official MCP SDK (2.x, Streamable HTTP, bearer token), with
        `headers` on every request of it besides."""
        return asyncio.run(asyncio.wait_for(self.acall(tool, arguments, progress, headers=headers), 120))

    # the wire

    def mark(self) -> int:
        return len(self.proxy.exchanges())

    def exchanges(self, since: int = 0) -> list[Exchange]:
        return self.proxy.exchanges()[since:]

    def ecs_calls(self, action: str, since: int = 0) -> list[tuple[Exchange, dict]]:
        """The ECS JSON calls of one action (X-Amz-Target AmazonEC2ContainerServiceV20141113.<action>)."""
        found = []
        for e in self.exchanges(since):
            target = e.request_header("x-amz-target") or ""
            if target.endswith("." + action):
                found.append((e, json.loads(e.request_body or b"{}")))
        return found

    def run_task_for(self, invocation_id: str) -> tuple[Exchange, dict]:
        found = [(e, b) for e, b in self.ecs_calls("RunTask") if b.get("startedBy") == invocation_id]
        assert len(found) == 1, f"expected one RunTask started by {invocation_id}, found {len(found)}"
        return found[0]

    def stop_tasks_for(self, task_arn: str, since: int = 0) -> list[dict]:
        return [b for _, b in self.ecs_calls("StopTask", since) if b.get("task") == task_arn]

    def assume_roles(self, since: int = 0) -> list[awswire.AssumeRole]:
        return awswire.assume_roles(self.exchanges(since))

    def s3_keys(self) -> list[str]:
        listed = client(self.moto_url, "s3").list_objects_v2(Bucket=BUCKET)
        return [o["Key"] for o in listed.get("Contents", [])]

    # the gateway's own records

    def audit_lines(self, gateway: Gateway | None = None) -> list[dict]:
        path = (gateway or self.gateway).audit
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def audit_for(self, invocation_id: str) -> dict:
        found = [a for a in self.audit_lines() if a.get("invocation_id") == invocation_id]
        assert len(found) == 1, f"expected one audit line for {invocation_id}, found {found}"
        return found[0]

    def last_audit(self, tool: str, before: int, gateway: Gateway | None = None) -> dict:
        lines = [a for a in self.audit_lines(gateway)[before:] if a["tool"] == tool]
        assert len(lines) == 1, lines
        return lines[0]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


@pytest.fixture(scope="session")
def fg(moto_url, deployment, proxy, ecs_player, gateway) -> Fargate:
    return Fargate(moto_url, deployment, proxy, ecs_player, gateway)


@pytest.fixture(scope="session")
def fargate_parts(settings, moto_url, deployment, proxy, ecs_player):
    """For tests that start a gateway of their own (shutdown)."""
    return settings, moto_url, deployment, proxy, ecs_player


# --- failure reports ------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "teardown" or not report.failed:
        return
    if _gateway_log is not None:
        report.sections.append(("gateway log (last 60 lines)", tail(_gateway_log)))
    if _proxy is not None:
        lines = [e.summary() for e in _proxy.exchanges()[-25:]]
        report.sections.append(("last exchanges on the wire", "\n".join(lines) or "(none)"))
    if _player is not None:
        played = [
            f"{p.family} {p.started_by} {p.states} exit={p.exit_code} error={p.error} stderr={p.tool_stderr[-500:]!r}"
            for p in _player.played.values()
        ]
        report.sections.append(("tasks the player played", "\n".join(played) or "(none)"))
