"""Request and response bodies of the JSON API (they make up its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from agentfleet.validate import MAX_SECONDS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EnqueueRequest(Strict):
    engine: StrictStr = Field(min_length=1, max_length=200, examples=["shell"])
    payload: dict[str, Any] = Field(default_factory=dict, examples=[{"cmd": "echo hi"}])
    queue: StrictStr = Field(default="default", min_length=1, max_length=200)
    priority: StrictInt = 0
    lock: StrictStr | None = Field(default=None, min_length=1, max_length=200)
    max_attempts: StrictInt = Field(default=3, ge=1, le=1000)
    timeout: StrictFloat | StrictInt | None = Field(default=None, gt=0, le=MAX_SECONDS)
    run_at: datetime | None = Field(
        default=None, strict=False, description="An aware ISO 8601 time"
    )
    delay: StrictFloat | StrictInt | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="Seconds from now (instead of run_at)"
    )
    dedupe_key: StrictStr | None = Field(default=None, min_length=1, max_length=200)


class JobOut(BaseModel):
    id: int
    queue: str
    engine: str
    status: str
    payload: dict[str, Any]
    priority: int
    lock: str | None
    max_attempts: int
    attempts: int
    lease_epoch: int
    worker: str | None
    lease_expires_at: str | None
    timeout: float | None
    run_at: str | None
    dedupe_key: str | None
    rev: int
    result: Any
    error: str | None
    cancel_requested: bool
    created_at: str | None
    updated_at: str | None
    finished_at: str | None
    labels: list[str]
    summary: str = Field(description="One line on what the job does: prompt, command or call")
    plan_id: int | None = None
    step: str | None = Field(default=None, description="The job's name in its plan")


class JobPage(BaseModel):
    jobs: list[JobOut]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page, null on the last")


class RunOut(BaseModel):
    id: int
    number: int = Field(description="1-based place in the job's run list (`logs --run N`)")
    job_id: int
    attempt: int
    epoch: int
    worker: str
    status: str
    started_at: str | None
    finished_at: str | None
    duration: float | None = Field(description="Seconds from start to finish; null while running")
    error: str | None
    exit_code: int | None
    host: str | None = Field(None, description="The host its processes ran on, once started")
    pgid: int | None = Field(None, description="Their process group on that host")
    agent: dict[str, Any] | None = Field(
        None,
        description="What the agent CLI said of the run: engine, session_id, text, cost_usd, "
        "input_tokens, output_tokens, turns, is_error; resumed_session or fresh_because on a "
        "retry",
    )
    stdout: str | None = None
    stderr: str | None = None


class RunList(BaseModel):
    runs: list[RunOut]


class RunLog(BaseModel):
    run_id: int
    attempt: int
    epoch: int
    status: str
    exit_code: int | None
    stdout: str
    stderr: str


class LogList(BaseModel):
    job_id: int
    logs: list[RunLog]


class EventOut(BaseModel):
    id: int
    job_id: int | None
    kind: str
    at: str | None
    epoch: int | None
    worker: str | None
    data: dict[str, Any]
    plan_id: int | None = None


class EventList(BaseModel):
    events: list[EventOut]
    next_after_id: int = Field(description="Pass as after_id to read the events that follow")


class CancelResult(BaseModel):
    job_id: int
    cancelled: bool
    message: str


class RetryResult(BaseModel):
    job: JobOut
    message: str


class WorkerOut(BaseModel):
    name: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: str | None
    last_seen: str | None
    stopped_at: str | None
    running: list[int]
    alive: bool
    state: str = Field(description="alive, stale (no heartbeat within the window) or stopped")
    seconds_since_seen: float


class WorkerList(BaseModel):
    now: str = Field(description="The store's clock, which liveness is judged by")
    window: float = Field(description="A worker is alive if seen within this many seconds")
    workers: list[WorkerOut]


class QueueOut(BaseModel):
    queue: str
    counts: dict[str, int]
    total: int


class QueueList(BaseModel):
    queues: list[QueueOut]


class ScheduleOut(BaseModel):
    name: str
    cron: str
    tz: str
    kind: str = Field(description="job or plan")
    source: str | None = Field(description="The file it was added from")
    paused: bool
    catch_up: str
    overlap: str
    next_runs: list[str] = Field(description="The next three slots (none while paused)")
    last_slot: str | None
    last_outcome: str | None
    last_job_id: int | None
    last_plan_id: int | None


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


class PlanStepOut(BaseModel):
    name: str
    job_id: int
    engine: str
    status: str
    depends_on: list[str]
    attempts: int
    result: Any
    error: str | None
    when: str | None = Field(None, description="The condition it runs under, if any")
    trigger_rule: str = Field("all_success", description="What its dependencies must have done")
    loop: dict[str, Any] | None = Field(
        None,
        description="In a loop's body: the loop's step (name), this job's iteration, "
        "max_iterations and until; an earlier iteration's job is named 'NAME (iteration n)'",
    )
    limit: str | None = Field(None, description="The fleet-wide limit it counts against")


class UsageOut(BaseModel):
    cost_usd: float | None = Field(description="US dollars, where the CLIs reported it")
    input_tokens: int | None
    output_tokens: int | None
    runs: int = Field(description="How many runs reported")


class PlanUsageOut(BaseModel):
    total: UsageOut
    budget_usd: float | None
    steps: dict[str, UsageOut] = Field(description="Per step, by name")


class PlanOut(BaseModel):
    id: int
    name: str
    status: str = Field(description="pending, running, paused, completed, failed or cancelled")
    mode: str = Field(description="auto or supervised")
    max_parallel: int
    checkpoint: str | None = Field(description="The checkpoint a paused plan waits at")
    pending: str | None = Field(
        description="The pause it waits at, as checkpoint#pause: send it with approve and "
        "reject so that they answer this pause and no later one"
    )
    pauses: int = Field(description="How many times the plan has paused")
    checkpoint_context: dict[str, Any] | None
    completed_at: str | None
    pr_url: str | None
    metadata: dict[str, Any]
    rev: int
    created_at: str | None
    updated_at: str | None
    budget_usd: float | None = Field(
        None, description="The most all of its runs may cost (US dollars); null: no budget"
    )
    jobs: list[PlanStepOut]
    usage: PlanUsageOut | None = Field(
        None, description="What its agents spent (on a single plan's answer)"
    )


class PlanPage(BaseModel):
    plans: list[PlanOut]
    limit: int
    offset: int
    next_offset: int | None


class PlanResult(BaseModel):
    plan: PlanOut
    message: str


class PlanCancelResult(BaseModel):
    plan_id: int
    cancelled: bool
    message: str


class PlanAbandonResult(BaseModel):
    plan_id: int
    abandoned: bool = Field(description="False when the plan had already ended")
    message: str


_CHECKPOINT = Field(
    default=None,
    max_length=200,
    description="The pause this answers, as the plan's `pending` (e.g. review#2) or just the "
    "checkpoint's name; if the plan waits elsewhere by now, nothing changes (409 "
    "checkpoint_conflict)",
)


class ApproveRequest(Strict):
    response: Any = Field(default=None, description="Kept as the gate's result (any JSON)")
    checkpoint: StrictStr | None = _CHECKPOINT


class RejectRequest(Strict):
    feedback: StrictStr | None = Field(
        default=None,
        max_length=100_000,
        description="Sends the gate's job back with this feedback; without it the plan is "
        "cancelled",
    )
    checkpoint: StrictStr | None = _CHECKPOINT


class PlanFieldsRequest(Strict):
    """A step's write of plan-level fields about its own plan, fenced by its lease."""

    fields: dict[str, Any] = Field(examples=[{"metadata": {"pr_url": "https://example/pr/7"}}])
    expected: dict[str, Any] | None = Field(default=None, examples=[{"status": "running"}])


class LedgerWrite(Strict):
    """A fenced write of a job's own: `value` under `key` in its ledger."""

    key: StrictStr = Field(min_length=1, max_length=200, examples=["pr_url"])
    value: Any = Field(examples=["https://example/pr/7"])


class LedgerEntryOut(BaseModel):
    job_id: int
    key: str
    epoch: int
    value: Any
    worker: str
    written_at: str


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    ok: StrictBool
    now: str


__all__ = [
    "CancelResult",
    "EnqueueRequest",
    "ErrorOut",
    "EventList",
    "Health",
    "JobOut",
    "JobPage",
    "LogList",
    "QueueList",
    "RetryResult",
    "RunList",
    "WorkerList",
]
