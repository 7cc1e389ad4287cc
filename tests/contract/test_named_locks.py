"""Named locks are the claim query's own rule, not only the unique index's last word.

A claim never even picks a job whose lock is held, nor two jobs of one lock in one batch:
the answer is exactly the jobs that may run, with no error and no empty batch, on every
store. (A claim that leaned on the unique index alone would raise on SQLite, or come back
empty on PostgreSQL, whose claim retries and then gives up.)
"""

from __future__ import annotations

from agentfleet import Fleet, JobStatus, Lease
from tests.conftest import StoreEnv


def _ids(leases: list[Lease]) -> list[int]:
    return [lease.job_id for lease in leases]


def _running_with(fleet: Fleet, lock: str) -> list[int]:
    return sorted(j.id for j in fleet.list_jobs(status="running") if j.lock == lock)


def test_a_batch_takes_only_the_first_job_of_a_lock(fleet: Fleet) -> None:
    a1 = fleet.enqueue("shell", {"n": "a1"}, lock="repo-a")
    a2 = fleet.enqueue("shell", {"n": "a2"}, lock="repo-a")
    b1 = fleet.enqueue("shell", {"n": "b1"}, lock="repo-b")
    got = fleet.claim_next(worker="w", limit=2)
    assert _ids(got) == [a1.id, b1.id]
    untouched = fleet.get_job(a2.id)
    assert (untouched.status, untouched.lease_epoch, untouched.rev) == (JobStatus.QUEUED, 0, 1)
    assert fleet.runs(a2.id) == []


def test_a_held_lock_keeps_its_queued_jobs_back(fleet: Fleet) -> None:
    holder = fleet.enqueue("shell", {"n": "holder"}, lock="repo")
    lease = fleet.claim(holder.id, worker="w1")
    assert lease is not None
    waiting = fleet.enqueue("shell", {"n": "waiting"}, lock="repo", priority=9)
    free = fleet.enqueue("shell", {"n": "free"})
    assert _ids(fleet.claim_next(worker="w2", limit=10)) == [free.id]
    assert fleet.claim(waiting.id, worker="w3") is None
    assert fleet.claim_next(worker="w2", limit=10) == []
    still = fleet.get_job(waiting.id)
    assert (still.status, still.lease_epoch, still.rev) == (JobStatus.QUEUED, 0, 1)
    assert [e.kind for e in fleet.events(waiting.id)] == ["enqueued"]
    fleet.complete(lease)
    assert _ids(fleet.claim_next(worker="w2", limit=10)) == [waiting.id]
    assert _running_with(fleet, "repo") == [waiting.id]


def test_the_first_of_a_lock_goes_by_priority(fleet: Fleet) -> None:
    older = fleet.enqueue("shell", {"n": "older"}, lock="repo", priority=0)
    urgent = fleet.enqueue("shell", {"n": "urgent"}, lock="repo", priority=5)
    other = fleet.enqueue("shell", {"n": "other"}, priority=1)
    first = fleet.claim_next(worker="w", limit=10)
    assert _ids(first) == [urgent.id, other.id]
    for lease in first:
        fleet.complete(lease)
    assert _ids(fleet.claim_next(worker="w", limit=10)) == [older.id]


def test_a_lock_is_per_name(fleet: Fleet) -> None:
    names = ["a", "b", "c"]
    firsts = [fleet.enqueue("shell", {"n": f"{n}1"}, lock=n) for n in names]
    seconds = [fleet.enqueue("shell", {"n": f"{n}2"}, lock=n) for n in names]
    assert _ids(fleet.claim_next(worker="w", limit=10)) == [j.id for j in firsts]
    assert fleet.claim_next(worker="w", limit=10) == []
    assert all(fleet.get_job(j.id).status is JobStatus.QUEUED for j in seconds)


def test_the_fast_path_keeps_a_lock_to_one_job(fleet: Fleet) -> None:
    """Completing a lock's holder and claiming in one batch never runs two of that lock.

    Whether the freed lock goes to the next job in the same batch is the store's choice
    (SQLite's transaction sees its own completion; PostgreSQL's statement one snapshot):
    at most the next job in line, never more, and never an error."""
    holder = fleet.enqueue("shell", {"n": "holder"}, lock="repo")
    [lease] = fleet.claim_next(worker="w", limit=1)
    assert lease.job_id == holder.id
    second = fleet.enqueue("shell", {"n": "second"}, lock="repo")
    third = fleet.enqueue("shell", {"n": "third"}, lock="repo")
    free = fleet.enqueue("shell", {"n": "free"})
    done, claimed = fleet.complete_and_claim([(lease, "ok")], worker="w", limit=10)
    assert done == [holder.id]
    assert _ids(claimed) in ([second.id, free.id], [free.id])
    lock_order = [c.job_id for c in claimed if c.job_id != free.id]
    assert _running_with(fleet, "repo") == lock_order
    assert fleet.get_job(third.id).status is JobStatus.QUEUED
    held = claimed
    for _ in range(10):  # two more lock jobs, one at a time: a few batches at most
        if not held and not fleet.list_jobs(status="queued"):
            break
        _, held = fleet.complete_and_claim([(x, "ok") for x in held], worker="w", limit=10)
        assert len(_running_with(fleet, "repo")) <= 1
        lock_order += _ids(held)
    assert lock_order == [second.id, third.id]
    assert all(j.status is JobStatus.SUCCEEDED for j in fleet.list_jobs())


def test_claim_by_id_of_a_second_job_of_a_held_lock_is_refused(env: StoreEnv) -> None:
    fleet = env.fleet
    first = fleet.enqueue("shell", {}, lock="repo")
    second = fleet.enqueue("shell", {}, lock="repo")
    lease = fleet.claim(first.id, worker="w1", ttl=env.short_ttl)
    assert lease is not None
    before = fleet.get_job(second.id)
    assert fleet.claim(second.id, worker="w2") is None
    assert fleet.get_job(second.id) == before and fleet.runs(second.id) == []
    # An expired holder still holds its lock until it is taken over or reaped.
    env.expire_lease(first.id)
    assert fleet.claim(second.id, worker="w2") is None
    taken = fleet.claim(first.id, worker="w3")
    assert taken is not None and taken.epoch == lease.epoch + 1
    fleet.complete(taken)
    assert fleet.claim(second.id, worker="w2") is not None
