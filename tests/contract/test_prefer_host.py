"""A retry prefers the host of its failed attempt (where that agent's session is): for a
grace after its time only a worker there may claim it; then any worker may. Every store."""

from __future__ import annotations

import pytest

from agentfleet import JobStatus
from agentfleet.store.rules import PREFER_HOST_GRACE
from tests.conftest import StoreEnv


def _failed_on(env: StoreEnv, host: str | None) -> int:
    """A job whose first attempt ran on `host` and failed, now queued for its retry."""
    fleet = env.fleet
    job = fleet.enqueue("shell", {"cmd": "true"}, max_attempts=3)
    lease = fleet.claim(job.id, worker="w-a")
    assert lease is not None
    if host is not None:
        fleet.record_process(lease, host=host, pgid=4242)
    assert fleet.fail(lease, "tests failed", delay=0) is JobStatus.QUEUED
    env.move_on()
    return job.id


def test_the_retry_waits_for_its_host_and_that_host_takes_it(env: StoreEnv) -> None:
    fleet = env.fleet
    job_id = _failed_on(env, "host-a")
    assert fleet.claim_next(worker="w-b", host="host-b", limit=10) == []
    assert fleet.claim_next(worker="w-x", limit=10) == []  # a claim that names no host
    [lease] = fleet.claim_next(worker="w-a2", host="host-a", limit=10)
    assert (lease.job_id, lease.attempt) == (job_id, 2)


def test_other_jobs_are_not_held_back(env: StoreEnv) -> None:
    fleet = env.fleet
    _failed_on(env, "host-a")
    fresh = fleet.enqueue("shell", {"cmd": "true"})
    [lease] = fleet.claim_next(worker="w-b", host="host-b", limit=10)
    assert lease.job_id == fresh.id


def test_a_retry_whose_attempt_ran_nowhere_known_is_anyones(env: StoreEnv) -> None:
    job_id = _failed_on(env, None)
    [lease] = env.fleet.claim_next(worker="w-b", host="host-b", limit=10)
    assert lease.job_id == job_id


def test_after_the_grace_any_host_takes_it(env: StoreEnv) -> None:
    if env.clock is None:
        pytest.skip("waiting out the grace on the server's real clock would take 30 s")
    fleet = env.fleet
    job_id = _failed_on(env, "host-a")
    env.pass_time(PREFER_HOST_GRACE - 3)  # (the retry was due a moment ago)
    assert fleet.claim_next(worker="w-b", host="host-b", limit=10) == []
    env.pass_time(4)
    [lease] = fleet.claim_next(worker="w-b", host="host-b", limit=10)
    assert lease.job_id == job_id


def test_a_claim_forgets_the_preference(env: StoreEnv) -> None:
    """Once the preferred host took the retry, a release hands it to anyone."""
    fleet = env.fleet
    job_id = _failed_on(env, "host-a")
    [lease] = fleet.claim_next(worker="w-a", host="host-a", limit=10)
    fleet.release(lease, reason="worker stopping")
    [again] = fleet.claim_next(worker="w-b", host="host-b", limit=10)
    assert again.job_id == job_id


def test_the_batched_claim_prefers_the_host_too(env: StoreEnv) -> None:
    fleet = env.fleet
    job_id = _failed_on(env, "host-a")
    done, leases = fleet.complete_and_claim([], worker="w-b", host="host-b", limit=10)
    assert (done, leases) == ([], [])
    done, leases = fleet.complete_and_claim([], worker="w-a", host="host-a", limit=10)
    assert [lease.job_id for lease in leases] == [job_id]
