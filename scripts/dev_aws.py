"""Runs the gateway beside an AWS emulator, so that the day-one catalog's AWS tools work without an
AWS account. scripts/dev runs it in its own venv (scripts/dev-aws-requirements.lock):

    python scripts/dev_aws.py --catalog C --secrets S -- switchboard serve --catalog C --dev ...

1. Starts moto (STS, IAM, Secrets Manager) in this process, on a free loopback port.
2. For every local tool of the catalog that has `permissions`, creates a work role holding them
   and binds the tool to it in a bindings document (what infra/ writes for a deployment), so that
   the gateway mints credentials for each call with AssumeRole and the catalog's session tags.
3. Creates the example secrets of S with random values (nobody ever needs them: secret_lookup only
   describes a secret).
4. Runs the command with `--bindings FILE` added and an environment where the gateway's AWS SDK
   and the sandboxes' declared endpoints (SWITCHBOARD_LOCAL_ENDPOINTS) reach the emulator, with
   dummy credentials. The developer's own AWS settings (keys, profile, config files) are not
   passed: nothing here can reach a real account.

Ctrl-C reaches the gateway (same process group), which shuts down; then the emulator stops and
the bindings are removed. The exit status is the command's. If this process is killed, the
gateway gets SIGTERM (PR_SET_PDEATHSIG) rather than outliving it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import secrets as random_secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
import yaml
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
# Every endpoint name the local backend knows that moto serves; a tool declaring one reaches moto.
ENDPOINTS = ("sts", "secretsmanager", "s3")
DEFAULT_SESSION_TAGS = ["tool", "tenant", "principal", "invocation"]
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}],
}


def say(message: str) -> None:
    print(f"scripts/dev: {message}", file=sys.stderr, flush=True)


def bound_tools(catalog: dict) -> list[dict]:
    """The catalog's local tools that have permissions: the ones that need a work role."""
    return [t for t in catalog.get("tools") or [] if t.get("backend") == "local" and t.get("permissions")]


def policy_of(tool: dict) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": p["actions"], "Resource": p["resources"]} for p in tool["permissions"]
        ],
    }


def seed(endpoint: str, tools: list[dict], secrets: list[dict]) -> dict:
    """Creates the work roles and the secrets; returns the bindings document."""
    session = boto3.session.Session(aws_access_key_id="dev", aws_secret_access_key="dev", region_name=REGION)
    iam = session.client("iam", endpoint_url=endpoint)
    bindings = {
        "version": 1,
        "region": REGION,
        "account_id": ACCOUNT,
        "gateway_role_arn": None,
        "invocation_bucket": None,
        "local_tools": [t["name"] for t in tools],
        "tools": {},
    }
    for tool in tools:
        role = iam.create_role(
            RoleName=f"switchboard-dev-{tool['name']}-work",
            Path="/switchboard/",
            AssumeRolePolicyDocument=json.dumps(TRUST),
        )["Role"]
        iam.put_role_policy(
            RoleName=role["RoleName"], PolicyName="permissions", PolicyDocument=json.dumps(policy_of(tool))
        )
        bindings["tools"][tool["name"]] = {
            "backend": "local",
            "work_role_arn": role["Arn"],
            "session_tags": tool.get("session_tags", DEFAULT_SESSION_TAGS),
        }
    manager = session.client("secretsmanager", endpoint_url=endpoint)
    for secret in secrets:
        manager.create_secret(
            Name=secret["name"],
            Description=secret.get("description", ""),
            SecretString=random_secrets.token_urlsafe(24),
        )
        if secret.get("rotate_after_days"):
            # No rotation function: the emulator moves AWSCURRENT to a new version and records
            # the rotation, as a rotation that ran would.
            manager.rotate_secret(
                SecretId=secret["name"],
                RotationRules={"AutomaticallyAfterDays": secret["rotate_after_days"]},
            )
    return bindings


def child_environment(endpoint_hostport: str) -> dict[str, str]:
    env = dict(os.environ)  # main() removed every AWS_ variable of the developer's
    env.update(
        AWS_ACCESS_KEY_ID="dev",
        AWS_SECRET_ACCESS_KEY="dev",
        AWS_REGION=REGION,
        AWS_ENDPOINT_URL=f"http://{endpoint_hostport}",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        SWITCHBOARD_LOCAL_ENDPOINTS=",".join(f"{name}={endpoint_hostport}" for name in ENDPOINTS),
    )
    return env


def die_with_parent() -> None:
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", required=True, type=Path)
    parser.add_argument("--secrets", required=True, type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run after --")

    # The developer's own AWS settings (keys, profile, config files, endpoints) play no part:
    # neither the seeding below nor the gateway sees them.
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)

    catalog = yaml.safe_load(args.catalog.read_text())
    tools = bound_tools(catalog)
    secrets = json.loads(args.secrets.read_text())["secrets"]

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    hostport = f"{host}:{port}"
    run = Path(tempfile.mkdtemp(prefix="switchboard-dev-aws-"))
    try:
        bindings = run / "bindings.json"
        bindings.write_text(json.dumps(seed(f"http://{hostport}", tools, secrets), indent=2))
        say(
            f"AWS emulator (moto: STS, IAM, Secrets Manager) on {hostport}; work roles for "
            f"{', '.join(t['name'] for t in tools) or 'no tool'}; secrets {', '.join(s['name'] for s in secrets)}"
        )
        # Ctrl-C goes to the whole foreground group: the gateway shuts down on it, this process
        # waits for that. SIGTERM and SIGHUP, sent to this process only, are passed on. (Handlers,
        # unlike ignored signals, are reset in the child by exec.)
        started: list[subprocess.Popen] = []
        signal.signal(signal.SIGINT, lambda *_: None)
        for forwarded in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(forwarded, lambda signum, _frame: [c.send_signal(signum) for c in started])
        child = subprocess.Popen(
            [*command, "--bindings", str(bindings)], env=child_environment(hostport), preexec_fn=die_with_parent
        )
        started.append(child)
        return child.wait()
    finally:
        server.stop()
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
