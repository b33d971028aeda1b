#!/usr/bin/env bash
# The trace and log suite: OpenTelemetry spans of tool calls received by a real OTLP receiver (an
# HTTP server decoding OTLP protobuf with the `opentelemetry-proto` package), the traceparent each
# unit gets, no export without an endpoint, and the gateway's log at its default level (issue 13,
# items 3 and 6).
#
# Expects target/release/switchboard and target/release/switchboard-tool (scripts/build). Installs
# its Python packages (requirements.txt, pinned) in a venv under .work/traces/; the tests start the
# receiver and their own gateways (local sandboxes, so bubblewrap must work here) and stop them.
#
# Environment: TRACES_PYTEST_ARGS are passed to pytest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib.sh
. "$here/../lib.sh"
suite_init traces "${TRACES_BIN_DIR:-}"

needs_binaries tests/traces "$bin" switchboard switchboard-tool
venv "$work/venv" "$here/requirements.txt" "${TRACES_PYTHON:-python3}"

run="$work/run"
rm -rf "$run"
mkdir -p "$run"
say "pytest (gateways and their logs under $run)"
# shellcheck disable=SC2086
cd "$here" && SB_TRACES_BIN="$bin" SB_TRACES_WORK="$run" \
  exec "$work/venv/bin/python" -m pytest -v -p no:cacheprovider ${TRACES_PYTEST_ARGS:-} .
