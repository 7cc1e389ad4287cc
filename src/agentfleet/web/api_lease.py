"""The lease API under /api/lease: what a running job may do with its own lease token.

A job started with ``AGENTFLEET_LEASE_TOKEN`` (see store/lease_tokens.py) reaches the
fleet here and nowhere else: it reads its own job and its plan's inputs, enqueues
follow-up jobs, and makes fenced writes (its ledger, its own plan's plan-level fields). Each
request checks that the lease is still current, so once the attempt is taken over, has
expired or has ended, the token gets 401 and a stale attempt's write is never accepted.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from agentfleet.models import Lease
from agentfleet.serialize import job_dict, plan_dict
from agentfleet.store.lease_tokens import looks_like_lease_token
from agentfleet.web.api import WRITE_ERRORS, enqueue_job, fleet_of
from agentfleet.web.auth import unauthorized
from agentfleet.web.errors import ApiError
from agentfleet.web.schemas import (
    EnqueueRequest,
    JobOut,
    LedgerEntryOut,
    LedgerWrite,
    PlanFieldsRequest,
    PlanOut,
)


def lease_access(request: Request) -> Lease:
    """Dependency of every lease route: the current lease the bearer token speaks for."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = value.strip()
    if scheme.lower() != "bearer" or not looks_like_lease_token(token):
        raise unauthorized(
            "the lease API takes a job's lease token: send Authorization: Bearer "
            "$AGENTFLEET_LEASE_TOKEN"
        )
    lease = fleet_of(request).lease_of_token(token)
    if lease is None:
        raise unauthorized(
            "the lease token is not valid: its attempt was taken over, has expired or has "
            "ended (or the token is wrong)"
        )
    return lease


LeaseDep = Annotated[Lease, Depends(lease_access)]

router = APIRouter(prefix="/api/lease", tags=["lease"], responses=WRITE_ERRORS)


def _plan_of(lease: Lease) -> int:
    plan_id = lease.job.plan_id if lease.job is not None else None
    if plan_id is None:
        raise ApiError(422, "invalid", f"job {lease.job_id} is not a plan's step: it has no plan")
    return plan_id


@router.get("", response_model=JobOut, summary="The job this lease token belongs to")
def own_job(lease: LeaseDep) -> dict[str, Any]:
    assert lease.job is not None
    return job_dict(lease.job)


@router.get("/inputs", summary="What the plan step's dependencies produced")
def inputs(request: Request, lease: LeaseDep) -> dict[str, Any]:
    """A job outside any plan has no dependencies: its inputs are empty."""
    return {"inputs": fleet_of(request).plan_inputs(lease.job_id)}


@router.post("/jobs", response_model=JobOut, status_code=201, summary="Enqueue a follow-up job")
def enqueue_follow_up(request: Request, body: EnqueueRequest, lease: LeaseDep) -> dict[str, Any]:
    return job_dict(enqueue_job(request, body, fleet_of(request)))


@router.post(
    "/ledger", response_model=LedgerEntryOut, summary="Write a value in the job's ledger, fenced"
)
def fenced_write(request: Request, body: LedgerWrite, lease: LeaseDep) -> dict[str, Any]:
    entry = fleet_of(request).fenced_write(lease, body.key, body.value)
    return {
        "job_id": entry.job_id,
        "key": entry.key,
        "epoch": entry.epoch,
        "value": entry.value,
        "worker": entry.worker,
        "written_at": entry.written_at.isoformat(),
    }


@router.patch("/plan", response_model=PlanOut, summary="Write plan-level fields, fenced")
def write_plan_fields(request: Request, body: PlanFieldsRequest, lease: LeaseDep) -> dict[str, Any]:
    fleet = fleet_of(request)
    plan = fleet.update_plan_fields(
        _plan_of(lease), expected=body.expected, lease=lease, **body.fields
    )
    return plan_dict(plan)
