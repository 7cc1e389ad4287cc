"""What a person needs to see to answer a paused plan: at an approval gate, what the steps
before it produced; at an on-error stop, how the failing step ended. Read once here, so the
command line and the dashboard show the same."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentfleet.plans.model import ON_ERROR, Plan, PlanStatus

if TYPE_CHECKING:
    from agentfleet.fleet import Fleet

TAIL_LINES = 12
TAIL_CHARS = 2000


@dataclass(frozen=True, slots=True)
class ReviewItem:
    step: str
    job_id: int
    status: str
    result: Any
    error: str | None
    stdout_tail: str
    stderr_tail: str

    @property
    def logs_command(self) -> str:
        return f"agentfleet logs {self.job_id}"


def tail(text: str | None, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The end of some output: its last lines, at most `chars` characters."""
    if not text:
        return ""
    end = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return end[-chars:]


def what_to_review(fleet: Fleet, plan: Plan) -> list[ReviewItem]:
    """The steps a paused (or failed) plan's decision rests on, with their output's tails."""
    context = plan.checkpoint_context or {}
    if plan.status is PlanStatus.PAUSED and context.get("kind") == "approval":
        gate = plan.step(str(context.get("job")))
        names = list(gate.depends_on)
    elif (plan.checkpoint == ON_ERROR or plan.status is PlanStatus.FAILED) and context.get("job"):
        names = [str(context["job"])]
    else:
        return []
    items = []
    for name in names:
        step = plan.step(name)
        runs = fleet.runs(step.job_id)
        last = runs[-1] if runs else None
        items.append(
            ReviewItem(
                step=name,
                job_id=step.job_id,
                status=step.status.value,
                result=step.result,
                error=step.error,
                stdout_tail=tail(last.stdout if last else None),
                stderr_tail=tail(last.stderr if last else None),
            )
        )
    return items
