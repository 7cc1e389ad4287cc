"""True concurrency: one winner per claim, with threads and with OS processes.

Each race is also run against ReadCheckWriteClaim, a deliberately broken claim, to show
that the race really can catch a double assignment: a race test that cannot fail proves
nothing.
"""

from __future__ import annotations

from collections import Counter

import pytest

from agentfleet import JobStatus
from tests.concurrency.harness import ReadCheckWriteClaim, race_rounds, real_claimer
from tests.concurrency.procs import workers_context
from tests.conftest import StoreEnv

THREADS = 32
ROUNDS = 100
PROCESSES = 6


def test_32_threads_one_winner_every_round(env: StoreEnv) -> None:
    fleets = [env.open() for _ in range(THREADS)]
    jobs = [env.fleet.enqueue("shell", {"round": r}) for r in range(ROUNDS)]
    claimers = [real_claimer(f, f"w{i}") for i, f in enumerate(fleets)]
    winners = race_rounds(claimers, [j.id for j in jobs])
    assert winners == [1] * ROUNDS
    for job in jobs:
        stored = env.fleet.get_job(job.id)
        assert stored.status is JobStatus.RUNNING and stored.lease_epoch == 1
        assert len(env.fleet.runs(job.id)) == 1
    print(f"\n[{env.backend}] {ROUNDS} rounds x {THREADS} threads: {Counter(winners)}")


def test_broken_read_check_write_claim_double_claims(env: StoreEnv) -> None:
    fleets = [env.open() for _ in range(THREADS)]
    jobs = [env.fleet.enqueue("shell", {"round": r}) for r in range(20)]
    claimers = [ReadCheckWriteClaim(f, f"w{i}") for i, f in enumerate(fleets)]
    winners = race_rounds(claimers, [j.id for j in jobs])
    assert max(winners) > 1, "the race failed to expose the broken claim"
    print(f"\n[{env.backend}] broken claim: winners per round {Counter(winners)}")


def _process_race(env: StoreEnv, rounds: int, broken: bool) -> dict[int, int]:
    ctx = workers_context()
    jobs = [env.fleet.enqueue("shell", {"round": r}) for r in range(rounds)]
    ids = [j.id for j in jobs]
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_claim_rounds_entry, args=(env.url, f"p{i}", ids, barrier, results, broken)
        )
        for i in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    won = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    per_job = Counter(job_id for _, ids_won in won for job_id in ids_won)
    return {job_id: per_job.get(job_id, 0) for job_id in ids}


def _claim_rounds_entry(*args: object) -> None:
    from tests.concurrency.procs import claim_rounds

    claim_rounds(*args)  # type: ignore[arg-type]


def test_6_processes_one_winner_every_round(env: StoreEnv) -> None:
    if not env.separate_connections:
        pytest.skip("the memory store lives in one process")
    winners = _process_race(env, ROUNDS, broken=False)
    assert set(winners.values()) == {1}
    for job_id in winners:
        assert env.fleet.get_job(job_id).lease_epoch == 1
        assert len(env.fleet.runs(job_id)) == 1
    print(f"\n[{env.backend}] {ROUNDS} rounds x {PROCESSES} processes: one winner each round")


def test_6_processes_catch_the_broken_claim(env: StoreEnv) -> None:
    if not env.separate_connections:
        pytest.skip("the memory store lives in one process")
    winners = _process_race(env, 20, broken=True)
    assert max(winners.values()) > 1, "the process race failed to expose the broken claim"
