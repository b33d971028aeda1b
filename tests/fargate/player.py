"""moto as ECS for the Fargate suite, and the player that does what moto cannot: run the task.

moto records every ECS call (RunTask, DescribeTasks, StopTask) but runs no container. The player
watches moto's task table in this process and, for each new task, plays the Fargate agent and
nothing more: it moves the task through PROVISIONING, PENDING and RUNNING (each state held until
the gateway's DescribeTasks has seen it), does what the task's definition stands for, and marks
the task STOPPED with an exit code, a stop code and a stopped reason, as ECS would.

What a task does is chosen by its task definition's family, never by the call's arguments (the
player does not read them):

    run        the real switchboard-tool in container mode, with exactly the task's environment
               overrides, in a sandbox (tests/fargate/sandbox.py) whose only network is the S3
               emulator; the task's exit code is the tool's
    exit1      the container exits with code 1 without storing a result
    pullfail   the task never starts: STOPPED from PENDING with TaskFailedToStart and a
               CannotPullContainerError reason, no exit code
    hang       runs until a StopTask arrives (which the player records)
    nostart    never starts: held in PENDING until a StopTask arrives (recorded as for hang), as a
               task whose image pull or capacity never comes would be
    long       runs LONG_TASK_SECONDS (ending early at a StopTask, recorded as for hang), then
               stores a result of its own through the result URL and exits 0: the reference tools
               have no tool that takes long
    oversize   stores a result of MAX_RESULT_BYTES + 1 bytes through the result URL, exits 0
    invalid    stores a result that is JSON but not a ToolOutput, exits 0

`long` and `invalid` read the invocation (through its URL, as soon as the task runs) for the one
thing a result needs from it: the call's result key, which seals the result as the gateway
requires (tool-runtime/src/seal.rs; `seal` below). `oversize` seals nothing: the gateway refuses
its size before it looks for a seal.

Patches to moto 5.2.1 (applied by `patch_moto`, before the server starts):
- a container's cpu and memory are numbers in moto's answer, strings in the ECS model; the Rust
  SDK rejects the numbers, so they are stored as strings;
- a container has no exit code until it exits (moto says 0 from the start);
- a task starts in PROVISIONING, as on Fargate (moto starts it in RUNNING), and stays wherever
  the player puts it (the state manager's `manual` progression, never advancing);
- DescribeTasks notes which state of which task it answered with, so the player can wait for it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Callable

MAX_RESULT_BYTES = 4 * 1024 * 1024  # gateway/src/backend/fargate.rs
LONG_TASK_SECONDS = 30  # what a `long` task runs before it stores its result
LONG_TASK_TEXT = f"the long task ran {LONG_TASK_SECONDS} s"

_seen_lock = threading.Lock()
_seen: dict[str, set[str]] = {}  # task arn -> the states DescribeTasks answered with


def patch_moto() -> None:
    from moto.ecs import models
    from moto.moto_api import state_manager

    if getattr(models, "_switchboard_patched", False):
        return
    container_init = models.Container.__init__

    def init_container(self, task_def):
        container_init(self, task_def)
        for name in ("cpu", "memory"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, str(value))
        self.exitCode = None

    task_init = models.Task.__init__

    def init_task(self, *args, **kwargs):
        task_init(self, *args, **kwargs)
        self.status = "PROVISIONING"
        self.stop_code = None

    describe = models.EC2ContainerServiceBackend.describe_tasks

    def describe_tasks(self, cluster_str, tasks):
        answered = describe(self, cluster_str, tasks)
        with _seen_lock:
            for task in answered:
                _seen.setdefault(task.task_arn, set()).add(task.last_status)
        return answered

    models.Container.__init__ = init_container
    models.Task.__init__ = init_task
    models.EC2ContainerServiceBackend.describe_tasks = describe_tasks
    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
    models._switchboard_patched = True


SEAL_PREFIX = b"switchboard-result-hmac-sha256 "  # tool-runtime/src/seal.rs


def seal(key: str, output: bytes) -> bytes:
    """`output` (a ToolOutput's JSON) sealed with the call's result key, as container mode does."""
    mac = hmac.new(key.encode(), output, hashlib.sha256).hexdigest()
    return SEAL_PREFIX + mac.encode() + b"\n" + output


def result_key(environment: dict[str, str]) -> str:
    """The call's result key, read from the invocation through the task's invocation URL."""
    with urllib.request.urlopen(environment["SWITCHBOARD_INVOCATION_URL"], timeout=10) as answer:
        return json.loads(answer.read())["resultKey"]


def described(task_arn: str, state: str) -> bool:
    with _seen_lock:
        return state in _seen.get(task_arn, set())


@dataclass
class Played:
    """One task as the player saw it."""

    arn: str
    family: str
    started_by: str
    overrides: dict
    network: dict
    tags: list
    environment: dict[str, str]
    states: list[str] = field(default_factory=list)  # as the player set them
    exit_code: int | None = None
    tool_stderr: str = ""
    stop_reason: str | None = None  # from a StopTask, when one came
    stopped_by_stoptask: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None  # the player's own failure, if any


class Player:
    """Plays every new task of one cluster. `run_tool(environment) -> (exit code, stderr)` runs
    switchboard-tool in container mode with that environment."""

    def __init__(self, account: str, region: str, cluster: str, run_tool: Callable[[dict], tuple[int, str]]):
        self.account = account
        self.region = region
        self.cluster = cluster
        self.run_tool = run_tool
        self.played: dict[str, Played] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ecs-player", daemon=True)

    def start(self) -> Player:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def task_started_by(self, invocation_id: str, timeout: float = 10) -> Played:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                for p in self.played.values():
                    if p.started_by == invocation_id:
                        return p
            time.sleep(0.05)
        raise AssertionError(f"no task was started by {invocation_id}; tasks: {self.summary()}")

    def summary(self) -> list[tuple[str, str, list[str]]]:
        with self._lock:
            return [(p.family, p.started_by, p.states) for p in self.played.values()]

    # --- the loop -------------------------------------------------------------------------------

    def _backend(self):
        from moto.ecs.models import ecs_backends

        return ecs_backends[self.account][self.region]

    def _watch(self) -> None:
        while not self._stop.is_set():
            tasks = dict(self._backend().tasks.get(self.cluster, {}))
            for arn, task in tasks.items():
                with self._lock:
                    if arn in self.played:
                        continue
                    played = self._record(task)
                    self.played[arn] = played
                threading.Thread(target=self._play, args=(task, played), name=f"task-{task.id}", daemon=True).start()
            time.sleep(0.02)

    @staticmethod
    def _record(task) -> Played:
        overrides = task.overrides or {}
        environment = {}
        for c in overrides.get("containerOverrides", []):
            for e in c.get("environment", []):
                environment[e["name"]] = e["value"]
        family = task.task_definition_arn.rsplit("/", 1)[-1].split(":")[0]
        return Played(
            arn=task.task_arn,
            family=family.rsplit("-", 1)[-1],
            started_by=task.started_by,
            overrides=overrides,
            network=getattr(task, "network_configuration", {}) or {},
            tags=list(task.tags or []),
            environment=environment,
        )

    # --- one task --------------------------------------------------------------------------------

    def _set(self, task, played: Played, state: str, wait_seen: bool = True) -> None:
        # A task stopped before it got this far (a StopTask soon after RunTask) stays stopped.
        if self._stopped(task):
            return
        task.status = state
        played.states.append(state)
        if not wait_seen:
            return
        end = time.monotonic() + 15
        while not described(task.task_arn, state) and time.monotonic() < end and not self._stopped(task):
            time.sleep(0.02)

    @staticmethod
    def _stopped(task) -> bool:
        return task.desired_status == "STOPPED"

    @staticmethod
    def _stopped_by_stoptask(task, played: Played) -> None:
        task.status = "STOPPED"
        played.stop_reason = task.stopped_reason
        played.stopped_by_stoptask.set()
        played.states.append("STOPPED")

    def _finish(self, task, played: Played, exit_code: int | None, stop_code: str, reason: str) -> None:
        if exit_code is not None:
            task.containers[0].exitCode = exit_code
        played.exit_code = exit_code
        task.stop_code = stop_code
        task.stopped_reason = reason
        task.desired_status = "STOPPED"
        task.status = "STOPPED"
        played.states.append("STOPPED")

    def _play(self, task, played: Played) -> None:
        try:
            self._set(task, played, "PROVISIONING")
            self._set(task, played, "PENDING")
            if played.family == "nostart":
                while not self._stopped(task) and not self._stop.is_set():
                    time.sleep(0.02)
                self._stopped_by_stoptask(task, played)
                return
            if played.family == "pullfail":
                self._finish(
                    task,
                    played,
                    None,
                    "TaskFailedToStart",
                    "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                    "failed to resolve ref switchboard-tools@sha256:0000: not found",
                )
                return
            self._set(task, played, "RUNNING")
            key = result_key(played.environment) if played.family in ("long", "invalid") else None
            if played.family in ("hang", "long"):
                end = time.monotonic() + (LONG_TASK_SECONDS if played.family == "long" else float("inf"))
                while not self._stopped(task) and not self._stop.is_set() and time.monotonic() < end:
                    time.sleep(0.02)
                if self._stopped(task) or self._stop.is_set():
                    self._stopped_by_stoptask(task, played)
                    return
            if played.family == "run":
                code, stderr = self.run_tool(played.environment)
                played.tool_stderr = stderr
            elif played.family == "exit1":
                code = 1
            elif played.family in ("oversize", "invalid", "long"):
                body = {
                    "oversize": b"x" * (MAX_RESULT_BYTES + 1),
                    "invalid": b'{"content": "not a list of content blocks"}',
                    "long": json.dumps({"content": [{"type": "text", "text": LONG_TASK_TEXT}]}).encode(),
                }[played.family]
                if key is not None:
                    body = seal(key, body)
                # A content type of its own: urllib's default (a form) makes moto's server parse
                # the body as form fields and store an empty object.
                request = urllib.request.Request(
                    played.environment["SWITCHBOARD_RESULT_URL"],
                    data=body,
                    method="PUT",
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=30) as answer:
                    assert answer.status == 200, answer.status
                code = 0
            else:
                raise AssertionError(f"no behaviour for task family {played.family!r}")
            self._finish(task, played, code, "EssentialContainerExited", "Essential container in task exited")
        except Exception as e:  # noqa: BLE001 - reported by the tests that wait for this task
            played.error = f"{type(e).__name__}: {e}"
            self._finish(task, played, 99, "EssentialContainerExited", f"the player failed: {played.error}")
        finally:
            played.done.set()
