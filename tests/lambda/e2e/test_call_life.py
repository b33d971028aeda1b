"""A Lambda call's life at its edges, with AWS slow on the wire (faults.py holds an answer back on
the recording proxy, after LocalStack acted): the call answers at its deadline or its cancel
whatever AWS does, and its audit line says which. The table these rows belong to is "A call's
life" in docs/architecture.md.
"""

from __future__ import annotations

import time

from switchboard_harness import awswire
from conftest import WORK_ROLE

# How late after its deadline (or its cancel) a call may answer.
SLACK = 0.5


def audited_since(e2e, invocation: str, since: float) -> tuple[list[dict], float]:
    """The invocation's audit lines, waited for (5 s at most), and how long after `since`
    (time.monotonic()) they were there."""
    deadline = time.monotonic() + 5
    while not (lines := [a for a in e2e.audit_lines() if a.get("invocation_id") == invocation]):
        assert time.monotonic() < deadline, "no audit line within 5 s of the cancel"
        time.sleep(0.02)
    return lines, time.monotonic() - since


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
    cancelled_at = held.cancel_once_seen(lambda: e2e.acall("long-sleep", {"seconds": 0.1}), "Invoke")
    [invoke] = awswire.invokes(held.exchanges)
    lines, ended_after = audited_since(e2e, invoke.payload["invocationId"], cancelled_at)
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
    cancelled_at = held.cancel_once_seen(lambda: e2e.acall("whoami", {}), "AssumeRole")
    [assume] = awswire.assume_roles(held.exchanges)
    invocation = assume.session_name
    lines, ended_after = audited_since(e2e, invocation, cancelled_at)
    print(f"audit line {ended_after:.3f} s after the cancel, AssumeRole's answer held 8 s")
    assert lines[0]["outcome"] == "cancelled", lines
    assert not held.released.is_set(), "the call ended only once STS answered"
    assert ended_after < 1.0, f"the call ended {ended_after:.2f} s after the cancel"
    # The credentials STS then issued reach no unit.
    assert held.released.wait(15)
    assert not [i for i in e2e.invokes(mark) if i.payload and i.payload.get("invocationId") == invocation]
