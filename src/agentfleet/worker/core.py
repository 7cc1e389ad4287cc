"""The worker: claims jobs up to its free capacity, runs each one, heartbeats, finishes it.

One loop in one thread makes every store write; executions (subprocesses, Python threads)
only run and report. The loop:

* claims ``limit = free slots`` jobs at once, completing the python tasks that succeeded
  since in the same statement and commit (a batch); while it waits it is woken by
  PostgreSQL LISTEN/NOTIFY or SQLite's data_version (:meth:`Fleet.wait_for_jobs`, in the
  loop's own thread and on its own connection), and between wakes polls with exponential
  backoff (``poll_min`` up to ``poll_max``);
* renews its leases every ``ttl / 3``, all of them in one statement, and records each job's
  output so far every ``output_every``;
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

import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from agentfleet import logs, validate
from agentfleet.agents.resume import plan_resume
from agentfleet.agents.watch import Stop, watch_for
from agentfleet.dispatch import (
    RunContext,
    absolute_db_url,
    build_execution,
    job_timeout,
    runnable_engines,
)
from agentfleet.durations import format_duration
from agentfleet.engines import EngineConfig
from agentfleet.errors import AccessDenied, InvalidArgument, JobCancelled, LeaseLost
from agentfleet.fleet import DEFAULT_TTL, Fleet
from agentfleet.leftovers import Clearing, find_leftovers
from agentfleet.models import Job, Lease
from agentfleet.output import OUTPUT_LIMIT
from agentfleet.remote import RemoteFleet
from agentfleet.worker.settle import Settler, batchable_result, job_level
from agentfleet.worker.state import Slot, Timers, WorkerStats
from agentfleet.worker.waker import Waker

__all__ = ["Worker", "WorkerStats", "default_worker_name"]

log = logging.getLogger("agentfleet.worker")

MAX_SLEEP = 1.0  # the loop never sleeps longer, so stop requests are seen promptly
CLEAR_POLL = 0.05  # how often to look whether an earlier attempt's processes are gone
NOTE_POLL = 0.25  # how often to look for the process group of a job still setting up
SCHEDULE_EVERY = 1.0  # how often a worker looks for due schedule slots (a cheap indexed read)
PRUNE_CHECK_EVERY = 60.0  # how often a worker asks whether the fleet's prune is due
# How long a succeeded python task may wait for others to share its batch's commit, while
# other tasks of this worker still run (with none running, the batch is written at once).
BATCH_LINGER = 0.005


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    """Runs jobs from a :class:`~agentfleet.Fleet` until stopped (or, with ``burst``, idle);
    or from a :class:`~agentfleet.remote.RemoteFleet`, the same verbs over `agentfleet
    serve`'s worker API (a remote worker does no fleet housekeeping: see its docs)."""

    def __init__(
        self,
        fleet: Fleet | RemoteFleet,
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
        lease_server: str | None = None,
        lease_ca: str | None = None,
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
        self._cut_off = False
        remote = isinstance(fleet, RemoteFleet)
        if remote and lease_server is not None:
            raise InvalidArgument(
                "lease_server is for a direct worker: a remote worker's jobs reach its server"
            )
        self._ctx = RunContext(
            db_url=None if remote else absolute_db_url(fleet.url),
            server=fleet.url if remote else _server_url(lease_server),
            lease_token=fleet.lease_token if remote or lease_server is not None else None,
            ca_file=fleet.ca_file if isinstance(fleet, RemoteFleet) else lease_ca,
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
        self._slots: list[Slot] = []
        self._stop_requests = 0
        self._stopping = False
        self._grace_over = False
        self._hard_stop = False
        self._drained = False
        self._notified = False
        self._waker: Waker | None = None
        self._t = Timers(poll=self.poll_min)
        self._settler = Settler(fleet, self.stats, self._event, log)

    # -- control ----------------------------------------------------------------------

    def stop(self, *, now: bool = False, cut_off: bool = False) -> None:
        """Ask the worker to stop: gracefully, or (second request, or ``now``) at once.
        ``cut_off``: the fleet refuses this worker's writes (a revoked token), so its jobs
        are killed and cannot be handed back; they come back after their lease's ttl.

        Safe to call from any thread and from signal handlers.
        """
        self._cut_off = self._cut_off or cut_off
        self._stop_requests = max(self._stop_requests + 1, 2 if now else 1)
        if self._waker is not None:
            self._waker.wake()

    @property
    def running_jobs(self) -> list[int]:
        return [slot.lease.job_id for slot in self._slots]

    def run(self, *, handle_signals: bool = True) -> WorkerStats:
        """Work until stopped; SIGTERM/SIGINT stop it when run in the main thread."""
        self._waker = Waker()
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
            # a database URL's password, if any, is never printed; a remote worker's server
            database=None if self._ctx.server else self.fleet.url,
            server=self._ctx.server,
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

    def _prune_if_due(self) -> None:
        """With `agentfleet config set retention AGE`, delete what finished longer ago:
        one worker of the fleet at a time, at most every ten minutes fleet-wide."""
        try:
            pruned = self.fleet.prune_if_due()
        except Exception as exc:
            self._event("fleet.prune_failed", f"pruning past the retention failed: {exc}",
                        logging.WARNING, error=str(exc))  # fmt: skip
            return
        if pruned is not None and (pruned.jobs or pruned.plans):
            self._event(
                "fleet.prune_completed",
                f"pruned {pruned.jobs} job(s) and {pruned.plans} plan(s) past the retention",
                jobs=pruned.jobs,
                plans=pruned.plans,
                runs=pruned.runs,
            )

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
            for slot in list(self._slots):
                self._tend(slot, time.monotonic())
            now = time.monotonic()
            self._heartbeat(now)
            self._claim(now)
            self._periodic(now)
            if self.burst and self._drained and not self._slots and not self._stopping:
                self._event(
                    "worker.burst_completed",
                    "no job is ready and none is running: leaving (burst mode)"
                    + self._later_note(),
                )
                return
            self._wait(min(self._next_due(now) - now, MAX_SLEEP))

    def _later_note(self) -> str:
        """What a burst worker leaves behind that starts later (a retry's backoff, a delay),
        so that "drained" is not read as "all done". Read once, as it leaves."""
        now = self.fleet.now()
        queues: list[str | None] = list(self.queues) if self.queues else [None]
        later = [
            job.run_at
            for queue in queues
            for job in self.fleet.list_jobs(status="queued", queue=queue, limit=1000)
            if job.run_at > now
        ]
        if not later:
            return ""
        soonest = format_duration(max(1.0, round((min(later) - now).total_seconds())))
        return f"; {len(later)} job(s) queued to start later, the first in {soonest}"

    def _next_due(self, now: float) -> float:
        due = [self._t.next_seen, self._t.next_reap]
        if not self._stopping:
            due.append(self._t.next_schedule)
        if not self._stopping and self._free() > 0:
            due.append(now if self._notified else self._t.next_claim)
        if self._stopping and not self._grace_over:
            due.append(self._t.stop_deadline)
        waiting = self._batched()
        if waiting:
            due.append(self._batch_due(waiting))
        for slot in self._slots:
            if slot.batched is not None:
                continue
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
                back = (
                    "the fleet refuses this worker, so they come back after their lease's ttl"
                    if self._cut_off
                    else "handing them back"
                )
                self._event(
                    "worker.stop_forced",
                    f"stopping now: killing {len(self._slots)} job(s); {back}",
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
        if now >= self._t.next_prune and not self._stopping:
            self._t.next_prune = now + PRUNE_CHECK_EVERY
            self._prune_if_due()
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

    def _free(self) -> int:
        """Slots for new jobs: a batched slot's completion goes with the next claim."""
        return self.concurrency - sum(1 for slot in self._slots if slot.batched is None)

    def _batched(self) -> list[Slot]:
        return [slot for slot in self._slots if slot.batched is not None]

    def _batch_due(self, waiting: list[Slot]) -> float:
        """When the batch is written: at once when nothing else runs or the batch is
        big enough, else once its oldest has lingered (or at its retry time)."""
        if len(waiting) == len(self._slots) or len(waiting) * 2 >= self.concurrency:
            return max(slot.next_finish for slot in waiting)
        oldest = min(slot.batched[1] for slot in waiting if slot.batched is not None)
        return max(oldest + BATCH_LINGER, max(slot.next_finish for slot in waiting))

    def _claim(self, now: float) -> None:
        """Claim up to the free slots, completing the batched python tasks in the same
        statement; or, when no slot is free (or the worker stops), complete them alone."""
        waiting = self._batched()
        flush = bool(waiting) and now >= self._batch_due(waiting)
        free = self._free() if not self._stopping else 0
        if self._notified and free > 0:
            self._notified = False
            self._t.next_claim = now
        # A batch due frees its slots, so it claims; a claim due takes the batch along.
        claiming = free > 0 and (now >= self._t.next_claim or flush)
        if not claiming and not flush:
            return
        if not claiming:
            self._complete_batch(waiting, now)
            return
        try:
            leases = self._complete_batch(waiting, now, claim=free)
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

    def _complete_batch(self, waiting: list[Slot], now: float, claim: int = 0) -> list[Lease]:
        """Complete `waiting` and claim up to `claim` jobs: one statement, one commit.
        A completion the store refuses is written on its own (which says why). Raises
        only when the claim was asked for and failed; a failed batch waits a second."""

        def write(done: list[tuple[Lease, object]]) -> tuple[list[int], list[Lease]]:
            if not claim:
                return self.fleet.complete_many(done), []
            return self.fleet.complete_and_claim(
                done,
                worker=self.name,
                queues=self.queues,
                limit=claim,
                ttl=self.ttl,
                engines=self.engines,
                host=self.host,
            )

        try:
            left, leases = self._settler.batch(waiting, write)
        except AccessDenied:
            for slot in waiting:  # nothing more can be written (see _finish)
                slot.batched = None
                self._finish(slot, now)
            return []
        except Exception as exc:
            if not waiting:
                raise
            self._event(
                "job.outcome_failed",
                f"writing the outcome of {len(waiting)} job(s) failed, will retry: {exc}",
                logging.WARNING,
                jobs=len(waiting),
                error=str(exc),
            )
            for slot in waiting:
                slot.next_finish = now + 1.0
            if claim:
                raise
            return []
        for slot in waiting:
            slot.batched = None
            if slot in left:
                self._finish(slot, now)  # refused: on its own, so that it says why
            else:
                slot.execution.settled(True)
                self._drop(slot)
        if waiting:
            self._drained = False
        return leases

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
            self._settler.release(lease, "the worker could not read the job")
            return
        level = job_level(job.engine)
        if log.isEnabledFor(level):  # thousands a second: build the line only if it is shown
            self._claimed(job, lease, level)
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
            self._settler.release(lease, "the worker could not read the job's plan inputs")
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
            self._settler.release(
                lease, "the worker could not check for an earlier attempt's processes"
            )
            return
        over = None if watch is None else watch.at_start()
        if over is not None:
            _remove_dir(inputs_dir)
            self._settler.fail_at_start(lease, over.error)  # never started: nothing more is spent
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
            self._settler.fail_at_start(lease, str(exc))
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
        slot = Slot(
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

    def _claimed(self, job: Job, lease: Lease, level: int) -> None:
        self._event(
            "job.claim_completed",
            f"job {job.id} claimed ({job.engine}, attempt {lease.attempt}/{job.max_attempts}, "
            f"epoch {lease.epoch})",
            level,
            job=job.id,
            run=lease.run_id,
            epoch=lease.epoch,
            plan=job.plan_id,
            engine=job.engine,
            queue=job.queue,
            attempt=lease.attempt,
            max_attempts=job.max_attempts,
        )

    def _launch(self, slot: Slot) -> None:
        lease = slot.lease
        try:
            slot.execution.start()
        except OSError as exc:
            self._drop(slot)
            self._settler.fail_at_start(lease, f"cannot start the job's process: {exc}")
            return
        slot.started = True
        slot.process_noted = not slot.execution.killable  # a thread has no process group
        self._note_process(slot)

    def _note_process(self, slot: Slot) -> None:
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

    def _drop(self, slot: Slot) -> None:
        self._slots.remove(slot)
        _remove_dir(slot.inputs_dir)

    # -- tending running jobs -----------------------------------------------------------

    def _tend(self, slot: Slot, now: float) -> None:
        if slot.batched is not None:
            return  # done: its completion waits for the next batch
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
                batchable, result = batchable_result(slot)
                if batchable:
                    slot.batched = (result, now)
                else:
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
        if slot.reason != "lease_lost" and now >= slot.next_output and slot in self._slots:
            self._flush_output(slot, now)

    def _watched(self, slot: Slot, stop: Stop | None, now: float) -> None:
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

    def _interrupt(self, slot: Slot, reason: str, now: float, *, hard: bool = False) -> None:
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

    def _heartbeat(self, now: float) -> None:
        """Renew every lease that is due, and those due within half a heartbeat with
        them, in one statement: the leases fall into step, one write per heartbeat."""
        held = [slot for slot in self._slots if slot.reason != "lease_lost"]
        if not any(now >= slot.next_renew for slot in held):
            return
        due = [slot for slot in held if slot.next_renew - self.heartbeat / 2 <= now]
        try:
            answers = self.fleet.renew_many([slot.lease for slot in due], ttl=self.ttl)
        except Exception as exc:
            self._event(
                "lease.renew_failed",
                f"renewing {len(due)} lease(s) failed: {exc}",
                logging.WARNING,
                jobs=[slot.lease.job_id for slot in due],
                error=str(exc),
            )
            for slot in due:
                slot.next_renew = now + min(1.0, self.heartbeat)
            return
        for slot, answer in zip(due, answers, strict=True):
            if isinstance(answer, Lease):
                slot.lease = answer
                slot.execution.lease_held(now, self.ttl)
                slot.next_renew = now + self.heartbeat
            elif isinstance(answer, JobCancelled):
                self._event(
                    "job.cancel_detected",
                    f"job {slot.lease.job_id} was cancelled; stopping it",
                    job=slot.lease.job_id,
                    epoch=slot.lease.epoch,
                )
                slot.next_renew = float("inf")  # the lease stays ours until the closing write
                if slot.batched is not None:
                    slot.batched = None  # written on its own: it ends cancelled
                    slot.reason = "cancelled"
                    self._finish(slot, now)
                else:
                    self._interrupt(slot, "cancelled", now)
            else:
                if slot.batched is not None:
                    slot.batched = None
                self._lose(slot, answer)

    def _lose(self, slot: Slot, exc: LeaseLost) -> None:
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

    def _flush_output(self, slot: Slot, now: float) -> None:
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

    def _finish(self, slot: Slot, now: float) -> None:
        try:
            won = self._settler.close(slot)
        except AccessDenied as exc:
            # A remote worker's token was refused (revoked): nothing more can be written.
            # The job was stopped; its lease comes back after its ttl, as a vanished worker's.
            self._event(
                "job.outcome_abandoned",
                f"job {slot.lease.job_id}: nothing written, the server refused the token: {exc}",
                logging.WARNING,
                job=slot.lease.job_id,
                epoch=slot.lease.epoch,
                error=str(exc),
            )
            slot.execution.kill()
            if slot in self._slots:
                self._drop(slot)
            return
        except Exception as exc:
            self._event(
                "job.outcome_failed",
                f"job {slot.lease.job_id}: writing its outcome failed, will retry: {exc}",
                logging.WARNING,
                job=slot.lease.job_id,
                epoch=slot.lease.epoch,
                error=str(exc),
            )
            slot.next_finish = now + 1.0
            return
        slot.execution.settled(won)  # a workspace publishes only a completion that won
        if slot in self._slots:
            self._drop(slot)
        self._drained = False
        self._t.next_claim = min(self._t.next_claim, now)

    def _abandon_all(self) -> None:
        """The loop crashed: stop every job and hand it back, best effort."""
        for slot in list(self._slots):
            slot.execution.kill()
            if slot.reason != "lease_lost":
                self._settler.release(slot.lease, "worker crashed")
        self._slots.clear()


def _server_url(url: str | None) -> str | None:
    """A direct worker's --lease-server, checked as a remote worker's --server is."""
    if url is None:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"the lease server must be an http:// or https:// address, not {url!r}"
        )
    return url.strip().rstrip("/")


def _non_negative(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidArgument(f"{what} must be a non-negative number of seconds")
    return float(value)


def _format_stats(stats: WorkerStats) -> str:
    return ", ".join(f"{k} {v}" for k, v in vars(stats).items())


def _remove_dir(folder: str | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
