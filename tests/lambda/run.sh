#!/usr/bin/env bash
# The LocalStack Lambda suite: LocalStack (host mode, no Docker) runs Lambda functions with the
# project's sandbox executor (localstack/plugin/switchboard_localstack/sandbox_executor.py and
# switchboard-localstack-lambda-host, crate localstack-lambda-host/).
#
#   1. builds switchboard-localstack-lambda-host and the test tool switchboard-lambda-probe (in
#      the tool-runtime's Lambda mode; crate test-tools/) and zips the probe as `bootstrap`;
#   2. starts LocalStack with LAMBDA_RUNTIME_EXECUTOR=switchboard-sandbox, and moto, on free ports
#      (localstack/start; stopped again by a trap, whatever happens);
#   3. runs the Rust suite (localstack-lambda-host/tests/localstack/) against it, then the credential
#      broker's test against LocalStack STS (gateway/tests/it/broker_localstack.rs) and the
#      approvals store's against moto's DynamoDB (gateway/tests/it/approval_dynamo.rs), then the end to
#      end suite of the gateway's Lambda backend (tests/lambda/e2e/: the MCP Python SDK through
#      `switchboard serve --bindings`, the whoami tool in Lambda, STS and Lambda on the wire);
#   4. leaves one environment warm, stops LocalStack, and checks that no host or sandbox
#      survives it.
#
# Uses the same LocalStack state folder as the other suites ($SWITCHBOARD_WORK/localstack,
# default .work/localstack), so the pinned venv is built once. Set LAMBDA_TEST_ARGS to pass
# arguments to the test binary (e.g. a test name), E2E_PYTEST_ARGS to pass arguments to the end to
# end suite's pytest, and BENCH_AWS_OUT=FILE (absolute, or relative to the checkout) to have the
# end to end suite's cost test write what a Lambda tool call costs on the wire there as JSON:
#
#   BENCH_AWS_OUT=.work/bench-aws/lambda.json LAMBDA_TEST_ARGS=no-such-test \
#     E2E_PYTEST_ARGS="-k costs_exactly_two" tests/lambda/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
work=${SWITCHBOARD_WORK:-$root/.work}
suite=$work/lambda
bin=$root/target/release
started=$(date +%s)

say() { printf '\n--- lambda: %s\n' "$*"; }

say "building the host, the probe and the suite"
scripts/build
cargo test --release --locked --workspace --test localstack --test it --no-run

say "zipping the probe as bootstrap"
mkdir -p "$suite"
zip=$suite/probe.zip
python3 - "$bin/switchboard-lambda-probe" "$zip" <<'PY'
import sys, zipfile
src, out = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap")
info.external_attr = 0o100755 << 16  # a regular, executable file
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(out, "w") as z:
    z.writestr(info, f.read())
PY

say "packaging the reference tools (scripts/package-lambda)"
tools_zip=$root/$(scripts/package-lambda)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
moto_port=$(free_port)
stop() { localstack/stop || true; }
trap stop EXIT

# moto starts beside LocalStack (in parallel, ready sooner): its DynamoDB serves the approvals
# store's tests (gateway/tests/it/approval_dynamo.rs).
say "starting LocalStack on 127.0.0.1:$port with the switchboard-sandbox executor, and moto on 127.0.0.1:$moto_port"
eval "$(
  LOCALSTACK_PORT=$port MOTO_PORT=$moto_port \
    LOCALSTACK_SERVICES=iam,sts,lambda,logs,s3,secretsmanager \
    LAMBDA_RUNTIME_EXECUTOR=switchboard-sandbox \
    SWITCHBOARD_LAMBDA_HOST="$bin/switchboard-localstack-lambda-host" \
    localstack/start
)"

say "running the suite"
LAMBDA_PROBE_ZIP=$zip LAMBDA_TOOLS_ZIP=$tools_zip \
  cargo test --release --locked --workspace --test localstack -- \
  --test-threads=6 ${LAMBDA_TEST_ARGS:-}

say "the credential broker against LocalStack STS (gateway/tests/it/broker_localstack.rs)"
LOCALSTACK_ENDPOINT=$LOCALSTACK_ENDPOINT \
  cargo test --release --locked --workspace --test it -- --ignored broker_localstack::

say "the approvals store against moto's DynamoDB (gateway/tests/it/approval_dynamo.rs)"
MOTO_ENDPOINT=$MOTO_ENDPOINT \
  cargo test --release --locked --workspace --test it -- --ignored approval_dynamo::

