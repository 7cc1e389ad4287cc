"""A plain sequential Python model of the job contract: what each verb must do.

No SQL and no concurrency: one dict of jobs, one of runs, one of plans, one clock. The
stateful test runs the same schedule against real stores and this model and compares them
step by step. The rules here are written from the contract (README and DESIGN),
independently of the stores.

Plans are modelled as far as the job contract meets them: auto-mode plans of independent
steps, whose jobs run only while their plan runs, and resume (DESIGN point 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# An outcome: ("ok", value) or ("err", error class name, detail).
Outcome = tuple[Any, ...]


def ok(value: Any = None) -> Outcome:
    return ("ok", value)


def err(name: str, detail: Any = None) -> Outcome:
    return ("err", name, detail)


def micro(ts: float | None) -> float | None:
    """A store timestamp as the API shows it (a datetime, so whole microseconds)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).timestamp()


@dataclass
class MJob:
    id: int
    queue: str
    priority: int
    lock: str | None
    max_attempts: int
    dedupe_key: str | None
    run_at: float
    status: str = "queued"
    attempts: int = 0
    epoch: int = 0
    worker: str | None = None
    expires: float | None = None
    cancel_requested: bool = False
    result: Any = None
    error: str | None = None
    finished: float | None = None
    rev: int = 1
    updated: float = 0.0
    plan: int | None = None

    @property
    def live(self) -> bool:
        return self.status in ("queued", "running")


@dataclass
class MPlan:
    """An auto-mode plan of independent steps (no dependencies, no gates)."""

    id: int
    steps: list[int]
    max_parallel: int
    status: str = "running"
    rev: int = 1
    updated: float = 0.0


@dataclass
class MRun:
    job: int
    epoch: int
    worker: str
    attempt: int
    status: str = "running"
    error: str | None = None


