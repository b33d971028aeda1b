"""The harness from a shell script (tests/lib.sh):

    python -m switchboard_harness wait URL [--pid PID] [--log FILE] [--timeout SECONDS] [--what NAME]

waits until URL answers (2xx), failing early when process PID exits; on failure it prints why and
the log's tail to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .gateway import GatewayError, wait_healthy


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m switchboard_harness")
    sub = ap.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait", help="wait until a URL answers")
    wait.add_argument("url")
    wait.add_argument("--pid", type=int, help="fail early when this process exits")
    wait.add_argument("--log", type=Path, help="the log whose tail a failure shows")
    wait.add_argument("--timeout", type=float, default=30.0)
    wait.add_argument("--what", default="the process", help="what is waited for, in the error")
    args = ap.parse_args()
    try:
        wait_healthy(args.url, pid=args.pid, log=args.log, timeout=args.timeout, what=args.what)
    except GatewayError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
