"""agentfleet: a durable job queue and workflow coordinator for fleets of AI coding agents."""

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