# --- end to end: the gateway's Lambda backend (tests/lambda/e2e/) -----------------------------
# The official MCP Python SDK calls lambda tools through `switchboard serve --bindings`; this
# LocalStack runs switchboard-tool and the probe with credentials the gateway's broker mints per
# call. pytest's fixtures create the roles and functions, the recording proxy and the gateway,
# and stop the gateway again. E2E_PYTEST_ARGS are passed to pytest (e.g. `-k whoami`).
say "end to end: the gateway's Lambda backend"
# The MCP suite's SDK 2.x venv, same place and same requirements file as tests/mcp/run.sh's, by
# scripts/ensure-venv, so whichever suite runs first builds it for both.
mcp_work=$root/.work/mcp
scripts/ensure-venv --harness "$mcp_work/sdk2" "$root/tests/mcp/requirements-sdk2.txt" "${MCP_PYTHON:-python3}"
e2e_run=$suite/e2e
say "terraform and its provider mirror for terraform_plan (scripts/terraform-kit)"
terraform_kit=$("$root/scripts/terraform-kit")
rm -rf "$e2e_run"
mkdir -p "$e2e_run"
# shellcheck disable=SC2086
if ! (cd "$here/e2e" && LOCALSTACK_ENDPOINT=$LOCALSTACK_ENDPOINT \
  AWS_CLI=$work/localstack/venv-localstack/bin/aws \
  SWITCHBOARD_BIN=$bin/switchboard SWITCHBOARD_TOOL_BIN=$bin/switchboard-tool \
  TERRAFORM_KIT=$terraform_kit \
  LAMBDA_TOOLS_ZIP=$tools_zip LAMBDA_PROBE_ZIP=$zip \
  E2E_RUN_DIR=$e2e_run \
  "$mcp_work/sdk2/bin/python" -m pytest -v ${E2E_PYTEST_ARGS:-}); then
  echo "FAIL end to end (tests/lambda/e2e); gateway log, audit and wire.jsonl in $e2e_run" >&2
  exit 1
fi
# --- end of the end-to-end block ----------------------------------------------------------------

say "check localstack_shutdown_stops_every_environment"
aws=$work/localstack/venv-localstack/bin/aws
fn=probe-shutdown-$$
"$aws" lambda create-function --function-name "$fn" --runtime provided.al2023 \
  --handler bootstrap --role arn:aws:iam::000000000000:role/switchboard-lambda-probe \
  --zip-file "fileb://$zip" >/dev/null
"$aws" lambda wait function-active-v2 --function-name "$fn"
"$aws" lambda invoke --function-name "$fn" \
  --payload '{"invocationId":"i","tool":"echo","arguments":{"message":"warm"},"deadlineUnixMs":4102444800000}' \
  "$suite/shutdown-out.json" >/dev/null
grep -q '"warm"' "$suite/shutdown-out.json"
# Command lines (pid: words) of live processes that mention $1; /proc only, no procps needed.
procs() {
  local d line
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$$" ] && continue
    line=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
    case "$line" in *"$1"*) echo "${d#/proc/}: $line" ;; esac
  done
}
hosts=$(procs "switchboard-localstack-lambda-host serve --function $fn ")
[ -n "$hosts" ] || {
  echo "FAIL localstack_shutdown_stops_every_environment: no environment ran for $fn" >&2
  exit 1
}
runtime_ids=$(sed -n 's/.*--runtime-id \([0-9a-f]*\).*/\1/p' <<<"$hosts")
host_pids=$(cut -d: -f1 <<<"$hosts")
# As root, each host has control groups of its own (switchboard-<host pid>, in each hierarchy),
# one per sandbox below.
groups_of() { find /sys/fs/cgroup -maxdepth 6 -type d -name "switchboard-$1" 2>/dev/null || true; }
if [ "$(id -u)" = 0 ]; then
  for pid in $host_pids; do
    [ -n "$(for g in $(groups_of "$pid"); do ls -d "$g"/sandbox-* 2>/dev/null; done)" ] || {
      echo "FAIL localstack_shutdown_stops_every_environment: host $pid has no control group for its sandbox" >&2
      exit 1
    }
  done
fi
trap - EXIT
stop
for _ in $(seq 1 40); do
  left=$(for id in $runtime_ids; do procs "$id"; done)
  [ -z "$left" ] && break
  sleep 0.25
done
if [ -n "$left" ]; then
  echo "FAIL localstack_shutdown_stops_every_environment: still running after LocalStack stopped:" >&2
  echo "$left" >&2
  exit 1
fi
for pid in $host_pids; do
  groups=$(groups_of "$pid")
  if [ -n "$groups" ]; then
    echo "FAIL localstack_shutdown_stops_every_environment: host $pid left its control groups: $groups" >&2
    exit 1
  fi
done
echo "ok localstack_shutdown_stops_every_environment (no process and no control group left)"

say "passed in $(($(date +%s) - started))s"
