"""What a running plan should do next, given its steps: a pure function, no I/O.

The coordinator calls this under the plan's lock and applies the answer with conditional
writes; keeping the rules here keeps them in one place and testable without a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentfleet.models import JobStatus
from agentfleet.plans.model import (
    ALL_DONE,
    ALL_SUCCESS,
    APPROVAL_ENGINE,
    LAND_ENGINE,
    NONE_FAILED,
    ON_ERROR,
    ONE_SUCCESS,
    PRE_PR,
    PlanMode,
)


@dataclass(frozen=True, slots=True)
class StepState:
    job_id: int
    name: str
    engine: str
    status: JobStatus
    depends_on: tuple[int, ...]
    error: str | None = None
    message: str | None = None
    trigger_rule: str = ALL_SUCCESS
    when_holds: bool | None = None  # its `when:` over its ended dependencies; None: none


@dataclass(frozen=True, slots=True)
class Decision:
    """At most one plan move, plus the steps to promote from waiting to queued and the
    steps to skip (with why)."""

    pause_at: str | None = None
    fail: bool = False
    complete: bool = False
    context: dict[str, Any] | None = None
    promote: tuple[int, ...] = field(default=())
    skip: tuple[tuple[int, str], ...] = field(default=())


ENDED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED})
BAD = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
# A failure these dependents expect: it does not stop the plan.
TOLERANT = frozenset({ALL_DONE, ONE_SUCCESS})


def _verdict(step: StepState, deps: Sequence[StepState]) -> tuple[str, str]:
    """("run" | "wait" | "skip", why) for a waiting step, by its trigger rule."""
    done = all(d.status in ENDED for d in deps)
    rule = step.trigger_rule
    if rule == ONE_SUCCESS:
        if any(d.status is JobStatus.SUCCEEDED for d in deps) or not deps:
            return "run", ""
        return ("skip", "one_success: no dependency succeeded") if done else ("wait", "")
    if not done:
        if rule == ALL_SUCCESS and any(d.status is JobStatus.SKIPPED for d in deps):
            return "skip", "all_success: a dependency was skipped"
        return "wait", ""
    if rule in (ALL_DONE, NONE_FAILED):
        # none_failed tolerates no failure: a failed dependency has stopped the plan
        # before any step is decided (`broken` in decide), so its deps all came through.
        return "run", ""
    if any(d.status is JobStatus.SKIPPED for d in deps):
        return "skip", "all_success: a dependency was skipped"
    if all(d.status is JobStatus.SUCCEEDED for d in deps):
        return "run", ""
    return "wait", ""  # a dependency failed: the plan stops or fails on it


def decide(mode: PlanMode, max_parallel: int, steps: Sequence[StepState]) -> Decision:
    by_id: Mapping[int, StepState] = {s.job_id: s for s in steps}
    needed_by: dict[int, list[StepState]] = {}
    for s in steps:
        for d in s.depends_on:
            needed_by.setdefault(d, []).append(s)

    def tolerated(s: StepState) -> bool:
        users = needed_by.get(s.job_id, [])
        return bool(users) and all(u.trigger_rule in TOLERANT for u in users)

    broken = [s for s in steps if s.status in BAD and not tolerated(s)]
    if broken:
        first = broken[0]
        context = {
            "job": first.name,
            "job_id": first.job_id,
            "kind": first.status.value,
            "error": first.error,
        }
        if mode is PlanMode.SUPERVISED:
            return Decision(pause_at=ON_ERROR, context=context)
        return Decision(fail=True, context=context)
    if all(s.status in ENDED for s in steps):
        landed = any(s.engine == LAND_ENGINE for s in steps)  # its own gate came before
        if mode is PlanMode.SUPERVISED and not landed:
            return Decision(pause_at=PRE_PR, context={"kind": PRE_PR, "jobs": len(steps)})
        return Decision(complete=True)
    ready: list[StepState] = []
    skip: list[tuple[int, str]] = []
    for s in steps:
        if s.status is not JobStatus.WAITING:
            continue
        verdict, why = _verdict(s, [by_id[d] for d in s.depends_on])
        if verdict == "run" and s.when_holds is False:
            verdict, why = "skip", "when: the condition is false"
        if verdict == "skip":
            skip.append((s.job_id, why))
        elif verdict == "run":
            ready.append(s)
    if skip:  # applied first; the plan is decided again on what they leave
        return Decision(skip=tuple(skip))
    gates = [s for s in ready if s.engine == APPROVAL_ENGINE]
    if gates:
        gate = gates[0]
        return Decision(
            pause_at=gate.name,
            context={
                "job": gate.name,
                "job_id": gate.job_id,
                "kind": "approval",
                "message": gate.message,
            },
        )
    inflight = sum(1 for s in steps if s.status in (JobStatus.QUEUED, JobStatus.RUNNING))
    room = max(0, max_parallel - inflight)
    return Decision(promote=tuple(s.job_id for s in ready[:room]))
