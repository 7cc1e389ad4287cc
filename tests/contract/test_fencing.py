"""Every lease write is fenced by its epoch, not only by the job's id and status.

Each scenario leaves the job running again under a newer epoch (taken over after expiry,
reclaimed after a reap, after the old holder's own retry, or after its release), then has
the old lease try one write. The job is `running` either way, so only the epoch tells the
two holders apart: the stale write must be refused (LeaseLost, or left out of a batch),
change nothing at all, and leave the successor owning the job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from agentfleet import Fleet, JobCancelled, JobStatus, Lease, LeaseLost, RunOutput, RunStatus
from tests.conftest import StoreEnv

ENDING = ["complete", "complete_many", "complete_and_claim", "fail", "release"]
VERBS = [*ENDING, "renew", "fenced_write", "record_output"]
BATCHED = {"complete_many", "complete_and_claim"}


def stale_write(fleet: Fleet, verb: str, lease: Lease) -> Any:
    """The old holder's write; returns what a batch verb answered (they never raise)."""
    if verb == "complete":
        return fleet.complete(lease, result={"by": "stale"})
    if verb == "complete_many":
        return fleet.complete_many([(lease, {"by": "stale"})])
    if verb == "complete_and_claim":
        return fleet.complete_and_claim([(lease, {"by": "stale"})], worker="stale", limit=5)
    if verb == "fail":
        return fleet.fail(lease, "stale failure", retry=False)
    if verb == "release":
        return fleet.release(lease, reason="stale release")
    if verb == "renew":
        return fleet.renew(lease, ttl=600)
    if verb == "fenced_write":
        return fleet.fenced_write(lease, "effect", "stale")
    if verb == "record_output":
        return fleet.record_output(lease, RunOutput(stdout="stale output\n"))
    raise AssertionError(verb)


def assert_refused(fleet: Fleet, verb: str, stale: Lease, successor: Lease) -> None:
    """The stale write is refused, changes nothing, and the successor still owns the job."""
    job_id = stale.job_id
    assert successor.job_id == job_id and successor.epoch > stale.epoch
    before = fleet.get_job(job_id)
    assert (before.status, before.lease_epoch, before.worker) == (
        JobStatus.RUNNING,
        successor.epoch,
        successor.worker,
    )
    runs, events, ledger = fleet.runs(job_id), fleet.events(job_id), fleet.ledger(job_id)
    if verb in BATCHED:
        answer = stale_write(fleet, verb, stale)
        assert answer == ([] if verb == "complete_many" else ([], [])), answer
    else:
        with pytest.raises(LeaseLost) as lost:
            stale_write(fleet, verb, stale)
        assert type(lost.value) is LeaseLost  # not a JobCancelled: the job is not its own
        assert (lost.value.job_id, lost.value.epoch) == (job_id, stale.epoch)
        assert (lost.value.current_epoch, lost.value.status) == (successor.epoch, "running")
    assert fleet.get_job(job_id) == before, f"the stale {verb} changed the job"
    assert fleet.runs(job_id) == runs, f"the stale {verb} changed the run records"
    assert fleet.events(job_id) == events, f"the stale {verb} logged an event"
    assert fleet.ledger(job_id) == ledger
    # The successor's own writes still land, and its result is the job's.
    fleet.fenced_write(successor, "effect", "successor")
    fleet.complete(successor, result={"by": "successor"})
    done = fleet.get_job(job_id)
    assert (done.status, done.result, done.lease_epoch) == (
        JobStatus.SUCCEEDED,
        {"by": "successor"},
        successor.epoch,
    )
    assert fleet.runs(job_id)[-1].epoch == successor.epoch
    assert fleet.runs(job_id)[-1].status is RunStatus.SUCCEEDED
    assert [(e.epoch, e.value) for e in fleet.ledger(job_id)][-1] == (successor.epoch, "successor")


def _claimed(env: StoreEnv, ttl: float | None = None) -> Lease:
    job = env.fleet.enqueue("shell", {"cmd": "true"}, max_attempts=5)
    lease = env.fleet.claim(job.id, worker="stale", ttl=ttl or env.short_ttl)
    assert lease is not None
    return lease


def _successor(lease: Lease | None) -> Lease:
    assert lease is not None, "the successor could not take the job"
    assert lease.worker == "successor"
    return lease


@pytest.mark.parametrize("verb", VERBS)
def test_stale_write_after_a_takeover(env: StoreEnv, verb: str) -> None:
    stale = _claimed(env)
    env.expire_lease(stale.job_id)
    successor = _successor(env.fleet.claim(stale.job_id, worker="successor", ttl=600))
    assert_refused(env.fleet, verb, stale, successor)


@pytest.mark.parametrize("verb", VERBS)
def test_stale_write_after_a_reap_and_a_reclaim(env: StoreEnv, verb: str) -> None:
    stale = _claimed(env)
    env.expire_lease(stale.job_id)
    assert env.fleet.reap_expired() == [(stale.job_id, JobStatus.QUEUED)]
    [lease] = env.fleet.claim_next(worker="successor", ttl=600)
    assert_refused(env.fleet, verb, stale, _successor(lease))


@pytest.mark.parametrize("verb", VERBS)
def test_stale_write_after_its_own_retry(env: StoreEnv, verb: str) -> None:
    stale = _claimed(env, ttl=600)
    assert env.fleet.fail(stale, "flaky", delay=0) is JobStatus.QUEUED
    successor = _successor(env.fleet.claim(stale.job_id, worker="successor", ttl=600))
    assert_refused(env.fleet, verb, stale, successor)


