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
from agentfleet.retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "AgentFleetError",
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
    "NewJob",
    "RetryPolicy",
    "Run",
    "RunOutput",
    "RunStatus",
    "SchemaTooNew",
    "StoreUnavailable",
    "WorkerInfo",
    "__version__",
    "open",
]