@dataclass
class Model:
    now: float
    jobs: dict[int, MJob] = field(default_factory=dict)
    runs: dict[tuple[int, int], MRun] = field(default_factory=dict)
    ledger: dict[tuple[int, str, int], Any] = field(default_factory=dict)
    plans: dict[int, MPlan] = field(default_factory=dict)
    next_id: int = 1
    stale: float = 60.0  # the plans' stale window, in seconds

    # -- helpers ---------------------------------------------------------------------

    def _touch(self, job: MJob) -> None:
        """Every write to a job row moves its rev and its updated_at."""
        job.rev += 1
        job.updated = self.now

    def _touch_plan(self, plan: MPlan) -> None:
        plan.rev += 1
        plan.updated = self.now

    def _plan_lets_run(self, job: MJob) -> bool:
        return job.plan is None or self.plans[job.plan].status == "running"

    def _lock_free(self, lock: str) -> bool:
        return not any(j.lock == lock and j.status == "running" for j in self.jobs.values())

    def _ready(self, job: MJob) -> bool:
        return job.status == "queued" and job.run_at <= self.now

    def _expired(self, job: MJob) -> bool:
        return (
            job.status == "running"
            and job.expires is not None
            and job.expires < self.now
            and job.attempts < job.max_attempts
            and not job.cancel_requested
        )

    def _take(self, job: MJob, worker: str, ttl: float) -> dict[str, Any]:
        for run in self.runs.values():
            if run.job == job.id and run.status == "running":
                run.status, run.error = "expired", "lease expired"
        job.status = "running"
        job.epoch += 1
        job.attempts += 1
        job.worker = worker
        job.expires = self.now + ttl
        self._touch(job)
        self.runs[(job.id, job.epoch)] = MRun(job.id, job.epoch, worker, job.attempts)
        return {"job": job.id, "epoch": job.epoch, "attempt": job.attempts, "expires": job.expires}

    def _holds(self, job_id: int, epoch: int) -> MJob | None:
        job = self.jobs.get(job_id)
        if job is not None and job.epoch == epoch and job.status == "running":
            return job
        return None

    def _lost(self, job_id: int, epoch: int, *, cancelled_counts: bool) -> Outcome:
        job = self.jobs.get(job_id)
        if job is None:
            return err("LeaseLost", (None, None))
        if (
            cancelled_counts
            and job.status == "running"
            and job.epoch == epoch
            and job.cancel_requested
        ):
            return err("JobCancelled")
        return err("LeaseLost", (job.epoch, job.status))

    def _close(self, job: MJob, status: str, error: str | None) -> None:
        run = self.runs.get((job.id, job.epoch))
        if run is not None and run.status == "running":
            run.status, run.error = status, error

    # -- verbs -----------------------------------------------------------------------

    def enqueue(
        self,
        queue: str,
        priority: int,
        lock: str | None,
        max_attempts: int,
        dedupe_key: str | None,
        delay: float | None,
        new_id: int,
    ) -> Outcome:
        """`new_id` is the id the store gave, if it made a job: ids only have to grow (a
        refused insert may use up a number), so the model takes them from the store."""
        if dedupe_key is not None:
            for job in self.jobs.values():
                if job.dedupe_key == dedupe_key and job.live:
                    return ok(job.id)
        if new_id < self.next_id:
            return err("ids must grow", (new_id, self.next_id))
        if delay is None:
            run_at = self.now
        else:  # the API takes a timedelta from the store's now, as an aware datetime
            run_at = (datetime.fromtimestamp(self.now, UTC) + timedelta(seconds=delay)).timestamp()
        job = MJob(new_id, queue, priority, lock, max_attempts, dedupe_key, run_at)
        job.updated = self.now
        self.jobs[job.id] = job
        self.next_id = new_id + 1
        return ok(job.id)

    def claim(self, job_id: int, worker: str, ttl: float) -> Outcome:
        job = self.jobs.get(job_id)
        if job is None:
            return ok(None)
        ready = (
            self._ready(job)
            and (job.lock is None or self._lock_free(job.lock))
            and self._plan_lets_run(job)
        )
        # An expired lease may be taken over whatever its plan does: the takeover only
        # finishes an attempt that had started.
        if not (ready or self._expired(job)):
            return ok(None)
        return ok(self._take(job, worker, ttl))

    def claim_next(self, worker: str, queues: list[str] | None, limit: int, ttl: float) -> Outcome:
        def in_queues(job: MJob) -> bool:
            return queues is None or job.queue in queues

        def first_of_lock(job: MJob) -> bool:
            return not any(
                e.lock == job.lock
                and self._ready(e)
                and in_queues(e)
                and (e.priority > job.priority or (e.priority == job.priority and e.id < job.id))
                for e in self.jobs.values()
            )

        ready = [
            j
            for j in self.jobs.values()
            if self._ready(j)
            and in_queues(j)
            and (j.lock is None or (self._lock_free(j.lock) and first_of_lock(j)))
            and self._plan_lets_run(j)
        ]
        ready.sort(key=lambda j: (-j.priority, j.id))
        return ok([self._take(j, worker, ttl) for j in ready[:limit]])

    def renew(self, job_id: int, epoch: int, ttl: float) -> Outcome:
        job = self._holds(job_id, epoch)
        if job is None or job.cancel_requested:
            return self._lost(job_id, epoch, cancelled_counts=True)
        job.expires = self.now + ttl
        self._touch(job)
        return ok(job.expires)

    def complete(self, job_id: int, epoch: int, result: Any) -> Outcome:
        job = self._holds(job_id, epoch)
        if job is None:
            return self._lost(job_id, epoch, cancelled_counts=False)
        if job.cancel_requested:  # a completion after a recorded cancel is refused
            return err("JobCancelled")
        job.status, job.result, job.error = "succeeded", result, None
        job.finished, job.expires = self.now, None
        self._touch(job)
        self._close(job, "succeeded", None)
        self._advance_plan_of(job)
        return ok(None)

    def fail(self, job_id: int, epoch: int, error: str, delay: float | None) -> Outcome:
        job = self._holds(job_id, epoch)
        if job is None:
            return self._lost(job_id, epoch, cancelled_counts=False)
        if job.cancel_requested:
            job.status = "cancelled"
        elif delay is not None and job.attempts < job.max_attempts:
            job.status = "queued"
            job.run_at = self.now + delay
        else:
            job.status = "failed"
        job.finished = None if job.status == "queued" else self.now
        job.error, job.expires = error, None
        self._touch(job)
        self._close(job, "cancelled" if job.status == "cancelled" else "failed", error)
        status = job.status  # what the write left; its plan may then hold the job back
        self._advance_plan_of(job)
        return ok(status)

    def release(self, job_id: int, epoch: int, reason: str) -> Outcome:
        job = self._holds(job_id, epoch)
        if job is None:
            return self._lost(job_id, epoch, cancelled_counts=False)
        job.status = "cancelled" if job.cancel_requested else "queued"
        job.finished = self.now if job.status == "cancelled" else None
        job.attempts -= 1
        job.run_at, job.expires = self.now, None
        self._touch(job)
        self._close(job, "cancelled" if job.status == "cancelled" else "released", reason)
        status = job.status  # what the write left; its plan may then hold the job back
        self._advance_plan_of(job)
        return ok(status)

    def fenced_write(self, job_id: int, epoch: int, key: str, value: Any) -> Outcome:
        if self._holds(job_id, epoch) is None:
            return self._lost(job_id, epoch, cancelled_counts=False)
        self.ledger[(job_id, key, epoch)] = value
        return ok((job_id, key, epoch, value))

    def cancel(self, job_id: int) -> Outcome:
        job = self.jobs.get(job_id)
        if job is None:
            return err("JobNotFound")
        if job.status in ("queued", "waiting"):  # a waiting plan step too
            job.status, job.finished = "cancelled", self.now
            self._touch(job)
            self._advance_plan_of(job)
            return ok(True)
        if job.status == "running" and not job.cancel_requested:
            job.cancel_requested = True
            self._touch(job)
            self._advance_plan_of(job)
            return ok(True)
        return ok(False)  # nothing (more) to cancel: nothing written

    def retry(self, job_id: int) -> Outcome:
        job = self.jobs.get(job_id)
        if job is None:
            return err("JobNotFound")
        if job.status not in ("failed", "cancelled") or not self._plan_lets_run(job):
            return err("InvalidTransition")  # a stopped plan's step is rerun by resume
        if job.dedupe_key is not None and any(
            o.dedupe_key == job.dedupe_key and o.live for o in self.jobs.values()
        ):
            return err("InvalidTransition")
        job.status, job.attempts, job.run_at = "queued", 0, self.now
        job.cancel_requested, job.error, job.result, job.finished = False, None, None, None
        self._touch(job)
        return ok(job.id)

    def reap(self) -> Outcome:
        out = []
        for job in self.jobs.values():
            if job.status == "running" and job.expires is not None and job.expires < self.now:
                if job.cancel_requested:
                    job.status = "cancelled"
                elif job.attempts < job.max_attempts:
                    job.status = "queued"
                else:
                    job.status = "failed"
                spent = job.cancel_requested or job.attempts >= job.max_attempts
                job.finished = self.now if spent else None
                job.error, job.expires, job.run_at = "lease expired", None, self.now
                self._touch(job)
                self._close(job, "expired", "lease expired")
                out.append((job.id, job.status))
        for job_id, _ in out:  # every reaped job's plan moves on, once all are reaped
            self._advance_plan_of(self.jobs[job_id])
        return ok(sorted(out))

    def update_priority(self, job_id: int, expected_rev: int, priority: int) -> Outcome:
        job = self.jobs.get(job_id)
        if job is None:
            return ok("not_found")
        if job.rev != expected_rev:
            return ok("conflict")
        job.priority = priority
        self._touch(job)
        return ok("ok")

    # -- plans -----------------------------------------------------------------------

    def submit_plan(
        self, plan_id: int, job_ids: list[int], steps: list[MJob], max_parallel: int
    ) -> Outcome:
        """`plan_id` and `job_ids` are what the store gave (ids only have to grow); `steps`
        carry each step's queue, lock and max_attempts."""
        if min(job_ids) < self.next_id or plan_id in self.plans:
            return err("ids must grow", (plan_id, job_ids, self.next_id))
        for job_id, step in zip(job_ids, steps, strict=True):
            step.id, step.plan, step.status = job_id, plan_id, "waiting"
            step.run_at = step.updated = self.now
            self.jobs[job_id] = step
        self.next_id = max(job_ids) + 1
        plan = MPlan(plan_id, list(job_ids), max_parallel, status="pending", updated=self.now)
        self.plans[plan_id] = plan
        plan.status = "running"
        self._touch_plan(plan)
        self._advance(plan)
        return ok(plan.status)

    def _advance_plan_of(self, job: MJob) -> None:
        if job.plan is not None:
            self._advance(self.plans[job.plan])

    def _hold_queued(self, plan: MPlan) -> None:
        """A plan that stops starting work holds its queued steps back."""
        for job_id in plan.steps:
            job = self.jobs[job_id]
            if job.status == "queued":
                job.status = "waiting"
                self._touch(job)

    def _advance(self, plan: MPlan) -> None:
        """What the coordinator does after any step moved: fail, finish, or promote."""
        if plan.status != "running":
            self._hold_queued(plan)
            return
        steps = [self.jobs[i] for i in plan.steps]
        if any(s.status in ("failed", "cancelled") for s in steps):
            plan.status = "failed"
            self._touch_plan(plan)
            for step in steps:  # nothing more runs until a resume, which restarts these
                if step.status in ("waiting", "queued"):
                    step.status, step.finished = "cancelled", self.now
                    step.error = "not run: the plan failed"
                    self._touch(step)
        elif all(s.status == "succeeded" for s in steps):
            plan.status = "completed"
            self._touch_plan(plan)
        else:
            inflight = sum(1 for s in steps if s.status in ("queued", "running"))
            room = max(0, plan.max_parallel - inflight)
            for step in [s for s in steps if s.status == "waiting"][:room]:
                step.status, step.run_at = "queued", self.now
                self._touch(step)

    def _resumable(self, plan: MPlan) -> bool:
        """DESIGN point 6: failed, paused, or running with no write to the plan or to any
        of its jobs within the stale window."""
        if plan.status in ("failed", "paused"):
            return True
        cutoff = self.now - self.stale
        return (
            plan.status == "running"
            and plan.updated < cutoff
            and all(self.jobs[i].updated < cutoff for i in plan.steps)
        )

    def resume(self, plan_id: int) -> Outcome:
        """One conditional write decides: a resumable plan runs again, its failed and
        cancelled steps wait again with fresh attempts, and it moves on at once (so a plan
        whose steps had all succeeded completes). Otherwise NotResumable(current status),
        which is also what the loser of two racing resumers learns: "running"."""
        plan = self.plans.get(plan_id)
        if plan is None:
            return err("PlanNotFound")
        if not self._resumable(plan):
            return err("NotResumable", plan.status)
        plan.status = "running"
        self._touch_plan(plan)
        for job_id in plan.steps:
            job = self.jobs[job_id]
            if job.status in ("failed", "cancelled"):
                job.status, job.attempts, job.error, job.finished = "waiting", 0, None, None
                job.cancel_requested = False
                self._touch(job)
        self._advance(plan)
        return ok(plan.status)

    def pause(self, plan_id: int) -> Outcome:
        """A guarded plan-level write (update_plan_fields): running to paused, nothing else.
        A stopped plan starts nothing: its queued steps are held back."""
        plan = self.plans.get(plan_id)
        if plan is None:
            return err("PlanNotFound")
        if plan.status != "running":
            return err("InvalidTransition")
        plan.status = "paused"
        self._touch_plan(plan)
        self._hold_queued(plan)
        return ok("paused")
