"""What one tool call costs on the wire (issue 12, item 5), shared by tests/lambda/e2e and
tests/fargate: a series of sequential calls through the MCP Python SDK, each call's AWS API calls
by operation (attributed by each suite from what the wire carries, never by timing), how long
those took, and the time the call spent outside them.

    series = timed_calls(mcp_url, token, "whoami", [{}] * 20)   # [(result, seconds)], one client
    costs = [CallCost(invocation_id, seconds, exchanges, audit_ms=...), ...]
    summary = summarize("lambda", "whoami", costs)
    show(summary, capsys)      # a few lines in the test output
    write(summary)             # to $BENCH_AWS_OUT as JSON, when it is set

Times: the wall time is what the client measured around `call_tool` alone (one connection, the
tools listed once before the series); an exchange's time is the recording proxy's (from the
request being read to the upstream's answer being read: the emulator's own work, and what runs
inside it, such as the tool during a Lambda Invoke); "outside" is the wall time minus the AWS
time. The gateway's audit line gives its own duration of the call too (whole milliseconds).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import awswire
from .recproxy import Exchange

REPO = Path(__file__).resolve().parents[3]
OUT_ENV = "BENCH_AWS_OUT"


def timed_calls(mcp_url: str, token: str, tool: str, arguments: list[dict], timeout: float = 600):
    """Sequential tools/calls on one SDK client (2.x, Streamable HTTP, bearer token): a list of
    (result, seconds), the seconds measured around each `call_tool` only."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def body():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0, read=90.0))
        out = []
        async with http:
            async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
                await client.list_tools()  # so that no call of the series lists them first
                for args in arguments:
                    started = time.perf_counter()
                    result = await client.call_tool(tool, args)
                    out.append((result, time.perf_counter() - started))
        return out

    return asyncio.run(asyncio.wait_for(body(), timeout))


def invocation_ids(series) -> list[str]:
    """The invocation id each call of a `timed_calls` series of `whoami` answered with (it reports
    its own); every call must have succeeded, each with an id of its own."""
    ids = []
    for result, _ in series:
        assert not result.is_error, result.content
        ids.append(result.structured_content["invocationId"])
    assert len(set(ids)) == len(ids), ids
    return ids


@dataclass
class CallCost:
    """One tool call: its invocation id, the client's wall time, and the gateway's AWS exchanges."""

    invocation_id: str
    wall: float  # seconds
    exchanges: list[Exchange]  # the gateway's AWS calls for this tool call, in start order
    audit_ms: int | None = None  # the gateway's own duration (audit line)
    extra_ms: dict[str, float] = field(default_factory=dict)  # suite-specific times

    def __post_init__(self) -> None:
        self.exchanges = sorted(self.exchanges, key=lambda x: x.started)

    @property
    def operations(self) -> list[str]:
        return [awswire.operation(x) for x in self.exchanges]

    @property
    def counts(self) -> Counter:
        return Counter(self.operations)

    @property
    def aws_ms(self) -> float:
        return sum(x.elapsed for x in self.exchanges) * 1000

    @property
    def outside_ms(self) -> float:
        return self.wall * 1000 - self.aws_ms


def nearest_rank(values: list[float], p: float) -> float:
    """The p-th percentile by nearest rank (p90 of 20 values is the 18th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def spread(values: list[float], digits: int = 1) -> dict:
    return {
        "min": round(min(values), digits),
        "p50": round(nearest_rank(values, 50), digits),
        "p90": round(nearest_rank(values, 90), digits),
        "max": round(max(values), digits),
    }


def three(values: list[int]) -> list[int]:
    """[min, median (nearest rank), max]."""
    return [min(values), int(nearest_rank(values, 50)), max(values)]


def summarize(backend: str, tool: str, costs: list[CallCost], **extra) -> dict:
    operations = sorted({op for c in costs for op in c.counts})
    summary = {
        "backend": backend,
        "tool": tool,
        "calls": len(costs),
        "aws_calls_per_call": {op: three([c.counts[op] for c in costs]) for op in operations},
        "total_per_call": three([sum(c.counts.values()) for c in costs]),
        "wall_ms": spread([c.wall * 1000 for c in costs]),
        "aws_ms": spread([c.aws_ms for c in costs]),
        "outside_ms": spread([c.outside_ms for c in costs]),
    }
    audited = [c for c in costs if c.audit_ms is not None]
    if len(audited) == len(costs):
        summary["audit_ms"] = spread([float(c.audit_ms) for c in costs])
        summary["audit_outside_ms"] = spread([c.audit_ms - c.aws_ms for c in costs])
    for name in sorted({k for c in costs for k in c.extra_ms}):
        summary[name] = spread([c.extra_ms[name] for c in costs if name in c.extra_ms])
    summary.update(extra)
    summary["per_call"] = [
        {
            "invocation_id": c.invocation_id,
            "operations": c.operations,
            "wall_ms": round(c.wall * 1000, 2),
            "aws_ms": round(c.aws_ms, 2),
            "outside_ms": round(c.outside_ms, 2),
            "audit_ms": c.audit_ms,
            **{k: round(v, 2) for k, v in c.extra_ms.items()},
        }
        for c in costs
    ]
    return summary


def lines(summary: dict) -> list[str]:
    """The summary in a few lines (min/median/max of counts; p50/p90/max of times)."""

    def ms(name: str) -> str:
        s = summary[name]
        return f"p50 {s['p50']:.1f}  p90 {s['p90']:.1f}  max {s['max']:.1f}"

    counts = ", ".join(f"{op} {'/'.join(map(str, v))}" for op, v in summary["aws_calls_per_call"].items())
    out = [
        f"AWS cost of a {summary['backend']} tool call ({summary['tool']}, {summary['calls']} sequential calls)",
        f"  AWS calls per call (min/median/max): {counts}; total {'/'.join(map(str, summary['total_per_call']))}",
    ]
    for key, value in summary.items():
        if isinstance(value, dict) and set(value) == {"min", "p50", "p90", "max"}:
            out.append(f"  {key:<20} {ms(key)}")
    for key in ("bound", "unit_requests_per_call"):
        if key in summary:
            out.append(f"  {key}: {json.dumps(summary[key])}")
    return out


def show(summary: dict, capsys) -> None:
    """Prints the summary past pytest's capture, so that it is in the suite's output."""
    with capsys.disabled():
        print("\n" + "\n".join(lines(summary)), flush=True)


def write(summary: dict) -> Path | None:
    """Writes the summary as JSON to $BENCH_AWS_OUT (a relative path is taken from the checkout's
    root), when it is set."""
    value = os.environ.get(OUT_ENV, "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_absolute():
        path = REPO / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path