@pytest.mark.parametrize("verb", VERBS)
def test_stale_write_after_its_own_release(env: StoreEnv, verb: str) -> None:
    stale = _claimed(env, ttl=600)
    assert env.fleet.release(stale) is JobStatus.QUEUED
    completed, [lease] = env.fleet.complete_and_claim([], worker="successor", ttl=600)
    assert completed == []
    assert_refused(env.fleet, verb, stale, _successor(lease))


def _batch_of_stale_and_fresh(env: StoreEnv) -> tuple[list[Lease], list[Lease], list[Lease]]:
    """Three jobs taken over (stale leases and their successors) and two never lost."""
    fleet = env.fleet
    for n in range(5):
        fleet.enqueue("shell", {"n": n})
    first = fleet.claim_next(worker="stale", limit=5, ttl=env.short_ttl)
    lost, kept = first[:3], first[3:]
    env.expire_lease(lost[-1].job_id)
    kept = [fleet.renew(lease, ttl=600) for lease in kept]
    successors = [_successor(fleet.claim(s.job_id, worker="successor", ttl=600)) for s in lost]
    return lost, successors, kept


@pytest.mark.parametrize("verb", sorted(BATCHED))
def test_a_batch_completes_only_the_leases_it_still_holds(env: StoreEnv, verb: str) -> None:
    fleet = env.fleet
    stale, successors, kept = _batch_of_stale_and_fresh(env)
    before = {s.job_id: fleet.get_job(s.job_id) for s in stale}
    batch: list[tuple[Lease, Any]] = [(lease, {"n": lease.job_id}) for lease in stale + kept]
    if verb == "complete_many":
        completed = fleet.complete_many(batch)
    else:
        completed, claimed = fleet.complete_and_claim(batch, worker="stale", limit=5)
        assert claimed == []
    assert sorted(completed) == sorted(lease.job_id for lease in kept)
    for lease in kept:
        job = fleet.get_job(lease.job_id)
        assert (job.status, job.result) == (JobStatus.SUCCEEDED, {"n": lease.job_id})
    for lease, successor in zip(stale, successors, strict=True):
        assert fleet.get_job(lease.job_id) == before[lease.job_id]
        assert fleet.runs(lease.job_id)[-1].status is RunStatus.RUNNING
        fleet.complete(successor, result="successor")
        assert fleet.get_job(lease.job_id).result == "successor"


ENDINGS: dict[str, Callable[[Fleet, Lease], object]] = {
    "complete": lambda fleet, lease: fleet.complete(lease, result="first"),
    "fail": lambda fleet, lease: fleet.fail(lease, "first", retry=False),
    "release": lambda fleet, lease: fleet.release(lease),
}


@pytest.mark.parametrize("verb", ENDING)
@pytest.mark.parametrize("first", sorted(ENDINGS))
def test_a_lease_ends_once(env: StoreEnv, verb: str, first: str) -> None:
    """After its own ending write, a lease writes nothing more, even with no successor."""
    fleet = env.fleet
    lease = _claimed(env, ttl=600)
    ENDINGS[first](fleet, lease)
    before = fleet.get_job(lease.job_id)
    runs, events = fleet.runs(lease.job_id), fleet.events(lease.job_id)
    if verb in BATCHED:
        answer = stale_write(fleet, verb, lease)
        if verb == "complete_and_claim" and first == "release":
            # the released job is queued again: this batch may claim it afresh
            completed, claimed = answer
            assert completed == [] and [c.job_id for c in claimed] == [lease.job_id]
            assert claimed[0].epoch == lease.epoch + 1
            return
        assert answer == ([] if verb == "complete_many" else ([], []))
    else:
        with pytest.raises(LeaseLost):
            stale_write(fleet, verb, lease)
    assert fleet.get_job(lease.job_id) == before
    assert fleet.runs(lease.job_id) == runs and fleet.events(lease.job_id) == events


@pytest.mark.parametrize("verb", [verb for verb in VERBS if verb not in BATCHED])
def test_a_lease_of_no_job_is_lost(env: StoreEnv, verb: str) -> None:
    lease = _claimed(env, ttl=600)
    forged = replace(lease, job_id=lease.job_id + 1000)
    with pytest.raises(LeaseLost) as lost:
        stale_write(env.fleet, verb, forged)
    found = lost.value
    assert type(found) is LeaseLost
    assert (found.job_id, found.epoch, found.current_epoch, found.status) == (
        forged.job_id,
        lease.epoch,
        None,
        None,
    )


@pytest.mark.parametrize("verb", ["complete", "renew"])
def test_a_stale_write_is_lost_even_when_the_successor_is_asked_to_stop(
    env: StoreEnv, verb: str
) -> None:
    stale = _claimed(env)
    env.expire_lease(stale.job_id)
    successor = _successor(env.fleet.claim(stale.job_id, worker="successor", ttl=600))
    assert env.fleet.cancel_job(stale.job_id) is True  # asks the successor to stop
    with pytest.raises(LeaseLost) as lost:
        stale_write(env.fleet, verb, stale)
    assert type(lost.value) is LeaseLost  # the cancel is the successor's to act on
    assert (lost.value.current_epoch, lost.value.status) == (successor.epoch, "running")


@pytest.mark.parametrize("verb", ["complete", "renew"])
def test_the_holder_of_a_cancelled_job_is_told_which_lease_was_cancelled(
    env: StoreEnv, verb: str
) -> None:
    lease = _claimed(env, ttl=600)
    assert env.fleet.cancel_job(lease.job_id) is True
    with pytest.raises(JobCancelled) as cancelled:
        stale_write(env.fleet, verb, lease)
    assert (cancelled.value.job_id, cancelled.value.epoch) == (lease.job_id, lease.epoch)
