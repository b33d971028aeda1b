#!/usr/bin/env bash
# The Fargate suite: the gateway's fargate backend (gateway/src/backend/fargate.rs) end to end.
#
# moto, in the pytest process, is ECS, EC2, S3, STS and IAM; since it runs no container, the suite
# plays the Fargate agent (tests/fargate/player.py): for each task the gateway starts, it reads the
# task's overrides from moto, runs the real switchboard-tool in container mode with exactly that
# environment in a bubblewrap sandbox whose only network is the S3 emulator
# (tests/fargate/sandbox.py), and marks the task stopped with its exit code. The official MCP
# Python SDK calls the tools through `switchboard serve --bindings`; a recording proxy between the
# gateway and moto shows RunTask, DescribeTasks, StopTask, S3 and STS on the wire.
#
# Expects target/release/switchboard and target/release/switchboard-tool (scripts/test builds
# them first; this script builds them when missing). Installs its venv under .work/fargate/
# (Python 3.13 from pyenv, like localstack/start) with scripts/ensure-venv.
# FARGATE_PYTEST_ARGS are passed to pytest (e.g. `-k cancel`). Needs bubblewrap. With
# BENCH_AWS_OUT=FILE (absolute, or relative to the checkout), the cost test writes what a Fargate
# tool call costs on the wire there as JSON:
#
#   BENCH_AWS_OUT=.work/bench-aws/fargate.json FARGATE_PYTEST_ARGS="-k costs_a_bounded" tests/fargate/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
work=${SWITCHBOARD_WORK:-$root/.work}/fargate
bin=$root/target/release
started=$(date +%s)

say() { printf '\n--- fargate: %s\n' "$*"; }

command -v bwrap >/dev/null || {
  echo "tests/fargate: bwrap is missing; install bubblewrap (scripts/install-deps)" >&2
  exit 1
}
if [ ! -x "$bin/switchboard" ] || [ ! -x "$bin/switchboard-tool" ]; then
  say "building the gateway and the tool runtime"
  scripts/build
fi

python=${FARGATE_PYTHON:-}
if [ -z "$python" ]; then
  if command -v pyenv >/dev/null 2>&1 && [ -x "$(pyenv root)/versions/3.13.0/bin/python" ]; then
    python="$(pyenv root)/versions/3.13.0/bin/python"
  else
    python=python3
  fi
fi
venv=$work/venv
scripts/ensure-venv --harness "$venv" "$here/requirements.txt" "$python"

run_dir=$work/run
rm -rf "$run_dir"
mkdir -p "$run_dir"
say "running the suite"
# shellcheck disable=SC2086
if ! (cd "$here" && SWITCHBOARD_BIN=$bin/switchboard SWITCHBOARD_TOOL_BIN=$bin/switchboard-tool \
  FARGATE_RUN_DIR=$run_dir "$venv/bin/python" -m pytest -v ${FARGATE_PYTEST_ARGS:-}); then
  echo "FAIL tests/fargate; gateway log, audit and wire.jsonl in ${run_dir#"$root"/}" >&2
  exit 1
fi
say "passed in $(($(date +%s) - started))s"
