#!/usr/bin/env bash
# The sandbox escape suite: starts `switchboard serve --dev` on a catalog of test tools and sends
# every escape attempt through it over HTTP into the real bubblewrap sandbox. Each attempt is its
# own test (gateway/tests/sandbox_escape.rs); any attempt that gets through fails the suite.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v bwrap >/dev/null; then
  echo "bubblewrap (bwrap) is missing: run scripts/install-deps (or apt-get install bubblewrap)" >&2
  exit 1
fi

# The gateway, the probe and echo, built for the profile the suite runs in.
scripts/build

# A private temporary folder: the suite plants secrets, sockets and a setuid binary there.
work=$(mktemp -d)
chmod 755 "$work"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

TMPDIR="$work" cargo test --release --locked --workspace --test sandbox_escape -- --test-threads 4

# The suite's gateway dies with the test process; nothing of it may be left.
for cmdline in /proc/[0-9]*/cmdline; do
  if tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -q -- "$work/"; then
    echo "a process of the suite is still running: $(tr '\0' ' ' <"$cmdline")" >&2
    exit 1
  fi
done
echo "sandbox escape suite: every attempt was stopped"
