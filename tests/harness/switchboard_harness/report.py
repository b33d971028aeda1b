"""What a failing test's report shows of the setup behind it (tests/lambda/e2e, tests/fargate):
the gateway's log and the last exchanges on the wire, and whatever else a suite adds.

    pytest_runtest_makereport = failure_report_hook(lambda: failure_sections(_gateway_log, _proxy))
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from .gateway import tail
from .recproxy import RecordingProxy


def failure_sections(gateway_log: Path | None, proxy: RecordingProxy | None) -> list[tuple[str, str]]:
    """(title, text) sections: the last 60 lines of `gateway_log` and the last 25 exchanges that
    `proxy` recorded, each where there is one."""
    sections = []
    if gateway_log is not None:
        sections.append(("gateway log (last 60 lines)", tail(gateway_log)))
    if proxy is not None:
        lines = [e.summary() for e in proxy.exchanges()[-25:]]
        sections.append(("last exchanges on the wire", "\n".join(lines) or "(none)"))
    return sections


def failure_report_hook(sections: Callable[[], list[tuple[str, str]]]):
    """A conftest's `pytest_runtest_makereport`: adds `sections()` to the report of a test whose
    setup or call failed."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "teardown" or not report.failed:
            return
        report.sections.extend(sections())

    return pytest_runtest_makereport
