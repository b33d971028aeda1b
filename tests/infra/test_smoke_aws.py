"""scripts/smoke_aws.py's verdicts, without an account: its claims against a stand-in AWS that
enforces what an account must (every claim passes) and against stand-ins that each fail to
enforce one thing (that claim, and only the claims that depend on it, fail). The AWS mode cannot
run here; this shows that it fails an account that does not uphold a claim, rather than passing
it. The emulator mode runs for real at the end of run.sh."""

from __future__ import annotations

import sys

import botocore.exceptions
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import smoke_aws as sa  # noqa: E402

DEADLINE = 1_000_060.0
NOW = 1_000_000.0


def denied(op: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "... with an explicit deny in an identity-based policy"}}, op
    )


class Clock:
    def __init__(self):
        self.now = NOW

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeS3:
    def __init__(self, aws: "FakeAws"):
        self.aws = aws

    def head_object(self, Bucket, Key):
        return {"ContentLength": 5639}

    def get_object(self, Bucket, Key):
        if self.aws.enforce_vpc:
            raise denied("GetObject")
        return {"Body": b"{}"}


class FakeAws:
    """What an account answers, with switches for what it fails to enforce."""

    def __init__(self, clock: Clock, **broken):
        self.clock = clock
        self.enforce_deadline = "deadline" not in broken
        self.enforce_tenant = "tenant" not in broken
        self.enforce_vpc = "vpc" not in broken
        self.public_name_resolves = "dns" in broken
        self.calls: list[dict] = []

    def invoke(self, target, function, invocation):
        self.calls.append(invocation)
        if function == "arn:net-probe":
            return True, {"probes": [
                {"host": sa.PUBLIC_NAME, "port": 443, "resolved": self.public_name_resolves, "connected": False,
                 "exit": 1, "error": "" if self.public_name_resolves else "Name or service not known"},
                {"host": sa.PUBLIC_ADDRESS, "port": 443, "resolved": True, "connected": False, "exit": 124,
                 "error": "no answer within 6 s (timed out)"},
                {"host": "sts.eu-west-1.amazonaws.com", "port": 443, "resolved": True, "connected": False,
                 "exit": 124, "error": "no answer within 6 s (timed out)"},
            ]}
        # The tool never stops on its own before this: the script sets it after the deadline.
        assert invocation["deadlineUnixMs"] > DEADLINE * 1000
        late = self.enforce_deadline and self.clock.now >= DEADLINE
        foreign = self.enforce_tenant and invocation["sessionTags"]["tenant"] != sa.TENANT
        if late or foreign:
            return False, {"errorType": "ToolError",
                           "errorMessage": f'state "{sa.STATE_NAME}" not found for this tenant'}
        return True, {"content": [{"type": "text", "text": "0 findings"}]}


class FakeTarget:
    def __init__(self, aws: FakeAws, emulated: bool = False):
        self.aws, self.emulated, self.region = aws, emulated, "eu-west-1"

    def client(self, service, credentials=None):
        assert service == "s3"
        return FakeS3(self.aws)


def smoke(aws: FakeAws, emulated: bool = False) -> sa.Smoke:
    s = sa.Smoke.__new__(sa.Smoke)
    s.target = FakeTarget(aws, emulated)
    s.report = sa.Report()
    s.bucket = "sbsmoke-smoke-123456789012-eu-west-1"
    s.bindings = {"tools": {"state_validate": {"function_arn": "arn:state_validate"},
                            "net-probe": {"function_arn": "arn:net-probe"}}}
    return s


def run_in_vpc_claims(monkeypatch, **broken) -> dict[str, str]:
    clock = Clock()
    aws = FakeAws(clock, **broken)
    monkeypatch.setattr(sa.time, "time", clock.time)
    monkeypatch.setattr(sa.time, "sleep", clock.sleep)
    monkeypatch.setattr(sa, "invoke", aws.invoke)
    s = smoke(aws)
    request = {"Tags": [{"Key": "tool", "Value": "state_validate"}, {"Key": "tenant", "Value": sa.TENANT},
                        {"Key": "invocation", "Value": "inv"}]}
    answer = {"invocation": "inv", "Credentials": {
        "AccessKeyId": "ASIA", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": "2026-12-06T10:15:00Z"}}
    s.in_vpc_claims(request, answer, DEADLINE)
    s.outside_vpc_claim(answer["Credentials"])
    return {c.label: c.status for c in s.report.claims}


def test_an_account_that_enforces_everything_passes_every_claim(monkeypatch):
    assert run_in_vpc_claims(monkeypatch) == {"a0": "PASS", "c": "PASS", "d": "PASS", "a": "PASS", "b": "PASS"}


def test_credentials_that_outlive_the_deadline_fail_claim_a(monkeypatch):
    assert run_in_vpc_claims(monkeypatch, deadline=True) == {
        "a0": "PASS", "c": "PASS", "d": "PASS", "a": "FAIL", "b": "PASS"}


def test_credentials_that_read_another_tenant_fail_claim_c(monkeypatch):
    assert run_in_vpc_claims(monkeypatch, tenant=True)["c"] == "FAIL"


def test_credentials_that_work_outside_the_vpc_fail_claim_b(monkeypatch):
    assert run_in_vpc_claims(monkeypatch, vpc=True)["b"] == "FAIL"


def test_a_probe_that_resolves_a_public_name_fails_claim_d(monkeypatch):
    assert run_in_vpc_claims(monkeypatch, dns=True)["d"] == "FAIL"


def test_the_emulators_answering_200_is_not_enforced_here_never_passed():
    aws = FakeAws(Clock(), vpc=True)
    s = smoke(aws, emulated=True)
    s.outside_vpc_claim({"AccessKeyId": "a", "SecretAccessKey": "s", "SessionToken": "t"})
    s.probe_claim()
    assert [c.status for c in s.report.claims] == [sa.NOT_HERE, sa.NOT_HERE]
    assert "200 OK" in s.report.claims[0].evidence


def test_it_refuses_to_start_without_an_account_named():
    for argv in ([], ["--account", "12345"], ["--account", "123456789012", "--emulators"],
                 ["--account", "123456789012", "--prefix", "Bad_Prefix"]):
        with pytest.raises(SystemExit) as e:
            sa.main(argv)
        assert e.value.code == 2, argv
