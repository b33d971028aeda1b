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
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

# The recording proxy, the wire parsers, the faults and the gateway's process are the suites'
# shared harness (tests/harness), which the Lambda suite uses too.
from switchboard_harness import awswire
from switchboard_harness.faults import faults, proxy_faults  # noqa: F401 - fixtures, found by pytest here
from switchboard_harness.gateway import DevGateway, start_dev
from switchboard_harness.recproxy import Exchange, RecordingProxy, recording
from switchboard_harness.report import failure_report_hook, failure_sections
from switchboard_harness.settings import required, run_dir

import player as playmod
from sandbox import Relay, run_in_sandbox

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
    return Path(required(name, "tests/fargate/run.sh", is_path=True)).resolve()


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    return Settings(
        switchboard=_required("SWITCHBOARD_BIN"),
        tool_bin=_required("SWITCHBOARD_TOOL_BIN"),
        run_dir=run_dir("FARGATE_RUN_DIR", tmp_path_factory, "fargate"),
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
    with recording(moto_url, settings.run_dir / "wire.jsonl") as _proxy:
        yield _proxy
    _proxy = None


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


# A running gateway: base, mcp, token, log, audit, process (switchboard_harness.gateway).
Gateway = DevGateway


def start_gateway(settings: Settings, deployment: Deployment, proxy: RecordingProxy, name: str) -> Gateway:
    run = settings.run_dir
    return start_dev(
        settings.switchboard, run=run, log=run / f"{name}.log", audit=run / f"{name}-audit.jsonl",
        catalog=catalog_document(), bindings=bindings_document(deployment),
        aws_endpoint=proxy.url, region=REGION, sub=SUBJECT, group=GROUP, tenant=TENANT,
    )  # fmt: skip


def stop_gateway(gateway: Gateway, timeout: float = 20) -> int:
    return gateway.stop(grace=timeout)


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


def _failure_sections() -> list[tuple[str, str]]:
    sections = failure_sections(_gateway_log, _proxy)
    if _player is not None:
        played = [
            f"{p.family} {p.started_by} {p.states} exit={p.exit_code} error={p.error} stderr={p.tool_stderr[-500:]!r}"
            for p in _player.played.values()
        ]
        sections.append(("tasks the player played", "\n".join(played) or "(none)"))
    return sections


pytest_runtest_makereport = failure_report_hook(_failure_sections)
