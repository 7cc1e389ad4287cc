"""The worker API under /api/worker: what a remote worker (``agentfleet worker --server``)
asks of its fleet, each route one call of the same Fleet verb a direct worker makes.

* Only ``worker`` tokens (and the admin's) may call it, and only with a bearer token.
* A worker token works under its own name: its claims are made in that name, and it may
  write (renew, complete, fail, release, output, process) only for leases granted to that
  name. The check reads the job: the lease's epoch must be the job's current one, claimed
  by this name (an epoch names one claim for ever, and the write that follows is fenced by
  that same epoch, so no other claim can slip in between). A lease of another worker is
  ``403 not_your_lease``; a lease no longer held is ``409 lease_lost``, as the direct
  write's LeaseLost.
* A batch of completions and the next claim are one request and one transaction
  (``complete_and_claim``); a heartbeat of many leases is one request and one statement.
* ``/api/worker/wait`` is a long poll: it answers as soon as the store says work may be
  ready (PostgreSQL NOTIFY, SQLite's data_version: the fleet's own ``wait_for_jobs``,
  watched by one thread of the server) or once its timeout passes. Its ``cursor`` says
  which wake-ups the caller has seen, so a change between two polls wakes the next at once.
* Housekeeping (reaping expired leases, reconciling plans, firing schedules, pruning) is
  not asked for here: the server's claims reap as a direct claim does, and the rest is
  done by direct workers (or `agentfleet reconcile` and `agentfleet prune`).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

from agentfleet.errors import JobCancelled, LeaseLost
from agentfleet.fleet import Fleet
from agentfleet.models import JobStatus, Lease
from agentfleet.remote.wire import (
    job_to_wire,
    lease_from_wire,
    lease_to_wire,
    lost_to_wire,
    output_from_wire,
    run_to_wire,
    usage_to_wire,
)
from agentfleet.serialize import shown_payload
from agentfleet.web.auth import ADMIN, Principal, auth_of, forbidden, unauthorized
from agentfleet.web.errors import ApiError
from agentfleet.web.schemas import Strict

NOT_YOURS = "not_your_lease"
WAIT_MAX = 30.0  # the longest a long poll is held
RING_WAIT = 1.0  # the watching thread's own wait, between looks at whether it should stop

router = APIRouter(prefix="/api/worker", tags=["worker"])


# -- who calls ------------------------------------------------------------------------------


def worker_access(request: Request) -> Principal:
    """A worker token, or the admin's, sent as a bearer token (a browser is no worker)."""
    auth = auth_of(request)
    who = auth.identify(request)
    if who.via == "anonymous":
        raise unauthorized("the worker API needs a token: send Authorization: Bearer <token>")
    if who.via != "token" or who.role not in ("worker", ADMIN):
        raise forbidden(who, "use the worker API")
    return who


Caller = Annotated[Principal, Depends(worker_access)]


