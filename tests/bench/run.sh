#!/usr/bin/env bash
# The smoke run of the benchmark suite (scripts/bench --quick, seconds): the same servers, load
# generator and tables as the full run (gateway overhead, sandboxed calls on demand and prepared,
# the phase breakdown, calls in flight with the leak census, the sandboxed echo with and without
# an OTLP endpoint), one short measurement each, nothing
# written. It fails when
# a server does not start or answer the benchmark's call correctly, when a measurement gets no
# successful answer, or when the table lacks a row; so the benchmark cannot rot unseen. The full
# run (minutes, BENCHMARKS.md) is not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
out=$(scripts/bench --quick)
echo "$out"
for row in "closed loop, 1 connection(s): calls/s" "closed loop, 10 connection(s): p50 / p99 ms" \
  "open loop, 100 calls/s offered: p50 / p99 ms" "peak RSS after the run, MB" \
  "maximum throughput against the bare server" \
  "on demand | closed loop, 1 connection(s)" "prepared: 2 | open loop, 50 calls/s offered" \
  "prepared: 2 | calls served by a prepared sandbox / that started their own" \
  "exec" "network namespace" "control group" "uid lease" \
  "sandboxed echo p50 at 50 calls/s, prepared: 2" "sandboxed calls/s at best" \
  "left after every run (processes, control groups, uid leases, mounts, calls)" \
  "traces: closed loop, 4 connection(s): p50 / p99 ms" "traces: calls answered / OTLP exports received (bytes)" \
  "nothing exported without an OTLP endpoint" "spans sent when exporting"; do
  grep -qF "| $row |" <<<"$out" || { echo "FAIL bench_smoke: no row \"$row\" in the table" >&2; exit 1; }
done
# Every concurrency level left nothing behind (bench.py also fails the run when one did).
grep -qF "| left after every run (processes, control groups, uid leases, mounts, calls) | nothing | nothing | met |" <<<"$out" ||
  { echo "FAIL bench_smoke: a concurrency level left something behind" >&2; exit 1; }
# Nothing of the run is left: no server, sandbox, or oha.
if pgrep -f 'switchboard-bench-(gateway|bare|sandbox)|switchboard serve --catalog .*switchboard-bench|/oha |bwrap' >/dev/null; then
  echo "FAIL bench_smoke: left running: $(pgrep -af 'switchboard-bench-(gateway|bare|sandbox)|switchboard serve --catalog .*switchboard-bench|/oha |bwrap')" >&2
  exit 1
fi
echo "ok bench_smoke ($(($(date +%s) - started)) s)"
