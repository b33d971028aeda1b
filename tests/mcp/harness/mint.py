"""Prints a valid token for the run's gateway.

    python -m harness.mint --run DIR --sub NAME --group G [--group G2] [--ttl SECONDS]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from switchboard_harness.jwtkit import Issuer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--sub", default="conformance")
    ap.add_argument("--group", action="append", default=[])
    ap.add_argument("--ttl", type=int, default=3600)
    args = ap.parse_args()
    run = json.loads((args.run / "run.json").read_text())
    issuer = Issuer(Path(run["keys"]), run["issuer"], run["mcp"])
    print(issuer.token(sub=args.sub, groups=args.group, ttl=args.ttl))


if __name__ == "__main__":
    main()
