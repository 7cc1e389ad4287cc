"""Plans: DAGs of jobs with checkpoints, approval gates, guarded resume and cancel."""

from agentfleet.plans.model import (
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

__all__ = [
    "CheckpointConflict",
    "NotResumable",
    "Plan",
    "PlanConflict",
    "PlanMode",
    "PlanNotFound",
    "PlanSpec",
    "PlanStatus",
    "PlanStep",
    "Repair",
    "StepSpec",
]
