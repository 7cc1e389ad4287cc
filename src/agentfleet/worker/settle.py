"""How a worker writes the end of an attempt: one by one, or a batch of python tasks.

Every write here is fenced by the attempt's lease; a refused one (LeaseLost) is logged and
counted, never retried, and the attempt's work is not published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from agentfleet import validate
from agentfleet.errors import InvalidArgument, JobCancelled, LeaseLost
from agentfleet.fleet import Fleet
from agentfleet.models import JobStatus, Lease
from agentfleet.remote import RemoteFleet
from agentfleet.tasks import TaskRun
from agentfleet.worker.state import STOPS_RETRY, Slot, WorkerStats

Event = Callable[..., None]  # Worker._event: (name, message, level, **fields)


def batchable_result(slot: Slot) -> tuple[bool, Any]:
    """Whether this attempt can be completed in a batch, and its result: a python task that
    succeeded by itself, nothing watching it, with a result the store can take. Every
    other ending (a process's output to keep, a failure, a stop) is written on its own."""
    execution = slot.execution
    if slot.reason is not None or slot.watch is not None or not isinstance(execution, TaskRun):
        return False, None
    outcome = execution.outcome()
    if not outcome.ok:
        return False, None
    try:
        return True, validate.json_value(outcome.result, "result")
    except InvalidArgument:
        return False, None  # written on its own, which fails it and says why


class Settler:
    """The closing writes of attempts, with their log events and counts."""

    def __init__(
        self, fleet: Fleet | RemoteFleet, stats: WorkerStats, event: Event, log: logging.Logger
    ) -> None:
        self.fleet = fleet
        self.log = log
        self.stats = stats
        self.event = event

    # -- one attempt at a time ---------------------------------------------------------

    def close(self, slot: Slot) -> bool:
        """Write how the attempt ended, by why it stopped; whether its completion won.
        Raises what the store raises for a write that could not be made (to retry)."""
        lease, reason = slot.lease, slot.reason
        try:
            if reason == "lease_lost":
                self.event(
                    "job.run_abandoned",
                    f"job {lease.job_id}: stopped after losing its lease; nothing written",
                    job=lease.job_id,
                    epoch=lease.epoch,
                )
            elif reason == "stopping":
                status = self.fleet.release(lease, reason="worker stopping")
                self.stats.released += 1
                self.event(
                    "job.release_completed",
                    f"job {lease.job_id} handed back unfinished: now {status}",
                    job=lease.job_id,
                    epoch=lease.epoch,
                    reason="worker stopping",
                    status=str(status),
                )
            elif reason in STOPS_RETRY:
                self._stopped(slot, reason)
            else:
                return self._settle(slot)
        except LeaseLost as exc:
            self.refused(lease, exc)
        return False

    def _stopped(self, slot: Slot, reason: str) -> None:
        lease = slot.lease
        error = slot.stop_error or reason
        output = slot.execution.output()
        status = self.fleet.fail(lease, error, retry=STOPS_RETRY[reason], output=output)
        if reason in ("timeout", "idle"):
            self.stats.timed_out += 1
        elif reason == "cancelled":
            self.stats.cancelled += 1
        else:
            self.stats.failed += 1
        self.event(
            "job.run_stopped",
            f"job {lease.job_id} stopped ({error}): now {status}",
            job=lease.job_id,
            epoch=lease.epoch,
            reason=reason,
            status=str(status),
        )

    def _settle(self, slot: Slot) -> bool:
        """Write how the attempt ended by itself; whether its completion was accepted."""
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
                self.event(
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
                self.failed(lease, error, JobStatus.FAILED)
                return False
            self.succeeded(slot, exit_code=output.exit_code)
            over = None if slot.watch is None else slot.watch.at_end(output.agent)
            if over is not None:  # it ended by itself: its work stands, nothing more runs
                self.event(
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
        self.failed(lease, error, status)
        return False

    def succeeded(self, slot: Slot, *, exit_code: int | None = None) -> None:
        self.stats.succeeded += 1
        lease, level = slot.lease, job_level(slot.job.engine)
        if not self.log.isEnabledFor(level):
            return  # thousands a second on the batched path: build the line only if shown
        self.event(
            "job.run_succeeded",
            f"job {lease.job_id} succeeded",
            level,
            job=lease.job_id,
            run=lease.run_id,
            epoch=lease.epoch,
            exit_code=exit_code,
        )

    def failed(self, lease: Lease, error: str, status: JobStatus) -> None:
        retry = " (will retry)" if status is JobStatus.QUEUED else ""
        self.event(
            "job.run_failed",
            f"job {lease.job_id} failed: {error}{retry}",
            job=lease.job_id,
            run=lease.run_id,
            epoch=lease.epoch,
            error=error,
            status=str(status),
        )

    def fail_at_start(self, lease: Lease, error: str) -> None:
        self.event(
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
            self.refused(lease, exc)
        except Exception as exc:
            self.write_failed(lease, "the failure", exc)

    def release(self, lease: Lease, reason: str) -> None:
        try:
            status = self.fleet.release(lease, reason=reason)
            self.stats.released += 1
            self.event(
                "job.release_completed",
                f"job {lease.job_id} handed back ({reason}): now {status}",
                job=lease.job_id,
                epoch=lease.epoch,
                reason=reason,
                status=str(status),
            )
        except LeaseLost as exc:
            self.refused(lease, exc)
        except Exception as exc:
            self.write_failed(lease, "the hand-back", exc)

    def write_failed(self, lease: Lease, what: str, exc: Exception) -> None:
        self.event(
            "job.write_failed",
            f"job {lease.job_id}: could not record {what}: {exc}",
            logging.WARNING,
            job=lease.job_id,
            epoch=lease.epoch,
            error=str(exc),
        )

    def refused(self, lease: Lease, exc: LeaseLost) -> None:
        self.stats.lost += 1
        self.event(
            "lease.write_rejected",
            f"job {lease.job_id}: late write refused ({exc})",
            logging.WARNING,
            job=lease.job_id,
            epoch=lease.epoch,
            error=str(exc),
        )

    # -- a batch ---------------------------------------------------------------------

    def batch(
        self,
        slots: Sequence[Slot],
        claim: Callable[[list[tuple[Lease, Any]]], tuple[list[int], list[Lease]]],
    ) -> tuple[list[Slot], list[Lease]]:
        """Complete the batched slots with `claim` (one statement and one commit, which
        may claim the next jobs too). Returns the slots it did not complete (a cancel
        asked for, a lease lost: each is then written on its own, which says which) and
        the new leases."""
        done = [(slot.lease, slot.batched[0]) for slot in slots if slot.batched is not None]
        completed, leases = claim(done)
        won = set(completed)
        left = []
        for slot in slots:
            if slot.lease.job_id in won:
                self.succeeded(slot)
            else:
                left.append(slot)
        if completed:
            self.event(
                "job.batch_completed",
                f"{len(completed)} python task(s) succeeded (jobs {_spans(completed)})",
                jobs=len(completed),
            )
        return left, leases


def job_level(engine: str) -> int:
    """Python tasks are many and short: their claims and successes are debug lines, and
    each batch gets one line of its own. Every other job's are info lines."""
    return logging.DEBUG if engine == "python" else logging.INFO


def _spans(ids: Sequence[int]) -> str:
    """Job ids as runs of consecutive ids: 4-9, 12, 15-16."""
    spans: list[list[int]] = []
    for value in sorted(ids):
        if spans and value == spans[-1][1] + 1:
            spans[-1][1] = value
        else:
            spans.append([value, value])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
