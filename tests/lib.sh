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

# suite_init NAME [BIN_DIR]: the start of a suite's run.sh, after `here` is set and this file
# sourced: sets root (the checkout), work (.work/NAME, made), bin (BIN_DIR, default
# target/release) and started (the start time, date +%s); `say` then prefixes NAME.
suite_init() {
  suite_name=$1
  root=$(cd "$here/../.." && pwd)
  work=$root/.work/$1
  bin=${2:-$root/target/release}
  mkdir -p "$work"
  started=$(date +%s)
}

say() { printf '\n--- %s: %s\n' "$suite_name" "$*"; }

# venv DIR REQUIREMENTS [PYTHON]: a venv at DIR of exactly REQUIREMENTS (a pinned file) that can
# import the suites' shared harness (tests/harness), built by scripts/ensure-venv (again only when
# REQUIREMENTS or the Python changes).
venv() {
  "$root/scripts/ensure-venv" --harness "$1" "$2" "${3:-python3}"
}

# needs_chromium: Debian's chromium and chromedriver (the browser of the approval page's tests;
# Selenium drives them and downloads nothing), installed with apt when missing and run as root.
needs_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "tests/$suite_name: chromium and chromedriver are missing (apt-get install chromium chromium-driver)" >&2
    exit 1
  fi
  say "installing chromium and chromium-driver (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
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

# The processes a suite started (serve_gateway adds its own) and the logs finish shows on failure.
pids=()
shown_logs=()

# wait_answering PYTHON URL PID [LOG]: waits (30 s at most) until URL answers, failing early if
# PID exits, and then showing LOG's last lines (switchboard_harness.gateway.wait_healthy).
wait_answering() {
  local python=$1 url=$2 pid=$3 log=${4:-}
  "$python" -m switchboard_harness wait "$url" --pid "$pid" ${log:+--log "$log"} --what "the process behind $url"
}

# serve_gateway PYTHON LOG LISTEN ARG...: starts `$bin/switchboard serve ARG... --listen LISTEN` in
# the background (with the caller's environment and NO_COLOR=1), its output in LOG, adds it to pids
# and shown_logs, and waits for its /healthz.
serve_gateway() {
  local python=$1 log=$2 listen=$3
  shift 3
  NO_COLOR=1 "$bin/switchboard" serve "$@" --listen "$listen" >"$log" 2>&1 &
  pids+=($!)
  shown_logs+=("$log")
  wait_answering "$python" "http://$listen/healthz" "$!" "$log"
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

# finish: the EXIT trap of a suite that starts processes (`trap finish EXIT`): stops every one in
# pids and, when the suite failed, shows the last lines of each log in shown_logs.
finish() {
  local status=$? log
  stop_all "${pids[@]}"
  if [ "$status" != 0 ]; then
    for log in "${shown_logs[@]}"; do
      if [ -f "$log" ]; then
        echo "--- last lines of $log:" >&2
        tail -n 40 "$log" >&2 || true
      fi
    done
  fi
  exit "$status"
}
