"""The worker: claims jobs up to its free capacity, runs each one, heartbeats, finishes it.

One loop in one thread makes every store write; executions (subprocesses, Python threads)
only run and report. The loop:

* claims ``limit = free slots`` jobs at once; while it waits it is woken for new work by
  PostgreSQL LISTEN/NOTIFY or SQLite's data_version (:meth:`Fleet.wait_for_jobs`, in the
  loop's own thread and on its own connection), and between wakes polls with exponential
  backoff (``poll_min`` up to ``poll_max``);
* renews every lease every ``ttl / 3`` and records its output so far every ``output_every``;
  a renew that raises :class:`~agentfleet.LeaseLost` kills the job's process group at once
  and the result is never written; :class:`~agentfleet.JobCancelled` stops the job and
  closes it ``cancelled``;
* enforces each job's timeout (an agent job without one gets two hours): SIGTERM to the
  process group, SIGKILL ``kill_grace`` later, and the attempt fails with ``timeout``;
* runs a reconcile pass (expired leases, plan drift) every ``reap_every`` seconds and
  publishes its presence;
* tells each job's supervisor when its lease was granted and renewed, so that a job whose
  worker died or stopped renewing is killed before its lease can be taken over; records
  each attempt's host and process group on its run, and before starting a job that an
  earlier attempt ran on this host, makes sure that attempt's processes are gone
  (SIGTERM, SIGKILL ``kill_grace`` later) where it can show they are that attempt's;
* on the first stop request (SIGTERM, SIGINT or :meth:`Worker.stop`) claims nothing more
  and gives running jobs ``grace`` seconds, then stops them and hands them back with
  ``release`` (attempt given back, no wait for the ttl). A second request stops at once.

Every log line is a named event (``job.claim_completed``, ``job.run_succeeded``, ...; see
:mod:`agentfleet.logs`) carrying its ids, with a sentence for plain-text handlers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from agentfleet import logs, validate
from agentfleet.agents.resume import plan_resume
from agentfleet.agents.watch import Stop, Watch, watch_for
from agentfleet.dispatch import (
    RunContext,
    absolute_db_url,
    build_execution,
    job_timeout,
    runnable_engines,
)
from agentfleet.engines import EngineConfig
from agentfleet.errors import InvalidArgument, JobCancelled, LeaseLost
from agentfleet.execution import Execution
from agentfleet.fleet import DEFAULT_TTL, Fleet
from agentfleet.leftovers import Clearing, find_leftovers
from agentfleet.models import Job, JobStatus, Lease
from agentfleet.output import OUTPUT_LIMIT

__all__ = ["Worker", "WorkerStats", "default_worker_name"]

log = logging.getLogger("agentfleet.worker")

# The stops that end an attempt as failed: whether another attempt may follow.
_STOPS_RETRY = {"timeout": True, "idle": True, "cancelled": False, "budget": False}
MAX_SLEEP = 1.0  # the loop never sleeps longer, so stop requests are seen promptly
CLEAR_POLL = 0.05  # how often to look whether an earlier attempt's processes are gone
NOTE_POLL = 0.25  # how often to look for the process group of a job still setting up
SCHEDULE_EVERY = 1.0  # how often a worker looks for due schedule slots (a cheap indexed read)


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class WorkerStats:
    """What one :meth:`Worker.run` did."""

    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    cancelled: int = 0
    released: int = 0
    lost: int = 0  # leases lost: job taken over, or a late write refused


@dataclass
class _Slot:
    lease: Lease
    job: Job
    execution: Execution
    next_renew: float
    next_output: float
    deadline: float | None
    # Why the worker stops it: timeout, idle, budget, cancelled, lease_lost, stopping.
    reason: str | None = None
    stop_error: str | None = None  # what the job records when a watch stopped it
    watch: Watch | None = None  # silence and budgets (agents, and shell jobs that ask)
    kill_at: float | None = None
    sent_version: int = 0
    next_finish: float = 0.0
    inputs_dir: str | None = None  # a plan step's inputs file lives here while it runs
    started: bool = False
    clearing: Clearing | None = None  # an earlier attempt's processes, ended first
    process_noted: bool = False
    next_note: float = 0.0


class _Waker:
    """A self-pipe: safe to poke from signal handlers and other threads.

    The pipe is closed only when nothing refers to the waker any more (executions keep a
    reference to ``wake``), so a late ``wake`` can never write into a reused descriptor.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe is awake already
            os.write(self._write, b"!")

    def fileno(self) -> int:
        """Readable once woken: a store's wait watches it beside its own wake-ups."""
        return self._read

    def wait(self, timeout: float) -> None:
        with contextlib.suppress(OSError, InterruptedError):
            ready, _, _ = select.select([self._read], [], [], max(0.0, timeout))
            if ready:
                self.drain()

    def drain(self) -> None:
        with contextlib.suppress(OSError):  # empty: nothing more to read
            while os.read(self._read, 4096):
                pass

    def __del__(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class _Timers:
    next_claim: float = 0.0
    poll: float = 0.05
    next_seen: float = 0.0
    next_reap: float = 0.0
    next_schedule: float = 0.0
    stop_deadline: float = float("inf")


class Worker:
    """Runs jobs from a :class:`~agentfleet.Fleet` until stopped (or, with ``burst``, idle)."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        name: str | None = None,
        queues: Sequence[str] | None = None,
        concurrency: int = 1,
        ttl: float = DEFAULT_TTL,
        grace: float = 30.0,
        kill_grace: float = 10.0,
        engines: EngineConfig | None = None,
        burst: bool = False,
        poll_min: float = 0.05,
        poll_max: float = 1.0,
        reap_every: float = 5.0,
        output_every: float = 1.0,
        output_limit: int = OUTPUT_LIMIT,
        clones: str | os.PathLike[str] | None = None,
    ) -> None:
        self.fleet = fleet
        self.name = validate.name(name or default_worker_name(), "worker name")
        if isinstance(queues, str):
            raise InvalidArgument("queues must be a list of queue names, not one string")
        self.queues = None if queues is None else [validate.name(q, "queue") for q in queues]
        if self.queues is not None and not self.queues:
            raise InvalidArgument("queues must name at least one queue (or be None for all)")
        self.concurrency = validate.integer(concurrency, "concurrency", minimum=1)
        self.ttl = validate.positive_seconds(ttl, "ttl")
        self.grace = _non_negative(grace, "grace")
        self.kill_grace = _non_negative(kill_grace, "kill_grace")
        self.heartbeat = self.ttl / 3
        self.burst = burst
        self.poll_min = validate.positive_seconds(poll_min, "poll_min")
        self.poll_max = max(self.poll_min, validate.positive_seconds(poll_max, "poll_max"))
        self.reap_every = validate.positive_seconds(reap_every, "reap_every")
        self.output_every = validate.positive_seconds(output_every, "output_every")
        self.stats = WorkerStats()
        self._ctx = RunContext(
            db_url=absolute_db_url(fleet.url),
            worker=self.name,
            engines=engines or EngineConfig(),
            tasks=fleet.tasks,
            output_limit=output_limit,
            clones=None if clones is None else Path(clones),
        )
        # Only engines this worker can run are ever claimed: never `approval` (plan gates
        # are resolved by people), never a custom engine another worker's config defines.
        self.engines = runnable_engines(self._ctx.engines)
        self.host = socket.gethostname()
        self._slots: list[_Slot] = []
        self._stop_requests = 0
        self._stopping = False
        self._grace_over = False
        self._hard_stop = False
        self._drained = False
        self._notified = False
        self._waker: _Waker | None = None
        self._t = _Timers(poll=self.poll_min)

    # -- control ----------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Ask the worker to stop: gracefully, or (second request, or ``now``) at once.

        Safe to call from any thread and from signal handlers.
        """
        self._stop_requests = max(self._stop_requests + 1, 2 if now else 1)
        if self._waker is not None:
            self._waker.wake()

    @property
    def running_jobs(self) -> list[int]:
        return [slot.lease.job_id for slot in self._slots]

    def run(self, *, handle_signals: bool = True) -> WorkerStats:
        """Work until stopped; SIGTERM/SIGINT stop it when run in the main thread."""
        self._waker = _Waker()
        previous = self._install_signals() if handle_signals else {}
        queues = ",".join(self.queues) if self.queues else "(all)"
        self._event(
            "worker.start_completed",
            f"worker started: queues {queues}, concurrency {self.concurrency}, "
            f"ttl {self.ttl:g}s, grace {self.grace:g}s",
            queues=self.queues or ["*"],
            concurrency=self.concurrency,
            ttl=self.ttl,
            grace=self.grace,
            pid=os.getpid(),
            database=self.fleet.url,  # its password, if any, is never printed
        )
        try:
            self._wait(0.0)  # start watching for new work before the first claim
            self._loop()
        except BaseException:
            self._abandon_all()
            raise
        finally:
            try:
                self.fleet.worker_stopped(self.name)
            except Exception as exc:
                self._event(
                    "worker.deregister_failed",
                    f"could not record that worker {self.name} stopped: {exc}",
                    logging.WARNING,
                    error=str(exc),
                )
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._waker = None
        self._event(
            "worker.stop_completed",
            f"worker stopped: {_format_stats(self.stats)}",
            **vars(self.stats),
        )
        return self.stats

    def _event(self, name: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
        """One named log event (see agentfleet.logs), with the sentence text logs print."""
        logs.event(log, name, level=level, message=message, worker=self.name, **fields)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop()

    def _wait(self, timeout: float) -> None:
        """Sleep until something is due, woken early by new work in the store (the store's
        own way) or by the waker (a stop request, a job's process ending)."""
        assert self._waker is not None
        try:
            if self.fleet.wait_for_jobs(max(0.0, timeout), interrupt=self._waker.fileno()):
                self._notified = True
        except Exception as exc:
            self._event(
                "worker.wait_failed",
                f"waiting for new work failed: {exc}",
                logging.DEBUG,
                error=str(exc),
            )
            self._waker.wait(timeout)
        self._waker.drain()

    # -- the loop ---------------------------------------------------------------------

    def _loop(self) -> None:
        assert self._waker is not None
        while True:
            now = time.monotonic()
            self._check_stop(now)
            if self._stopping and not self._slots:
                return
            if not self._stopping:
                self._claim(now)
            for slot in list(self._slots):
                self._tend(slot, time.monotonic())
            now = time.monotonic()
            self._periodic(now)
            if self.burst and self._drained and not self._slots and not self._stopping:
                self._event(
                    "worker.burst_completed",
                    "no job is ready and none is running: leaving (burst mode)",
                )
                return
            self._wait(min(self._next_due(now) - now, MAX_SLEEP))

    def _next_due(self, now: float) -> float:
        due = [self._t.next_seen, self._t.next_reap]
        if not self._stopping:
            due.append(self._t.next_schedule)
        if not self._stopping and len(self._slots) < self.concurrency:
            due.append(now if self._notified else self._t.next_claim)
        if self._stopping and not self._grace_over:
            due.append(self._t.stop_deadline)
        for slot in self._slots:
            if slot.clearing is not None:
                due.append(now + CLEAR_POLL)
            elif slot.started and not slot.process_noted and slot.reason != "lease_lost":
                due.append(slot.next_note)
            if slot.execution.done():
                due.append(slot.next_finish)
                continue
            if slot.reason is None and slot.deadline is not None:  # a timeout yet to come
                due.append(slot.deadline)
            if slot.kill_at is not None:
                due.append(slot.kill_at)
            if slot.reason != "lease_lost":
                due.extend((slot.next_renew, slot.next_output))
        return min(due)

    def _check_stop(self, now: float) -> None:
        requests = self._stop_requests
        if requests >= 1 and not self._stopping:
            self._stopping = True
            self._t.stop_deadline = now + self.grace
            self._event(
                "worker.stop_requested",
                f"stopping: claiming nothing more; {len(self._slots)} running job(s) get "
                f"{self.grace:g}s to finish",
                running=len(self._slots),
                grace=self.grace,
            )
        if requests >= 2 and not self._hard_stop:
            self._hard_stop = self._grace_over = True
            if self._slots:
                self._event(
                    "worker.stop_forced",
                    f"stopping now: killing {len(self._slots)} job(s) and handing them back",
                    running=len(self._slots),
                )
            for slot in list(self._slots):
                self._interrupt(slot, "stopping", now, hard=True)
        elif self._stopping and not self._grace_over and now >= self._t.stop_deadline:
            self._grace_over = True
            for slot in list(self._slots):
                if slot.reason is None:
                    self._event(
                        "job.grace_expired",
                        f"job {slot.lease.job_id} did not finish within the grace period",
                        job=slot.lease.job_id,
                    )
                    self._interrupt(slot, "stopping", now)

    def _periodic(self, now: float) -> None:
        if now >= self._t.next_seen:
            self._t.next_seen = now + self.heartbeat
            try:
                self.fleet.worker_seen(
                    self.name,
                    host=self.host,
                    pid=os.getpid(),
                    queues=self.queues or ["*"],
                    concurrency=self.concurrency,
                )
            except Exception as exc:
                self._event(
                    "worker.presence_failed",
                    f"could not publish worker presence: {exc}",
                    logging.WARNING,
                    error=str(exc),
                )
        if now >= self._t.next_reap:
            self._t.next_reap = now + self.reap_every
            try:
                # One reconcile pass: expired leases back to the queue, plans that missed an
                # event moved on, orphaned plans failed. Only one pass runs fleet-wide at a
                # time; when another worker holds it this returns None and does nothing.
                for repair in self.fleet.reconcile() or ():
                    self._event(
                        "fleet.repair_completed",
                        f"reconciled: {repair.kind} ({repair.reason})",
                        job=repair.job_id,
                        plan=repair.plan_id,
                        kind=repair.kind,
                        reason=repair.reason,
                    )
            except Exception as exc:
                self._event(
                    "fleet.reconcile_failed",
                    f"reconcile pass failed: {exc}",
                    logging.WARNING,
                    error=str(exc),
                )
        if now >= self._t.next_schedule and not self._stopping:
            self._t.next_schedule = now + SCHEDULE_EVERY
            try:
                # Each due slot fires once fleet-wide: every worker may ask, one wins it.
                fired = self.fleet.fire_schedules()
            except Exception as exc:
                self._event(
                    "fleet.schedule_failed",
                    f"firing schedules failed: {exc}",
                    logging.WARNING,
                    error=str(exc),
                )
            else:
                for one in fired:
                    self._event(
                        "fleet.schedule_fired",
                        f"schedule {one.schedule}: {one.outcome}",
                        schedule=one.schedule,
                        job=one.job_id,
                        plan=one.plan_id,
                    )
                if fired:
                    self._t.next_claim = now  # its job may be ours to run
                    self._drained = False

    # -- claiming and starting ----------------------------------------------------------

    def _backoff(self, now: float) -> None:
        self._t.next_claim = now + self._t.poll
        self._t.poll = min(self._t.poll * 2, self.poll_max)

    def _claim(self, now: float) -> None:
        free = self.concurrency - len(self._slots)
        if free <= 0:
            return
        if self._notified:
            self._notified = False
            self._t.next_claim = now
        if now < self._t.next_claim:
            return
        try:
            leases = self.fleet.claim_next(
                worker=self.name,
                queues=self.queues,
                limit=free,
                ttl=self.ttl,
                engines=self.engines,
                host=self.host,
            )
        except Exception as exc:
            self._event(
                "job.claim_failed", f"claiming jobs failed: {exc}", logging.WARNING, error=str(exc)
            )
            self._backoff(now)
            return
        if not leases:
            self._drained = True
            self._backoff(now)
            return
        self._drained = False
        self._t.poll = self.poll_min
        self._t.next_claim = now + (0.0 if len(leases) == free else self.poll_min)
        for lease in leases:
            self._start(lease, now)

    def _start(self, lease: Lease, claimed_at: float) -> None:
        assert self._waker is not None
        self.stats.claimed += 1
        try:
            job = lease.job or self.fleet.get_job(lease.job_id)
        except Exception as exc:
            self._event(
                "job.read_failed",
                f"job {lease.job_id}: cannot read it: {exc}; handing it back",
                logging.WARNING,
                job=lease.job_id,
                error=str(exc),
            )
            self._release(lease, "the worker could not read the job")
            return
        self._event(
            "job.claim_completed",
            f"job {job.id} claimed ({job.engine}, attempt {lease.attempt}/{job.max_attempts}, "
            f"epoch {lease.epoch})",
            job=job.id,
            run=lease.run_id,
            epoch=lease.epoch,
            plan=job.plan_id,
            engine=job.engine,
            queue=job.queue,
            attempt=lease.attempt,
            max_attempts=job.max_attempts,
        )
        inputs_dir = None
        try:
            inputs_dir, inputs = self._write_inputs(job)
        except Exception as exc:
            self._event(
                "job.inputs_failed",
                f"job {job.id}: cannot read its plan inputs: {exc}; handing it back",
                logging.WARNING,
                job=job.id,
                error=str(exc),
            )
            self._release(lease, "the worker could not read the job's plan inputs")
            return
        try:
            earlier = self.fleet.runs(lease.job_id) if lease.epoch > 1 else []
            watch = watch_for(self.fleet, job, lease, self._ctx.engines, time.monotonic())
        except Exception as exc:
            _remove_dir(inputs_dir)
            self._event(
                "job.leftovers_unknown",
                f"job {job.id}: cannot read its earlier runs: {exc}; handing it back",
                logging.WARNING,
                job=job.id,
                error=str(exc),
            )
            self._release(lease, "the worker could not check for an earlier attempt's processes")
            return
        over = None if watch is None else watch.at_start()
        if over is not None:
            _remove_dir(inputs_dir)
            self._fail_at_start(lease, over.error)  # never started: nothing more is spent
            return
        leftovers = find_leftovers(earlier, self.host, lease.epoch) if earlier else []
        resume = plan_resume(
            job, earlier, lease.epoch, self.host, self._ctx.engines.spec(job.engine)
        )
        try:
            execution = build_execution(
                job, lease, self._ctx, self._waker.wake, inputs, resume=resume
            )
        except InvalidArgument as exc:
            _remove_dir(inputs_dir)
            self._fail_at_start(lease, str(exc))
            return
        if resume is not None:
            self._event(
                "job.resume_decided",
                f"job {job.id}: "
                + (
                    f"resuming session {resume.session_id}"
                    if resume.session_id
                    else f"starting afresh: {resume.fresh_because}"
                ),
                job=job.id,
                epoch=lease.epoch,
                session=resume.session_id,
                fresh_because=resume.fresh_because,
            )
        execution.lease_held(claimed_at, self.ttl)
        now = time.monotonic()
        timeout = job_timeout(job, self._ctx.engines)  # agents get a default one
        slot = _Slot(
            lease=lease,
            job=job,
            execution=execution,
            next_renew=claimed_at + self.heartbeat,
            next_output=now + self.output_every,
            deadline=None if timeout is None else now + timeout,
            inputs_dir=inputs_dir,
            watch=watch,
        )
        self._slots.append(slot)
        if not leftovers:
            self._launch(slot)
            return
        for group in leftovers:
            self._event(
                "job.leftovers_found",
                f"job {job.id}: the attempt of epoch {group.epoch} still runs here (process "
                f"group {group.pgid}); ending it before this one starts",
                logging.WARNING,
                job=job.id,
                epoch=group.epoch,
                pgid=group.pgid,
            )
        slot.clearing = Clearing(leftovers, self.kill_grace, now)

    def _launch(self, slot: _Slot) -> None:
        lease = slot.lease
        try:
            slot.execution.start()
        except OSError as exc:
            self._drop(slot)
            self._fail_at_start(lease, f"cannot start the job's process: {exc}")
            return
        slot.started = True
        slot.process_noted = not slot.execution.killable  # a thread has no process group
        self._note_process(slot)

    def _note_process(self, slot: _Slot) -> None:
        """Record the attempt's host and process group on its run, once it has one."""
        pgid = slot.execution.pgid
        if pgid is None:
            return
        try:
            self.fleet.record_process(slot.lease, host=self.host, pgid=pgid)
            slot.process_noted = True
        except LeaseLost as exc:
            slot.process_noted = True
            if slot.reason != "lease_lost":
                self._lose(slot, exc)
        except Exception as exc:
            log.debug("job %d: recording its process group failed: %s", slot.lease.job_id, exc)

    def _write_inputs(self, job: Job) -> tuple[str | None, str | None]:
        """A plan step's dependencies' results, in a file only this user can read: the job
        reads them from there, needing no access to the database."""
        if job.plan_id is None:
            return None, None
        inputs = self.fleet.plan_inputs(job.id)
        folder = tempfile.mkdtemp(prefix=f"agentfleet-job-{job.id}-")
        path = os.path.join(folder, "inputs.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(inputs, handle, ensure_ascii=False)
        return folder, path

    def _drop(self, slot: _Slot) -> None:
        self._slots.remove(slot)
        _remove_dir(slot.inputs_dir)

    def _fail_at_start(self, lease: Lease, error: str) -> None:
        self._event(
            "job.start_failed",
            f"job {lease.job_id} cannot run: {error}",
            logging.ERROR,
            job=lease.job_id,
            epoch=lease.epoch,
            error=error,
        )
        self.stats.failed += 1
        try:
            self.fleet.fail(lease, error, retry=False)
        except LeaseLost as exc:
            self._refused(lease, exc)
        except Exception as exc:
            self._write_failed(lease, "the failure", exc)

    def _release(self, lease: Lease, reason: str) -> None:
        try:
            status = self.fleet.release(lease, reason=reason)
            self.stats.released += 1
            self._event(
                "job.release_completed",
                f"job {lease.job_id} handed back ({reason}): now {status}",
                job=lease.job_id,
                epoch=lease.epoch,
                reason=reason,
                status=str(status),
            )
        except LeaseLost as exc:
            self._refused(lease, exc)
        except Exception as exc:
            self._write_failed(lease, "the hand-back", exc)

    def _write_failed(self, lease: Lease, what: str, exc: Exception) -> None:
        self._event(
            "job.write_failed",
            f"job {lease.job_id}: could not record {what}: {exc}",
            logging.WARNING,
            job=lease.job_id,
            epoch=lease.epoch,
            error=str(exc),
        )

    def _refused(self, lease: Lease, exc: LeaseLost) -> None:
        self.stats.lost += 1
        self._event(
            "lease.write_rejected",
            f"job {lease.job_id}: late write refused ({exc})",
            logging.WARNING,
            job=lease.job_id,
            epoch=lease.epoch,
            error=str(exc),
        )

    # -- tending running jobs -----------------------------------------------------------

    def _tend(self, slot: _Slot, now: float) -> None:
        if slot.clearing is not None and slot.clearing.done(now):
            slot.clearing = None  # the earlier attempt's processes are gone: start this one
            self._launch(slot)
            if slot not in self._slots:
                return
        noting = slot.started and not slot.process_noted and slot.reason != "lease_lost"
        if noting and now >= slot.next_note:
            slot.next_note = now + NOTE_POLL
            self._note_process(slot)
        if slot.execution.done():
            if now >= slot.next_finish:
                self._finish(slot, now)
            return
        if slot.reason is None and slot.deadline is not None and now >= slot.deadline:
            self._event(
                "job.timeout_reached",
                f"job {slot.lease.job_id} hit its timeout; stopping it",
                logging.WARNING,
                job=slot.lease.job_id,
                epoch=slot.lease.epoch,
            )
            self._interrupt(slot, "timeout", now)
            if slot not in self._slots:
                return
        # Silence counts from when the agent's process exists: a worktree being set up
        # (a long `npm ci`, say) prints nothing of the agent's.
        watch = slot.watch if slot.started and slot.execution.pgid is not None else None
        if slot.reason is None and watch is not None:
            self._watched(slot, watch.silence(now, slot.execution.output_version), now)
            if slot not in self._slots:
                return
        if slot.kill_at is not None and now >= slot.kill_at:
            self._event(
                "job.sigterm_ignored",
                f"job {slot.lease.job_id} ignored SIGTERM; killing its process group",
                logging.WARNING,
                job=slot.lease.job_id,
                epoch=slot.lease.epoch,
            )
            slot.execution.kill()
            slot.kill_at = None
        if slot.reason != "lease_lost" and now >= slot.next_renew:
            self._renew(slot, now)
        if slot.reason != "lease_lost" and now >= slot.next_output and slot in self._slots:
            self._flush_output(slot, now)

    def _watched(self, slot: _Slot, stop: Stop | None, now: float) -> None:
        """Stop the attempt if its watch says so (silent too long, or over budget)."""
        if stop is None or slot.reason is not None:
            return
        self._event(
            stop.event,
            f"job {slot.lease.job_id}: {stop.error}; stopping it",
            logging.WARNING,
            job=slot.lease.job_id,
            epoch=slot.lease.epoch,
            error=stop.error,
        )
        slot.stop_error = stop.error
        self._interrupt(slot, stop.reason, now)

    def _interrupt(self, slot: _Slot, reason: str, now: float, *, hard: bool = False) -> None:
        if slot.reason is None:
            slot.reason = reason
        if not slot.execution.killable or not slot.started:
            # A thread cannot be stopped: close the attempt now and abandon the thread.
            self._finish(slot, now)
            return
        if hard:
            slot.execution.kill()
            slot.kill_at = None
        elif slot.kill_at is None:
            slot.execution.terminate()
            slot.kill_at = now + self.kill_grace

    def _renew(self, slot: _Slot, now: float) -> None:
        try:
            slot.lease = self.fleet.renew(slot.lease, ttl=self.ttl)
            slot.execution.lease_held(now, self.ttl)
            slot.next_renew = now + self.heartbeat
        except JobCancelled:
            self._event(
                "job.cancel_detected",
                f"job {slot.lease.job_id} was cancelled; stopping it",
                job=slot.lease.job_id,
                epoch=slot.lease.epoch,
            )
            slot.next_renew = float("inf")  # the lease stays ours until the closing write
            self._interrupt(slot, "cancelled", now)
        except LeaseLost as exc:
            self._lose(slot, exc)
        except Exception as exc:
            self._event(
                "lease.renew_failed",
                f"job {slot.lease.job_id}: renewing the lease failed: {exc}",
                logging.WARNING,
                job=slot.lease.job_id,
                epoch=slot.lease.epoch,
                error=str(exc),
            )
            slot.next_renew = now + min(1.0, self.heartbeat)

    def _lose(self, slot: _Slot, exc: LeaseLost) -> None:
        self.stats.lost += 1
        slot.reason = "lease_lost"
        slot.kill_at = None
        slot.execution.kill()
        self._event(
            "lease.loss_detected",
            f"job {slot.lease.job_id}: lease lost ({exc}); killed its process group, its "
            "result will not be written",
            logging.WARNING,
            job=slot.lease.job_id,
            epoch=slot.lease.epoch,
            error=str(exc),
        )
        if not slot.execution.killable or not slot.started:
            self._drop(slot)

    def _flush_output(self, slot: _Slot, now: float) -> None:
        slot.next_output = now + self.output_every
        version = slot.execution.output_version
        if version == slot.sent_version:
            return
        try:
            output = slot.execution.output()
            self.fleet.record_output(slot.lease, output)
            slot.sent_version = version
            if slot.watch is not None:
                self._watched(slot, slot.watch.spending(now, output.agent), now)
        except LeaseLost as exc:
            self._lose(slot, exc)
        except Exception as exc:
            self._event(
                "job.output_failed",
                f"job {slot.lease.job_id}: recording output failed: {exc}",
                logging.DEBUG,
                job=slot.lease.job_id,
                error=str(exc),
            )

    # -- finishing ----------------------------------------------------------------------

    def _finish(self, slot: _Slot, now: float) -> None:
        lease, reason = slot.lease, slot.reason
        output = slot.execution.output()
        won = False
        try:
            if reason == "lease_lost":
                self._event(
                    "job.run_abandoned",
                    f"job {lease.job_id}: stopped after losing its lease; nothing written",
                    job=lease.job_id,
                    epoch=lease.epoch,
                )
            elif reason == "stopping":
                status = self.fleet.release(lease, reason="worker stopping")
                self.stats.released += 1
                self._event(
                    "job.release_completed",
                    f"job {lease.job_id} handed back unfinished: now {status}",
                    job=lease.job_id,
                    epoch=lease.epoch,
                    reason="worker stopping",
                    status=str(status),
                )
            elif reason in _STOPS_RETRY:
                error = slot.stop_error or reason
                status = self.fleet.fail(lease, error, retry=_STOPS_RETRY[reason], output=output)
                if reason in ("timeout", "idle"):
                    self.stats.timed_out += 1
                elif reason == "cancelled":
                    self.stats.cancelled += 1
                else:
                    self.stats.failed += 1
                self._event(
                    "job.run_stopped",
                    f"job {lease.job_id} stopped ({error}): now {status}",
                    job=lease.job_id,
                    epoch=lease.epoch,
                    reason=reason,
                    status=str(status),
                )
            else:
                won = self._settle(slot)
        except LeaseLost as exc:
            self._refused(lease, exc)
        except Exception as exc:
            self._event(
                "job.outcome_failed",
                f"job {lease.job_id}: writing its outcome failed, will retry: {exc}",
                logging.WARNING,
                job=lease.job_id,
                epoch=lease.epoch,
                error=str(exc),
            )
            slot.next_finish = now + 1.0
            return
        slot.execution.settled(won)  # a workspace publishes only a completion that won
        if slot in self._slots:
            self._drop(slot)
        self._drained = False
        self._t.next_claim = min(self._t.next_claim, now)

    def _settle(self, slot: _Slot) -> bool:
        """Write how the attempt ended; whether its completion was accepted."""
        lease, execution = slot.lease, slot.execution
        output = execution.output()
        outcome = execution.outcome()
        if outcome.ok:
            try:
                self.fleet.complete(lease, outcome.result, output=output)
            except JobCancelled:
                # Cancelled before its result arrived: it ends cancelled, as promised.
                self.fleet.fail(lease, "cancelled", retry=False, output=output)
                self.stats.cancelled += 1
                self._event(
                    "job.run_cancelled",
                    f"job {lease.job_id} was cancelled before it finished; ended cancelled",
                    job=lease.job_id,
                    epoch=lease.epoch,
                )
                return False
            except InvalidArgument as exc:
                error = f"the result cannot be stored: {exc}"
                self.fleet.fail(lease, error, retry=False, output=output)
                self.stats.failed += 1
                self._failed(lease, error, JobStatus.FAILED)
                return False
            self.stats.succeeded += 1
            self._event(
                "job.run_succeeded",
                f"job {lease.job_id} succeeded",
                job=lease.job_id,
                run=lease.run_id,
                epoch=lease.epoch,
                exit_code=output.exit_code,
            )
            over = None if slot.watch is None else slot.watch.at_end(output.agent)
            if over is not None:  # it ended by itself: its work stands, nothing more runs
                self._event(
                    "job.overspend_detected",
                    f"job {lease.job_id} ended past its budget ({over.error})",
                    logging.WARNING,
                    job=lease.job_id,
                    error=over.error,
                )
            return True
        error, retry = outcome.error or "failed", outcome.retry
        over = None if slot.watch is None else slot.watch.at_end(output.agent)
        if over is not None and retry:
            error, retry = f"{error}; {over.error}", False  # a retry would only spend more
        status = self.fleet.fail(lease, error, retry=retry, output=output)
        self.stats.failed += 1
        self._failed(lease, error, status)
        return False

    def _failed(self, lease: Lease, error: str, status: JobStatus) -> None:
        retry = " (will retry)" if status is JobStatus.QUEUED else ""
        self._event(
            "job.run_failed",
            f"job {lease.job_id} failed: {error}{retry}",
            job=lease.job_id,
            run=lease.run_id,
            epoch=lease.epoch,
            error=error,
            status=str(status),
        )

    def _abandon_all(self) -> None:
        """The loop crashed: stop every job and hand it back, best effort."""
        for slot in list(self._slots):
            slot.execution.kill()
            if slot.reason != "lease_lost":
                self._release(slot.lease, "worker crashed")
        self._slots.clear()


def _non_negative(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidArgument(f"{what} must be a non-negative number of seconds")
    return float(value)


def _format_stats(stats: WorkerStats) -> str:
    return ", ".join(f"{k} {v}" for k, v in vars(stats).items())


def _remove_dir(folder: str | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