def fleet_of(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet


FleetDep = Annotated[Fleet, Depends(fleet_of)]


def _own_name(who: Principal, worker: str) -> str:
    """The name a request works under: a worker token's own, whatever it says."""
    if who.role == ADMIN:
        return worker
    if worker != who.name:
        raise ApiError(
            403,
            "forbidden",
            f"the worker token {who.name!r} works under its own name, not {worker!r}",
        )
    return worker


def _held(fleet: Fleet, who: Principal, lease: Lease) -> Lease:
    """The lease, if this caller may write for it (see the module's notes)."""
    if who.role == ADMIN:
        return lease
    job = fleet.get_job(lease.job_id)
    if job.lease_epoch != lease.epoch or job.status is not JobStatus.RUNNING:
        # Nobody holds that epoch now: the fenced write would be refused just so.
        raise LeaseLost(
            lease.job_id, lease.epoch, current_epoch=job.lease_epoch, status=job.status.value
        )
    if job.worker != who.name:
        raise ApiError(
            403,
            NOT_YOURS,
            f"job {lease.job_id} epoch {lease.epoch} is held by another worker, not by "
            f"{who.name!r}",
            job_id=lease.job_id,
            epoch=lease.epoch,
        )
    if lease.worker != who.name:  # events and runs say who wrote
        lease = Lease(lease.job_id, lease.epoch, who.name, lease.expires_at, lease.attempt,
                      lease.run_id, lease.ttl)  # fmt: skip
    return lease


def _done(fleet: Fleet, who: Principal, raw: list[Done]) -> list[tuple[Lease, Any]]:
    """A batch's completions this caller may write. One whose lease is no longer held is
    left out, as the batched write itself leaves it out (the worker then writes it on its
    own, which says why), and so is one of another worker's leases."""
    done = []
    for item in raw:
        try:
            done.append((_held(fleet, who, lease_from_wire(item.lease)), item.result))
        except LeaseLost:
            continue
        except ApiError as exc:
            if exc.code != NOT_YOURS:
                raise
    return done


def _job_of_caller(fleet: Fleet, who: Principal, job_id: int) -> None:
    """A worker token reads only the jobs it holds (their payloads carry secrets)."""
    if who.role == ADMIN:
        return
    job = fleet.get_job(job_id)
    if job.worker != who.name or job.status is not JobStatus.RUNNING:
        raise ApiError(
            403, "forbidden", f"job {job_id} is not running under the worker {who.name!r}"
        )


# -- bodies ---------------------------------------------------------------------------------


class Done(Strict):
    lease: dict[str, Any]
    result: Any = None


class ClaimBody(Strict):
    done: list[Done] = Field(default_factory=list, max_length=10_000)
    worker: StrictStr = Field(min_length=1, max_length=200)
    queues: list[StrictStr] | None = None
    limit: StrictInt = Field(default=1, ge=0, le=10_000)
    ttl: StrictFloat | StrictInt = Field(gt=0)
    engines: list[StrictStr] | None = None
    host: StrictStr | None = None


class CompleteManyBody(Strict):
    done: list[Done] = Field(max_length=10_000)


class RenewBody(Strict):
    leases: list[dict[str, Any]] = Field(max_length=10_000)
    ttl: StrictFloat | StrictInt | None = Field(default=None, gt=0)


class CompleteBody(Strict):
    lease: dict[str, Any]
    result: Any = None
    output: dict[str, Any] | None = None


class FailBody(Strict):
    lease: dict[str, Any]
    error: StrictStr = "failed"
    retry: StrictBool = True
    delay: StrictFloat | StrictInt | None = Field(default=None, ge=0)
    output: dict[str, Any] | None = None


class ReleaseBody(Strict):
    lease: dict[str, Any]
    reason: StrictStr = "worker stopping"


class OutputBody(Strict):
    lease: dict[str, Any]
    output: dict[str, Any]


class LeaseBody(Strict):
    lease: dict[str, Any]


class ProcessBody(Strict):
    lease: dict[str, Any]
    host: StrictStr
    pgid: StrictInt


class SeenBody(Strict):
    name: StrictStr
    host: StrictStr
    pid: StrictInt
    queues: list[StrictStr]
    concurrency: StrictInt


class StoppedBody(Strict):
    name: StrictStr


class WaitBody(Strict):
    timeout: StrictFloat | StrictInt = Field(ge=0)
    cursor: StrictStr | None = Field(default=None, max_length=100)


# -- routes ---------------------------------------------------------------------------------


@router.get("/hello", summary="Who this token works as, and the store's clock")
def hello(fleet: FleetDep, who: Caller) -> dict[str, Any]:
    return {
        "role": who.role,
        "name": who.name if who.role == "worker" else None,
        "now": fleet.now().isoformat(),
        "database": fleet.url.split(":", 1)[0],  # the kind of store, never its address
    }


@router.get("/now", summary="The store's clock")
def now(fleet: FleetDep, _: Caller) -> dict[str, Any]:
    return {"now": fleet.now().isoformat()}


@router.post("/claim", summary="Complete a batch and claim the next jobs, in one transaction")
def claim(fleet: FleetDep, who: Caller, body: ClaimBody) -> dict[str, Any]:
    worker = _own_name(who, body.worker)
    done = _done(fleet, who, body.done)
    leases: list[Lease] = []
    if body.limit == 0:
        completed = fleet.complete_many(done)
    else:
        completed, leases = fleet.complete_and_claim(
            done,
            worker=worker,
            queues=body.queues,
            limit=body.limit,
            ttl=body.ttl,
            engines=body.engines,
            host=body.host,
        )
    return {
        "completed": completed,
        "leases": [lease_to_wire(lease, with_job=True) for lease in leases],
    }


@router.post("/complete-many", summary="Complete a batch, each fenced by its own epoch")
def complete_many(fleet: FleetDep, who: Caller, body: CompleteManyBody) -> dict[str, Any]:
    return {"completed": fleet.complete_many(_done(fleet, who, body.done))}


@router.post("/renew", summary="Renew many leases in one statement (a heartbeat)")
def renew(fleet: FleetDep, who: Caller, body: RenewBody) -> dict[str, Any]:
    answers: list[dict[str, Any]] = []
    leases: list[Lease] = []
    index: list[int] = []
    for item in body.leases:
        try:
            leases.append(_held(fleet, who, lease_from_wire(item)))
            index.append(len(answers))
            answers.append({})
        except LeaseLost as exc:  # as the store's own answer for it would say
            answers.append(_lost(exc))
        except ApiError as exc:  # another worker's lease: lost to this one, the rest renewed
            if exc.code != NOT_YOURS:
                raise
            answers.append({"lost": {"code": NOT_YOURS, "job_id": exc.extra["job_id"],
                                     "epoch": exc.extra["epoch"]}})  # fmt: skip
    renewed: list[Lease | LeaseLost] = fleet.renew_many(leases, ttl=body.ttl) if leases else []
    for place, answer in zip(index, renewed, strict=True):
        answers[place] = {"lease": lease_to_wire(answer)} if isinstance(answer, Lease) else (
            _lost(answer))  # fmt: skip
    return {"answers": answers}


def _lost(exc: LeaseLost) -> dict[str, Any]:
    code = "job_cancelled" if isinstance(exc, JobCancelled) else "lease_lost"
    return {"lost": {"code": code, **lost_to_wire(exc)}}


@router.post("/complete", summary="Finish a job successfully (fenced)")
def complete(fleet: FleetDep, who: Caller, body: CompleteBody) -> dict[str, Any]:
    lease = _held(fleet, who, lease_from_wire(body.lease))
    fleet.complete(lease, body.result, output=output_from_wire(body.output))
    return {"ok": True}


@router.post("/fail", summary="Close an attempt as failed (fenced)")
def fail(fleet: FleetDep, who: Caller, body: FailBody) -> dict[str, Any]:
    lease = _held(fleet, who, lease_from_wire(body.lease))
    status = fleet.fail(
        lease, body.error, retry=body.retry, delay=body.delay, output=output_from_wire(body.output)
    )
    return {"status": status.value}


@router.post("/release", summary="Hand an unfinished job back (fenced)")
def release(fleet: FleetDep, who: Caller, body: ReleaseBody) -> dict[str, Any]:
    lease = _held(fleet, who, lease_from_wire(body.lease))
    return {"status": fleet.release(lease, reason=body.reason).value}


@router.post("/output", summary="Record a running attempt's output so far (fenced)")
def record_output(fleet: FleetDep, who: Caller, body: OutputBody) -> dict[str, Any]:
    lease = _held(fleet, who, lease_from_wire(body.lease))
    output = output_from_wire(body.output)
    assert output is not None
    fleet.record_output(lease, output)
    return {"ok": True}


@router.post("/process", summary="Record where an attempt's processes run (fenced)")
def record_process(fleet: FleetDep, who: Caller, body: ProcessBody) -> dict[str, Any]:
    lease = _held(fleet, who, lease_from_wire(body.lease))
    fleet.record_process(lease, host=body.host, pgid=body.pgid)
    return {"ok": True}


@router.post("/lease-token", summary="A token for the job of a held lease (its lease API key)")
def lease_token(fleet: FleetDep, who: Caller, body: LeaseBody) -> dict[str, Any]:
    lease = _held(fleet, who, lease_from_wire(body.lease))
    return {"token": fleet.lease_token(lease)}


@router.post("/seen", summary="Publish the worker's presence")
def worker_seen(fleet: FleetDep, who: Caller, body: SeenBody) -> dict[str, Any]:
    fleet.worker_seen(
        _own_name(who, body.name),
        host=body.host,
        pid=body.pid,
        queues=body.queues,
        concurrency=body.concurrency,
    )
    return {"ok": True}


@router.post("/stopped", summary="Record that the worker stopped")
def worker_stopped(fleet: FleetDep, who: Caller, body: StoppedBody) -> dict[str, Any]:
    fleet.worker_stopped(_own_name(who, body.name))
    return {"ok": True}


@router.get("/jobs/{job_id}", summary="A job this worker holds, whole")
def get_job(fleet: FleetDep, who: Caller, job_id: int) -> dict[str, Any]:
    _job_of_caller(fleet, who, job_id)
    return job_to_wire(fleet.get_job(job_id))


@router.get("/jobs/{job_id}/runs", summary="A held job's runs, without their output")
def runs(fleet: FleetDep, who: Caller, job_id: int) -> dict[str, Any]:
    _job_of_caller(fleet, who, job_id)
    return {"runs": [run_to_wire(run) for run in fleet.runs(job_id)]}


@router.get("/jobs/{job_id}/inputs", summary="What a held plan step's dependencies produced")
def plan_inputs(fleet: FleetDep, who: Caller, job_id: int) -> dict[str, Any]:
    _job_of_caller(fleet, who, job_id)
    return {"inputs": fleet.plan_inputs(job_id)}


@router.get("/queued", summary="Queued jobs (payload env values masked), for a burst's note")
def queued(
    fleet: FleetDep,
    _: Caller,
    queue: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> dict[str, Any]:
    jobs = fleet.list_jobs(status="queued", queue=queue, limit=limit)
    return {"jobs": [{**job_to_wire(job), "payload": shown_payload(job.payload)} for job in jobs]}


@router.get("/plans/{plan_id}/budget", summary="A plan's budget (agents' watches read it)")
def plan_budget(fleet: FleetDep, _: Caller, plan_id: int) -> dict[str, Any]:
    return {"budget_usd": fleet.get_plan(plan_id).budget_usd}


@router.get("/usage", summary="What a job's or a plan's agents spent")
def usage(
    fleet: FleetDep,
    _: Caller,
    job_id: int | None = None,
    plan_id: int | None = None,
    except_run: int | None = None,
) -> dict[str, Any]:
    return usage_to_wire(fleet.usage(job_id=job_id, plan_id=plan_id, except_run=except_run))


@router.post("/wait", summary="Long poll: answers once work may be ready, or at the timeout")
async def wait(request: Request, _: Caller, body: WaitBody) -> dict[str, Any]:
    bell = bell_of(request)
    woke = await bell.wait(body.cursor, min(float(body.timeout), WAIT_MAX))
    return {"woke": woke, "cursor": bell.cursor()}


# -- the long poll's bell --------------------------------------------------------------------


def bell_of(request: Request) -> Bell:
    state = request.app.state
    bell: Bell | None = getattr(state, "worker_bell", None)
    if bell is None:
        with _BELLS:
            bell = getattr(state, "worker_bell", None)
            if bell is None:
                bell = state.worker_bell = Bell(state.fleet)
    return bell


_BELLS = threading.Lock()


class Bell:
    """One thread of the server waits on the store (``Fleet.wait_for_jobs``) and rings
    every long poll that waits; ``rings`` counts its wake-ups. A cursor is this server's
    instance and a count: one from another server (a worker moved between servers behind
    a load balancer) or an older count wakes its poll at once, so nothing is missed."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.instance = secrets.token_hex(6)
        self.rings = 0
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._watching = threading.Event()
        self._thread: threading.Thread | None = None

    def cursor(self) -> str:
        return f"{self.instance}:{self.rings}"

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="agentfleet-worker-bell", daemon=True
                )
                self._thread.start()
        self._watching.wait(5.0)

    def _run(self) -> None:
        first = True
        while True:
            try:
                woke = self.fleet.wait_for_jobs(0.0 if first else RING_WAIT)
            except Exception:  # the store is away (or closing): the polls time out meanwhile
                time.sleep(0.2)
                continue
            if first:
                first = False
                self._watching.set()  # from here on no change goes unrung
                continue
            if woke:
                self._ring()

    def _ring(self) -> None:
        with self._lock:
            self.rings += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, cursor: str | None, timeout: float) -> bool:
        if not self._watching.is_set():
            await asyncio.to_thread(self._start)
        loop = asyncio.get_running_loop()
        with self._lock:
            if cursor is None:
                return False  # the caller's first look: it now holds a cursor
            if cursor != self.cursor():
                return True  # a ring it has not seen (or another server's cursor)
            if timeout <= 0:
                return False
            future: asyncio.Future[None] = loop.create_future()
            entry = (loop, future)
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
