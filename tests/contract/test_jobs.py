"""Enqueue, claim, claim_next and the reads: the same assertions on every store."""

from __future__ import annotations

from datetime import timedelta

from agentfleet import Fleet, JobStatus, NewJob, RunStatus
from tests.conftest import StoreEnv


def test_enqueue_defaults_and_round_trip(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {"cmd": "echo hi", "nested": {"list": [1, 2.5, None, "é"]}})
    assert job.status is JobStatus.QUEUED
    assert (job.queue, job.priority, job.max_attempts, job.attempts) == ("default", 0, 3, 0)
    assert job.lease_epoch == 0 and job.rev == 1 and job.lock is None
    again = fleet.get_job(job.id)
    assert again.payload == {"cmd": "echo hi", "nested": {"list": [1, 2.5, None, "é"]}}
    assert [e.kind for e in fleet.events(job.id)] == ["enqueued"]


def test_the_enqueued_event_names_the_jobs_queue(fleet: Fleet) -> None:
    one = fleet.enqueue("shell", {}, queue="builds")
    many = fleet.enqueue_many(
        [NewJob("shell", {}, queue="builds"), NewJob("shell", {}, queue="docs")]
    )
    for job in [one, *many]:
        [enqueued] = fleet.events(job.id)
        assert (enqueued.kind, enqueued.data) == ("enqueued", {"queue": job.queue})


def test_dedupe_returns_the_live_job(fleet: Fleet) -> None:
    first = fleet.enqueue("shell", {"n": 1}, dedupe_key="build-42")
    second = fleet.enqueue("shell", {"n": 2}, dedupe_key="build-42")
    assert second.id == first.id and second.payload == {"n": 1}
    lease = fleet.claim(first.id, worker="w")
    assert lease is not None
    assert fleet.enqueue("shell", {"n": 3}, dedupe_key="build-42").id == first.id
    fleet.complete(lease)
    third = fleet.enqueue("shell", {"n": 4}, dedupe_key="build-42")
    assert third.id != first.id


def test_a_dedupe_repeat_takes_no_job_id(fleet: Fleet) -> None:
    """A repeat returns the live job and leaves the id sequence alone: the next new job
    gets the next id, so ids count the jobs that exist."""
    first = fleet.enqueue("shell", {"n": 1}, dedupe_key="nightly")
    assert fleet.enqueue("shell", {"n": 2}, dedupe_key="nightly").id == first.id
    [again] = fleet.enqueue_many([fleet.new_job("shell", {"n": 3}, dedupe_key="nightly")])
    assert again.id == first.id
    assert fleet.enqueue("shell", {"n": 4}).id == first.id + 1
    assert fleet.enqueue("shell", {"n": 5}, dedupe_key="weekly").id == first.id + 2


def test_claim_is_single_winner_and_opens_one_run(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {})
    lease = fleet.claim(job.id, worker="w1", ttl=30)
    assert lease is not None
    assert (lease.job_id, lease.epoch, lease.worker, lease.attempt) == (job.id, 1, "w1", 1)
    assert fleet.claim(job.id, worker="w2") is None
    claimed = fleet.get_job(job.id)
    assert claimed.status is JobStatus.RUNNING and claimed.worker == "w1"
    assert claimed.lease_expires_at is not None and claimed.lease_expires_at > fleet.now()
    runs = fleet.runs(job.id)
    assert [(r.epoch, r.worker, r.status) for r in runs] == [(1, "w1", RunStatus.RUNNING)]
    assert runs[0].id == lease.run_id


def test_a_batch_claim_gives_each_lease_its_own_run_and_logs_each_attempt(fleet: Fleet) -> None:
    jobs = fleet.enqueue_many([NewJob("shell", {"n": i}) for i in range(3)])
    leases = fleet.claim_next(worker="w", limit=3)
    assert sorted(lease.job_id for lease in leases) == [job.id for job in jobs]
    for lease in leases:
        [run] = fleet.runs(lease.job_id)
        assert run.id == lease.run_id and run.epoch == lease.epoch
        claimed = [e for e in fleet.events(lease.job_id) if e.kind == "claimed"]
        assert [e.data for e in claimed] == [{"attempt": 1}]
    fleet.fail(leases[0], "try again", delay=0)
    [again] = fleet.claim_next(worker="w", limit=3)
    claimed = [e.data for e in fleet.events(again.job_id) if e.kind == "claimed"]
    assert claimed == [{"attempt": 1}, {"attempt": 2}]
    assert again.run_id == fleet.runs(again.job_id)[-1].id != leases[0].run_id


