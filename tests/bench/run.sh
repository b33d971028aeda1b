#!/usr/bin/env bash
# The smoke run of the benchmark suite (scripts/bench --quick, seconds): the same servers, load
# generator and table as the full run, one short measurement each, nothing written. It fails when
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
  "maximum throughput against the bare server"; do
  grep -qF "| $row |" <<<"$out" || { echo "FAIL bench_smoke: no row \"$row\" in the table" >&2; exit 1; }
done
# Nothing of the run is left: neither server, nor oha.
if pgrep -f 'switchboard-bench-(gateway|bare)|/oha ' >/dev/null; then
  echo "FAIL bench_smoke: left running: $(pgrep -af 'switchboard-bench-(gateway|bare)|/oha ')" >&2
  exit 1
fi
echo "ok bench_smoke ($(($(date +%s) - started)) s)"
