"""When a worker stops an agent before it ends by itself: silence and spending.

* ``idle_timeout``: an agent that printed nothing (no event, no output) for that long is
  waiting on something that will not come (a prompt nobody answers, a dead network). The
  attempt fails with ``idle timeout`` and is retried like a timeout. Agent jobs get
  :data:`DEFAULT_IDLE_TIMEOUT` unless they set their own; ``0`` turns it off.
* ``budget_usd`` of the job: the cost its agent reported, over all of the job's runs,
  may not pass it; ``budget_usd`` of its plan: nor the cost of all of the plan's runs. Past
  a budget the attempt fails for good with ``budget exceeded``: retrying would spend more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentfleet.agents.usage import Usage, budget_exceeded
from agentfleet.durations import format_duration
from agentfleet.engines import EngineConfig
from agentfleet.models import Job, Lease

if TYPE_CHECKING:
    from agentfleet.fleet import Fleet
    from agentfleet.remote import RemoteFleet

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "PLAN_RECHECK",
    "Stop",
    "Watch",
    "idle_timeout_of",
    "watch_for",
]

DEFAULT_IDLE_TIMEOUT = 15 * 60.0
# How often (seconds) a running agent re-reads what the rest of its plan has spent.
PLAN_RECHECK = 10.0


@dataclass(frozen=True)
class Stop:
    """Why the worker stops an attempt: ``reason`` names it in the worker's bookkeeping
    (which says whether another attempt may follow), ``error`` is what the job records."""

    reason: str
    error: str
    event: str  # the worker's log event


def idle_timeout_of(payload: Mapping[str, Any], is_agent: bool) -> float | None:
    """The job's idle timeout in seconds: its own (0: none), else the agents' default."""
    value = payload.get("idle_timeout")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) or None
    return DEFAULT_IDLE_TIMEOUT if is_agent else None


class Watch:
    """Watches one attempt. ``spent_before`` is what the job's earlier runs cost;
    ``plan_spent`` reads what the plan's other runs cost (None: the job has no plan
    budget)."""

    def __init__(
        self,
        *,
        job_id: int,
        idle_timeout: float | None,
        budget_usd: float | None = None,
        spent_before: Usage | None = None,
        plan_id: int | None = None,
        plan_budget_usd: float | None = None,
        plan_spent: Callable[[], Usage] | None = None,
        now: float,
    ) -> None:
        self.job_id = job_id
        self.idle_timeout = idle_timeout
        self.budget_usd = budget_usd
        self.spent_before = spent_before or Usage()
        self.plan_id = plan_id
        self.plan_budget_usd = plan_budget_usd
        self._plan_spent = plan_spent
        self._plan_others = Usage()
        self._next_plan_read = now
        self._version = -1
        self._heard_at = now

    def silence(self, now: float, output_version: int) -> Stop | None:
        """Called each tick: the stop for an agent silent for its idle timeout."""
        if output_version != self._version:
            self._version, self._heard_at = output_version, now
            return None
        if self.idle_timeout is None or now - self._heard_at < self.idle_timeout:
            return None
        quiet = format_duration(self.idle_timeout)
        error = f"idle timeout: no output or event for {quiet}"
        return Stop("idle", error, event="job.idle_timeout_reached")

    def at_start(self) -> Stop | None:
        """Before the agent starts: the job or its plan may already be past its budget (a
        retry a person asked for, a step of a plan that spent it all elsewhere)."""
        return self._past_budget(Usage(), read_plan=True)

    def spending(self, now: float, agent: Mapping[str, Any] | None) -> Stop | None:
        """Called when new output arrived, with the agent's summary so far; what the rest
        of the plan spent is read again at most every PLAN_RECHECK seconds."""
        read_plan = now >= self._next_plan_read
        if read_plan:
            self._next_plan_read = now + PLAN_RECHECK
        return self._past_budget(Usage.of_agent(agent), read_plan=read_plan)

    def at_end(self, agent: Mapping[str, Any] | None) -> Stop | None:
        """The run has ended: whether its whole summary took the job or its plan past."""
        return self._past_budget(Usage.of_agent(agent), read_plan=True)

    def _past_budget(self, this_run: Usage, *, read_plan: bool) -> Stop | None:
        reason = budget_exceeded(
            self.spent_before + this_run, self.budget_usd, f"job {self.job_id}"
        )
        if reason is None and self._plan_spent is not None and self.plan_budget_usd:
            if read_plan:
                self._plan_others = self._plan_spent()
            reason = budget_exceeded(
                self._plan_others + this_run, self.plan_budget_usd, f"plan {self.plan_id}"
            )
        if reason is None:
            return None
        return Stop("budget", reason, event="job.budget_exceeded")


def watch_for(
    fleet: Fleet | RemoteFleet, job: Job, lease: Lease, engines: EngineConfig, now: float
) -> Watch | None:
    """The watch over one claimed job, or None when nothing stops it early (python tasks,
    shell jobs without an idle timeout). Reads what the job and its plan spent so far."""
    is_agent = engines.is_agent(job.engine)
    idle = idle_timeout_of(job.payload, is_agent)
    budget = job.payload.get("budget_usd") if is_agent else None
    plan_budget = None
    if is_agent and job.plan_id is not None:
        plan_budget = fleet.get_plan(job.plan_id).budget_usd
    if idle is None and budget is None and plan_budget is None:
        return None
    plan_id = job.plan_id

    def plan_spent() -> Usage:
        return fleet.usage(plan_id=plan_id, except_run=lease.run_id)

    return Watch(
        job_id=job.id,
        idle_timeout=idle,
        budget_usd=budget if isinstance(budget, int | float) else None,
        spent_before=fleet.usage(job_id=job.id, except_run=lease.run_id) if budget else None,
        plan_id=plan_id,
        plan_budget_usd=plan_budget,
        plan_spent=plan_spent if plan_budget is not None else None,
        now=now,
    )
