"""Plans: DAGs of jobs with checkpoints. Plain values and rules, with no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from agentfleet.errors import AgentFleetError, InvalidArgument, InvalidTransition
from agentfleet.models import JobStatus, NewJob


class PlanStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"  # a failed or paused plan given up for good


class PlanMode(StrEnum):
    AUTO = "auto"  # runs straight through; a job that fails for good fails the plan
    SUPERVISED = "supervised"  # stops at checkpoints for a person


PLAN_TRANSITIONS: dict[PlanStatus, frozenset[PlanStatus]] = {
    PlanStatus.PENDING: frozenset({PlanStatus.RUNNING, PlanStatus.CANCELLED}),
    PlanStatus.RUNNING: frozenset(
        {PlanStatus.PAUSED, PlanStatus.COMPLETED, PlanStatus.FAILED, PlanStatus.CANCELLED}
    ),
    PlanStatus.PAUSED: frozenset(
        {PlanStatus.RUNNING, PlanStatus.COMPLETED, PlanStatus.CANCELLED, PlanStatus.ABANDONED}
    ),
    PlanStatus.FAILED: frozenset({PlanStatus.RUNNING, PlanStatus.CANCELLED, PlanStatus.ABANDONED}),
    PlanStatus.COMPLETED: frozenset(),
    PlanStatus.CANCELLED: frozenset(),
    PlanStatus.ABANDONED: frozenset(),
}

TERMINAL_PLAN_STATUSES = frozenset(
    {PlanStatus.COMPLETED, PlanStatus.CANCELLED, PlanStatus.ABANDONED}
)
# Abandon gives up only a plan that has stopped; a running one is cancelled instead.
ABANDONABLE_STATUSES = frozenset({PlanStatus.FAILED, PlanStatus.PAUSED})
RESUMABLE_STATUSES = frozenset({PlanStatus.FAILED, PlanStatus.PAUSED})


def predecessors(wanted: PlanStatus) -> frozenset[PlanStatus]:
    """Statuses a plan may be in for a move to `wanted`: the WHERE clause of that write."""
    return frozenset(s for s, nexts in PLAN_TRANSITIONS.items() if wanted in nexts)


def check_plan_transition(current: PlanStatus, wanted: PlanStatus) -> None:
    if wanted not in PLAN_TRANSITIONS[current]:
        raise InvalidTransition("plan", current.value, wanted.value)


# Checkpoint names the coordinator itself sets; approval gates use their job's name.
ON_ERROR = "on_error"
PRE_PR = "pre_pr"
PRE_MERGE = "pre_merge"

APPROVAL_ENGINE = "approval"
# The merge train's job kinds (see workspaces/train.py): a plan whose last step lands its
# work ends when that step succeeds, with no pre_pr pause of its own after it.
MERGE_ENGINE = "merge"
LAND_ENGINE = "land"
DEFAULT_STALE_WINDOW = 15 * 60.0
DEFAULT_MAX_REJECTIONS = 3
DEFAULT_MAX_ITERATIONS = 3  # a loop without max_iterations runs at most this many times
MAX_ITERATIONS = 100  # the most any loop may ask for: each iteration is a job, maybe an agent

# Plan-level fields: the only ones update_plan_fields may touch.
PLAN_FIELDS = frozenset(
    {
        "status",
        "checkpoint",
        "checkpoint_context",
        "completed_at",
        "pr_url",
        "metadata",
        "budget_usd",
    }
)


class PlanNotFound(AgentFleetError, LookupError):
    def __init__(self, plan_id: int) -> None:
        super().__init__(f"plan {plan_id} not found")
        self.plan_id = plan_id


class NotResumable(AgentFleetError):
    """Resume refused: the plan is not failed, paused or stale (or another resumer won)."""

    def __init__(self, plan_id: int, status: str) -> None:
        super().__init__(f"plan {plan_id} is not resumable (status: {status})")
        self.plan_id = plan_id
        self.status = status


class CheckpointConflict(AgentFleetError):
    """An approve or reject meant for one pause of a checkpoint found the plan elsewhere:
    another person (or a double click) got there first. Nothing was changed."""

    def __init__(self, plan_id: int, asked: str, pending: str | None, status: str) -> None:
        now = f"it now waits at {pending}" if pending else f"it is {status} and waits at nothing"
        super().__init__(f"plan {plan_id} no longer waits at {asked}: {now}")
        self.plan_id = plan_id
        self.asked = asked
        self.pending = pending
        self.status = status


def parse_checkpoint(text: str) -> tuple[str, int | None]:
    """`name` or `name#pause`, as `Plan.pending` writes it: (name, pause number or None)."""
    name, mark, number = text.partition("#")
    if not name or (mark and not number.isdigit()):
        raise InvalidArgument(
            f"checkpoint {text!r} must be a checkpoint name, optionally with its pause "
            "number as `plan show` prints it (for example review#2)"
        )
    return name, int(number) if mark else None


class PlanConflict(AgentFleetError):
    """A guarded plan write found the plan no longer in the expected state."""

    def __init__(self, plan_id: int, expected: Mapping[str, Any], status: str, rev: int) -> None:
        super().__init__(
            f"plan {plan_id} changed: expected {dict(expected)}, found status {status!r} "
            f"at rev {rev}"
        )
        self.plan_id = plan_id
        self.status = status
        self.rev = rev


@dataclass(frozen=True, slots=True)
class LoopSpec:
    """A step that repeats: the steps from `start` to it (its body) run again, as new
    jobs, until `until` holds over what the iteration produced or `max_iterations` ran."""

    until: str | None = None
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    start: str | None = None  # the body's first step (`from:`); None: the step alone


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One job of a plan before submission."""

    name: str
    job: NewJob
    depends_on: tuple[str, ...] = ()
    on_reject: str | None = None  # approval gates: the job a rejection sends back
    max_rejections: int = DEFAULT_MAX_REJECTIONS
    when: str | None = None  # an expression over upstream results; false skips the step
    trigger_rule: str = "all_success"  # what its dependencies must have done for it to run
    loop: LoopSpec | None = None  # it repeats, with the steps from loop.start to it


