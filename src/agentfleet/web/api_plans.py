"""Plan routes under /api/plans: each a thin call of one Fleet plan operation.

Every answer to a change carries a `message` saying what happened, which the dashboard shows
as it is (including "already being resumed" and "nothing to cancel").
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from agentfleet import logs, yamltext
from agentfleet.errors import InvalidTransition
from agentfleet.plans.model import NotResumable, PlanConflict, PlanStatus
from agentfleet.serialize import plan_dict
from agentfleet.web.api import ERRORS, WRITE_ERRORS, FleetDep, Reader, Writer
from agentfleet.web.errors import ApiError
from agentfleet.web.schemas import (
    ApproveRequest,
    ErrorOut,
    PlanAbandonResult,
    PlanCancelResult,
    PlanOut,
    PlanPage,
    PlanResult,
    RejectRequest,
)

log = logging.getLogger("agentfleet.web")
router = APIRouter(prefix="/api/plans", tags=["plans"], responses=ERRORS)
PLAN_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **WRITE_ERRORS,
    409: {
        "model": ErrorOut,
        "description": "not_resumable (with the plan's status), checkpoint_conflict (the plan "
        "waits at another pause by now: `pending` says where) or conflict (wrong state)",
    },
}
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
PLAN_EXAMPLE = {
    "name": "checkout-redesign",
    "mode": "supervised",
    "max_parallel": 2,
    "jobs": [
        {"name": "backend", "engine": "claude", "prompt": "Add the /checkout endpoint."},
        {
            "name": "review",
            "engine": "approval",
            "message": "Check the API first.",
            "on_reject": "backend",
            "depends_on": ["backend"],
        },
        {"name": "frontend", "engine": "claude", "prompt": "Build it.", "depends_on": ["review"]},
    ],
}


async def plan_body(request: Request) -> dict[str, Any]:
    """The plan spec, sent as JSON or as the YAML of a plan file, parsed off the event loop
    (a large body must not stall every other request)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in JSON_TYPES + YAML_TYPES:
        raise ApiError(400, "invalid", "send the plan as application/json or application/yaml")
    raw = await request.body()
    data = await run_in_threadpool(_parse_plan_body, kind, raw)
    jobs = data.get("jobs")
    if isinstance(jobs, list) and any(isinstance(j, dict) and "file" in j for j in jobs):
        raise ApiError(
            422,
            "invalid",
            "plans sent over HTTP cannot name job files on the server: put each job inline",
        )
    return data


