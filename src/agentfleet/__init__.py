"""agentfleet: a durable job queue and workflow coordinator for fleets of AI coding agents.

The public names load on first use, so that a process that needs only part of the package
(a merge step, a task's child process) does not pay for importing all of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentfleet.errors import (
        AgentFleetError,
        InvalidArgument,
        InvalidTransition,
        JobCancelled,
        JobNotFound,
        LeaseLost,
        SchemaTooNew,
        StoreUnavailable,
    )
    from agentfleet.fleet import Fleet, open
    from agentfleet.models import (
        Event,
        Job,
        JobStatus,
        Lease,
        LedgerEntry,
        MatchResult,
        NewJob,
        Run,
        RunOutput,
        RunStatus,
        WorkerInfo,
    )
    from agentfleet.plans import (
        CheckpointConflict,
        NotResumable,
        Plan,
        PlanConflict,
        PlanMode,
        PlanNotFound,
        PlanSpec,
        PlanStatus,
        PlanStep,
        Repair,
        StepSpec,
    )
    from agentfleet.retry import RetryPolicy
    from agentfleet.tasks import TaskRegistry, task, task_name
    from agentfleet.worker import Worker, WorkerStats
    from agentfleet.workspaces.train import MergeSpec, PrSpec, with_merge_train

__version__ = "0.1.0"

__all__ = [
    "AgentFleetError",
    "CheckpointConflict",
    "Event",
    "Fleet",
    "InvalidArgument",
    "InvalidTransition",
    "Job",
    "JobCancelled",
    "JobNotFound",
    "JobStatus",
    "Lease",
    "LeaseLost",
    "LedgerEntry",
    "MatchResult",
    "MergeSpec",
    "NewJob",
    "NotResumable",
    "Plan",
    "PlanConflict",
    "PlanMode",
    "PlanNotFound",
    "PlanSpec",
    "PlanStatus",
    "PlanStep",
    "PrSpec",
    "Repair",
    "RetryPolicy",
    "Run",
    "RunOutput",
    "RunStatus",
    "SchemaTooNew",
    "StepSpec",
    "StoreUnavailable",
    "TaskRegistry",
    "Worker",
    "WorkerInfo",
    "WorkerStats",
    "__version__",
    "open",
    "task",
    "task_name",
    "with_merge_train",
]

# Where each public name lives: `agentfleet.Fleet` imports agentfleet.fleet on first use.
_HOMES = {
    "AgentFleetError": "agentfleet.errors",
    "InvalidArgument": "agentfleet.errors",
    "InvalidTransition": "agentfleet.errors",
    "JobCancelled": "agentfleet.errors",
    "JobNotFound": "agentfleet.errors",
    "LeaseLost": "agentfleet.errors",
    "SchemaTooNew": "agentfleet.errors",
    "StoreUnavailable": "agentfleet.errors",
    "Fleet": "agentfleet.fleet",
    "open": "agentfleet.fleet",
    "Event": "agentfleet.models",
    "Job": "agentfleet.models",
    "JobStatus": "agentfleet.models",
    "Lease": "agentfleet.models",
    "LedgerEntry": "agentfleet.models",
    "MatchResult": "agentfleet.models",
    "NewJob": "agentfleet.models",
    "Run": "agentfleet.models",
    "RunOutput": "agentfleet.models",
    "RunStatus": "agentfleet.models",
    "WorkerInfo": "agentfleet.models",
    "CheckpointConflict": "agentfleet.plans",
    "NotResumable": "agentfleet.plans",
    "Plan": "agentfleet.plans",
    "PlanConflict": "agentfleet.plans",
    "PlanMode": "agentfleet.plans",
    "PlanNotFound": "agentfleet.plans",
    "PlanSpec": "agentfleet.plans",
    "PlanStatus": "agentfleet.plans",
    "PlanStep": "agentfleet.plans",
    "Repair": "agentfleet.plans",
    "StepSpec": "agentfleet.plans",
    "RetryPolicy": "agentfleet.retry",
    "TaskRegistry": "agentfleet.tasks",
    "task": "agentfleet.tasks",
    "task_name": "agentfleet.tasks",
    "Worker": "agentfleet.worker",
    "WorkerStats": "agentfleet.worker",
    "MergeSpec": "agentfleet.workspaces.train",
    "PrSpec": "agentfleet.workspaces.train",
    "with_merge_train": "agentfleet.workspaces.train",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'agentfleet' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # found once, then an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
