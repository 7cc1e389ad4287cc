"""claim_next under contention: nothing lost, nothing claimed twice, locks never overlap."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter, defaultdict

import pytest

from agentfleet import Fleet, JobStatus, NewJob
from tests.concurrency.procs import results_of, workers_context
from tests.conftest import StoreEnv

JOBS = 2000
WORKERS = 8


def _enqueue_batch(fleet: Fleet, n: int) -> list[int]:
    jobs = fleet.enqueue_many(NewJob("shell", {"n": i}) for i in range(n))
    return [j.id for j in jobs]


def _assert_drained_exactly(fleet: Fleet, enqueued: list[int], claimed: list[int]) -> None:
    assert Counter(claimed) == Counter(enqueued)  # the multiset: no loss, no duplicate
    assert fleet.queue_counts() == {("default", "succeeded"): len(enqueued)}


def test_threads_drain_every_job_exactly_once(env: StoreEnv) -> None:
    ids = _enqueue_batch(env.fleet, JOBS)
    claimed: list[int] = []
    guard = threading.Lock()
    start = threading.Barrier(WORKERS)

    def work(index: int) -> None:
        fleet = env.open()
        rng = random.Random(index)
        start.wait()
        while leases := fleet.claim_next(worker=f"t{index}", limit=rng.randint(1, 16)):
            for lease in leases:
                fleet.complete(lease, result={"by": index})
            with guard:
                claimed.extend(lease.job_id for lease in leases)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _assert_drained_exactly(env.fleet, ids, claimed)
    print(
        f"\n[{env.backend}] {JOBS} jobs, {WORKERS} threads: {len(claimed)} claimed, "
        f"{len(claimed) - len(set(claimed))} duplicates"
    )


def test_processes_drain_every_job_exactly_once(env: StoreEnv) -> None:
    if not env.separate_connections:
        pytest.skip("the memory store lives in one process")
    ids = _enqueue_batch(env.fleet, JOBS)
    ctx = workers_context()
    start = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_drain_entry, args=(env.url, f"p{i}", start, results, i))
        for i in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    outcome = results_of(procs, results)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    claimed = [job_id for _, got in outcome for job_id in got]
    _assert_drained_exactly(env.fleet, ids, claimed)
    busy = sum(1 for _, got in outcome if got)
    print(
        f"\n[{env.backend}] {JOBS} jobs, {WORKERS} processes ({busy} got work): "
        f"{len(claimed)} claimed, {len(claimed) - len(set(claimed))} duplicates"
    )


def _drain_entry(*args: object) -> None:
    from tests.concurrency.procs import drain

    drain(*args)  # type: ignore[arg-type]


def test_named_locks_never_overlap(env: StoreEnv) -> None:
    locks = ["repo-a", "repo-b", "repo-c"]
    jobs = env.fleet.enqueue_many(
        NewJob("shell", {"n": i}, lock=locks[i % 3] if i % 4 else None) for i in range(90)
    )
    held: dict[str, list[tuple[float, float]]] = defaultdict(list)
    guard = threading.Lock()

    def work(index: int) -> None:
        fleet = env.open()
        while leases := fleet.claim_next(worker=f"t{index}", limit=3):
            for lease in leases:
                began = time.monotonic()
                time.sleep(0.002)
                ended = time.monotonic()
                lock = lease.job.lock if lease.job else None
                if lock:
                    with guard:
                        held[lock].append((began, ended))
                fleet.complete(lease)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(env.fleet.get_job(j.id).status is JobStatus.SUCCEEDED for j in jobs)
    for lock, spans in held.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two jobs held {lock} at once"
        # the store's own run records agree
        runs = sorted(
            (r.started_at, r.finished_at)
            for j in jobs
            if j.lock == lock
            for r in env.fleet.runs(j.id)
        )
        for (_, end), (start, _) in itertools.pairwise(runs):
            assert end is not None and start >= end, f"run records of {lock} overlap"
    assert sum(len(s) for s in held.values()) == sum(1 for j in jobs if j.lock)


def test_threads_drain_with_complete_and_claim_exactly_once(env: StoreEnv) -> None:
    ids = _enqueue_batch(env.fleet, JOBS)
    claimed: list[int] = []
    completed: list[int] = []
    guard = threading.Lock()
    start = threading.Barrier(WORKERS)

    def work(index: int) -> None:
        fleet = env.open()
        rng = random.Random(index)
        start.wait()
        held: list = []
        while True:
            done, held = fleet.complete_and_claim(
                [(lease, index) for lease in held], worker=f"t{index}", limit=rng.randint(1, 32)
            )
            with guard:
                completed.extend(done)
                claimed.extend(lease.job_id for lease in held)
            if not held:
                break

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(completed) == Counter(ids)
    _assert_drained_exactly(env.fleet, ids, claimed)


def test_lock_sharers_drain_one_at_a_time_without_errors(env: StoreEnv) -> None:
    """Threads racing claim_next over jobs mostly sharing one lock: never an error, never an
    empty answer while a job is ready, never two of the lock at once, every job once."""
    jobs = env.fleet.enqueue_many(
        NewJob("shell", {"n": i}, lock="one" if i % 3 else None) for i in range(45)
    )
    locked = {j.id for j in jobs if j.lock}
    errors: list[BaseException] = []
    claimed: list[int] = []
    guard = threading.Lock()
    start = threading.Barrier(WORKERS)

    def work(index: int) -> None:
        fleet = env.open()
        start.wait()
        idle = 0
        try:
            while idle < 50:  # many empty answers in a row with nothing running: stalled
                leases = fleet.claim_next(worker=f"t{index}", limit=3, ttl=60)
                if not leases:
                    counts = fleet.queue_counts()
                    if not counts.get(("default", "queued")):
                        return
                    idle = idle + 1 if not counts.get(("default", "running")) else 0
                    time.sleep(0.002)
                    continue
                idle = 0
                for lease in leases:
                    fleet.complete(lease)
                    with guard:
                        claimed.append(lease.job_id)
        except BaseException as exc:  # surfaced below
            with guard:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    left = [j.id for j in env.fleet.list_jobs(status="queued")]
    assert left == [], f"the threads stalled with ready jobs {left} and nothing running"
    assert Counter(claimed) == Counter(j.id for j in jobs)
    assert all(env.fleet.get_job(j.id).status is JobStatus.SUCCEEDED for j in jobs)
    runs = sorted(
        (r.started_at, r.finished_at) for job_id in locked for r in env.fleet.runs(job_id)
    )
    for (_, end), (begin, _) in itertools.pairwise(runs):
        assert end is not None and begin >= end, "two runs of lock 'one' overlap"
