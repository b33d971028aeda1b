"""Slow or lost AWS answers, on the recording proxy between the gateway and moto.

A rule picks requests by operation (awswire.operation: `RunTask`, `PutObject`, ...) and, by
default, only the gateway's own (not the unit's presigned requests). The request still reaches
moto, which acts on it at once (RunTask starts the task, PutObject stores the object); only the
answer to the gateway is held back, or dropped (the connection closed without one). That is what
a slow or lost answer looks like from the gateway: AWS did the thing, the gateway does not know yet.

    rule = faults.hold("RunTask", 12)      # the next RunTask's answer comes 12 s late
    rule.seen.wait(10)                     # the request reached moto
    rule.exchanges[0]                      # what it asked and what moto answered
    rule.released.wait(20)                 # the answer went back (or was dropped)

Each rule applies to `count` requests (1 by default), then lets everything through. The `faults`
fixture (defined here, imported by each suite's conftest.py) removes every rule after each test.

    cancelled_at = rule.cancel_once_seen(lambda: gw.acall("hang", {}), "RunTask")
                                           # the call, cancelled while its answer is held
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import pytest

from . import awswire
from .recproxy import Exchange, RecordingProxy


def gateways_own(exchange: Exchange) -> bool:
    """A request the gateway signed itself (not one of the unit's presigned URLs)."""
    return not awswire.presigned(exchange)


@dataclass
class Rule:
    operation: str
    delay: float  # seconds the answer is held back
    drop: bool  # after the delay, no answer at all
    count: int
    when: Callable[[Exchange], bool]
    exchanges: list[Exchange] = field(default_factory=list)  # the requests it applied to
    seen: threading.Event = field(default_factory=threading.Event)  # the first one reached moto
    released: threading.Event = field(default_factory=threading.Event)  # its answer went (or not)
    released_at: float | None = None  # time.monotonic() of that

    def cancel_once_seen(self, start: Callable[[], Awaitable], what: str) -> float:
        """Starts the call `start()` makes, cancels it 0.3 s after this rule's request reached AWS
        (its answer still held), checks that the client saw it cancelled, and returns the
        time.monotonic() of the cancel."""

        async def body():
            call = asyncio.create_task(start())
            assert await asyncio.to_thread(self.seen.wait, 20), f"no {what} reached AWS"
            await asyncio.sleep(0.3)
            call.cancel()
            cancelled_at = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await call
            return cancelled_at

        return asyncio.run(body())

    def matches(self, exchange: Exchange) -> bool:
        return len(self.exchanges) < self.count and awswire.operation(exchange) == self.operation and self.when(exchange)


class Faults:
    """The rules of one proxy; installs itself as the proxy's answer fault."""

    def __init__(self, proxy: RecordingProxy):
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        proxy.on_answer(self._apply)

    def hold(self, operation: str, seconds: float, count: int = 1, when=gateways_own) -> Rule:
        """Holds back the answer to the next `count` requests of `operation` by `seconds`."""
        return self._add(Rule(operation, seconds, False, count, when))

    def drop(self, operation: str, count: int = 1, after: float = 0.0, when=gateways_own) -> Rule:
        """Drops the answer to the next `count` requests of `operation` (after `after` seconds)."""
        return self._add(Rule(operation, after, True, count, when))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def _apply(self, exchange: Exchange) -> bool:
        with self._lock:
            rule = next((r for r in self._rules if r.matches(exchange)), None)
            if rule is not None:
                rule.exchanges.append(exchange)
        if rule is None:
            return True
        rule.seen.set()
        if rule.delay > 0:
            time.sleep(rule.delay)
        rule.released_at = time.monotonic()
        rule.released.set()
        return not rule.drop


@pytest.fixture(scope="session")
def proxy_faults(proxy) -> Faults:
    return Faults(proxy)


@pytest.fixture
def faults(proxy_faults) -> Faults:
    """Slow or lost AWS answers for one test; every rule is gone after it."""
    try:
        yield proxy_faults
    finally:
        proxy_faults.clear()
