#!/usr/bin/env bash
# The approval suite (issue 34): a person approves a call in a real browser before it runs.
# `switchboard serve --dev` with a catalog whose tool needs approval (the real switchboard-tool
# echo, in a sandbox per call), the MCP Python SDK of both majors as the caller (2026-07-28:
# InputRequiredResult with a URL elicitation; 2025-11-25: the URL-elicitation error), and headless
# Chromium with chromedriver (Debian's packages, installed here when missing; Selenium drives
# them, downloading nothing) as the approver. Screenshots of the page are kept under
# .work/approvals/run/shots/.
#
# Expects target/release/switchboard and target/release/switchboard-tool (scripts/build).
# Environment: APPROVALS_PYTEST_ARGS are passed to pytest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib.sh
. "$here/../lib.sh"
suite_init approvals "${APPROVALS_BIN_DIR:-}"

needs_binaries tests/approvals "$bin" switchboard switchboard-tool
if ! command -v bwrap >/dev/null; then
  echo "tests/approvals: bubblewrap is missing: run scripts/install-deps" >&2
  exit 1
fi
needs_chromium

python=${APPROVALS_PYTHON:-python3}
venv "$work/sdk2" "$here/requirements-sdk2.txt" "$python"
venv "$work/sdk1" "$here/requirements-sdk1.txt" "$python"

failed=()
for major in sdk2 sdk1; do
  run="$work/run/$major"
  rm -rf "$run"
  mkdir -p "$run"
  say "pytest with mcp $("$work/$major/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))') (gateway and screenshots under $run)"
  # shellcheck disable=SC2086
  if ! (cd "$here" && SB_APPROVALS_BIN="$bin" SB_APPROVALS_WORK="$run" \
    "$work/$major/bin/python" -m pytest -v -p no:cacheprovider ${APPROVALS_PYTEST_ARGS:-} "test_$major.py"); then
    failed+=("pytest ($major)")
    tail -n 40 "$run/gateway.log" >&2 || true
  fi
done
say "done in $(($(date +%s) - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "tests/approvals: failed: ${failed[*]}" >&2
  exit 1
fi
