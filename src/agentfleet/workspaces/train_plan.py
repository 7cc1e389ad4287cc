"""What the plan coordinator asks of the merge train, as pure functions over a plan's steps.

The coordinator reads a plan's step rows under the plan's lock and calls these to learn
what a step needs when it is queued (a merge the commit its step made; a step that builds
on others the integration branch as it stands), what a landing gate shows, what stopped
the train, and how a step is reworked after a conflict. Keeping them here keeps git's
vocabulary out of the coordinator and every rule testable without a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentfleet.plans.model import LAND_ENGINE, MERGE_ENGINE
from agentfleet.workspaces.worktree import WORKTREE

TRAIN_ENGINES = (MERGE_ENGINE, LAND_ENGINE)
# What stops a train for a person: the step must be done again, against the newest code.
REWORK_KINDS = ("merge_conflict", "test_failed")


@dataclass(frozen=True)
class StepRow:
    """One step of a plan as the coordinator read it (payload and result decoded)."""

    job_id: int
    name: str
    engine: str
    status: str
    payload: Mapping[str, Any]
    result: Any
    depends_on: tuple[int, ...]
    finished_at: datetime | None = None
    error: str | None = None


def train_lock(plan_id: int) -> str:
    """The lock every merge and landing of one plan share: one at a time per plan."""
    return f"agentfleet-plan-{plan_id}-train"


def has_train(rows: Sequence[StepRow]) -> bool:
    return any(r.engine in TRAIN_ENGINES for r in rows)


def integration_head(rows: Sequence[StepRow]) -> Mapping[str, Any] | None:
    """The result of the merge that moved the integration branch last (merges of a plan
    run one at a time, so the latest to finish holds every earlier one)."""
    merged = [
        r
        for r in rows
        if r.engine == MERGE_ENGINE
        and r.status == "succeeded"
        and isinstance(r.result, Mapping)
        and r.result.get("integration_head")
    ]
    if not merged:
        return None
    latest = max(merged, key=lambda r: (r.finished_at or datetime.min, r.job_id))
    return latest.result  # type: ignore[no-any-return]


def promotion_payloads(
    rows: Sequence[StepRow], promote: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """The payloads of steps about to be queued that must change first: a merge learns the
    commit its step's winning attempt made; a worktree step that builds on other steps (or
    reruns after a conflict) branches from the integration branch's current head."""
    if not has_train(rows):
        return {}
    by_id = {r.job_id: r for r in rows}
    by_name = {r.name: r for r in rows}
    head = integration_head(rows)
    changed: dict[int, dict[str, Any]] = {}
    for job_id in promote:
        row = by_id.get(job_id)
        if row is None:
            continue
        payload = dict(row.payload)
        if row.engine == MERGE_ENGINE:
            step = by_name.get(str(payload.get("step")))
            done = step.result if step is not None and isinstance(step.result, Mapping) else {}
            commit = done.get("head_commit") or done.get("base_commit")
            if commit:
                payload["head_commit"] = commit
                if done.get("attempt_ref"):  # with a remote: where another machine finds it
                    payload["head_ref"] = done["attempt_ref"]
                changed[job_id] = payload
        elif (
            payload.get("workspace") == WORKTREE
            and head is not None
            and (row.depends_on or payload.get("from_integration"))
        ):
            payload["base_commit"] = head["integration_head"]
            if head.get("integration_ref"):  # with a remote: where another machine finds it
                payload["base_ref"] = head["integration_ref"]
            changed[job_id] = payload
    return changed


def landing_context(rows: Sequence[StepRow], plan_id: int) -> dict[str, Any]:
    """What a landing gate shows: the plan's combined change, on its integration branch."""
    head = integration_head(rows)
    if head is None:
        return {}
    return {
        "branch": f"agentfleet/plan-{plan_id}",
        "integration_head": head.get("integration_head"),
        "diffstat": {
            "files_changed": list(head.get("files_changed") or []),
            "insertions": head.get("insertions", 0),
            "deletions": head.get("deletions", 0),
        },
    }


def stop_context(row: StepRow, report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Why a merge or landing stopped the plan, in the words of its report: the step whose
    merge conflicted or failed the test gate, the files, the other side, the test output."""
    if row.engine not in TRAIN_ENGINES or not report or "kind" not in report:
        return None
    return {**report, "step": row.name, "step_id": row.job_id}


def rework(
    rows: Sequence[StepRow], context: Mapping[str, Any]
) -> tuple[StepRow, dict[str, Any]] | None:
    """After a conflict or a failed test gate, the step to do again and its new payload:
    from the integration branch's newest head, told which files clashed and how the other
    side changed them (or what the test printed)."""
    if context.get("kind") not in REWORK_KINDS:
        return None
    target = next((r for r in rows if r.name == context.get("job")), None)
    if target is None or target.payload.get("workspace") != WORKTREE:
        return None
    payload = dict(target.payload)
    if context["kind"] == "merge_conflict":
        files = ", ".join(context.get("files") or []) or "the tree"
        note = (
            f"Merging your earlier change conflicted with work merged before it, in {files}. "
            "You now start from the merged code: make your change again on top of it.\n"
            f"The other side's change:\n{context.get('other_diff') or '(not shown)'}"
        )
    else:
        note = (
            "The test gate failed after your change was merged. You now start from the "
            f"merged code without it: make your change so the tests pass.\n"
            f"The test printed:\n{context.get('output') or '(nothing)'}"
        )
    payload["feedback"] = [*payload.get("feedback", []), note]
    if isinstance(payload.get("prompt"), str):
        payload["prompt"] += f"\n\n{note}"
    payload["from_integration"] = True  # its base is set from the integration head when queued
    return target, payload
