#!/usr/bin/env bash
# tests/iam: IAM decisions by a policy engine (@cloud-copilot/iam-simulate, pinned in
# package-lock.json; AGPL-licensed, so used here only, never in what ships) over the documents
# Switchboard produces, never hand copies. Today: the session policy each call's AssumeRole
# carries (`switchboard session-policies` of examples/catalog.aws.yaml), against a work role
# that allows everything (session.test.mjs). README.md says what is decided and what is next.
#
# Expects target/release/switchboard (scripts/build). Installs the engine with npm ci under
# .work/iam/ (again only when the lock changes).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$root/.work/iam
bin=${IAM_BIN_DIR:-$root/target/release}
# shellcheck source=tests/lib.sh
. "$here/../lib.sh"

needs_binaries tests/iam "$bin" switchboard
pinned_npm "$work/engine" "$here" @cloud-copilot/iam-simulate
# ESM resolves packages from the test file's folder: the tests run beside the engine.
cp "$here"/*.test.mjs "$work/engine/"
printf '\n--- iam: session policies of examples/catalog.aws.yaml, decided\n'
(cd "$work/engine" && SWITCHBOARD_BIN=$bin/switchboard CATALOG=$root/examples/catalog.aws.yaml \
  node --test --test-reporter=spec ./*.test.mjs)
echo "--- iam: passed"
