"""Summarizes one conformance run's log for run.sh: every scenario's verdict, then the baseline
verdict. (The runner's own closing "Total: N passed, N failed" counts baselined failures too, so
the log keeps it and this summary words its counts differently.)

    python -m harness.confsummary LOG BASELINE.yaml EXIT_STATUS
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def main() -> None:
    log, baseline, status = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    lines = [ANSI.sub("", line) for line in log.read_text(errors="replace").splitlines()]
    passing = [line[2:].split(":")[0] for line in lines if line.startswith("✓ ")]
    failing = [line[2:].split(":")[0] for line in lines if line.startswith("✗ ")]
    print(f"scenarios that pass ({len(passing)}): {', '.join(passing)}")
    print(f"scenarios with failing checks ({len(failing)}), each listed in {Path(baseline).name}:")
    for name in failing:
        print(f"  {name}")
    tail = False
    for line in lines:
        if line.startswith("Unexpected") or line.startswith("Stale"):
            tail = True
        if tail and line.strip():
            print(line)
    print("conformance verdict:", "baseline holds" if status == 0 else f"FAILED (runner exit status {status})")


if __name__ == "__main__":
    main()
