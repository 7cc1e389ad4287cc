"""A plain sequential Python model of the job contract: what each verb must do.

No SQL and no concurrency: one dict of jobs, one of runs, one clock. The stateful test runs
the same schedule against real stores and this model and compares them step by step. The
rules here are written from the contract (README and DESIGN), independently of the stores.
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

    @property
    def live(self) -> bool:
        return self.status in ("queued", "running")


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
    next_id: int = 1

    # -- helpers ---------------------------------------------------------------------

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
        job.rev += 1
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
        self.jobs[job.id] = job
        self.next_id = new_id + 1
        return ok(job.id)

    def claim(self, job_id: int, worker: str, ttl: float) -> Outcome:
        job = self.jobs.get(job_id)
        if job is None:
            return ok(None)
        ready = self._ready(job) and (job.lock is None or self._lock_free(job.lock))
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
        ]
        ready.sort(key=lambda j: (-j.priority, j.id))
        return ok([self._take(j, worker, ttl) for j in ready[:limit]])

    def renew(self, job_id: int, epoch: int, ttl: float) -> Outcome:
        job = self._holds(job_id, epoch)
        if job is None or job.cancel_requested:
            return self._lost(job_id, epoch, cancelled_counts=True)
        job.expires = self.now + ttl
        job.rev += 1
        return ok(job.expires)

    def complete(self, job_id: int, epoch: int, result: Any) -> Outcome:
        job = self._holds(job_id, epoch)
        if job is None:
            return self._lost(job_id, epoch, cancelled_counts=False)
        if job.cancel_requested:  # a completion after a recorded cancel is refused
            return err("JobCancelled")
        job.status, job.result, job.error = "succeeded", result, None
        job.finished, job.expires = self.now, None
        job.rev += 1
        self._close(job, "succeeded", None)
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
        job.rev += 1
        self._close(job, "cancelled" if job.status == "cancelled" else "failed", error)
        return ok(job.status)

    def release(self, job_id: int, epoch: int, reason: str) -> Outcome:
        job = self._holds(job_id, epoch)
        if job is None:
            return self._lost(job_id, epoch, cancelled_counts=False)
        job.status = "cancelled" if job.cancel_requested else "queued"
        job.finished = self.now if job.status == "cancelled" else None
        job.attempts -= 1
        job.run_at, job.expires = self.now, None
        job.rev += 1
        self._close(job, "cancelled" if job.status == "cancelled" else "released", reason)
        return ok(job.status)

    def fenced_write(self, job_id: int, epoch: int, key: str, value: Any) -> Outcome:
        if self._holds(job_id, epoch) is None:
            return self._lost(job_id, epoch, cancelled_counts=False)
        self.ledger[(job_id, key, epoch)] = value
        return ok((job_id, key, epoch, value))

    def cancel(self, job_id: int) -> Outcome:
        job = self.jobs.get(job_id)
        if job is None:
            return err("JobNotFound")
        if job.status == "queued":
            job.status, job.finished = "cancelled", self.now
            job.rev += 1
            return ok(True)
        if job.status == "running" and not job.cancel_requested:
            job.cancel_requested = True
            job.rev += 1
            return ok(True)
        return ok(False)

    def retry(self, job_id: int) -> Outcome:
        job = self.jobs.get(job_id)
        if job is None:
            return err("JobNotFound")
        if job.status not in ("failed", "cancelled"):
            return err("InvalidTransition")
        if job.dedupe_key is not None and any(
            o.dedupe_key == job.dedupe_key and o.live for o in self.jobs.values()
        ):
            return err("InvalidTransition")
        job.status, job.attempts, job.run_at = "queued", 0, self.now
        job.cancel_requested, job.error, job.result, job.finished = False, None, None, None
        job.rev += 1
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
                job.rev += 1
                self._close(job, "expired", "lease expired")
                out.append((job.id, job.status))
        return ok(sorted(out))

    def update_priority(self, job_id: int, expected_rev: int, priority: int) -> Outcome:
        job = self.jobs.get(job_id)
        if job is None:
            return ok("not_found")
        if job.rev != expected_rev:
            return ok("conflict")
        job.priority = priority
        job.rev += 1
        return ok("ok")

    # RESUME HOOK: resume (plans and runs) is being added by other work. When Fleet grows
    # it, write its contract here (which statuses it moves from and to, what it returns,
    # NotResumable(status) for the loser of two racing resumers), then turn on the `resume`
    # rule in test_fleet_model.py by setting RESUME_MODELLED there.
    def resume(self, *args: Any) -> Outcome:
        raise NotImplementedError("model the contract of resume here")
