"""What a running plan should do next, given its steps: a pure function, no I/O.

The coordinator calls this under the plan's lock and applies the answer with conditional
writes; keeping the rules here keeps them in one place and testable without a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentfleet.models import JobStatus
from agentfleet.plans.model import APPROVAL_ENGINE, LAND_ENGINE, ON_ERROR, PRE_PR, PlanMode


@dataclass(frozen=True, slots=True)
class StepState:
    job_id: int
    name: str
    engine: str
    status: JobStatus
    depends_on: tuple[int, ...]
    error: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """At most one plan move, plus the steps to promote from waiting to queued."""

    pause_at: str | None = None
    fail: bool = False
    complete: bool = False
    context: dict[str, Any] | None = None
    promote: tuple[int, ...] = field(default=())


def decide(mode: PlanMode, max_parallel: int, steps: Sequence[StepState]) -> Decision:
    by_id: Mapping[int, StepState] = {s.job_id: s for s in steps}
    broken = [s for s in steps if s.status in (JobStatus.FAILED, JobStatus.CANCELLED)]
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
    if all(s.status is JobStatus.SUCCEEDED for s in steps):
        landed = any(s.engine == LAND_ENGINE for s in steps)  # its own gate came before
        if mode is PlanMode.SUPERVISED and not landed:
            return Decision(pause_at=PRE_PR, context={"kind": PRE_PR, "jobs": len(steps)})
        return Decision(complete=True)
    ready = [
        s
        for s in steps
        if s.status is JobStatus.WAITING
        and all(by_id[d].status is JobStatus.SUCCEEDED for d in s.depends_on)
    ]
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
