"""A small worker OS process for fault runs, written on the public Fleet API only.

It claims jobs, renews their leases from a heartbeat thread, does the job's "work" (a real
child process, ``tests/faults/job_child.py``, started through agentfleet's own runner and
so tied to this worker's life and to the lease it last renewed, as a real worker's jobs
are; or, for write-heavy workers, a sleep), writes the job's effect through the
coordinator with ``fenced_write`` and ends the
job with ``complete`` (whose result names the epoch) or, now and then, ``fail``. Every call
is recorded in the process's history file as invoke, then ok / fail / unknown.

It is deliberately naive about a lost lease: when it wakes from a pause it still tries to
write and complete, so that fencing (not the worker's good manners) is what keeps a stale
epoch out.

Run: ``python -m tests.faults.worker_proc '<json config>'``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import sys
import threading
import time
from typing import Any

import agentfleet
from agentfleet import AgentFleetError, Fleet, JobCancelled, Lease, LeaseLost
from agentfleet.runner import ProcessRun
from tests.faults.history import HistoryWriter

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "job_child.py")

try:  # PostgreSQL is optional
    import psycopg
    import psycopg_pool

    _PG_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error, psycopg_pool.PoolTimeout)
except ImportError:  # pragma: no cover - depends on the install
    _PG_ERRORS = ()

# The connection broke or the store was unreachable: the call may or may not have happened.
AMBIGUOUS: tuple[type[BaseException], ...] = (sqlite3.OperationalError, *_PG_ERRORS)


def outcome(exc: BaseException) -> str:
    """How a failed call is recorded: a clean refusal, or an outcome nobody knows."""
    if isinstance(exc, LeaseLost):
        return "fail"
    if isinstance(exc, AMBIGUOUS) or (
        isinstance(exc, agentfleet.StoreUnavailable) and not isinstance(exc, LeaseLost)
    ):
        return "unknown"
    return "fail"


def _ts(lease: Lease) -> float:
    return lease.expires_at.timestamp()


class Worker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.name: str = config["name"]
        self.ttl: float = config["ttl"]
        self.work = tuple(config.get("work", (0.05, 0.3)))
        self.fail_rate: float = config.get("fail_rate", 0.05)
        self.limit: int = config.get("limit", 2)
        self.pad = "x" * int(config.get("ledger_bytes", 0))
        self.spans: str | None = config.get("spans")  # jobs are child processes when set
        self.long_jobs: float = config.get("long_jobs", 0.0)  # share of jobs longer than ttl
        self.rng = random.Random(config.get("seed"))
        self.history = HistoryWriter(config["history"], self.name)
        self.stop = threading.Event()
        self.held: dict[int, Lease] = {}
        self.held_since: dict[int, float] = {}  # when each lease was last granted or renewed
        self.children: dict[int, ProcessRun] = {}
        self.cancelled: set[int] = set()
        self.guard = threading.Lock()
        self.fleet: Fleet = self._open(config["url"])

    def _open(self, url: str) -> Fleet:
        while True:
            try:
                return agentfleet.open(url, reap_interval=0.25)
            except (AgentFleetError, *AMBIGUOUS) as exc:
                print(f"{self.name}: cannot open the store yet: {exc}", file=sys.stderr)
                time.sleep(0.5)

    # -- recorded calls ------------------------------------------------------------------

    def call(
        self,
        f: str,
        fn: Any,
        *,
        job: int | None = None,
        epoch: int | None = None,
        ok_value: Any = None,
        **args: Any,
    ) -> tuple[bool, Any]:
        index = self.history.invoke(f, job=job, epoch=epoch, **args)
        try:
            result = fn()
        except Exception as exc:
            self.history.complete(index, outcome(exc), error=f"{type(exc).__name__}: {exc}")
            return False, exc
        value = ok_value(result) if callable(ok_value) else ok_value
        self.history.complete(index, "ok", value)
        return True, result

    # -- heartbeat ---------------------------------------------------------------------

    def heartbeat(self) -> None:
        while not self.stop.wait(self.ttl / 3):
            with self.guard:
                leases = list(self.held.values())
            for lease in leases:
                since = time.monotonic()
                ok, result = self.call(
                    "renew",
                    lambda lease=lease: self.fleet.renew(lease, ttl=self.ttl),
                    job=lease.job_id,
                    epoch=lease.epoch,
                    ok_value=lambda renewed: {"expires": _ts(renewed)},
                    ttl=self.ttl,
                )
                with self.guard:
                    if ok and lease.job_id in self.held:
                        self.held[lease.job_id] = result
                        self.held_since[lease.job_id] = since
                        child = self.children.get(lease.job_id)
                        if child is not None:
                            child.lease_held(since, self.ttl)
                    elif isinstance(result, JobCancelled):
                        self.cancelled.add(lease.job_id)
                    elif isinstance(result, LeaseLost):
                        self.held.pop(lease.job_id, None)

    # -- the job -----------------------------------------------------------------------

    def ending(self, f: str, lease: Lease, fn: Any, **args: Any) -> None:
        """Call an ending write; retry while the outcome is unknown (a cut connection)."""
        for _ in range(5):
            ok, result = self.call(f, fn, job=lease.job_id, epoch=lease.epoch, **args)
            if ok or outcome(result) == "fail":
                return
            time.sleep(0.1)

    def work_for(self) -> float:
        if self.spans and self.rng.random() < self.long_jobs:
            return self.rng.uniform(self.ttl, self.ttl * 3)  # outlives a dead worker's lease
        return self.rng.uniform(*self.work)

    def run_child(self, lease: Lease, seconds: float) -> None:
        """The job's work as a real process; a failure to start it is printed, not hidden."""
        assert self.spans is not None
        env = {
            **os.environ,
            "AGENTFLEET_JOB_ID": str(lease.job_id),
            "AGENTFLEET_LEASE_EPOCH": str(lease.epoch),
        }
        child = ProcessRun(
            [sys.executable, "-I", "-S", CHILD, self.spans, str(lease.job_id),
             str(lease.epoch), f"{seconds:.3f}"],
            env=env,
        )  # fmt: skip
        with self.guard:
            child.lease_held(self.held_since.get(lease.job_id, time.monotonic()), self.ttl)
            self.children[lease.job_id] = child
        try:
            child.start()
            while not child.wait(0.05):
                if self.stop.is_set():
                    child.kill()
        except OSError as exc:
            print(f"{self.name}: job {lease.job_id} did not start: {exc}", file=sys.stderr)
        finally:
            with self.guard:
                self.children.pop(lease.job_id, None)

    def run_job(self, lease: Lease) -> None:
        seconds = self.work_for()
        if self.spans:
            self.run_child(lease, seconds)
        deadline = time.monotonic() + (0.0 if self.spans else seconds)
        while time.monotonic() < deadline and not self.stop.is_set():
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        value = {"job": lease.job_id, "epoch": lease.epoch, "worker": self.name}
        if self.pad:
            value["pad"] = self.pad
        self.ending(
            "fenced_write",
            lease,
            lambda: self.fleet.fenced_write(lease, "effect", value),
            key="effect",
            value=value,
        )
        with self.guard:
            cancelled = lease.job_id in self.cancelled
        if cancelled:
            self.ending("fail", lease, lambda: self.fleet.fail(lease, "cancelled"), retry=True)
        elif self.rng.random() < self.fail_rate:
            self.ending(
                "fail",
                lease,
                lambda: self.fleet.fail(lease, "injected failure", delay=0),
                retry=True,
            )
        else:
            result = {"epoch": lease.epoch, "worker": self.name}
            self.ending("complete", lease, lambda: self.fleet.complete(lease, result=result))
        with self.guard:
            self.held.pop(lease.job_id, None)
            self.held_since.pop(lease.job_id, None)
            self.cancelled.discard(lease.job_id)

    def loop(self) -> None:
        threading.Thread(target=self.heartbeat, daemon=True).start()
        idle = 0.02
        while not self.stop.is_set():
            limit = self.rng.randint(1, self.limit)
            since = time.monotonic()
            ok, leases = self.call(
                "claim_next",
                lambda limit=limit: self.fleet.claim_next(
                    worker=self.name, limit=limit, ttl=self.ttl
                ),
                ok_value=lambda got: [
                    {"job": x.job_id, "epoch": x.epoch, "attempt": x.attempt, "expires": _ts(x)}
                    for x in got
                ],
                limit=limit,
                ttl=self.ttl,
            )
            if not ok:
                time.sleep(0.1)
                continue
            if not leases:
                time.sleep(idle)
                idle = min(0.1, idle * 1.5)
                continue
            idle = 0.02
            with self.guard:
                for lease in leases:
                    self.held[lease.job_id] = lease
                    self.held_since[lease.job_id] = since
            for lease in leases:
                self.run_job(lease)
        self.fleet.close()
        self.history.close()


def main() -> None:
    config = json.loads(sys.argv[1])
    worker = Worker(config)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop.set())
    print(f"{worker.name}: ready", file=sys.stderr, flush=True)
    worker.loop()


if __name__ == "__main__":
    main()