def _parse_plan_body(kind: str, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        data = json.loads(text) if kind in JSON_TYPES else yamltext.load(text)
    except UnicodeDecodeError:
        raise ApiError(422, "invalid", "the plan is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(422, "invalid", f"the plan is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid", "a plan must be a mapping with 'name' and 'jobs'")
    return data


PlanBody = Annotated[dict[str, Any], Depends(plan_body)]


@router.get("", response_model=PlanPage, summary="List plans, newest first")
def list_plans(
    fleet: FleetDep,
    _: Reader,
    status: Annotated[PlanStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, Any]:
    plans = fleet.list_plans(status=status, limit=limit, offset=offset)
    return {
        "plans": [plan_dict(p) for p in plans],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + len(plans) if len(plans) == limit else None,
    }


@router.post(
    "",
    response_model=PlanOut,
    status_code=201,
    summary="Submit a plan (JSON, or the YAML of a plan file) and start it",
    responses=PLAN_WRITE_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": PLAN_EXAMPLE},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
def submit_plan(request: Request, fleet: FleetDep, _: Writer, spec: PlanBody) -> dict[str, Any]:
    plan = fleet.submit_plan(spec, engines=request.app.state.engines)
    logs.event(log, "plan.submit_completed", plan=plan.id, jobs=len(plan.jobs))
    return plan_dict(plan)


@router.get("/{plan_id}", response_model=PlanOut, summary="One plan with its jobs")
def show_plan(plan_id: int, fleet: FleetDep, _: Reader) -> dict[str, Any]:
    return plan_dict(fleet.get_plan(plan_id), fleet.plan_usage(plan_id))


@router.post(
    "/{plan_id}/approve",
    response_model=PlanResult,
    summary="Pass the checkpoint the plan waits at (an approval gate, or pre_pr)",
    responses=PLAN_WRITE_ERRORS,
)
def approve(
    plan_id: int, fleet: FleetDep, _: Writer, body: ApproveRequest | None = None
) -> dict[str, Any]:
    try:
        plan = fleet.approve(
            plan_id,
            None if body is None else body.response,
            checkpoint=None if body is None else body.checkpoint,
        )
    except InvalidTransition as exc:
        raise _not_waiting(plan_id, exc) from None
    except PlanConflict as exc:
        raise _changed(plan_id, exc) from None
    logs.event(log, "plan.approve_completed", plan=plan_id, status=plan.status.value)
    return {"plan": plan_dict(plan), "message": f"Approved. Plan {plan_id} is {plan.status}."}


@router.post(
    "/{plan_id}/reject",
    response_model=PlanResult,
    summary="Send the gate's job back with feedback; without feedback, cancel the plan",
    responses=PLAN_WRITE_ERRORS,
)
def reject(
    plan_id: int, fleet: FleetDep, _: Writer, body: RejectRequest | None = None
) -> dict[str, Any]:
    feedback = None if body is None else body.feedback
    try:
        plan = fleet.reject(plan_id, feedback, checkpoint=None if body is None else body.checkpoint)
    except InvalidTransition as exc:
        raise _not_waiting(plan_id, exc) from None
    except PlanConflict as exc:
        raise _changed(plan_id, exc) from None
    logs.event(log, "plan.reject_completed", plan=plan_id, status=plan.status.value)
    if plan.status is PlanStatus.CANCELLED:
        message = f"Rejected. Plan {plan_id} is cancelled."
    else:
        message = (
            f"Rejected: the job goes back with your feedback. Plan {plan_id} is {plan.status}."
        )
    return {"plan": plan_dict(plan), "message": message}


@router.post(
    "/{plan_id}/resume",
    response_model=PlanResult,
    summary="Resume a failed, paused or stale plan; of racing resumers exactly one wins",
    responses=PLAN_WRITE_ERRORS,
)
def resume(plan_id: int, fleet: FleetDep, _: Writer) -> dict[str, Any]:
    try:
        plan = fleet.resume(plan_id)
    except NotResumable as exc:
        status = str(exc.status)
        if status == PlanStatus.RUNNING.value:
            message = f"Plan {plan_id} is already being resumed: it is running."
        else:
            message = f"Plan {plan_id} cannot be resumed: it is {status}."
        logs.event(log, "plan.resume_rejected", plan=plan_id, status=status)
        raise ApiError(409, "not_resumable", message, status=status) from None
    logs.event(log, "plan.resume_completed", plan=plan_id)
    return {"plan": plan_dict(plan), "message": f"Resumed. Plan {plan_id} is {plan.status}."}


@router.post(
    "/{plan_id}/abandon",
    response_model=PlanAbandonResult,
    summary="Give up a failed or paused plan for good (never resumable); a running plan is "
    "refused: cancel it instead",
    responses=PLAN_WRITE_ERRORS,
)
def abandon(plan_id: int, fleet: FleetDep, _: Writer) -> dict[str, Any]:
    abandoned = fleet.abandon_plan(plan_id)
    logs.event(log, f"plan.abandon_{'completed' if abandoned else 'skipped'}", plan=plan_id)
    if abandoned:
        message = f"Abandoned plan {plan_id}: it will not be resumed."
    else:
        status = fleet.get_plan(plan_id).status.value
        message = f"Nothing to abandon: plan {plan_id} has already ended ({status})."
    return {"plan_id": plan_id, "abandoned": abandoned, "message": message}


@router.post(
    "/{plan_id}/cancel",
    response_model=PlanCancelResult,
    summary="Cancel a plan: its waiting and queued jobs, and ask running ones to stop",
    responses=PLAN_WRITE_ERRORS,
)
def cancel(plan_id: int, fleet: FleetDep, _: Writer) -> dict[str, Any]:
    cancelled = fleet.cancel_plan(plan_id)
    logs.event(log, f"plan.cancel_{'completed' if cancelled else 'skipped'}", plan=plan_id)
    if cancelled:
        message = f"Cancelled plan {plan_id}; its running jobs are asked to stop."
    else:
        message = f"Nothing to cancel: plan {plan_id} has already finished or been cancelled."
    return {"plan_id": plan_id, "cancelled": cancelled, "message": message}


def _not_waiting(plan_id: int, exc: InvalidTransition) -> ApiError:
    if exc.current == "on_error":
        message = f"Plan {plan_id} stopped on an error: fix the cause, then resume it."
    else:
        message = f"Plan {plan_id} is not waiting for approval (it is {exc.current})."
    return ApiError(409, "conflict", message, current=exc.current)


def _changed(plan_id: int, exc: PlanConflict) -> ApiError:
    return ApiError(
        409,
        "conflict",
        f"Plan {plan_id} changed meanwhile (now {exc.status}); look again and retry.",
        current=exc.status,
    )
