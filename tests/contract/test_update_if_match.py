"""update_if_match: the document-store If-Match primitive with a monotonic rev."""

from __future__ import annotations

import pytest

from agentfleet import Fleet, InvalidArgument


def test_match_writes_and_bumps_rev(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {"v": 1})
    result = fleet.update_if_match("jobs", job.id, job.rev, {"priority": 7, "payload": {"v": 2}})
    assert result.status == "ok" and result.ok
    assert result.rev == job.rev + 1
    assert result.document is not None and result.document.priority == 7
    stored = fleet.get_job(job.id)
    assert (stored.priority, stored.payload, stored.rev) == (7, {"v": 2}, job.rev + 1)
    last = fleet.events(job.id)[-1]
    assert (last.kind, last.data) == ("updated", {"fields": ["payload", "priority"]})


def test_stale_rev_is_a_conflict_and_writes_nothing(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {"v": 1})
    assert fleet.update_if_match("jobs", job.id, job.rev, {"priority": 1}).ok
    stale = fleet.update_if_match("jobs", job.id, job.rev, {"priority": 99})
    assert stale.status == "conflict" and stale.document is None
    assert fleet.get_job(job.id).priority == 1


def test_claim_moves_the_rev(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {})
    assert fleet.claim(job.id, worker="w") is not None
    assert fleet.update_if_match("jobs", job.id, job.rev, {"priority": 3}).status == "conflict"


def test_missing_document_is_not_found(fleet: Fleet) -> None:
    assert fleet.update_if_match("jobs", 424242, 1, {"priority": 1}).status == "not_found"


def test_lifecycle_fields_cannot_be_patched(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {})
    for patch in ({"status": "succeeded"}, {"lease_epoch": 9}, {}):
        with pytest.raises(InvalidArgument):
            fleet.update_if_match("jobs", job.id, job.rev, patch)
    with pytest.raises(InvalidArgument):
        fleet.update_if_match("widgets", job.id, job.rev, {"priority": 1})
    assert fleet.get_job(job.id).rev == job.rev


def test_a_refused_patch_says_what_cannot_be_patched(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {})
    patchable = "['lock', 'max_attempts', 'payload', 'priority', 'queue', 'run_at', 'timeout']"
    for patch, named in (
        ({"status": "succeeded", "epoch": 2}, "['epoch', 'status']"),
        ({}, "nothing"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            fleet.update_if_match("jobs", job.id, job.rev, patch)
        assert str(refused.value) == f"cannot patch {named}; patchable: {patchable}"
    with pytest.raises(InvalidArgument) as refused:
        fleet.update_if_match("widgets", job.id, job.rev, {"priority": 1})
    assert str(refused.value) == "unknown collection 'widgets'; expected 'jobs'"
    assert fleet.get_job(job.id) == job
