"""The job state machine is one table, and the stores' SQL is built from it.

`models.JOB_TRANSITIONS` is the table; `store.rules` declares every kind of write a job row
can take as a Move checked against it. These tests hold the two equal, so a new write
cannot slip in a transition the table does not allow, and the table cannot keep a
transition no write makes.
"""

from __future__ import annotations

import pytest

from agentfleet.errors import InvalidTransition
from agentfleet.models import JOB_TRANSITIONS, JobStatus
from agentfleet.store import rules
from agentfleet.store.memory import MemoryStore


def _pairs_of_moves() -> set[tuple[JobStatus, JobStatus]]:
    return {
        (source, target)
        for move in rules.MOVES
        for source in move.sources
        for target in move.targets
        if source is not target
    }


def test_the_moves_make_exactly_the_transitions_of_the_table() -> None:
    table = {(source, target) for source, targets in JOB_TRANSITIONS.items() for target in targets}
    assert _pairs_of_moves() == table


def test_a_move_the_table_does_not_allow_is_refused_at_import() -> None:
    with pytest.raises(InvalidTransition):
        rules.Move("resurrect", frozenset({JobStatus.SUCCEEDED}), frozenset({JobStatus.QUEUED}))


def test_guards_name_the_statuses_a_move_starts_from() -> None:
    assert rules.RETRY.guard() == "status IN ('cancelled', 'failed')"
    assert rules.CLAIM.guard("j") == "j.status = 'queued'"
    assert rules.STOP_UNSTARTED.guard() == "status IN ('queued', 'waiting')"


@pytest.mark.parametrize(
    ("cancel_requested", "retry", "attempts", "expected"),
    [
        (True, True, 1, "cancelled"),
        (True, False, 3, "cancelled"),
        (False, True, 1, "queued"),
        (False, True, 3, "failed"),
        (False, False, 1, "failed"),
    ],
)
def test_after_an_attempt_the_one_case_expression_decides(
    cancel_requested: bool, retry: bool, attempts: int, expected: str
) -> None:
    store = MemoryStore(clock=lambda: 99.0)
    with store.dialect.session() as tx:
        row = tx.one(
            f"SELECT {rules.AFTER_FAIL} AS status, {rules.finished_at(rules.AFTER_FAIL)} AS at "
            "FROM (SELECT :cancel AS cancel_requested, :attempts AS attempts, 3 AS max_attempts)",
            {"retry": retry, "cancel": cancel_requested, "attempts": attempts},
        )
    store.close()
    assert row == {"status": expected, "at": None if expected == "queued" else 99.0}