def test_claim_refuses_missing_finished_and_future_jobs(env: StoreEnv) -> None:
    fleet = env.fleet
    assert fleet.claim(999_999, worker="w") is None
    done = fleet.enqueue("shell", {})
    lease = fleet.claim(done.id, worker="w")
    assert lease is not None
    fleet.complete(lease)
    assert fleet.claim(done.id, worker="w") is None
    later = fleet.enqueue("shell", {}, run_at=timedelta(hours=1))
    assert fleet.claim(later.id, worker="w") is None


def test_claim_next_orders_by_priority_then_age(fleet: Fleet) -> None:
    low = fleet.enqueue("shell", {"n": "low"}, priority=0)
    high1 = fleet.enqueue("shell", {"n": "high1"}, priority=5)
    high2 = fleet.enqueue("shell", {"n": "high2"}, priority=5)
    mid = fleet.enqueue("shell", {"n": "mid"}, priority=1)
    leases = fleet.claim_next(worker="w", limit=3)
    assert [lease.job_id for lease in leases] == [high1.id, high2.id, mid.id]
    assert [lease.job_id for lease in fleet.claim_next(worker="w", limit=10)] == [low.id]
    assert fleet.claim_next(worker="w", limit=10) == []


def test_claim_next_filters_queues_and_skips_future_jobs(env: StoreEnv) -> None:
    fleet = env.fleet
    a = fleet.enqueue("shell", {}, queue="a")
    b = fleet.enqueue("shell", {}, queue="b")
    fleet.enqueue("shell", {}, queue="c")
    soon = fleet.enqueue("shell", {}, queue="a", run_at=timedelta(seconds=60))
    got = fleet.claim_next(worker="w", queues=["a", "b"], limit=10)
    assert sorted(lease.job_id for lease in got) == sorted([a.id, b.id])
    if env.clock is not None:
        env.pass_time(61)
        assert [lease.job_id for lease in fleet.claim_next(worker="w", queues=["a"])] == [soon.id]


def test_claim_next_filters_engines(fleet: Fleet) -> None:
    gate = fleet.enqueue("custom-review", {}, priority=9)
    shell = fleet.enqueue("shell", {})
    agent = fleet.enqueue("claude", {"prompt": "x"})
    got = fleet.claim_next(worker="w", engines=["shell", "claude"], limit=10)
    assert sorted(lease.job_id for lease in got) == sorted([shell.id, agent.id])
    assert fleet.claim_next(worker="w", engines=["shell", "claude"], limit=10) == []
    assert fleet.get_job(gate.id).status.value == "queued"
    assert [lease.job_id for lease in fleet.claim_next(worker="w", limit=10)] == [gate.id]


def test_an_unlisted_engine_does_not_block_its_lock(fleet: Fleet) -> None:
    fleet.enqueue("custom-review", {}, lock="repo", priority=5)
    shell = fleet.enqueue("shell", {}, lock="repo")
    got = fleet.claim_next(worker="w", engines=["shell"], limit=10)
    assert [lease.job_id for lease in got] == [shell.id]


def test_named_lock_blocks_while_held_and_one_per_batch(fleet: Fleet) -> None:
    r1 = fleet.enqueue("shell", {}, lock="repo")
    r2 = fleet.enqueue("shell", {}, lock="repo")
    free = fleet.enqueue("shell", {})
    other = fleet.enqueue("shell", {}, lock="other-repo")
    first = fleet.claim_next(worker="w", limit=10)
    assert sorted(lease.job_id for lease in first) == sorted([r1.id, free.id, other.id])
    assert fleet.claim_next(worker="w", limit=10) == []
    assert fleet.claim(r2.id, worker="w2") is None
    fleet.complete(next(lease for lease in first if lease.job_id == r1.id))
    assert [lease.job_id for lease in fleet.claim_next(worker="w", limit=10)] == [r2.id]


def test_list_jobs_filters_and_counts(fleet: Fleet) -> None:
    a = fleet.enqueue("shell", {"labels": ["nightly"]}, queue="a")
    b = fleet.enqueue("claude", {"prompt": "x"}, queue="b")
    lease = fleet.claim(b.id, worker="w")
    assert lease is not None
    assert [j.id for j in fleet.list_jobs()] == [b.id, a.id]
    assert [j.id for j in fleet.list_jobs(status="running")] == [b.id]
    assert [j.id for j in fleet.list_jobs(queue="a")] == [a.id]
    assert [j.id for j in fleet.list_jobs(engine="claude")] == [b.id]
    assert [j.id for j in fleet.list_jobs(label="nightly")] == [a.id]
    assert [j.id for j in fleet.list_jobs(limit=1, offset=1)] == [a.id]
    assert fleet.queue_counts() == {("a", "queued"): 1, ("b", "running"): 1}
