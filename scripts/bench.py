"""The gateway-overhead benchmark of scripts/bench: the same `tools/call` of `echo` through
Switchboard (host guard, authentication, authorization, schema validation, audit, metrics; a
backend that does no work: test-tools/src/bin/switchboard-bench-gateway.rs) and through a bare
rmcp server with no auth (test-tools/src/bin/switchboard-bench-bare.rs), with oha as the load
generator, in one run on one machine.

- Throughput against concurrency: closed loop, each concurrency for DURATION, both servers.
- Latency at fixed offered rates: open loop (`oha -q RATE --latency-correction`, so a slow answer
  does not delay the next request and queueing shows in the figures).
- Every measurement is repeated RUNS times, the servers alternating, and the median is kept;
  ratios are taken between medians of the same run.

Writes a table on stdout, and with --write: BENCHMARKS.md and PNG plots under docs/bench/.
Run through scripts/bench, which builds and installs what this needs.
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
CATALOG = """version: 1
tools:
  - name: echo
    description: Returns the message it is given.
    input_schema:
      type: object
      properties:
        message: {type: string, maxLength: 4096}
      required: [message]
      additionalProperties: false
    backend: local
    local:
      command: ["/bin/true"]
    timeout_seconds: 10
    memory_mb: 128
    allow:
      groups: [bench]
"""
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


@dataclass
class Server:
    name: str
    url: str
    token: str | None
    process: subprocess.Popen
    log: Path

    def headers(self) -> list[tuple[str, str]]:
        auth = [("Authorization", f"Bearer {self.token}")] if self.token else []
        return HEADERS + auth


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    ok: int
    other: dict = field(default_factory=dict)


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
    catalog.write_text(CATALOG)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--oha", required=True)
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds (CI): nothing written")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md and docs/bench/*.png")
    args = parser.parse_args()
    if args.quick:
        runs, duration, concurrencies, rates = 1, 1.0, [1, 10], [100]
    else:
        runs, duration, concurrencies, rates = 3, 5.0, [1, 10, 32, 100], [100, 500, 1000, 2000]
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    servers = start(work)
    started = time.monotonic()
    try:
        print(
            f"measuring: {runs} run(s), {duration:g} s each, closed loop at {concurrencies} connections, "
            f"open loop at {rates} calls/s",
            file=sys.stderr,
        )
        closed, opened = measure(args.oha, servers, runs, duration, concurrencies, rates, work)
        rss = {s.name: peak_rss_mb(s.process) for s in servers}
    finally:
        for s in servers:
            s.process.send_signal(signal.SIGTERM)
        for s in servers:
            try:
                s.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                s.process.kill()
        shutil.rmtree(work, ignore_errors=True)
    text, targets = table(closed, opened, rss)
    target_lines = ["| target | goal | measured | |", "|---|---|---|---|"] + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets]
    print(text)
    print()
    print("\n".join(target_lines))
    print(f"\n({time.monotonic() - started:.0f} s of measuring)", file=sys.stderr)
    if args.quick:
        if any(s.ok == 0 for by in (*closed.values(), *opened.values()) for s in by.values()):
            print("a measurement got no successful answer", file=sys.stderr)
            return 1
        return 0
    if args.write:
        images = plots(closed, opened, REPO / "docs" / "bench")
        doc = REPO / "BENCHMARKS.md"
        doc.write_text(
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
            + text
            + "\n\n### Targets\n\n"
            + "\n".join(target_lines)
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
        )
        print(f"wrote {doc.relative_to(REPO)} and docs/bench/{{{','.join(images)}}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
