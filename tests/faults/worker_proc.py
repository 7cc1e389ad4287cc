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

In remote mode (``server`` and ``token`` in the config instead of ``url``) it is the same
worker over :class:`~agentfleet.remote.RemoteFleet`, with no database access at all: its
calls go to `agentfleet serve` with a worker token named as the worker, and its effect is
written through the job's lease API (the lease token it asks its server for when the job
starts, then ``LeaseClient.write``), which refuses the token once the lease is no longer
current. The HTTP client tries a request again when its connection was cut; a try whose
answer was lost is recorded as an extra call of the same kind whose outcome is unknown, so
that the checker can explain what it may have done (a claim whose answer was cut leaves a
run nobody was told of).

Run: ``python -m tests.faults.worker_proc '<json config>'``.
"""

from __future__ import annotations

import http.client
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
from agentfleet.errors import InvalidArgument, InvalidTransition, JobNotFound
from agentfleet.remote import LeaseClient, RemoteFleet
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


def remote_outcome(exc: BaseException) -> str:
    """The same for a remote worker: only the fence's refusal (LeaseLost: the worker API's
    409 or another worker's lease, the lease API's 401) and a request the server judged bad
    are clean; StoreUnavailable (no answer, or the server's 503), a refused token and any
    other answer (a 500 of a server killed mid-request) leave the outcome unknown."""
    if isinstance(exc, LeaseLost | InvalidArgument | JobNotFound | InvalidTransition):
        return "fail"
    return "unknown"


# -- remote: count the requests the HTTP client sends, to see its own retries -------------

_sent = threading.local()


def sent() -> int:
    """Requests this thread has sent so far."""
    n: int = getattr(_sent, "n", 0)
    return n


class _CountedConnection(http.client.HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _sent.n = sent() + 1
        super().request(*args, **kwargs)


class CountedRemoteFleet(RemoteFleet):
    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        return _CountedConnection(self._host, self._port, timeout=timeout)


class CountedLeaseClient(LeaseClient):
    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        return _CountedConnection(self._host, self._port, timeout=timeout)


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
        self.server: str | None = config.get("server")
        self.remote = self.server is not None
        self.outcome = remote_outcome if self.remote else outcome
        self.lease_tokens: dict[tuple[int, int], str] = {}  # remote: each job's lease token
        self.fleet: Fleet | RemoteFleet
        if self.server is not None:
            self.fleet = CountedRemoteFleet(self.server, config["token"])
        else:
            self.fleet = self._open(config["url"])

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
        invoked = time.time()
        index = self.history.invoke(f, job=job, epoch=epoch, at=invoked, **args)
        before = sent()
        try:
            result = fn()
        except Exception as exc:
            self.history.complete(index, self.outcome(exc), error=f"{type(exc).__name__}: {exc}")
            self._hidden_tries(f, job, epoch, args, invoked, sent() - before - 1)
            return False, exc
        value = ok_value(result) if callable(ok_value) else ok_value
        self.history.complete(index, "ok", value)
        self._hidden_tries(f, job, epoch, args, invoked, sent() - before - 1)
        return True, result

    def _hidden_tries(
        self,
        f: str,
        job: int | None,
        epoch: int | None,
        args: dict[str, Any],
        invoked: float,
        tries: int,
    ) -> None:
        """The HTTP client sent the request again after a cut connection: each earlier try
        may or may not have been served, so each is a call of its own, outcome unknown."""
        for _ in range(max(0, tries)):
            index = self.history.invoke(f, job=job, epoch=epoch, at=invoked, **args)
            self.history.complete(index, "unknown", error="a try whose answer was lost")

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
            if ok or self.outcome(result) == "fail":
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

    def mint(self, lease: Lease) -> str | None:
        """Remote: the job's lease token, asked of the server once (recorded as a call)."""
        key = (lease.job_id, lease.epoch)
        if key not in self.lease_tokens:
            fleet = self.fleet
            assert isinstance(fleet, RemoteFleet)
            ok, token = self.call(
                "lease_token", lambda: fleet.lease_token(lease), job=lease.job_id,
                epoch=lease.epoch,
            )  # fmt: skip
            if ok:
                self.lease_tokens[key] = token
        return self.lease_tokens.get(key)

    def write_effect(self, lease: Lease, value: dict[str, Any]) -> None:
        """The job's effect, fenced: directly, or through the lease API with its token."""
        if not self.remote:
            fleet = self.fleet
            assert isinstance(fleet, Fleet)
            self.ending(
                "fenced_write",
                lease,
                lambda: fleet.fenced_write(lease, "effect", value),
                key="effect",
                value=value,
            )
            return
        token = self.mint(lease)
        if token is None:
            return  # the lease was lost before the job started (or the server was away)
        assert self.server is not None
        client = CountedLeaseClient(self.server, token)
        try:
            self.ending(
                "fenced_write",
                lease,
                lambda: client.write("effect", value),
                key="effect",
                value=value,
            )
        finally:
            client.close()

    def run_job(self, lease: Lease) -> None:
        if self.remote:
            self.mint(lease)  # as a worker does for a job that reaches the fleet itself
        seconds = self.work_for()
        if self.spans:
            self.run_child(lease, seconds)
        deadline = time.monotonic() + (0.0 if self.spans else seconds)
        while time.monotonic() < deadline and not self.stop.is_set():
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        value = {"job": lease.job_id, "epoch": lease.epoch, "worker": self.name}
        if self.pad:
            value["pad"] = self.pad
        self.write_effect(lease, value)
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
        self.lease_tokens.pop((lease.job_id, lease.epoch), None)

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
