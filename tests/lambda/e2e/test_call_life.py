"""A Lambda call's life at its edges, with AWS slow on the wire (faults.py holds an answer back on
the recording proxy, after LocalStack acted): the call answers at its deadline or its cancel
whatever AWS does, and its audit line says which. The table these rows belong to is "A call's
life" in docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import time

import awswire
import pytest
from conftest import WORK_ROLE

# How late after its deadline (or its cancel) a call may answer.
SLACK = 0.5


def test_an_invoke_answered_after_the_deadline_answers_the_deadline_on_time(e2e, faults):
    # LocalStack runs the 0.1 s sleep at once (warm: a first call started its environment); its
    # answer is held 6 s, past the 3 s deadline.
    assert not e2e.call("sleep", {"seconds": 0.1}).is_error
    held = faults.hold("Invoke", 6)
    started = time.monotonic()
    result = e2e.call("sleep", {"seconds": 0.1})
    elapsed = time.monotonic() - started
    assert held.seen.is_set() and not held.released.is_set(), "the Invoke was answered before the deadline"
    assert result.is_error and "deadline" in result.content[0].text, result
    assert 3 <= elapsed < 3 + SLACK + 0.5, f"the answer took {elapsed:.2f} s for a 3 s deadline"
    [invoke] = awswire.invokes(held.exchanges)
    audit = e2e.audit_for(invoke.payload["invocationId"])
    assert audit["outcome"] == "deadline_exceeded", audit
    assert 3000 <= audit["duration_ms"] < 3000 + SLACK * 1000, audit
    assert held.released.wait(10)


def test_a_cancel_while_an_invoke_is_unanswered_ends_the_call_at_once(e2e, faults):
    held = faults.hold("Invoke", 8)

    async def body():
        call = asyncio.create_task(e2e.acall("long-sleep", {"seconds": 0.1}))
        assert await asyncio.to_thread(held.seen.wait, 20), "no Invoke reached LocalStack"
        await asyncio.sleep(0.3)
        call.cancel()
        cancelled_at = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await call
        return cancelled_at

    cancelled_at = asyncio.run(body())
    [invoke] = awswire.invokes(held.exchanges)
    invocation = invoke.payload["invocationId"]

    def audited():
        return [a for a in e2e.audit_lines() if a.get("invocation_id") == invocation] or None

    deadline = time.monotonic() + 5
    while not audited() and time.monotonic() < deadline:
        time.sleep(0.02)
    ended_after = time.monotonic() - cancelled_at
    lines = audited()
    assert lines, "no audit line within 5 s of the cancel"
    print(f"audit line {ended_after:.3f} s after the cancel, the Invoke's answer held 8 s")
    assert lines[0]["outcome"] == "cancelled", lines
    assert not held.released.is_set(), "the call ended only once the Invoke answered"
    assert ended_after < 1.0, f"the call ended {ended_after:.2f} s after the cancel"
    assert held.released.wait(15)


def test_an_assume_role_answered_after_the_deadline_answers_the_deadline_on_time(e2e, faults):
    # whoami has a work role and a 10 s timeout; STS's answer is held 13 s. No Invoke may follow.
    # The deadline answers alike in whichever step it passes: a tool result the agent can read.
    mark = e2e.mark()
    held = faults.hold("AssumeRole", 13)
    started = time.monotonic()
    result = e2e.call("whoami", {})
    elapsed = time.monotonic() - started
    assert result.is_error and "deadline of 10 s" in result.content[0].text, result
    assert 10 <= elapsed < 10 + SLACK + 0.5, f"the answer took {elapsed:.2f} s for a 10 s deadline"
    [assume] = awswire.assume_roles(held.exchanges)
    assert assume.role_arn.endswith(f":role/{WORK_ROLE}"), assume.role_arn
    audit = e2e.audit_for(assume.session_name)
    assert audit["outcome"] == "deadline_exceeded", audit
    assert 10000 <= audit["duration_ms"] < 10000 + SLACK * 1000, audit
    assert not [i for i in e2e.invokes(mark) if i.payload and i.payload.get("invocationId") == assume.session_name]
    assert held.released.wait(10)


def test_a_cancel_while_an_assume_role_is_unanswered_ends_the_call_at_once(e2e, faults):
    mark = e2e.mark()
    held = faults.hold("AssumeRole", 8)

    async def body():
        call = asyncio.create_task(e2e.acall("whoami", {}))
        assert await asyncio.to_thread(held.seen.wait, 20), "no AssumeRole reached LocalStack"
        await asyncio.sleep(0.3)
        call.cancel()
        cancelled_at = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await call
        return cancelled_at

    cancelled_at = asyncio.run(body())
    [assume] = awswire.assume_roles(held.exchanges)
    invocation = assume.session_name
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [a for a in e2e.audit_lines() if a.get("invocation_id") == invocation]
        if lines:
            break
        time.sleep(0.02)
    ended_after = time.monotonic() - cancelled_at
    assert lines, "no audit line within 5 s of the cancel"
    print(f"audit line {ended_after:.3f} s after the cancel, AssumeRole's answer held 8 s")
    assert lines[0]["outcome"] == "cancelled", lines
    assert not held.released.is_set(), "the call ended only once STS answered"
    assert ended_after < 1.0, f"the call ended {ended_after:.2f} s after the cancel"
    # The credentials STS then issued reach no unit.
    assert held.released.wait(15)
    assert not [i for i in e2e.invokes(mark) if i.payload and i.payload.get("invocationId") == invocation]
