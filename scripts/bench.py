"""The benchmark suite of scripts/bench (issue 12), in one run on one machine, oha as the load
generator. Five sections (`--only` picks some):

- overhead: the same `tools/call` of `echo` through Switchboard with a backend that does no work
  (test-tools/src/bin/switchboard-bench-gateway.rs: host guard, authentication, authorization,
  schema validation, audit, metrics) and through a bare rmcp server with no auth
  (test-tools/src/bin/switchboard-bench-bare.rs): throughput against concurrency (closed loop)
  and latency at fixed offered rates (open loop, `oha -q RATE --latency-correction`, so queueing
  shows); the servers alternate, medians of RUNS runs, ratios between medians of one run.
- sandbox: the day-one `echo` through `switchboard serve` and its local backend, each call
  starting its sandbox and with sandboxes prepared ahead (`local.prepared`), with the CPU each
  call cost; then test-tools/src/bin/switchboard-bench-sandbox.rs, phase by phase.
- concurrency: 1 to 1,000 calls in flight against the sandboxed `echo`: answers, refusals, the
  gateway's peak RSS, and what is left afterwards (processes, control groups, uid leases, mounts).
- traces: the sandboxed `echo` (prepared sandboxes) with a client `traceparent`, through a
  gateway without an OTLP endpoint and one exporting every call's spans to a receiver in this
  process: what tracing costs, and that without an endpoint nothing is sent.
- aws: AWS API calls per tool call for the Lambda and Fargate backends, counted on the wire by
  those suites' own tests against their emulators.

Prints the tables; with --write also BENCHMARKS.md and PNG plots under docs/bench/; with --quick a
smoke run of seconds (CI, tests/bench; the aws section is left to its suites there). Run through
scripts/bench, which builds and installs what this needs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "target" / "release"
BODY = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "echo",
            "arguments": {"message": "hello from the benchmark"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
)
HEADERS = [
    ("Content-Type", "application/json"),
    ("Accept", "application/json, text/event-stream"),
    ("MCP-Protocol-Version", "2026-07-28"),
    ("Mcp-Method", "tools/call"),
    ("Mcp-Name", "echo"),
]
TARGET_ADDED_P99_MS = 1.0
TARGET_THROUGHPUT_RATIO = 0.5
TARGET_RATE = 1000
# The benchmarks' `echo`: for the sandboxed runs the same tool as the day-one catalog
# (examples/catalog.yaml) through the real local backend (`switchboard serve`); for the overhead
# run the bench gateway answers it without running `command`.
SANDBOX_CATALOG = """version: 1
gateway:
  limits:
    max_in_flight: {max_in_flight}
tools:
  - name: echo
    description: Returns the message it is given.
    input_schema:
      type: object
      properties:
        message: {{type: string, maxLength: 4096}}
      required: [message]
      additionalProperties: false
    backend: local
    local:
      command: ["{tool}", "echo"]
      prepared: {prepared}
    timeout_seconds: 10
    memory_mb: 128
    ephemeral_storage_mb: 16
    allow:
      groups: [bench]
