"""A fleet-wide limit of 3 held by 20 racing worker processes, each a real Worker.

The most jobs of the limit running at once is read from the runs' own stamps (a claim
stamps its run before it commits, a completion stamps its end before it commits), so an
overlap of four would be four attempts running at once. Each store is also raced with a
bug planted in the children, to show the race can catch it (the jobs are split over two
queues, half the workers on each): on PostgreSQL without the
lock around limited claims (two claimers count the same running jobs; each limited claim
is held open 20 ms before its commit, in both runs, so that the race is wide), on SQLite
with a batch that counts only running jobs and not the rivals it takes with it.
"""

from __future__ import annotations

import pytest

from agentfleet import JobStatus
from tests.concurrency.procs import workers_context
from tests.conftest import StoreEnv

PROCESSES = 20
JOBS = 120
LIMIT = 3
BROKEN = {"postgres": "no_lock", "sqlite": "no_rivals"}
# Half the workers take each queue: a claimer counts as rivals only the queued jobs it
# could take itself, so only the running count, read under the lock, keeps the limit.
QUEUES = ("a", "b")


def _most_at_once(env: StoreEnv, ids: list[int]) -> int:
    moments: list[tuple[object, int]] = []
    for job_id in ids:
        for run in env.fleet.runs(job_id):
            assert run.finished_at is not None
            moments += [(run.started_at, 1), (run.finished_at, -1)]
    most = now = 0
    for _, step in sorted(moments, key=lambda m: (m[0], m[1])):  # ends before starts
        now += step
        most = max(most, now)
    return most


def _most_started_within(env: StoreEnv, ids: list[int], seconds: float) -> int:
    """The most runs that started within any `seconds` of each other."""
    starts = sorted(run.started_at for job_id in ids for run in env.fleet.runs(job_id))
    most, first = 0, 0
    for last, at in enumerate(starts):
        while (at - starts[first]).total_seconds() >= seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


def _race(
    env: StoreEnv, broken: str | None, rate: str | None = None, jobs: int = JOBS
) -> list[int]:
    env.fleet.set_limit("api", LIMIT if rate is None else 100, rate=rate)
    ids = [
        env.fleet.enqueue(
            "python", {"func": "tests.concurrency.procs:hold"}, limit="api", queue=QUEUES[i % 2]
        ).id
        for i in range(jobs)
    ]
    ctx = workers_context()
    start = ctx.Barrier(PROCESSES)
    procs = [
        ctx.Process(target=_entry, args=(env.url, f"lim-{i}", QUEUES[i % 2], start, broken))
        for i in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
        assert proc.exitcode == 0
    assert {env.fleet.get_job(i).status for i in ids} == {JobStatus.SUCCEEDED}
    return ids


def _entry(*args: object) -> None:
    from tests.concurrency.procs import limited_worker

    limited_worker(*args)  # type: ignore[arg-type]


def test_a_limit_of_3_holds_across_20_worker_processes(env: StoreEnv) -> None:
    if not env.separate_connections:
        pytest.skip("the memory store lives in one process")
    most = _most_at_once(env, _race(env, None))
    assert most == LIMIT, f"at most {most} ran at once"  # held, and used to the full


def test_20_worker_processes_catch_a_broken_limit(env: StoreEnv) -> None:
    if not env.separate_connections:
        pytest.skip("the memory store lives in one process")
    most = _most_at_once(env, _race(env, BROKEN[env.backend]))
    assert most > LIMIT, "the race failed to expose the broken limit"


# A rate of 3 starts a second, 12 jobs: the race takes at least three seconds. Each worker
# claims up to 2 at once, so a batch that counts only the starts and not the rivals it
# takes with it (SQLite's broken variant) takes 2 where 1 is left. Starts are read from
# the runs' stamps, which may lie a few milliseconds from the claim's clock, so the
# windows checked are a tenth shorter than the rate's.
RATE, RATE_JOBS, RATE_WINDOW = 3, 12, 1.0


def test_a_rate_of_3_a_second_holds_across_20_worker_processes(env: StoreEnv) -> None:
    if not env.separate_connections:
        pytest.skip("the memory store lives in one process")
    ids = _race(env, None, rate=f"{RATE}/{RATE_WINDOW:g}s", jobs=RATE_JOBS)
    most = _most_started_within(env, ids, RATE_WINDOW * 0.9)
    assert most <= RATE, f"{most} started within {RATE_WINDOW * 0.9:g}s"
    assert most >= RATE - 1, f"only {most} started in any window: the rate was not used"


def test_20_worker_processes_catch_a_broken_rate(env: StoreEnv) -> None:
    if not env.separate_connections:
        pytest.skip("the memory store lives in one process")
    ids = _race(env, BROKEN[env.backend], rate=f"{RATE}/{RATE_WINDOW:g}s", jobs=RATE_JOBS)
    most = _most_started_within(env, ids, RATE_WINDOW * 0.9)
    assert most > RATE, "the race failed to expose the broken rate"
