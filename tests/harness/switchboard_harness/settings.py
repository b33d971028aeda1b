"""A suite's settings from the environment its run.sh sets (tests/lambda/e2e, tests/fargate)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def required(name: str, run_sh: str, is_path: bool = False) -> str:
    """The value of $name; the test fails naming `run_sh` when it is unset, and, with `is_path`,
    when nothing is at that path."""
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"{name} is not set: run this suite with {run_sh}", pytrace=False)
    if is_path and not Path(value).exists():
        pytest.fail(f"{name}={value}: no such file", pytrace=False)
    return value


def run_dir(name: str, tmp_path_factory, fallback: str) -> Path:
    """The folder $name names (made), else a temporary one called after `fallback`."""
    value = os.environ.get(name, "").strip()
    if value:
        path = Path(value)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp(fallback)