"""
TARGET_SANDBOX_P50_MS = 5.0
TARGET_SANDBOX_P99_MS = 15.0
TARGET_SANDBOX_RPS = 300
TARGET_RSS_MB = 64
# The local backend's default host uids (gateway/src/backend/local/mod.rs, LocalOptions) and
# their lock folder: what a leaked sandbox would still hold.
SANDBOX_UID_BASE, SANDBOX_UID_COUNT = 1_700_000_000, 1024
UID_LOCK_DIR = Path("/run/switchboard/uids")


@dataclass
class Server:
    name: str
    url: str
    token: str | None
    process: subprocess.Popen
    log: Path
    extra: list[tuple[str, str]] = field(default_factory=list)

    def headers(self) -> list[tuple[str, str]]:
        auth = [("Authorization", f"Bearer {self.token}")] if self.token else []
        return HEADERS + auth + self.extra


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    ok: int
    other: dict = field(default_factory=dict)
    # CPU ms per answered call: the whole machine's, and the gateway's with its sandboxes.
    machine_ms: float = float("nan")
    tree_ms: float = float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(server: Server, path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            sys.exit(f"{server.name} exited: {server.log.read_text()[-2000:]}")
        try:
            call(server)
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{server.name} did not answer on {server.url}")


def call(server: Server) -> dict:
    request = urllib.request.Request(server.url, data=BODY.encode(), method="POST")
    for k, v in server.headers():
        request.add_header(k, v)
    with urllib.request.urlopen(request, timeout=5) as r:
        text = r.read().decode()
    data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    return json.loads(data[0] if data else text)


def start(work: Path) -> list[Server]:
    catalog = work / "catalog.yaml"
    catalog.write_text(SANDBOX_CATALOG.format(tool="/bin/true", max_in_flight=256, prepared=0))
    key = work / "dev-key.pem"
    gw_port, bare_port = free_port(), free_port()
    gw_url = f"http://127.0.0.1:{gw_port}/mcp"
    env = dict(os.environ, NO_COLOR="1")
    gw_log, bare_log = work / "switchboard.log", work / "bare.log"
    gw = subprocess.Popen(
        [str(RELEASE / "switchboard-bench-gateway"), str(catalog), f"127.0.0.1:{gw_port}", str(key), str(work / "audit.jsonl")],
        stdout=subprocess.DEVNULL, stderr=open(gw_log, "wb"), env=env,
    )  # fmt: skip
    bare = subprocess.Popen(
        [str(RELEASE / "switchboard-bench-bare"), f"127.0.0.1:{bare_port}"],
        stdout=subprocess.DEVNULL, stderr=open(bare_log, "wb"), env=env,
    )  # fmt: skip
    for _ in range(100):
        if key.exists():
            break
        time.sleep(0.05)
    token = subprocess.run(
        [str(RELEASE / "switchboard"), "dev-token", "--dev-key", str(key), "--sub", "bench", "--group", "bench",
         "--audience", gw_url, "--ttl", "2h"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    servers = [
        Server("switchboard", gw_url, token, gw, gw_log),
        Server("bare rmcp", f"http://127.0.0.1:{bare_port}/mcp", None, bare, bare_log),
    ]
    for s in servers:
        wait_healthy(s, "/mcp")
        answer = call(s)
        if answer.get("result", {}).get("structuredContent") != {"message": "hello from the benchmark"}:
            sys.exit(f"{s.name} answered the benchmark's call with {answer}")
    return servers


def mint_token(key: Path, url: str) -> str:
    return subprocess.run(
        [str(RELEASE / "switchboard"), "dev-token", "--dev-key", str(key), "--sub", "bench", "--group", "bench",
         "--audience", url, "--ttl", "2h"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def start_sandboxed(work: Path, max_in_flight: int = 256, prepared: int = 0, env: dict | None = None) -> Server:
    """`switchboard serve` with the local backend, serving the sandboxed `echo` (with `prepared`
    sandboxes started ahead of their calls), with `env` added to its environment."""
    catalog = work / "sandbox-catalog.yaml"
    catalog.write_text(
        SANDBOX_CATALOG.format(tool=RELEASE / "switchboard-tool", max_in_flight=max_in_flight, prepared=prepared)
    )
    key = work / "dev-key.pem"
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    log = work / "switchboard-sandboxed.log"
    proc = subprocess.Popen(
        [str(RELEASE / "switchboard"), "serve", "--catalog", str(catalog), "--dev", "--dev-key", str(key),
         "--listen", f"127.0.0.1:{port}", "--audit-log", str(work / "audit-sandboxed.jsonl")],
        stdout=subprocess.DEVNULL, stderr=open(log, "wb"), env=dict(os.environ, NO_COLOR="1", **(env or {})),
    )  # fmt: skip
    for _ in range(200):
        if key.exists():
            break
        time.sleep(0.05)
    server = Server("switchboard, sandboxed", url, mint_token(key, url), proc, log)
    wait_healthy(server, "/mcp")
    answer = call(server)
    if answer.get("result", {}).get("structuredContent") != {"message": "hello from the benchmark"}:
        stop([server])
        sys.exit(f"the sandboxed echo answered the benchmark's call with {answer}")
    return server


def stop(servers: list[Server]) -> None:
    for s in servers:
        if s.process.poll() is None:
            s.process.send_signal(signal.SIGTERM)
    for s in servers:
        try:
            s.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            s.process.kill()
            s.process.wait()


def machine_busy_ms() -> float:
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return sum(int(f[i]) for i in (0, 1, 2, 5, 6)) * 1000 / os.sysconf("SC_CLK_TCK")


def tree_cpu_ms(process: subprocess.Popen) -> float:
    """CPU of the process and of its reaped descendants (every sandbox it started)."""
    f = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15]) * 1000 / os.sysconf("SC_CLK_TCK")


def metric(server: Server, name: str, **labels: str) -> float:
    base = server.url.rsplit("/mcp", 1)[0]
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def oha(oha_bin: str, server: Server, duration: float, concurrency: int, rate: int | None, work: Path) -> Sample:
    out = work / "oha.json"
    cmd = [oha_bin, "--no-tui", "--output-format", "json", "-o", str(out), "-z", f"{duration}s",
           "-c", str(concurrency), "-m", "POST", "-d", BODY, "--wait-ongoing-requests-after-deadline"]  # fmt: skip
    for k, v in server.headers():
        cmd += ["-H", f"{k}: {v}"]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    cmd.append(server.url)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    d = json.loads(out.read_text())
    codes = {str(k): v for k, v in (d.get("statusCodeDistribution") or {}).items()}
    ok = codes.pop("200", 0)
    errors = d.get("errorDistribution") or {}
    pct = d.get("latencyPercentiles") or {}
    return Sample(
        rps=ok / duration,
        p50_ms=(pct.get("p50") or 0) * 1000,
        p99_ms=(pct.get("p99") or 0) * 1000,
        ok=ok,
        other={**codes, **errors},
    )


def oha_cpu(oha_bin: str, server: Server, duration: float, concurrency: int, rate: int | None, work: Path) -> Sample:
    """`oha`, with the CPU the run cost per answered call."""
    m0, t0 = machine_busy_ms(), tree_cpu_ms(server.process)
    sample = oha(oha_bin, server, duration, concurrency, rate, work)
    sample.machine_ms = (machine_busy_ms() - m0) / max(sample.ok, 1)
    sample.tree_ms = (tree_cpu_ms(server.process) - t0) / max(sample.ok, 1)
    return sample


def median_sample(samples: list[Sample]) -> Sample:
    other: dict = {}
    for s in samples:
        for k, v in s.other.items():
            other[k] = other.get(k, 0) + v
    return Sample(
        rps=statistics.median(s.rps for s in samples),
        p50_ms=statistics.median(s.p50_ms for s in samples),
        p99_ms=statistics.median(s.p99_ms for s in samples),
        ok=sum(s.ok for s in samples),
        other=other,
        machine_ms=statistics.median(s.machine_ms for s in samples),
        tree_ms=statistics.median(s.tree_ms for s in samples),
    )


def measure(oha_bin, servers, runs, duration, concurrencies, rates, work):
    closed = {s.name: {c: [] for c in concurrencies} for s in servers}
    opened = {s.name: {r: [] for r in rates} for s in servers}
    for run in range(runs):
        for c in concurrencies:
            for s in servers if run % 2 == 0 else reversed(servers):
                closed[s.name][c].append(oha(oha_bin, s, duration, c, None, work))
        for r in rates:
            # Enough connections that the rate is never held back by a closed loop.
            c = max(8, r // 50)
            for s in servers if run % 2 == 0 else reversed(servers):
                opened[s.name][r].append(oha(oha_bin, s, duration, c, r, work))
        print(f"  run {run + 1} of {runs} done", file=sys.stderr, flush=True)
    closed = {n: {c: median_sample(v) for c, v in by.items()} for n, by in closed.items()}
    opened = {n: {r: median_sample(v) for r, v in by.items()} for n, by in opened.items()}
    return closed, opened


PREPARED = 2
MODES = ("on demand", f"prepared: {PREPARED}")


def measure_sandbox(oha_bin, work, runs, duration, concurrencies, rates, phase_runs):
    """The sandboxed `echo` end to end (closed and open loop, CPU per call), each call starting
    its sandbox and with sandboxes prepared ahead; then phase by phase."""
    results = {}
    for mode in MODES:
        prepared = PREPARED if mode != "on demand" else 0
        server = start_sandboxed(work, prepared=prepared)
        try:
            if prepared:
                # The prepared sandboxes are started before the first call is sent.
                time.sleep(0.5)
            closed = {c: [] for c in concurrencies}
            opened = {r: [] for r in rates}
            for _ in range(runs):
                for c in concurrencies:
                    closed[c].append(oha_cpu(oha_bin, server, duration, c, None, work))
                for r in rates:
                    opened[r].append(oha_cpu(oha_bin, server, duration, max(8, r // 10), r, work))
            served = metric(server, "switchboard_sandbox_prepared_served_total")
            missed = metric(server, "switchboard_sandbox_prepared_missed_total")
            results[mode] = {
                "closed": {c: median_sample(v) for c, v in closed.items()},
                "opened": {r: median_sample(v) for r, v in opened.items()},
                "rss": peak_rss_mb(server.process),
                "served": served,
                "missed": missed,
            }
        finally:
            stop([server])
    out = subprocess.run(
        [str(RELEASE / "switchboard-bench-sandbox"), str(work / "sandbox-catalog.yaml"), "echo", str(phase_runs)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    phases = [json.loads(line) for line in out.splitlines() if line.strip()]
    return results, phases


def sandbox_table(results, phases) -> tuple[str, list[tuple[str, str, str, str]]]:
    lines = [
        "| sandboxes | load | calls/s | p50 / p99 ms | CPU ms per call: machine / gateway and sandboxes |",
        "|---|---|---|---|---|",
    ]
    for mode, r in results.items():
        for c, s in r["closed"].items():
            lines.append(
                f"| {mode} | closed loop, {c} connection(s) | {s.rps:,.0f} | {s.p50_ms:.2f} / {s.p99_ms:.2f} | "
                f"{s.machine_ms:.2f} / {s.tree_ms:.2f} |"
            )
        for rate, s in r["opened"].items():
            lines.append(
                f"| {mode} | open loop, {rate} calls/s offered | {s.rps:,.0f} | {s.p50_ms:.2f} / {s.p99_ms:.2f} | "
                f"{s.machine_ms:.2f} / {s.tree_ms:.2f} |"
            )
        lines.append(f"| {mode} | peak RSS of the gateway after the runs, MB | {r['rss']:.1f} | | |")
        if r["served"] or r["missed"]:
            lines.append(
                f"| {mode} | calls served by a prepared sandbox / that started their own | "
                f"{r['served']:,.0f} / {r['missed']:,.0f} | | |"
            )
        errors = {k: v for by in (r["closed"], r["opened"]) for s in by.values() for k, v in s.other.items()}
        if errors:
            lines.append(f"| {mode} | answers other than 200 | {errors} | | |")
    plines = [
        "| phase (each row adds one to the row before) | wall p50 / p99 ms | spawn p50 / p99 ms "
        "| CPU ms per call: process tree / machine | added CPU ms (tree) |",
        "|---|---|---|---|---|",
    ]
    before = None
    for p in phases:
        added = "" if before is None else f"{p['cpu_ms'] - before:+.2f}"
        before = p["cpu_ms"]
        plines.append(
            f"| {p['variant']} | {p['wall_p50_ms']:.2f} / {p['wall_p99_ms']:.2f} | "
            f"{p['spawn_p50_ms']:.2f} / {p['spawn_p99_ms']:.2f} | {p['cpu_ms']:.2f} / {p['machine_cpu_ms']:.2f} | {added} |"
        )
    groups = [p for p in phases if "cgroup_make_ms" in p]
    if groups:
        g = groups[-1]
        plines.append(
            f"| (control group: made in {g['cgroup_make_ms']:.2f} ms, emptied and removed in "
            f"{g['cgroup_remove_ms']:.2f} ms p50, {g['cgroup_remove_p99_ms']:.2f} ms p99) | | | | |"
        )
    targets = []
    for mode, r in results.items():
        light = r["opened"][min(r["opened"])]
        rate = min(r["opened"])
        targets += [
            (f"sandboxed echo p50 at {rate} calls/s, {mode}", f"at most {TARGET_SANDBOX_P50_MS:g} ms",
             f"{light.p50_ms:.2f} ms", "met" if light.p50_ms <= TARGET_SANDBOX_P50_MS else "missed"),
            (f"sandboxed echo p99 at {rate} calls/s, {mode}", f"at most {TARGET_SANDBOX_P99_MS:g} ms",
             f"{light.p99_ms:.2f} ms", "met" if light.p99_ms <= TARGET_SANDBOX_P99_MS else "missed"),
        ]  # fmt: skip
    best = max(s.rps for r in results.values() for s in r["closed"].values())
    targets.append(
        ("sandboxed calls/s at best", f"at least {TARGET_SANDBOX_RPS}", f"{best:,.0f}",
         "met" if best >= TARGET_SANDBOX_RPS else "missed")
    )  # fmt: skip
    NOTES["sandbox"] = sandbox_notes(results, phases, targets)
    return "\n".join(lines) + "\n\n" + "\n".join(plines), targets


# What holds back each missed target, by section, worked out from the figures of the run.
NOTES: dict[str, list[str]] = {}


def sandbox_notes(results, phases, targets) -> list[str]:
    missed = {t[0] for t in targets if t[3] == "missed"}
    by = {p["variant"]: p for p in phases}
    notes = []
    if not by or not missed:
        return notes
    whole, tool = by["uid lease"], by["exec"]
    if any("on demand" in m for m in missed):
        notes.append(
            f"*On demand*, a call waits for its sandbox to start: {whole['wall_p50_ms']:.2f} ms p50 from spawn to "
            f"exit without the HTTP path, {tool['wall_p50_ms']:.2f} ms of it the tool's own start and run "
            f"(the *exec* row). Its p99 is the control group: entering it (the spawn column) takes "
            f"{by['control group']['spawn_p99_ms']:.1f} ms at p99 against "
            f"{by['seccomp, limits, environment']['spawn_p99_ms']:.1f} ms without one, because on cgroup v1 a write "
            "to `cgroup.procs` waits for an RCU grace period. *Prepared* sandboxes take both off the call's path; "
            "on a cgroup v2 host the child could be started in its group directly (`clone3` with "
            "`CLONE_INTO_CGROUP`), which the gateway does not do yet."
        )
    if "sandboxed calls/s at best" in missed:
        best = max((s for r in results.values() for s in r["closed"].values()), key=lambda s: s.rps)
        bwrap = by["bwrap"]["cpu_ms"] - tool["cpu_ms"]
        notes.append(
            f"*Calls/s* is bounded by CPU: at the best rate each call cost {best.machine_ms:.2f} ms of the machine's "
            f"CPU (oha and the kernel's workers included), so {os.cpu_count()} cores give at most about "
            f"{os.cpu_count() * 1000 / best.machine_ms:,.0f} calls/s even without an idle moment. Of the {whole['cpu_ms']:.2f} ms the sandbox itself costs, "
            f"{tool['cpu_ms']:.2f} ms is the tool's own start and run and {bwrap:.2f} ms bubblewrap's start (two "
            "executions of dynamically linked programs: the loader, relocations, and glibc's CPU feature "
            "probing, slow on this virtual machine); the namespaces, mounts, seccomp, limits and control group "
            f"add {whole['cpu_ms'] - by['bwrap']['cpu_ms']:.2f} ms. Prepared sandboxes do not lower this: "
            "every call still gets a sandbox of its own."
        )
    return notes


def leaks(server: Server, mounts_before: int) -> dict:
    """What a finished run left behind, with the gateway still running and idle."""
    # Calls still being torn down when the load stopped: give them their few milliseconds.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and metric(server, "switchboard_tool_calls_in_flight") > 0:
        time.sleep(0.1)
    time.sleep(0.5)
    procs = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid = int(next(l for l in status.read_text().splitlines() if l.startswith("Uid:")).split()[1])
        except (OSError, StopIteration, ValueError):
            continue
        if SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + SANDBOX_UID_COUNT:
            procs += 1
    groups = 0
    for hierarchy in Path("/sys/fs/cgroup").glob("*"):
        for parent in [hierarchy / f"switchboard-{server.process.pid}", *hierarchy.glob(f"**/switchboard-{server.process.pid}")]:
            if parent.is_dir():
                groups += sum(1 for d in parent.iterdir() if d.is_dir())
    locks = 0
    import fcntl

    for lock in UID_LOCK_DIR.glob("*") if UID_LOCK_DIR.is_dir() else []:
        try:
            with open(lock, "a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
                except OSError:
                    locks += 1
        except OSError:
            continue
    mounts = len(Path("/proc/self/mountinfo").read_text().splitlines()) - mounts_before
    return {"processes": procs, "control groups": groups, "uid leases": locks, "mounts": mounts,
            "calls in flight": int(metric(server, "switchboard_tool_calls_in_flight"))}  # fmt: skip


def measure_concurrency(oha_bin, work, duration, levels):
    """1 to 1,000 calls in flight against the sandboxed echo; a fresh gateway for each level."""
    rows = {}
    for c in levels:
        mounts_before = len(Path("/proc/self/mountinfo").read_text().splitlines())
        server = start_sandboxed(work)
        try:
            ok0 = metric(server, "switchboard_tool_calls_total", outcome="ok")
            busy0 = metric(server, "switchboard_tool_calls_total", outcome="busy")
            sample = oha(oha_bin, server, duration, c, None, work)
            ok = metric(server, "switchboard_tool_calls_total", outcome="ok") - ok0
            busy = metric(server, "switchboard_tool_calls_total", outcome="busy") - busy0
            shed = metric(server, "switchboard_requests_rejected_total", reason="busy")
            left = leaks(server, mounts_before)
            rss = peak_rss_mb(server.process)
        finally:
            stop([server])
        rows[c] = {"sample": sample, "ok": ok, "busy": busy, "shed": shed, "rss": rss, "leaks": left,
                   "duration": duration}  # fmt: skip
    return rows


def concurrency_table(rows) -> tuple[str, list[tuple[str, str, str, str]]]:
    lines = [
        "| calls in flight | tool results/s | answers p50 / p99 ms | refused as busy: calls / requests (503) "
        "| other answers "
        "| gateway peak RSS, MB | left after the run |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, r in rows.items():
        s = r["sample"]
        left = ", ".join(f"{v} {k}" for k, v in r["leaks"].items())
        lines.append(
            f"| {c} | {r['ok'] / r['duration']:,.0f} | {s.p50_ms:.2f} / {s.p99_ms:.2f} | {r['busy']:,.0f} / {r['shed']:,.0f} | "
            f"{s.other or 'none'} | {r['rss']:.1f} | {left} |"
        )
    top = rows[max(rows)]
    leaked = {c: {k: v for k, v in r["leaks"].items() if v} for c, r in rows.items()}
    leaked = {c: v for c, v in leaked.items() if v}
    targets = [
        (f"gateway peak RSS with {max(rows):,} calls in flight", f"under {TARGET_RSS_MB} MB", f"{top['rss']:.1f} MB",
         "met" if top["rss"] < TARGET_RSS_MB else "missed"),
        ("left after every run (processes, control groups, uid leases, mounts, calls)", "nothing",
         "nothing" if not leaked else str(leaked), "met" if not leaked else "missed"),
        (f"answers with {max(rows):,} calls in flight, p99", "quick (busy, not queued)",
         f"p50 {top['sample'].p50_ms:,.0f} ms, p99 {top['sample'].p99_ms:,.0f} ms; "
         f"{top['busy'] + top['shed']:,.0f} refused as busy", ""),
    ]  # fmt: skip
    NOTES["concurrency"] = []
    if top["rss"] >= TARGET_RSS_MB:
        NOTES["concurrency"].append(
            f"*Peak RSS* with {max(rows):,} connections: the sandboxes are bounded (the running limit), and so are "
            f"the requests being handled (256 + 64; {top['shed']:,.0f} POSTs were refused with 503 before their "
            "body was read), so what remains is per connection and per request in the HTTP stack and the MCP "
            "transport (hyper's buffers for each open connection, rmcp's per-request service for each request "
            "being handled), which the gateway does not control. A lower `gateway.limits.max_in_flight` lowers "
            "the request bound with it."
        )
    return "\n".join(lines), targets


AWS_RUNS = {
    # The suites' own tests, narrowed to the one that counts a series of calls on the wire; each
    # starts its emulators (tests/lambda: LocalStack; tests/fargate: moto) and stops them again.
    "lambda": (["bash", "tests/lambda/run.sh"],
               {"LAMBDA_TEST_ARGS": "no-such-test", "E2E_PYTEST_ARGS": "-k costs_exactly_two"}),
    "fargate": (["bash", "tests/fargate/run.sh"], {"FARGATE_PYTEST_ARGS": "-k costs_a_bounded"}),
}  # fmt: skip


def measure_aws(work: Path) -> dict:
    """AWS API calls per tool call, counted on the wire by the Lambda and Fargate suites."""
    out = {}
    for name, (cmd, extra) in AWS_RUNS.items():
        path, log = work / f"aws-{name}.json", work / f"aws-{name}.log"
        with open(log, "wb") as f:
            done = subprocess.run(cmd, cwd=REPO, env={**os.environ, **extra, "BENCH_AWS_OUT": str(path)},
                                  stdout=f, stderr=subprocess.STDOUT)  # fmt: skip
        if done.returncode != 0 or not path.exists():
            sys.exit(f"aws: {' '.join(cmd)} failed:\n{log.read_text()[-3000:]}")
        out[name] = json.loads(path.read_text())
    return out


def aws_table(aws: dict) -> tuple[str, list[tuple[str, str, str, str]]]:
    lines = [
        "| backend | AWS calls per tool call: min / median / max | by operation (min / median / max) "
        "| gateway time outside them, p50 / p90 ms: by its audit line / at the client |",
        "|---|---|---|---|",
    ]
    for name, d in aws.items():
        total = d["total_per_call"]
        ops = ", ".join(
            f"{op} {v[0]}" if v[0] == v[2] else f"{op} {v[0]} / {v[1]} / {v[2]}"
            for op, v in d["aws_calls_per_call"].items()
        )
        audit = d.get("audit_outside_aws_and_wait_ms") or d["audit_outside_ms"]
        client = d.get("outside_aws_and_wait_ms") or d["outside_ms"]
        lines.append(
            f"| {name} ({d['calls']} calls of `{d['tool']}`) | {total[0]} / {total[1]} / {total[2]} | {ops} | "
            f"{audit['p50']:.1f} / {audit['p90']:.1f} — {client['p50']:.1f} / {client['p90']:.1f} |"
        )
    targets = []
    if "lambda" in aws:
        t = aws["lambda"]["total_per_call"]
        targets.append(("AWS calls per Lambda tool call", "exactly 2 (AssumeRole, Invoke)", f"{t[0]} to {t[2]}",
                        "met" if t[0] == t[2] == 2 else "missed"))  # fmt: skip
    if "fargate" in aws:
        d = aws["fargate"]
        lo, hi = d["bound"]["total_range"]
        t = d["total_per_call"]
        targets.append((
            "AWS calls per Fargate tool call", f"bounded: {d['bound']['total']}, N polls from "
            f"{d['bound']['polls']['min']} to {d['bound']['polls']['max']}: {lo} to {hi}", f"{t[0]} to {t[2]}",
            "met" if lo <= t[0] and t[2] <= hi else "missed",
        ))  # fmt: skip
    NOTES["aws"] = [
        f"{t[0]}: {t[2]} against {t[1]}." for t in targets if t[3] == "missed"
    ]
    return "\n".join(lines), targets


TRACE_MODES = ("no OTLP endpoint", "exporting over OTLP")
# A client's W3C trace context, as an agent that traces its own work would send it.
CLIENT_TRACEPARENT = ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


class OtlpSink:
    """An OTLP/HTTP traces endpoint in this process: answers every export with 200 and counts the
    requests and their bytes (what the gateway sent, not decoded: tests/traces decodes)."""

    def __init__(self) -> None:
        import http.server
        import threading

        sink = self
        self.requests = 0
        self.bytes = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.requests += 1
                sink.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def measure_traces(oha_bin, work, runs, duration, concurrencies, rates):
    """The sandboxed `echo` (prepared sandboxes, so the sandbox's start is not in the figures)
    with a client traceparent, through a gateway without an OTLP endpoint and through one
    exporting to an in-process sink; the two gateways alternate within a run."""
    sinks = {mode: OtlpSink() for mode in TRACE_MODES}
    envs = {TRACE_MODES[0]: {}, TRACE_MODES[1]: {"OTEL_EXPORTER_OTLP_ENDPOINT": sinks[TRACE_MODES[1]].url}}
    servers = {}
    try:
        for mode in TRACE_MODES:
            servers[mode] = start_sandboxed(work, prepared=PREPARED, env=envs[mode])
            servers[mode].extra = [CLIENT_TRACEPARENT]
        closed = {m: {c: [] for c in concurrencies} for m in TRACE_MODES}
        opened = {m: {r: [] for r in rates} for m in TRACE_MODES}
        for run in range(runs):
            order = TRACE_MODES if run % 2 == 0 else tuple(reversed(TRACE_MODES))
            for c in concurrencies:
                for m in order:
                    closed[m][c].append(oha_cpu(oha_bin, servers[m], duration, c, None, work))
            for r in rates:
                for m in order:
                    opened[m][r].append(oha_cpu(oha_bin, servers[m], duration, max(4, r // 25), r, work))
            print(f"  run {run + 1} of {runs} done", file=sys.stderr, flush=True)
        calls = {m: metric(servers[m], "switchboard_tool_calls_total", outcome="ok") for m in TRACE_MODES}
    finally:
        stop(list(servers.values()))
    # Stopping flushes what the exporter still held.
    sent = {m: (sinks[m].requests, sinks[m].bytes) for m in TRACE_MODES}
    for sink in sinks.values():
        sink.close()
    return {
        m: {
            "closed": {c: median_sample(v) for c, v in closed[m].items()},
            "opened": {r: median_sample(v) for r, v in opened[m].items()},
            "calls": calls[m],
            "exports": sent[m][0],
            "export_bytes": sent[m][1],
        }
        for m in TRACE_MODES
    }


def traces_table(results) -> tuple[str, list[tuple[str, str, str, str]]]:
    off, on = (results[m] for m in TRACE_MODES)
    lines = [f"| measure | {TRACE_MODES[0]} | {TRACE_MODES[1]} |", "|---|---|---|"]
    for c in off["closed"]:
        a, b = off["closed"][c], on["closed"][c]
        lines.append(f"| traces: closed loop, {c} connection(s): calls/s | {a.rps:,.0f} | {b.rps:,.0f} |")
        lines.append(f"| traces: closed loop, {c} connection(s): p50 / p99 ms "
                     f"| {a.p50_ms:.2f} / {a.p99_ms:.2f} | {b.p50_ms:.2f} / {b.p99_ms:.2f} |")  # fmt: skip
        lines.append(f"| traces: closed loop, {c} connection(s): gateway CPU ms per call "
                     f"| {a.tree_ms:.2f} | {b.tree_ms:.2f} |")  # fmt: skip
    for r in off["opened"]:
        a, b = off["opened"][r], on["opened"][r]
        lines.append(f"| traces: open loop, {r} calls/s offered: p50 / p99 ms "
                     f"| {a.p50_ms:.2f} / {a.p99_ms:.2f} | {b.p50_ms:.2f} / {b.p99_ms:.2f} |")  # fmt: skip
    lines.append(f"| traces: calls answered / OTLP exports received (bytes) | {off['calls']:,.0f} / "
                 f"{off['exports']} ({off['export_bytes']:,}) | {on['calls']:,.0f} / {on['exports']} "
                 f"({on['export_bytes']:,}) |")  # fmt: skip
    c = max(off["closed"])
    added = on["closed"][c].p50_ms - off["closed"][c].p50_ms
    targets = [
        ("nothing exported without an OTLP endpoint", "0 exports", f"{off['exports']}",
         "met" if off["exports"] == 0 else "missed"),
        ("spans sent when exporting", "at least one export", f"{on['exports']}",
         "met" if on["exports"] > 0 else "missed"),
        (f"p50 added by exporting, closed loop at {c}", "reported (no target set)", f"{added:+.2f} ms", "figure"),
    ]  # fmt: skip
    NOTES["traces"] = []
    return "\n".join(lines), targets


def peak_rss_mb(process: subprocess.Popen) -> float:
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def table(closed, opened, rss) -> tuple[str, list[tuple[str, str, str, str]]]:
    sb, bare = "switchboard", "bare rmcp"
    lines = ["| measure | Switchboard | bare rmcp | ratio / difference |", "|---|---|---|---|"]
    for c, s in closed[sb].items():
        b = closed[bare][c]
        lines.append(
            f"| closed loop, {c} connection(s): calls/s | {s.rps:,.0f} | {b.rps:,.0f} | {s.rps / b.rps:.2f}x |"
        )
        lines.append(
            f"| closed loop, {c} connection(s): p50 / p99 ms | {s.p50_ms:.2f} / {s.p99_ms:.2f} | "
            f"{b.p50_ms:.2f} / {b.p99_ms:.2f} | +{s.p99_ms - b.p99_ms:.2f} ms p99 |"
        )
    for r, s in opened[sb].items():
        b = opened[bare][r]
        lines.append(
            f"| open loop, {r} calls/s offered: p50 / p99 ms | {s.p50_ms:.2f} / {s.p99_ms:.2f} | "
            f"{b.p50_ms:.2f} / {b.p99_ms:.2f} | +{s.p50_ms - b.p50_ms:.2f} ms p50, +{s.p99_ms - b.p99_ms:.2f} ms p99 |"
        )
    lines.append(f"| peak RSS after the run, MB | {rss[sb]:.1f} | {rss[bare]:.1f} | |")
    max_sb = max(v.rps for v in closed[sb].values())
    max_bare = max(v.rps for v in closed[bare].values())
    targets = []
    if TARGET_RATE in opened[sb]:
        added = opened[sb][TARGET_RATE].p99_ms - opened[bare][TARGET_RATE].p99_ms
        targets.append((
            f"p99 added at {TARGET_RATE} calls/s", f"at most {TARGET_ADDED_P99_MS:.0f} ms", f"{added:+.2f} ms",
            "met" if added <= TARGET_ADDED_P99_MS else "missed",
        ))  # fmt: skip
    ratio = max_sb / max_bare
    targets.append((
        "maximum throughput against the bare server", f"at least {TARGET_THROUGHPUT_RATIO}x",
        f"{ratio:.2f}x ({max_sb:,.0f} against {max_bare:,.0f} calls/s)",
        "met" if ratio >= TARGET_THROUGHPUT_RATIO else "missed",
    ))  # fmt: skip
    errors = {n: {k: v for by in (closed[n], opened[n]) for s in by.values() for k, v in s.other.items()} for n in closed}
    for n, e in errors.items():
        if e:
            lines.append(f"| {n}: answers other than 200 | {e} | | |")
    return "\n".join(lines), targets


def plots(closed, opened, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    names = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, by in closed.items():
        cs = sorted(by)
        ax.plot(cs, [by[c].rps for c in cs], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("connections (closed loop)")
    ax.set_ylabel("calls/s")
    ax.set_title("tools/call throughput against concurrency")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=100)
    names.append("throughput.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for (name, by), color in zip(opened.items(), ("tab:blue", "tab:green")):
        rs = sorted(by)
        ax.plot(rs, [by[r].p50_ms for r in rs], marker="o", color=color, label=f"{name} p50")
        ax.plot(rs, [by[r].p99_ms for r in rs], marker="s", linestyle="--", color=color, label=f"{name} p99")
    ax.set_xscale("log")
    ax.set_xlabel("offered calls/s (open loop)")
    ax.set_ylabel("latency, ms")
    ax.set_title("tools/call latency against offered load")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=100)
    names.append("latency.png")
    plt.close(fig)
    return names


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return f"{os.cpu_count()} cores ({model}), {int(mem) / 1024 / 1024:.0f} GiB, Linux {platform.release()}"


def target_table(targets) -> str:
    return "\n".join(["| target | goal | measured | |", "|---|---|---|---|"] + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets])


SECTIONS = ("overhead", "sandbox", "concurrency", "traces", "aws")


def notes_text(section: str) -> str:
    notes = NOTES.get(section) or []
    if not notes:
        return ""
    return "\n\nWhat holds back what was missed:\n\n" + "\n".join(f"- {n}" for n in notes)


def document(out, images, runs, duration, load_before) -> str:
    overhead_text, overhead_targets = out["overhead"]
    sandbox_text, sandbox_targets = out["sandbox"]
    conc_text, conc_targets = out["concurrency"]
    aws_text, aws_targets = out["aws"]
    traces_text, traces_targets = out["traces"]
    return (
        "# Benchmarks\n\n"
        "Written by `scripts/bench` (issue 12's suite; this file is its output, do not edit it by hand).\n\n"
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC\n"
        f"- Machine: {machine()}\n"
        f"- Command: `scripts/bench` ({runs} runs of {duration:g} s per figure; medians)\n"
        f"- Load average (1 min) before and after: {load_before:.2f} and {os.getloadavg()[0]:.2f}\n"
        "- Load generator: oha, on the same machine (it takes a share of the same cores).\n\n"
        "## Gateway overhead\n\n"
        "The same `tools/call` of `echo` (the 2026-07-28 revision: one POST, no session) through\n"
        "Switchboard with a backend that does no work (`test-tools/src/bin/switchboard-bench-gateway.rs`:\n"
        "host guard, token verification, authorization, schema validation, audit line, metrics, the rmcp\n"
        "transport) and through a bare rmcp server with no auth serving the same tool\n"
        "(`test-tools/src/bin/switchboard-bench-bare.rs`). Both log at `info` to a file, as `switchboard\n"
        "serve` does.\n\n"
        + overhead_text
        + "\n\n### Targets\n\n"
        + target_table(overhead_targets)
        + "\n\n### How to read them\n\n"
        "- *Closed loop*: each connection sends its next call when the last is answered; calls/s at\n"
        "  the highest concurrency that still gains is the maximum throughput.\n"
        "- *Open loop*: calls are sent at the offered rate whatever the answers do (`oha -q\n"
        "  --latency-correction`), so a stall shows as queueing in p99 instead of a slower sender.\n"
        "- Every figure is the median of the runs; the servers alternate within a run so that a noisy\n"
        "  moment of the machine falls on both. Ratios compare medians of the same run.\n"
        "- At low offered rates the machine idles between calls and each call pays for waking it, so\n"
        "  p99 can be higher at 100 calls/s than at 1,000.\n"
        "- These machines have 2 cores shared by the server, oha and the rest of the system: absolute\n"
        "  figures move with the machine's load; the ratios are what to compare across runs.\n\n"
        + "".join(f"![{i}](docs/bench/{i})\n\n" for i in images)
        + "## Sandboxed calls\n\n"
        "The day-one `echo` (`target/release/switchboard-tool echo`, as `examples/catalog.yaml` runs it)\n"
        "through `switchboard serve` and its local backend: every call in a fresh bubblewrap sandbox\n"
        "with its own namespaces, mounts, seccomp filter, control group and host uid. The first table\n"
        "is end to end (oha to the gateway and back). *CPU ms per call* is the busy time of every core\n"
        "while the run lasted (oha, the gateway, the sandboxes and the kernel's own workers), and the\n"
        "CPU of the gateway with the sandboxes it reaped, each divided by the calls answered.\n\n"
        "The second table is `test-tools/src/bin/switchboard-bench-sandbox.rs`: the same tool planned\n"
        "by the gateway's own code and started again and again without the HTTP path, each row adding\n"
        "one phase to the row before, so the difference between two rows is what that phase costs.\n"
        "*spawn* is the time until `exec` of the first program succeeded (the fork, the pre-exec work:\n"
        "entering the control group, limits; for the first row the tool itself); *machine* CPU includes\n"
        "what the kernel does in its workers after a sandbox is gone (tearing down its namespaces).\n\n"
        + sandbox_text
        + "\n\n### Targets\n\n"
        + target_table(sandbox_targets)
        + notes_text("sandbox")
        + "\n\n"
        + "## Concurrency\n\n"
        "The sandboxed `echo` with 1 to 1,000 calls in flight (oha, closed loop, one connection per\n"
        "call in flight, one run each, a fresh gateway with the default limits for each level). Three\n"
        "bounds refuse the excess at once instead of queueing it (`docs/sandbox.md`): the local\n"
        "backend's running limit (`SWITCHBOARD_LOCAL_MAX_RUNNING`, 8 per core: 16 here), the\n"
        "gateway's 256 tool calls in flight (both a JSON-RPC error *... retry later*), and 256 + 64\n"
        "POSTs being handled (HTTP 503 with `Retry-After`, before the body is read). *tool\n"
        "results/s* counts the calls that ran (`switchboard_tool_calls_total{outcome=\"ok\"}`),\n"
        "*refused as busy* the refused calls (`outcome=\"busy\"`) and requests\n"
        "(`switchboard_requests_rejected_total{reason=\"busy\"}`); the latencies are of every answer,\n"
        "refusals included, so with N connections retrying at once they are about N divided by the\n"
        "answers per second (a closed loop is a queue of N). *Left after the\n"
        "run* is counted once the gateway has no call in flight, before it stops: processes of the\n"
        "sandboxes' host uids, control groups under the gateway's own, uid lock files still locked,\n"
        "mounts added to the host's mount table.\n\n"
        + conc_text
        + "\n\n### Targets\n\n"
        + target_table(conc_targets)
        + notes_text("concurrency")
        + "\n\n"
        + "## Traces\n\n"
        "The sandboxed `echo` with `prepared: 2` (so that starting a sandbox is not in the figures),\n"
        "each call carrying a client `traceparent`, through `switchboard serve` without an OTLP endpoint\n"
        "and through one exporting every call's spans (`OTEL_EXPORTER_OTLP_ENDPOINT`) to an OTLP/HTTP\n"
        "endpoint in the benchmark's own process that answers 200 and counts what it received. The two\n"
        "gateways alternate within a run. Without an endpoint the gateway builds no exporter and its\n"
        "spans are disabled `tracing` spans; the last row shows that it sent nothing.\n\n"
        + traces_text
        + "\n\n### Targets\n\n"
        + target_table(traces_targets)
        + "\n\n"
        + "## AWS path\n\n"
        "What one tool call costs in AWS API calls, counted on the wire against the emulators by the\n"
        "suites' own tests (`tests/lambda/e2e/test_e2e.py::test_a_lambda_tool_call_costs_exactly_two_aws_calls`\n"
        "against LocalStack, `tests/fargate/test_fargate.py::test_a_fargate_tool_call_costs_a_bounded_number_of_aws_calls`\n"
        "against moto; both run in CI and fail on any other count): 20 sequential calls of `whoami`\n"
        "through the MCP Python SDK, each AWS request attributed to its call by what the wire carries\n"
        "(the role session name, the invocation id, the task ARN, the S3 key). A Fargate call polls\n"
        "`DescribeTasks` and reads the result object once per poll, so its count is 5 + 2N for N polls.\n"
        "*Gateway time outside them* is the call's duration minus the time the recorded AWS requests\n"
        "took (for Fargate also minus the wait for the task to store its result), once by the gateway's\n"
        "own audit line and once as the client saw it (the SDK, HTTP and token check included).\n\n"
        + aws_text
        + "\n\n### Targets\n\n"
        + target_table(aws_targets)
        + notes_text("aws")
        + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--oha", required=True)
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds (CI): nothing written")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md and docs/bench/*.png")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    args = parser.parse_args()
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    if unknown := [x for x in only if x not in SECTIONS]:
        parser.error(f"unknown section(s) {unknown}; known: {SECTIONS}")
    if args.write and set(only) != set(SECTIONS):
        parser.error("--write needs every section (BENCHMARKS.md is written whole)")
    if args.quick and "aws" in only:
        # Its suites' tests already run in CI (tests/lambda, tests/fargate): nothing to smoke.
        only.remove("aws")
    if args.quick:
        runs, duration, concurrencies, rates = 1, 1.0, [1, 10], [100]
        sb_conc, sb_rates, phase_runs, levels = [1, 4], [50], 20, [1, 100]
    else:
        runs, duration, concurrencies, rates = 3, 5.0, [1, 10, 32, 100], [100, 500, 1000, 2000]
        sb_conc, sb_rates, phase_runs, levels = [1, 2, 4, 8], [50, 100, 200], 300, [1, 10, 100, 1000]
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    started = time.monotonic()
    out: dict[str, tuple[str, list]] = {}
    images: list[str] = []
    failed = []
    try:
        if "overhead" in only:
            print(f"overhead: {runs} run(s) of {duration:g} s, closed loop at {concurrencies}, open loop at {rates}",
                  file=sys.stderr)  # fmt: skip
            servers = start(work)
            try:
                closed, opened = measure(args.oha, servers, runs, duration, concurrencies, rates, work)
                rss = {s.name: peak_rss_mb(s.process) for s in servers}
            finally:
                stop(servers)
            out["overhead"] = table(closed, opened, rss)
            if any(s.ok == 0 for by in (*closed.values(), *opened.values()) for s in by.values()):
                failed.append("overhead: a measurement got no successful answer")
            if args.write:
                images = plots(closed, opened, REPO / "docs" / "bench")
        if "sandbox" in only:
            print(f"sandbox: closed loop at {sb_conc}, open loop at {sb_rates}, {phase_runs} runs per phase",
                  file=sys.stderr)  # fmt: skip
            results, phases = measure_sandbox(args.oha, work, runs, duration, sb_conc, sb_rates, phase_runs)
            out["sandbox"] = sandbox_table(results, phases)
            for mode, r in results.items():
                if any(s.ok == 0 for by in (r["closed"], r["opened"]) for s in by.values()):
                    failed.append(f"sandbox, {mode}: a measurement got no successful answer")
            if not results[MODES[1]]["served"]:
                failed.append("sandbox: no call was served by a prepared sandbox")
        if "concurrency" in only:
            print(f"concurrency: {levels} calls in flight", file=sys.stderr)
            rows = measure_concurrency(args.oha, work, duration, levels)
            out["concurrency"] = concurrency_table(rows)
            for c, r in rows.items():
                if r["ok"] == 0:
                    failed.append(f"concurrency: no tool result with {c} calls in flight")
                if any(r["leaks"].values()):
                    failed.append(f"concurrency: left after {c} calls in flight: {r['leaks']}")
        if "traces" in only:
            tr_conc, tr_rates = sb_conc[-1:], sb_rates[:1]
            print(f"traces: closed loop at {tr_conc}, open loop at {tr_rates}, with and without an OTLP endpoint",
                  file=sys.stderr)  # fmt: skip
            results = measure_traces(args.oha, work, runs, duration, tr_conc, tr_rates)
            out["traces"] = traces_table(results)
            if any(s.ok == 0 for r in results.values() for by in (r["closed"], r["opened"]) for s in by.values()):
                failed.append("traces: a measurement got no successful answer")
            if results[TRACE_MODES[0]]["exports"] != 0:
                failed.append("traces: the gateway without an OTLP endpoint sent something")
            if results[TRACE_MODES[1]]["exports"] == 0:
                failed.append("traces: the exporting gateway sent nothing")
        if "aws" in only:
            print("aws: the Lambda and Fargate suites' wire counts (LocalStack, moto)", file=sys.stderr)
            out["aws"] = aws_table(measure_aws(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    titles = {"overhead": "Gateway overhead", "sandbox": "Sandboxed calls", "concurrency": "Concurrency",
              "traces": "Traces", "aws": "AWS path"}  # fmt: skip
    for name, (text, targets) in out.items():
        print(f"\n## {titles[name]}\n\n{text}\n\n{target_table(targets)}{notes_text(name)}")
    print(f"\n({time.monotonic() - started:.0f} s of measuring)", file=sys.stderr)
    for f in failed:
        print(f, file=sys.stderr)
    if failed:
        return 1
    if args.write:
        doc = REPO / "BENCHMARKS.md"
        doc.write_text(document(out, images, runs, duration, load_before))
        print(f"wrote {doc.relative_to(REPO)} and docs/bench/{{{','.join(images)}}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
