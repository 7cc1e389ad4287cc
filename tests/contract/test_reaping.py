"""claim_next reaps expired leases first, paced by reap_interval: the jobs of workers that
died come back (or end) with no reaper running anywhere."""

from __future__ import annotations

import pytest

from agentfleet import JobStatus, RunStatus
from tests.conftest import StoreEnv


@pytest.mark.fleet_options(reap_interval=0)
def test_claim_next_takes_back_an_expired_lease(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    dead = fleet.claim(job.id, worker="dead", ttl=env.short_ttl)  # a claim by id never reaps
    assert dead is not None
    env.expire_lease(job.id)
    [lease] = fleet.claim_next(worker="alive", limit=5)
    assert (lease.job_id, lease.epoch, lease.attempt) == (job.id, dead.epoch + 1, 2)
    runs = fleet.runs(job.id)
    assert [(r.epoch, r.worker, r.status) for r in runs] == [
        (1, "dead", RunStatus.EXPIRED),
        (2, "alive", RunStatus.RUNNING),
    ]
    kinds = [e.kind for e in fleet.events(job.id)]
    assert kinds == ["enqueued", "claimed", "lease_expired", "claimed"]


def test_a_claim_by_id_that_takes_over_an_expired_lease_logs_both_attempts(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    dead = fleet.claim(job.id, worker="dead", ttl=env.short_ttl)
    assert dead is not None
    env.expire_lease(job.id)
    alive = fleet.claim(job.id, worker="alive", ttl=60)
    assert alive is not None and (alive.epoch, alive.attempt) == (dead.epoch + 1, 2)
    logged = [(e.job_id, e.kind, e.epoch, e.worker, e.data) for e in fleet.events(job.id)]
    assert logged == [
        (job.id, "enqueued", None, None, {"queue": "default"}),
        (job.id, "claimed", dead.epoch, "dead", {"attempt": 1}),
        (job.id, "lease_expired", dead.epoch, None, {}),
        (job.id, "claimed", alive.epoch, "alive", {"attempt": 2}),
    ]
    runs = [(r.epoch, r.worker, r.status, r.error) for r in fleet.runs(job.id)]
    assert runs == [
        (dead.epoch, "dead", RunStatus.EXPIRED, "lease expired"),
        (alive.epoch, "alive", RunStatus.RUNNING, None),
    ]


@pytest.mark.fleet_options(reap_interval=0)
def test_claim_next_ends_an_expired_job_with_no_attempts_left(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {}, max_attempts=1)
    assert fleet.claim(job.id, worker="dead", ttl=env.short_ttl) is not None
    env.expire_lease(job.id)
    assert fleet.claim_next(worker="alive", limit=5) == []
    ended = fleet.get_job(job.id)
    assert (ended.status, ended.error, ended.lease_expires_at) == (
        JobStatus.FAILED,
        "lease expired",
        None,
    )
    assert ended.finished_at is not None
    assert [r.status for r in fleet.runs(job.id)] == [RunStatus.EXPIRED]


@pytest.mark.fleet_options(reap_interval=0)
def test_claim_next_ends_an_expired_cancelled_job(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    assert fleet.claim(job.id, worker="dead", ttl=env.short_ttl) is not None
    assert fleet.cancel_job(job.id) is True
    env.expire_lease(job.id)
    assert fleet.claim_next(worker="alive", limit=5) == []
    assert fleet.get_job(job.id).status is JobStatus.CANCELLED


@pytest.mark.fleet_options(reap_interval=3600)
def test_reap_interval_paces_the_reaping(env: StoreEnv) -> None:
    """The first claim_next reaps; within the interval the next ones do not (the local
    clock paces how often a worker asks; expiry itself is the store's clock)."""
    fleet = env.fleet
    first = fleet.enqueue("shell", {"n": 1})
    assert fleet.claim(first.id, worker="dead", ttl=env.short_ttl) is not None
    env.expire_lease(first.id)
    [lease] = fleet.claim_next(worker="alive", limit=5)
    assert lease.job_id == first.id and lease.epoch == 2
    second = fleet.enqueue("shell", {"n": 2})
    assert fleet.claim(second.id, worker="dead", ttl=env.short_ttl) is not None
    env.expire_lease(second.id)
    assert fleet.claim_next(worker="alive", limit=5) == []  # not yet: paced
    assert fleet.get_job(second.id).status is JobStatus.RUNNING
    assert fleet.reap_expired() == [(second.id, JobStatus.QUEUED)]  # asked for, it reaps
    [again] = fleet.claim_next(worker="alive", limit=5)
    assert again.job_id == second.id


@pytest.mark.fleet_options(reap_interval=-1)
def test_a_negative_reap_interval_leaves_reaping_to_others(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    assert fleet.claim(job.id, worker="dead", ttl=env.short_ttl) is not None
    env.expire_lease(job.id)
    assert fleet.claim_next(worker="alive", limit=5) == []
    assert fleet.complete_and_claim([], worker="alive", limit=5) == ([], [])
    assert fleet.get_job(job.id).status is JobStatus.RUNNING
    assert fleet.reap_expired() == [(job.id, JobStatus.QUEUED)]


@pytest.mark.fleet_options(reap_interval=0)
def test_the_fast_path_reaps_too(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    assert fleet.claim(job.id, worker="dead", ttl=env.short_ttl) is not None
    env.expire_lease(job.id)
    done, [lease] = fleet.complete_and_claim([], worker="alive", limit=5)
    assert done == [] and (lease.job_id, lease.epoch) == (job.id, 2)
