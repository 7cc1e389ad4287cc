"""Child-process bodies for the multi-process races (importable by a fresh interpreter)."""

from __future__ import annotations

import multiprocessing as mp
import queue
import random
import threading
import time
import traceback
from multiprocessing.context import BaseContext
from typing import Any

import agentfleet
from tests.concurrency.harness import ReadCheckWriteClaim


def claim_rounds(
    url: str, worker: str, job_ids: list[int], barrier: Any, results: Any, broken: bool
) -> None:
    """One process: for every job, wait for the others, then try to claim it."""
    with agentfleet.open(url, reap_interval=-1) as fleet:
        claim = ReadCheckWriteClaim(fleet, worker) if broken else None
        won: list[int] = []
        for job_id in job_ids:
            barrier.wait(timeout=120)
            if claim is not None:
                ok = claim(job_id)
            else:
                ok = fleet.claim(job_id, worker=worker, ttl=60) is not None
            if ok:
                won.append(job_id)
        results.put((worker, won))


def drain(url: str, worker: str, start: Any, results: Any, seed: int) -> None:
    """One process: claim_next in random batch sizes and complete until the queue is empty."""
    rng = random.Random(seed)
    claimed: list[int] = []
    try:
        with agentfleet.open(url, reap_interval=-1) as fleet:
            start.wait(timeout=120)
            while True:
                leases = fleet.claim_next(worker=worker, limit=rng.randint(1, 16), ttl=60)
                if not leases:
                    break
                for lease in leases:
                    claimed.append(lease.job_id)
                    fleet.complete(lease, result={"by": worker})
    except BaseException:  # said to the test, which would otherwise wait for a result
        results.put((worker, traceback.format_exc()))
        raise
    results.put((worker, claimed))


def results_of(procs: list[Any], results: Any, patience: float = 300.0) -> list[Any]:
    """One result from each process; fails at once, with the child's own traceback, when
    one raised, and names the exit codes when one died without a word."""
    outcome: list[Any] = []
    deadline = time.monotonic() + patience
    while len(outcome) < len(procs):
        try:
            outcome.append(results.get(timeout=1.0))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if len(dead) + len(outcome) >= len(procs) or time.monotonic() > deadline:
                said = f"processes ended without a result: exit codes {dead}"
                raise AssertionError(said) from None
            continue
        failed = outcome[-1][1]
        if isinstance(failed, str):
            raise AssertionError(f"process {outcome[-1][0]} failed:\n{failed}")
    return outcome


def hold() -> None:
    """A python task that runs long enough for its limit to be full at times."""
    time.sleep(0.02)


def limited_worker(url: str, name: str, queue: str, start: Any, broken: str | None) -> None:
    """One process running a real Worker until no job of the limit is left. `broken` plants a bug:
    `no_lock` drops PostgreSQL's lock around limited claims, `no_rivals` lets a batch count
    only running jobs, not the rivals it takes with it."""
    from agentfleet import Worker
    from agentfleet.store import rules

    if url.startswith("postgresql"):
        _slow_limited_commits()
    if broken == "no_lock":
        from agentfleet.store.postgres import PostgresTx

        PostgresTx.lock_limits = lambda self: None  # type: ignore[method-assign]
    elif broken == "no_rivals":
        rules.READY_BATCH = rules.READY_BATCH.replace(rules.LIMIT_FREE_BATCH, rules.LIMIT_FREE)
    with agentfleet.open(url, reap_interval=-1) as fleet:
        start.wait(timeout=120)
        # Not --burst: a worker whose queue's jobs wait for the limit would leave early.
        worker = Worker(fleet, name=name, queues=[queue], concurrency=2,
                        poll_min=0.005, poll_max=0.02)  # fmt: skip
        thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False})
        thread.start()
        while any(limit.queued or limit.running for limit in fleet.limits()):
            time.sleep(0.05)
        worker.stop()
        thread.join(120)


def _slow_limited_commits() -> None:
    """Hold each limited claim's transaction open 20 ms after its statement (a slow server,
    a slow network): without the lock, another claimer's snapshot then misses this claim."""
    from agentfleet.store.postgres import PostgresStore

    claim_in = PostgresStore._batch_in

    def slow(self: Any, tx: Any, done: Any, claim: Any, limited: bool) -> Any:
        answer = claim_in(self, tx, done, claim, limited)
        if limited and answer[2]:
            time.sleep(0.02)
        return answer

    PostgresStore._batch_in = slow  # type: ignore[method-assign]


PRELOADED = ["tests.concurrency.procs", "agentfleet.worker", "agentfleet.store.sqlite",
             "agentfleet.store.postgres"]  # fmt: skip


def workers_context() -> BaseContext:
    """Start the race's worker processes from a fork server that has imported the worker
    and the stores once: twenty children then start in milliseconds, not twenty imports
    on two cores. The server forks before it opens any connection or thread, so each
    child is as fresh as a spawned one."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOADED)
    return ctx
