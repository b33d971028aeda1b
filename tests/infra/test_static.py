"""Checks of the committed files themselves, before anything runs."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO

OWNED = [
    "infra", "policies", "localstack", "tests/infra", "examples/catalog.aws.yaml", "docs/deploy-aws.md",
    ".github", "scripts/smoke-aws", "scripts/smoke_aws.py", "scripts/smoke-aws-requirements.lock",
]


def committed_or_staged(paths: list[str]) -> list:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *paths],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.split()
    return [REPO / p for p in listed if (REPO / p).is_file()]


def test_every_checkov_skip_is_justified_inline():
    skips = 0
    for path in committed_or_staged(["infra"]):
        if path.suffix != ".tf":
            continue
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                skips += 1
                m = re.search(r"#\s*checkov:skip=(CKV2?_AWS_\d+):(.+)$", line)
                assert m, f"{path.relative_to(REPO)}: malformed skip {line.strip()!r}"
                assert len(m.group(2).strip()) >= 40, f"{path.relative_to(REPO)}: {m.group(1)} has no real reason"
    assert skips > 0


def test_no_path_of_this_machine_in_committed_files():
    # Built from pieces so that this file does not match itself.
    roots = ["/" + "work/main", "/" + "root/", "/" + "opt/tf-plugins", "/" + "home/[a-z]", "/" + "tmp/[a-z]"]
    machine = re.compile("(" + "|".join(roots) + ")")
    for path in committed_or_staged(OWNED):
        if path.suffix in (".zip",):
            continue
        hits = machine.findall(path.read_text(errors="replace"))
        assert not hits, f"{path.relative_to(REPO)} names {hits}"


def test_localstack_lock_pins_the_set_known_to_start():
    lines = [
        l for l in (REPO / "localstack" / "requirements.lock").read_text().splitlines()
        if l.strip() and not l.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", l) for l in lines), "unpinned line"
    pins = dict(l.lower().split("==") for l in lines)
    # The pins LocalStack's host mode needs on these machines (LOCALSTACK.md).
    assert pins["localstack-core"] == "2026.3.0"
    assert pins["cbor2"] == "5.9.0"
    assert pins["cryptography"] == "44.0.3"
    assert pins["pyopenssl"] == "24.3.0"
    assert pins["service-identity"] == "24.2.0"
    assert pins["joserfc"] == "1.1.0"


def test_python_requirements_are_exact_pins():
    for lock in [
        "localstack/moto-requirements.lock",
        "tests/infra/requirements.lock",
        "scripts/dev-aws-requirements.lock",
        "scripts/bench-requirements.lock",
        "scripts/smoke-aws-requirements.lock",
    ]:
        for line in (REPO / lock).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", line), f"{lock}: {line}"


def test_policy_templates_are_the_only_policies():
    # infra/ renders documents from policies/; a policy written inline in HCL would escape the
    # linting of the rendered documents and the review of policies/README.md.
    for path in committed_or_staged(["infra"]):
        if path.suffix != ".tf":
            continue
        text = path.read_text()
        assert "aws_iam_policy_document" not in text, path
        for m in re.finditer(r"^\s*(policy|assume_role_policy)\s*=\s*(.*)$", text, flags=re.M):
            value = m.group(2).strip()
            rendered = "templatefile(" in value or value in ("(", "jsonencode(local.gateway_policy)")
            assert rendered, (path, m.group(0))


def test_rendered_session_policies_of_the_example_catalog_pass_parliament():
    # What the gateway's broker sends to STS per call (`switchboard session-policies` renders it
    # with a deadline of now + timeout), linted like the deployed policies.
    import json

    from parliament import analyze_policy_string, enhance_finding

    severities = ["MUTE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
    out = subprocess.run(
        [str(REPO / "target/release/switchboard"), "session-policies", str(REPO / "examples/catalog.aws.yaml")],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    policies = json.loads(out)
    assert {"terraform_plan", "state_validate", "tenant-files"} <= set(policies), sorted(policies)
    problems = []
    for tool, document in policies.items():
        for st in document["Statement"]:
            assert "aws:CurrentTime" in st["Condition"]["DateLessThan"], (tool, st)
        for finding in analyze_policy_string(json.dumps(document)).findings:
            finding = enhance_finding(finding)
            if severities.index(finding.severity) >= severities.index("MEDIUM"):
                problems.append(f"{tool}: {finding.severity} {finding.issue} {finding.detail}")
    assert not problems, "\n".join(problems)


def test_no_runtask_condition_key_names_the_tasks_network():
    # docs/deploy-aws.md ("What IAM cannot pin on ecs:RunTask") lists RunTask's condition keys and
    # says none covers the task's subnets, security groups or public IP. The list is the Service
    # Authorization Reference as the pinned parliament carries it.
    import json
    from pathlib import Path

    import parliament

    definition = json.loads((Path(parliament.__file__).parent / "iam_definition.json").read_text())
    (ecs,) = [s for s in definition if s["prefix"] == "ecs"]
    (run_task,) = [p for p in ecs["privileges"] if p["privilege"] == "RunTask"]
    keys = {k for r in run_task["resource_types"] for k in r["condition_keys"]}
    documented = {
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ecs:cluster",
        "ecs:capacity-provider", "ecs:enable-ebs-volumes", "ecs:enable-execute-command",
    }
    assert keys == documented, f"RunTask's condition keys changed: {sorted(keys ^ documented)}; update docs/deploy-aws.md"
    network = [k for k in keys if re.search(r"subnet|security-?group|public-?ip|vpc|network", k, re.I)]
    assert not network, network
    resources = {r["resource_type"] for r in run_task["resource_types"]}
    assert resources == {"task-definition*", ""}, resources
    text = (REPO / "docs" / "deploy-aws.md").read_text()
    for key in sorted(documented):
        assert f"`{key.replace('${TagKey}', '*')}`" in text, f"docs/deploy-aws.md does not name {key}"


def test_ci_workflow_runs_the_test_command_as_root_with_what_it_needs():
    # actionlint (run.sh) checks that the workflow is valid; this checks that it does the job.
    import yaml

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert 0 < job["timeout-minutes"] <= 90, "a run must end within CI's limit"
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    uses = [step.get("uses", "").split("@")[0] for step in job["steps"]]
    test_step = next(s["run"] for s in job["steps"] if ".ci/run" in s.get("run", ""))
    assert "sudo" in test_step, "the sandbox suites need root"
    assert (REPO / ".ci" / "run").read_text().rstrip().endswith("exec scripts/test")
    assert "kernel.apparmor_restrict_unprivileged_userns=0" in runs
    # The toolchain comes from rust-toolchain.toml, never from a second copy of its channel.
    assert "rust-toolchain.toml" in runs and "1.95" not in (REPO / ".github/workflows/ci.yml").read_text()
    # Python 3.13 where localstack/start and run.sh look for it, terraform unwrapped, the provider
    # mirror unpacked and named by TF_PROVIDER_MIRROR.
    py = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert py["with"]["python-version"] == "3.13"
    assert "python3.13" in runs
    tf = next(s for s in job["steps"] if s.get("uses", "").startswith("hashicorp/setup-terraform"))
    assert tf["with"]["terraform_wrapper"] is False
    assert workflow["env"]["TERRAFORM_VERSION"] == "1.11.4"
    assert "providers mirror" in runs and "TF_PROVIDER_MIRROR" in test_step
    assert "Swatinem/rust-cache" in uses and "actions/cache" in uses
