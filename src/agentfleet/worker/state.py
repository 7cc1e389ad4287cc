"""What a worker keeps about itself and each job it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentfleet.agents.watch import Watch
from agentfleet.execution import Execution
from agentfleet.leftovers import Clearing
from agentfleet.models import Job, Lease

# The stops that end an attempt as failed: whether another attempt may follow.
STOPS_RETRY = {"timeout": True, "idle": True, "cancelled": False, "budget": False}


@dataclass
class WorkerStats:
    """What one :meth:`Worker.run` did."""

    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    cancelled: int = 0
    released: int = 0
    lost: int = 0  # leases lost: job taken over, or a late write refused


@dataclass
class Slot:
    """One claimed job, from its claim until its outcome is written."""

    lease: Lease
    job: Job
    execution: Execution
    next_renew: float
    next_output: float
    deadline: float | None
    # Why the worker stops it: timeout, idle, budget, cancelled, lease_lost, stopping.
    reason: str | None = None
    stop_error: str | None = None  # what the job records when a watch stopped it
    watch: Watch | None = None  # silence and budgets (agents, and shell jobs that ask)
    kill_at: float | None = None
    sent_version: int = 0
    next_finish: float = 0.0
    inputs_dir: str | None = None  # a plan step's inputs file lives here while it runs
    started: bool = False
    clearing: Clearing | None = None  # an earlier attempt's processes, ended first
    process_noted: bool = False
    next_note: float = 0.0
    # A python task that succeeded, waiting to be completed with the next batch (its
    # result, and since when it waits).
    batched: tuple[Any, float] | None = None


@dataclass
class Timers:
    next_claim: float = 0.0
    poll: float = 0.05
    next_seen: float = 0.0
    next_reap: float = 0.0
    next_schedule: float = 0.0
    next_prune: float = 0.0
    stop_deadline: float = float("inf")
