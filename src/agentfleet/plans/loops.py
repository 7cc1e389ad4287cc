"""Loops: a step (with the steps from its `from:` to it) that runs again until a condition.

    - name: fix
      engine: claude
      depends_on: [review]
      prompt: |
        Fix what the review found: {{ steps.review.text }}
        {% if loop.previous %}Your last try ended: {{ loop.previous.text }}{% endif %}
      loop:
        until: "'ALL TESTS PASS' in steps.fix.text"
        max_iterations: 3

Each iteration is a new job with its own runs. When every step of the body has ended and
none failed, the loop's `until` is judged over what the iteration produced (the body's steps
under their own names, `loop.iteration`); while it does not hold and fewer than
`max_iterations` ran, the iteration's jobs are renamed `NAME (iteration n)` and fresh
waiting jobs take their names, wired to the same upstream steps, with the ended iteration's
view as `loop.previous`. Steps after the loop depend on its newest iteration, so they run
once the loop is done. A failed iteration stops the plan like any failed step; resume
retries it. An approval gate in the body pauses each iteration.

The rules here are pure; the coordinator applies them under the plan's lock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentfleet.errors import InvalidArgument
from agentfleet.plans import templating
from agentfleet.plans.model import MAX_ITERATIONS, StepSpec, upstream
from agentfleet.workspaces.train_plan import StepRow

LOOP_KEY = "loop"  # a body step's payload: which loop, which iteration
ITERATION_NAME = re.compile(r".* \(iteration \d+\)\Z", re.DOTALL)
ENDED = frozenset({"succeeded", "skipped"})  # an iteration is over when all its steps are


def iteration_name(step: str, iteration: int) -> str:
    """What an earlier iteration's job is called once the next one takes the step's name."""
    return f"{step} (iteration {iteration})"


def body(graph: Mapping[str, Sequence[str]], end: str, start: str | None) -> list[str]:
    """The steps a loop repeats: `start`, `end`, and every step on a path between them."""
    if start is None or start == end:
        return [end]
    return [
        name
        for name in graph
        if name in (start, end) or (start in upstream(graph, name) and name in upstream(graph, end))
    ]


def check(steps: Sequence[StepSpec]) -> dict[str, list[str]]:
    """Refuse a loop that cannot be run, naming it; returns each loop's body (by its step)."""
    graph = {s.name: s.depends_on for s in steps}
    for step in steps:
        if ITERATION_NAME.match(step.name):
            raise InvalidArgument(
                f"job {step.name!r}: a name ending '(iteration N)' is kept for a loop's "
                "earlier iterations; rename the job"
            )
    bodies: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for step in steps:
        loop = step.loop
        if loop is None:
            continue
        where = f"job {step.name!r}: loop"
        if not 1 <= loop.max_iterations <= MAX_ITERATIONS:
            raise InvalidArgument(
                f"{where}: max_iterations must be from 1 to {MAX_ITERATIONS}, "
                f"not {loop.max_iterations}"
            )
        if loop.start is not None and loop.start != step.name:
            if loop.start not in graph:
                raise InvalidArgument(f"{where}: 'from' names no job: {loop.start!r}")
            if loop.start not in upstream(graph, step.name):
                raise InvalidArgument(
                    f"{where}: 'from' must be a job it depends on (directly or through "
                    f"others), and {loop.start!r} is not"
                )
        names = body(graph, step.name, loop.start)
        for name in names:
            if name in owner:
                raise InvalidArgument(
                    f"{where}: job {name!r} is in the body of loop {owner[name]!r} too; "
                    "loops may not overlap or nest"
                )
            owner[name] = step.name
        for other in steps:
            if other.name in names:
                continue
            inside = [d for d in other.depends_on if d in names and d != step.name]
            if inside:
                raise InvalidArgument(
                    f"job {other.name!r} depends on {inside[0]!r}, inside loop "
                    f"{step.name!r}: a job outside a loop may depend only on the loop's "
                    f"own step ({step.name!r}), which ends last"
                )
        if loop.until is not None:
            seen = upstream(graph, step.name) | set(names)
            templating.check_condition(step.name, loop.until, seen, set(graph), loop=True,
                                       field="loop.until")  # fmt: skip
        bodies[step.name] = names
    return bodies


def marker(step: StepSpec, names: Sequence[str]) -> dict[str, Any]:
    """What each step of a loop's body keeps in its payload, for its first iteration."""
    assert step.loop is not None
    return {
        "name": step.name,
        "body": list(names),
        "iteration": 1,
        "max_iterations": step.loop.max_iterations,
        "until": step.loop.until,
        "previous": None,
    }


def loop_note(loop: Mapping[str, Any]) -> str:
    """How a loop's step says where its loop is, in `plan show` and on the plan's page."""
    until = f", until {loop['until']}" if loop.get("until") else ""
    return f"iteration {loop.get('iteration', 1)} of {loop.get('max_iterations')}{until}"


def context(loop: Mapping[str, Any]) -> dict[str, Any]:
    """What a body step's templates see as `loop`."""
    return {
        "iteration": loop.get("iteration", 1),
        "max_iterations": loop.get("max_iterations"),
        "previous": loop.get("previous"),
    }


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where a loop stands once its iteration has ended."""

    loop: str  # the loop's step
    iteration: int  # the iteration that ended
    again: bool  # run the body once more
    why: str  # "until" held, "max_iterations" reached, or why it goes again


def judge(rows: Sequence[StepRow], views: Mapping[str, Mapping[str, Any]]) -> list[Verdict]:
    """Every loop whose current iteration has ended, and whether it goes again."""
    current = {r.name: r for r in rows}
    verdicts = []
    for row in rows:
        loop = row.payload.get(LOOP_KEY)
        if not isinstance(loop, Mapping) or loop.get("name") != row.name:
            continue  # not a loop's own step, or an earlier iteration of one
        members = [current[n] for n in loop.get("body", [row.name]) if n in current]
        if any(m.status not in ENDED for m in members) or row.status != "succeeded":
            continue  # still running, stopped on a failure, or the loop was skipped
        iteration = int(loop.get("iteration", 1))
        until = loop.get("until")
        if until and templating.condition_holds(str(until), views, loop=context(loop)):
            verdicts.append(Verdict(row.name, iteration, False, "until"))
        elif iteration >= int(loop.get("max_iterations", 1)):
            verdicts.append(Verdict(row.name, iteration, False, "max_iterations"))
        else:
            why = "until: the condition is false" if until else "max_iterations not reached"
            verdicts.append(Verdict(row.name, iteration, True, why))
    return verdicts


def members(rows: Sequence[StepRow], loop: str) -> list[StepRow]:
    """The current iteration's rows of a loop's body, in the order they were inserted."""
    by_name = {r.name: r for r in rows}
    own = by_name[loop].payload.get(LOOP_KEY) or {}
    return [by_name[n] for n in own.get("body", [loop]) if n in by_name]


def next_payload(row: StepRow, previous: Mapping[str, Any], iteration: int) -> dict[str, Any]:
    """A body step's payload for the next iteration: its templates as written (rendered
    again when it is queued), told which iteration it is and what the last one produced."""
    payload = {k: v for k, v in row.payload.items() if k != templating.RENDERED_KEY}
    loop = dict(row.payload[LOOP_KEY])
    loop.update({"iteration": iteration, "previous": dict(previous)})
    payload[LOOP_KEY] = loop
    return payload
