"""A small worker for end-to-end tests: claims through the Fleet API and works visibly.

A job's payload steers it: ``lines`` lines of output, one every ``interval`` seconds, then
success; ``hold: true`` (or ``--hold`` in its ``cmd``, for plan jobs) keeps it running,
renewing its lease, until someone cancels it; ``--fail`` in its ``cmd`` fails it for good.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import agentfleet
from agentfleet import Fleet, JobCancelled, Lease, LeaseLost, RunOutput

QUEUES = ["default"]


class TestWorker:
    __test__ = False  # not a test class, whatever its name

    def __init__(self, db_url: str, name: str = "e2e-worker", ttl: float = 5.0) -> None:
        self.db_url = db_url
        self.name = name
        self.ttl = ttl
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.fleet: Fleet | None = None
        self.errors: list[BaseException] = []

    def __enter__(self) -> TestWorker:
        self.fleet = agentfleet.open(self.db_url)
        loop = threading.Thread(target=self._loop, name=self.name, daemon=True)
        loop.start()
        self.threads.append(loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in list(self.threads):
            t.join(timeout=15)
        if self.fleet is not None:
            self.fleet.worker_stopped(self.name)
            self.fleet.close()

    def _loop(self) -> None:
        assert self.fleet is not None
        fleet = self.fleet
        last_seen = 0.0
        while not self.stopping.is_set():
            if time.monotonic() - last_seen > 1.0:
                fleet.worker_seen(
                    self.name,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    queues=QUEUES,
                    concurrency=4,
                )
                last_seen = time.monotonic()
            # Only the queue it reports: a test's own jobs elsewhere (a worktree job) are
            # run for real by that test, never finished here without doing their work.
            claimed = fleet.claim_next(worker=self.name, queues=QUEUES, limit=4, ttl=self.ttl)
            for lease in claimed:
                t = threading.Thread(target=self._run, args=(lease,), daemon=True)
                t.start()
                self.threads.append(t)
            self.stopping.wait(0.1)

    def _run(self, lease: Lease) -> None:
        assert self.fleet is not None
        fleet = self.fleet
        payload = lease.job.payload if lease.job is not None else {}
        hold = bool(payload.get("hold")) or "--hold" in str(payload.get("cmd", ""))
        lines = int(payload.get("lines", 3))
        interval = float(payload.get("interval", 0.15))
        out = ""
        try:
            for i in range(1, lines + 1):
                self.stopping.wait(interval)
                out += f"step {i}/{lines}: working on {payload.get('cmd', 'it')}\n"
                fleet.record_output(lease, RunOutput(stdout=out))
                lease = fleet.renew(lease)
            deadline = time.monotonic() + 60
            while hold and time.monotonic() < deadline:
                if self.stopping.wait(0.2):
                    fleet.release(lease)
                    return
                lease = fleet.renew(lease)
            if "--fail" in str(payload.get("cmd", "")):
                out += "it broke\n"
                fleet.fail(
                    lease, "it broke", retry=False, output=RunOutput(exit_code=3, stdout=out)
                )
                return
            fleet.complete(lease, {"lines": lines}, output=RunOutput(exit_code=0, stdout=out))
        except JobCancelled:
            out += "stopped: the job was cancelled\n"
            fleet.fail(lease, "cancelled", retry=False, output=RunOutput(exit_code=130, stdout=out))
        except LeaseLost:
            pass
        except BaseException as exc:  # surfaced by the test that owns this worker
            self.errors.append(exc)
