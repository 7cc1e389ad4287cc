"""Lease tokens on every store: a token speaks for one attempt of one job, under a key of
its own fleet's; changing the job it names, or taking it to another fleet, voids it."""

from __future__ import annotations

from pathlib import Path

import pytest

import agentfleet
from agentfleet import Fleet, LeaseLost


def _running(fleet: Fleet, count: int) -> list[agentfleet.Lease]:
    for _ in range(count):
        fleet.enqueue("shell", {"cmd": "true"})
    leases = fleet.claim_next(worker="w", limit=count)
    assert len(leases) == count
    return leases


def test_a_token_names_its_job_and_epoch_and_cannot_be_moved_to_another(fleet: Fleet) -> None:
    first, second = _running(fleet, 2)
    token = fleet.lease_token(first)
    assert fleet.lease_of_token(token) is not None
    moved = token.replace(f"afl_{first.job_id}_", f"afl_{second.job_id}_", 1)
    assert moved != token and fleet.lease_of_token(moved) is None  # the mac covers the job
    assert fleet.lease_tokens.verify(moved) is None


def test_a_token_is_good_only_in_the_fleet_that_made_it(fleet: Fleet, tmp_path: Path) -> None:
    other = agentfleet.open(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        [mine], [theirs] = _running(fleet, 1), _running(other, 1)
        assert (mine.job_id, mine.epoch) == (theirs.job_id, theirs.epoch)
        token = fleet.lease_token(mine)
        assert other.lease_of_token(other.lease_token(theirs)) is not None
        assert other.lease_of_token(token) is None  # each fleet signs with its own key
    finally:
        other.close()


def test_a_token_for_an_attempt_that_is_not_current_is_refused_naming_it(fleet: Fleet) -> None:
    [lease] = _running(fleet, 1)
    with pytest.raises(LeaseLost) as lost:
        fleet.lease_tokens.mint(lease.job_id, lease.epoch + 1)
    assert (lost.value.job_id, lost.value.epoch) == (lease.job_id, lease.epoch + 1)