# What a step's dependencies must have done before it runs (the names Airflow gives them).
ALL_SUCCESS, ONE_SUCCESS, ALL_DONE, NONE_FAILED = (
    "all_success", "one_success", "all_done", "none_failed",
)  # fmt: skip
TRIGGER_RULES = (ALL_SUCCESS, ONE_SUCCESS, ALL_DONE, NONE_FAILED)


@dataclass(frozen=True, slots=True)
class PlanSpec:
    name: str
    steps: tuple[StepSpec, ...]
    mode: PlanMode = PlanMode.AUTO
    max_parallel: int = 4
    metadata: dict[str, Any] = field(default_factory=dict)
    budget_usd: float | None = None  # the most all its runs may cost; no step starts past it


@dataclass(frozen=True, slots=True)
class PlanStep:
    name: str
    job_id: int
    engine: str
    status: JobStatus
    depends_on: tuple[str, ...]
    attempts: int
    result: Any
    error: str | None
    when: str | None = None
    trigger_rule: str = "all_success"
    # In a loop's body: {"name": the loop's step, "iteration": n, "max_iterations": N,
    # "until": ...}; an earlier iteration's job is named "NAME (iteration n)".
    loop: dict[str, Any] | None = None
    limit: str | None = None  # the fleet-wide limit it counts against


@dataclass(frozen=True, slots=True)
class Plan:
    id: int
    name: str
    mode: PlanMode
    max_parallel: int
    status: PlanStatus
    checkpoint: str | None
    checkpoint_context: dict[str, Any] | None
    completed_at: datetime | None
    pr_url: str | None
    metadata: dict[str, Any]
    rev: int
    created_at: datetime
    updated_at: datetime
    jobs: tuple[PlanStep, ...] = ()
    pauses: int = 0  # how many times the plan has paused; numbers each pause
    budget_usd: float | None = None

    @property
    def pending(self) -> str | None:
        """The pause the plan waits at, as `checkpoint#pause`: what approve and reject take
        so that they answer the pause the caller saw, and no later one."""
        if self.status is not PlanStatus.PAUSED or self.checkpoint is None:
            return None
        return f"{self.checkpoint}#{self.pauses}"

    def step(self, name: str) -> PlanStep:
        for step in self.jobs:
            if step.name == name:
                return step
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Repair:
    """One thing the reconciler fixed, with why."""

    kind: str
    reason: str
    plan_id: int | None = None
    job_id: int | None = None


def validate_dag(steps: Sequence[StepSpec]) -> None:
    """Refuse duplicate names, unknown dependencies and cycles, naming them."""
    names = [s.name for s in steps]
    if not steps:
        raise InvalidArgument("a plan needs at least one job")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidArgument(f"duplicate job names in plan: {', '.join(dupes)}")
    known = set(names)
    for step in steps:
        unknown = [d for d in step.depends_on if d not in known]
        if unknown:
            raise InvalidArgument(
                f"job {step.name!r} depends on unknown job(s): {', '.join(unknown)}"
            )
        if step.name in step.depends_on:
            raise InvalidArgument(f"job {step.name!r} depends on itself")
        if step.on_reject is not None and step.on_reject not in known:
            raise InvalidArgument(
                f"approval gate {step.name!r} sends rejections to unknown job {step.on_reject!r}"
            )
    graph = {s.name: s.depends_on for s in steps}
    cycle = _find_cycle(graph)
    if cycle:
        raise InvalidArgument(f"dependency cycle: {' -> '.join(cycle)}")
    for step in steps:
        if step.on_reject is not None and step.on_reject not in upstream(graph, step.name):
            raise InvalidArgument(
                f"approval gate {step.name!r} sends rejections to {step.on_reject!r}, which "
                "is not upstream of it: on_reject must name a job the gate depends on, "
                "directly or through others"
            )


def upstream(graph: Mapping[str, Sequence[str]], name: str) -> set[str]:
    """Every step `name` depends on, directly or through others."""
    found: set[str] = set()
    todo = list(graph[name])
    while todo:
        dep = todo.pop()
        if dep not in found:
            found.add(dep)
            todo.extend(graph[dep])
    return found


def _find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = grey
        stack.append(node)
        for dep in graph[node]:
            if color[dep] == grey:
                return [*stack[stack.index(dep) :], dep]
            if color[dep] == white:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        color[node] = black
        return None

    for node in graph:
        if color[node] == white:
            found = visit(node)
            if found:
                return found
    return None


def topological_order(steps: Sequence[StepSpec]) -> list[StepSpec]:
    by_name = {s.name: s for s in steps}
    done: set[str] = set()
    order: list[StepSpec] = []

    def add(name: str) -> None:
        if name in done:
            return
        for dep in by_name[name].depends_on:
            add(dep)
        done.add(name)
        order.append(by_name[name])

    for step in steps:
        add(step.name)
    return order
