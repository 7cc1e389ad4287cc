"""Regressions found by the bad-input property tests, one case each, on every store.

Before the fixes these crashed with non-agentfleet exceptions (OverflowError, TypeError,
UnicodeEncodeError, RecursionError, psycopg's NumericValueOutOfRange, DataError, ...), wrote
garbage (a hand-built NewJob with an empty engine), or silently changed data (a payload
with keys 1 and "1").
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from agentfleet import Fleet, InvalidArgument, JobStatus, Lease, NewJob, RunOutput
from tests.nasty import deep


def _lease(fleet: Fleet) -> Lease:
    job = fleet.enqueue("shell", {})
    lease = fleet.claim(job.id, worker="w", ttl=60)
    assert lease is not None
    return lease


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"priority": 2**31}, "priority must be between"),
        ({"priority": -(2**31) - 1}, "priority must be between"),
        ({"max_attempts": 2**31}, "max_attempts must be between"),
        ({"run_at": timedelta(days=999_999_999)}, "run_at is out of range"),
        ({"run_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))}, "out of range"),
        ({"run_at": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))}, "range"),
        ({"payload": {"a": "x\x00y"}}, "must not contain NUL"),
        ({"payload": {"a\x00": 1}}, "must not contain NUL"),
        ({"payload": {"a": "\ud800"}}, "not valid Unicode"),
        ({"payload": {1: "a", "1": "b"}}, "keys must be strings"),
        ({"payload": {"a": deep(150)}}, "nested more than"),
        ({"payload": {"a": deep(5000)}}, "nested more than"),
        ({"engine": "sh\ud800"}, "not valid Unicode"),
        ({"queue": "\udcff"}, "not valid Unicode"),
    ],
)
def test_enqueue_refuses_what_a_store_cannot_keep(
    fleet: Fleet, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"engine": "shell", "payload": {}, **kwargs}
    with pytest.raises(InvalidArgument, match=message):
        fleet.enqueue(args.pop("engine"), args.pop("payload"), **args)
    assert fleet.list_jobs() == []


def test_the_edges_of_the_ranges_are_accepted(fleet: Fleet) -> None:
    job = fleet.enqueue(
        "shell",
        {"big": 2**80, "ok": "é🙂"},
        priority=2**31 - 1,
        max_attempts=2**31 - 1,
        run_at=datetime(9999, 12, 31, tzinfo=UTC),
    )
    stored = fleet.get_job(job.id)
    assert (stored.priority, stored.max_attempts) == (2**31 - 1, 2**31 - 1)
    assert stored.payload == {"big": 2**80, "ok": "é🙂"}
    assert stored.run_at.year == 9999


def test_enqueue_many_checks_hand_built_jobs(fleet: Fleet) -> None:
    with pytest.raises(InvalidArgument, match="engine must not be empty"):
        fleet.enqueue_many([NewJob("shell", {}), NewJob("", {}, queue="")])
    with pytest.raises(InvalidArgument, match="priority must be an integer"):
        fleet.enqueue_many([NewJob("shell", {}, priority="x")])  # type: ignore[arg-type]
    assert fleet.list_jobs() == []


@pytest.mark.parametrize("delay", [math.inf, 1e300, -1, math.nan])
def test_fail_refuses_an_unusable_delay(fleet: Fleet, delay: float) -> None:
    lease = _lease(fleet)
    with pytest.raises(InvalidArgument, match="delay"):
        fleet.fail(lease, "x", delay=delay)
    assert fleet.get_job(lease.job_id).status is JobStatus.RUNNING


def test_fail_refuses_a_retry_that_is_not_a_bool(fleet: Fleet) -> None:
    lease = _lease(fleet)
    with pytest.raises(InvalidArgument, match="retry must be True or False"):
        fleet.fail(lease, "x", retry="no")  # type: ignore[arg-type]
    assert fleet.get_job(lease.job_id).status is JobStatus.RUNNING


def test_free_text_keeps_what_it_can(fleet: Fleet) -> None:
    """Errors and output come from processes: NUL and lone surrogates become U+FFFD."""
    lease = _lease(fleet)
    fleet.fail(
        lease,
        "bad\x00byte \ud800",
        retry=False,
        output=RunOutput(exit_code=1, stdout="a\x00b", stderr="\udcff"),
    )
    job = fleet.get_job(lease.job_id)
    assert job.error == "bad\ufffdbyte \ufffd"
    [run] = fleet.runs(lease.job_id)
    assert (run.exit_code, run.stdout, run.stderr) == (1, "a\ufffdb", "\ufffd")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f, x: f.complete(x, result="a\x00"), "must not contain NUL"),
        (lambda f, x: f.complete(x, output="hello"), "output must be a RunOutput"),
        (lambda f, x: f.complete(x, output=RunOutput(exit_code=2**40)), "exit_code must be"),
        (lambda f, x: f.record_output(x, RunOutput(stdout=5)), "stdout must be a string"),
        (lambda f, x: f.release(x, reason={"a": 1}), "reason must be a string"),
        (lambda f, x: f.fenced_write(x, "k", "\x00"), "must not contain NUL"),
        (lambda f, x: f.renew(replace(x, ttl=math.nan)), "lease.ttl"),
        (lambda f, x: f.complete(replace(x, epoch="1")), "lease.epoch must be an integer"),
    ],
)
def test_lease_writes_refuse_bad_values_and_change_nothing(
    fleet: Fleet, call: Any, message: str
) -> None:
    lease = _lease(fleet)
    before = fleet.get_job(lease.job_id)
    with pytest.raises(InvalidArgument, match=message):
        call(fleet, lease)
    assert fleet.get_job(lease.job_id) == before
    assert fleet.ledger(lease.job_id) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": None}, "host must be a string"),
        ({"pid": 2**40}, "pid must be between"),
        ({"queues": "default"}, "queues must be a list"),
        ({"queues": [""]}, "queue must not be empty"),
    ],
)
def test_worker_seen_checks_every_argument(
    fleet: Fleet, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"host": "h", "pid": 1, "queues": ["default"], "concurrency": 1}
    with pytest.raises(InvalidArgument, match=message):
        fleet.worker_seen("w", **{**args, **kwargs})
    assert fleet.list_workers() == []


def test_other_arguments_found_by_the_properties(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {})
    with pytest.raises(InvalidArgument, match="queues must be a list"):
        fleet.claim_next(worker="w", queues=False)  # type: ignore[arg-type]
    for timeout in (math.inf, math.nan, -1):
        with pytest.raises(InvalidArgument, match="timeout"):
            fleet.wait_for_jobs(timeout)
    with pytest.raises(InvalidArgument, match="priority must be between"):
        fleet.update_if_match("jobs", job.id, job.rev, {"priority": 2**40})
    with pytest.raises(InvalidArgument, match="patch fields must be named by strings"):
        fleet.update_if_match("jobs", job.id, job.rev, {1: 2, "x": 3})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgument, match="unknown status"):
        fleet.list_jobs(status=["queued"])  # type: ignore[arg-type]
    assert fleet.get_job(job.id) == job


def test_a_prompt_too_long_for_one_argument_is_refused_at_enqueue(fleet: Fleet) -> None:
    with pytest.raises(InvalidArgument, match="one command-line argument"):
        fleet.enqueue("claude", {"prompt": "p" * 131_072})
    assert fleet.list_jobs() == []
