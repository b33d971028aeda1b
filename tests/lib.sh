# Shell pieces the suites' run.sh share. Source it: `. "$here/../lib.sh"` (bash).

# needs_binaries SUITE DIR NAME...: fails naming the first of the workspace's binaries missing.
needs_binaries() {
  local suite=$1 dir=$2
  shift 2
  for b in "$@"; do
    if [ ! -x "$dir/$b" ]; then
      echo "$suite: $dir/$b is missing; build it first: scripts/build" >&2
      return 1
    fi
  done
}

# pinned_venv DIR REQUIREMENTS PYTHON: a venv at DIR holding exactly REQUIREMENTS (a pinned file),
# made again only when that file changes.
pinned_venv() {
  local dir=$1 req=$2 python=$3
  if [ -x "$dir/bin/python" ] && cmp -s "$req" "$dir/.requirements"; then
    return 0
  fi
  printf '\n--- creating the venv %s\n' "$dir"
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$dir/.requirements"
}

# pinned_npm DIR SOURCE PACKAGE: `npm ci` of SOURCE's package.json and package-lock.json into DIR,
# again only when the lock changes or DIR/node_modules/PACKAGE is missing.
pinned_npm() {
  local dir=$1 src=$2 package=$3
  if cmp -s "$src/package-lock.json" "$dir/package-lock.json" && [ -d "$dir/node_modules/$package" ]; then
    return 0
  fi
  printf '\n--- installing %s (npm ci into %s)\n' "$package" "$dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

# wait_answering PYTHON URL PID: waits (30 s at most) until URL answers, failing early if PID exits.
wait_answering() {
  local python=$1 url=$2 pid=$3
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the process behind $url exited" >&2
      return 1
    fi
    if "$python" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "$url did not answer within 30 s" >&2
  return 1
}

# stop_all PID...: stops the processes a suite started and waits for them.
stop_all() {
  local pid
  for pid in "$@"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "$@"; do
    wait "$pid" 2>/dev/null || true
  done
}
