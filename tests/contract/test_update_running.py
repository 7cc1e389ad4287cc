"""update_if_match cannot move what a running job's lease stands on, and null fields are
refused alike on every store."""

from __future__ import annotations

import pytest

from agentfleet import Fleet, InvalidArgument, InvalidTransition


@pytest.mark.parametrize(
    "patch", [{"lock": "another"}, {"lock": None}, {"queue": "elsewhere"}, {"max_attempts": 9}]
)
def test_a_running_jobs_lock_queue_and_attempts_stay(
    fleet: Fleet, patch: dict[str, object]
) -> None:
    job = fleet.enqueue("shell", {"cmd": "edit"}, lock="repo")
    lease = fleet.claim(job.id, worker="w")
    assert lease is not None
    running = fleet.get_job(job.id)
    with pytest.raises(InvalidTransition, match="is running") as refused:
        fleet.update_if_match("jobs", job.id, running.rev, patch)
    assert (refused.value.what, refused.value.current, refused.value.wanted) == (
        f"job {job.id}",
        "running",
        "running",
    )
    assert fleet.get_job(job.id) == running
    second = fleet.enqueue("shell", {"cmd": "edit too"}, lock="repo")
    assert fleet.claim(second.id, worker="w2") is None  # the lock still holds


def test_a_running_jobs_priority_may_change(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {"cmd": "edit"})
    assert fleet.claim(job.id, worker="w") is not None
    assert fleet.update_if_match("jobs", job.id, fleet.get_job(job.id).rev, {"priority": 5}).ok


def test_a_queued_jobs_lock_may_change(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {"cmd": "edit"}, lock="repo")
    result = fleet.update_if_match("jobs", job.id, job.rev, {"lock": "other"})
    assert result.ok and result.document is not None and result.document.lock == "other"


def test_a_stale_rev_is_a_conflict_even_for_a_running_job(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {"cmd": "edit"}, lock="repo")
    assert fleet.claim(job.id, worker="w") is not None
    assert fleet.update_if_match("jobs", job.id, job.rev, {"lock": "x"}).status == "conflict"


@pytest.mark.parametrize("field", ["run_at", "priority", "queue", "max_attempts"])
def test_a_null_for_a_field_that_cannot_be_null_is_invalid(fleet: Fleet, field: str) -> None:
    job = fleet.enqueue("shell", {"cmd": "x"})
    with pytest.raises(InvalidArgument):
        fleet.update_if_match("jobs", job.id, job.rev, {field: None})
    assert fleet.get_job(job.id) == job


def test_the_store_names_every_field_that_cannot_be_null(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {"cmd": "x"})
    with pytest.raises(InvalidArgument, match=r"^run_at cannot be null$"):
        fleet.update_if_match("jobs", job.id, job.rev, {"run_at": None})
    with pytest.raises(InvalidArgument, match=r"^priority, queue cannot be null$"):
        fleet.store.update_if_match("jobs", job.id, job.rev, {"queue": None, "priority": None})
    assert fleet.get_job(job.id) == job


def test_a_refused_patch_of_a_running_job_names_each_field_it_cannot_move(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {"cmd": "edit"}, lock="repo")
    assert fleet.claim(job.id, worker="w") is not None
    running = fleet.get_job(job.id)
    with pytest.raises(InvalidTransition) as refused:
        fleet.update_if_match("jobs", job.id, running.rev, {"queue": "q2", "lock": "other"})
    assert str(refused.value).startswith(
        f"job {job.id} is running: its lock and queue cannot change until it ends"
    )
    assert fleet.get_job(job.id) == running
