#!/usr/bin/env bash
# tests/iam: IAM decisions by a policy engine (@cloud-copilot/iam-simulate, pinned in
# package-lock.json; AGPL-licensed, so used here only, never in what ships) over the documents
# Switchboard produces, never hand copies. README.md says what is decided.
#
#   tests/iam/run.sh                    the session policy each call's AssumeRole carries
#                                       (`switchboard session-policies` of examples/catalog.aws.yaml),
#                                       against a work role that allows everything (session.test.mjs);
#   tests/iam/run.sh --deployed FILE    the documents of a deployed stack, read back by
#                                       tests/infra/export_documents.py (deployed.test.mjs); tests/infra
#                                       runs this while its stack is up.
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

deployed=""
case "${1:-}" in
  "") ;;
  --deployed)
    deployed=$(cd "$(dirname "${2:?--deployed needs the file export_documents.py wrote}")" && pwd)/$(basename "$2")
    [ -s "$deployed" ] || { echo "tests/iam: $2 is missing or empty" >&2; exit 1; }
    ;;
  *) echo "usage: tests/iam/run.sh [--deployed FILE]" >&2; exit 2 ;;
esac

needs_binaries tests/iam "$bin" switchboard
pinned_npm "$work/engine" "$here" @cloud-copilot/iam-simulate
# ESM resolves packages from the test file's folder: the tests run beside the engine.
cp "$here"/*.mjs "$work/engine/"
if [ -z "$deployed" ]; then
  printf '\n--- iam: session policies of examples/catalog.aws.yaml, decided\n'
  (cd "$work/engine" && SWITCHBOARD_BIN=$bin/switchboard CATALOG=$root/examples/catalog.aws.yaml \
    node --test --test-reporter=spec ./session.test.mjs)
else
  printf '\n--- iam: the deployed documents, decided\n'
  (cd "$work/engine" && SWITCHBOARD_BIN=$bin/switchboard DEPLOYED=$deployed CLAIMS_DOC=$root/docs/deploy-aws.md \
    node --test --test-reporter=spec ./deployed.test.mjs)
fi
echo "--- iam: passed"
