"""What several suites' run preparation (`python -m harness.setup --out DIR --bin TARGET_DIR`)
shares: its two arguments, the issuer of the project's own test tokens, and the reference tool
`echo` run locally (switchboard-tool echo in the gateway's sandbox)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# The issuer of the tokens jwtkit signs (tests/mcp, tests/traces).
ISSUER = "https://issuer.switchboard.test"


def setup_arguments() -> tuple[Path, Path]:
    """The run folder (--out, made) and the binaries' folder (--bin), both absolute."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--bin", required=True, type=Path, help="the folder holding switchboard-tool")
    args = ap.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out, args.bin.resolve()


def write_run(out: Path, catalog: dict, run: dict) -> None:
    """The end of a run's preparation: `catalog` to out/catalog.yaml (JSON is YAML; no YAML
    library needed), `run` to out/run.json (what the tests read) and, as one line, to stdout."""
    (out / "catalog.yaml").write_text(json.dumps(catalog, indent=2))
    (out / "run.json").write_text(json.dumps(run, indent=2))
    print(json.dumps(run))


def echo_tool(
    bin_dir: Path, name: str = "echo", groups: tuple[str, ...] = ("dev",), scopes: tuple[str, ...] = ()
) -> dict:
    """`echo` (or `name`) for callers of `groups`, and with `scopes`, of those scopes too."""
    allow: dict = {"groups": list(groups)}
    if scopes:
        allow["scopes"] = list(scopes)
    return {
        "name": name,
        "title": "Echo",
        "description": "Returns the message it is given.",
        "input_schema": {
            "type": "object",
            "properties": {"message": {"type": "string", "maxLength": 4096}},
            "required": ["message"],
            "additionalProperties": False,
        },
        "backend": "local",
        "local": {"command": [str(bin_dir / "switchboard-tool"), "echo"]},
        "timeout_seconds": 20,
        "memory_mb": 128,
        "ephemeral_storage_mb": 16,
        "allow": allow,
    }
