"""cancel_job is idempotent: a cancel with nothing (more) to do answers False and writes
nothing at all, however much later it comes (no new rev, updated_at or finished_at)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentfleet import Fleet, Job, JobStatus
from tests.conftest import StoreEnv


def _succeeded(env: StoreEnv) -> Job:
    job = env.fleet.enqueue("shell", {})
    lease = env.fleet.claim(job.id, worker="w")
    assert lease is not None
    env.fleet.complete(lease, result={"ok": True})
    return env.fleet.get_job(job.id)


def _failed(env: StoreEnv) -> Job:
    job = env.fleet.enqueue("shell", {}, max_attempts=1)
    lease = env.fleet.claim(job.id, worker="w")
    assert lease is not None
    assert env.fleet.fail(lease, "boom") is JobStatus.FAILED
    return env.fleet.get_job(job.id)


def _cancelled_while_queued(env: StoreEnv) -> Job:
    job = env.fleet.enqueue("shell", {})
    assert env.fleet.cancel_job(job.id) is True
    return env.fleet.get_job(job.id)


def _cancelled_while_running(env: StoreEnv) -> Job:
    job = env.fleet.enqueue("shell", {})
    lease = env.fleet.claim(job.id, worker="w")
    assert lease is not None
    assert env.fleet.cancel_job(job.id) is True
    assert env.fleet.fail(lease, "stopped: cancelled") is JobStatus.CANCELLED
    return env.fleet.get_job(job.id)


def _reaped_for_good(env: StoreEnv) -> Job:
    job = env.fleet.enqueue("shell", {}, max_attempts=1)
    assert env.fleet.claim(job.id, worker="dead", ttl=env.short_ttl) is not None
    env.expire_lease(job.id)
    assert env.fleet.reap_expired() == [(job.id, JobStatus.FAILED)]
    return env.fleet.get_job(job.id)


FINISHED: dict[str, Callable[[StoreEnv], Job]] = {
    "succeeded": _succeeded,
    "failed": _failed,
    "cancelled-queued": _cancelled_while_queued,
    "cancelled-running": _cancelled_while_running,
    "reaped": _reaped_for_good,
}


def _assert_untouched(fleet: Fleet, before: Job) -> None:
    after = fleet.get_job(before.id)
    assert (after.rev, after.updated_at, after.finished_at) == (
        before.rev,
        before.updated_at,
        before.finished_at,
    ), "a cancel that did nothing re-stamped the row"
    assert after == before


@pytest.mark.parametrize("how", sorted(FINISHED))
def test_cancel_of_a_finished_job_changes_nothing(env: StoreEnv, how: str) -> None:
    before = FINISHED[how](env)
    assert before.finished_at is not None
    events = env.fleet.events(before.id)
    env.move_on()  # a re-stamp would now show a later time
    assert env.fleet.cancel_job(before.id) is False
    assert env.fleet.cancel_job(before.id) is False
    _assert_untouched(env.fleet, before)
    assert env.fleet.events(before.id) == events


def test_a_second_cancel_of_a_queued_job_changes_nothing(env: StoreEnv) -> None:
    job = env.fleet.enqueue("shell", {})
    assert env.fleet.cancel_job(job.id) is True
    first = env.fleet.get_job(job.id)
    assert first.status is JobStatus.CANCELLED and first.rev == job.rev + 1
    env.move_on()
    assert env.fleet.cancel_job(job.id) is False
    _assert_untouched(env.fleet, first)
    assert [e.kind for e in env.fleet.events(job.id)] == ["enqueued", "cancelled"]


def test_a_second_cancel_of_a_running_job_changes_nothing(env: StoreEnv) -> None:
    job = env.fleet.enqueue("shell", {})
    lease = env.fleet.claim(job.id, worker="w")
    assert lease is not None
    assert env.fleet.cancel_job(job.id) is True
    asked = env.fleet.get_job(job.id)
    assert asked.cancel_requested and asked.status is JobStatus.RUNNING
    env.move_on()
    assert env.fleet.cancel_job(job.id) is False
    _assert_untouched(env.fleet, asked)
    kinds = [e.kind for e in env.fleet.events(job.id)]
    assert kinds == ["enqueued", "claimed", "cancel_requested"]


def test_a_cancelled_running_job_keeps_when_it_ended(env: StoreEnv) -> None:
    job = env.fleet.enqueue("shell", {})
    lease = env.fleet.claim(job.id, worker="w")
    assert lease is not None
    assert env.fleet.cancel_job(job.id) is True
    assert env.fleet.get_job(job.id).finished_at is None  # asked to stop, not ended yet
    assert env.fleet.fail(lease, "stopped: cancelled") is JobStatus.CANCELLED
    ended = env.fleet.get_job(job.id)
    assert ended.finished_at is not None
    for _ in range(2):
        env.move_on()
        assert env.fleet.cancel_job(job.id) is False
        assert env.fleet.get_job(job.id).finished_at == ended.finished_at
    _assert_untouched(env.fleet, ended)


def test_a_refused_cancel_keeps_if_match_valid(env: StoreEnv) -> None:
    """A client that read a finished job may still patch it with If-Match after a no-op
    cancel: the cancel wrote nothing, so the rev it read is still current."""
    done = _succeeded(env)
    assert env.fleet.cancel_job(done.id) is False
    answer = env.fleet.update_if_match("jobs", done.id, done.rev, {"priority": 7})
    assert answer.status == "ok" and answer.rev == done.rev + 1
    assert env.fleet.get_job(done.id).priority == 7


def test_cancel_of_a_missing_job_is_not_found(fleet: Fleet) -> None:
    from agentfleet import JobNotFound

    with pytest.raises(JobNotFound):
        fleet.cancel_job(987_654)
