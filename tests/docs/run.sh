#!/usr/bin/env bash
# The docs suite: the layout table of docs/architecture.md matches the tree (check_layout.py),
# and the check fails on a tree that lost a folder the table names (tried on a copy).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 tests/docs/check_layout.py
python3 tests/docs/test_check_layout.py
