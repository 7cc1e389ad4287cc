"""Bad input: a clear error naming the problem, and nothing written."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from agentfleet import Fleet, InvalidArgument, JobNotFound, NewJob


def _bad_enqueues() -> list[tuple[dict[str, object], str]]:
    return [
        ({"engine": ""}, "engine must not be empty"),
        ({"queue": ""}, "queue must not be empty"),
        ({"queue": "   "}, "queue must not be empty"),
        ({"queue": 5}, "queue must be a string"),
        ({"payload": {"f": object()}}, "payload is not JSON-serialisable"),
        ({"payload": {"x": math.nan}}, "payload is not JSON-serialisable"),
        ({"payload": ["not", "an", "object"]}, "payload must be a JSON object"),
        ({"max_attempts": -1}, "max_attempts must be at least 1"),
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"priority": "high"}, "priority must be an integer"),
        ({"priority": True}, "priority must be an integer"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": -5}, "timeout must be a positive number"),
        ({"run_at": datetime(2030, 1, 1)}, "run_at must be timezone-aware"),
        ({"run_at": "tomorrow"}, "run_at must be a datetime"),
        ({"lock": ""}, "lock must not be empty"),
        ({"dedupe_key": "a\nb"}, "dedupe_key must be a single line"),
    ]


@pytest.mark.parametrize(("override", "message"), _bad_enqueues())
def test_bad_enqueue_is_refused_and_writes_nothing(
    fleet: Fleet, override: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"engine": "shell", "payload": {"cmd": "true"}, **override}
    engine = args.pop("engine")
    payload = args.pop("payload")
    with pytest.raises(InvalidArgument, match=message):
        fleet.enqueue(engine, payload, **args)  # type: ignore[arg-type]
    assert fleet.list_jobs() == []


def test_enqueue_many_is_all_or_nothing(fleet: Fleet) -> None:
    with pytest.raises(InvalidArgument):
        fleet.enqueue_many([NewJob("shell", {}), "not a job"])  # type: ignore[list-item]
    assert fleet.list_jobs() == []


@pytest.mark.parametrize("ttl", [0, -1, math.inf, math.nan, "30"])
def test_bad_ttl_is_refused(fleet: Fleet, ttl: object) -> None:
    job = fleet.enqueue("shell", {})
    with pytest.raises(InvalidArgument, match="ttl"):
        fleet.claim(job.id, worker="w", ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="ttl"):
        fleet.claim_next(worker="w", ttl=ttl)  # type: ignore[arg-type]
    assert fleet.get_job(job.id).lease_epoch == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"worker": ""}, "worker must not be empty"),
        ({"worker": "w", "queues": []}, "at least one queue"),
        ({"worker": "w", "queues": "default"}, "list of queue names"),
        ({"worker": "w", "queues": [""]}, "queue must not be empty"),
        ({"worker": "w", "engines": []}, "at least one engine"),
        ({"worker": "w", "engines": "shell"}, "list of engine names"),
        ({"worker": "w", "limit": 0}, "limit must be at least 1"),
        ({"worker": "w", "limit": 10**9}, "limit must be at most"),
    ],
)
def test_bad_claim_next_is_refused(fleet: Fleet, kwargs: dict[str, object], message: str) -> None:
    job = fleet.enqueue("shell", {})
    with pytest.raises(InvalidArgument, match=message):
        fleet.claim_next(**kwargs)  # type: ignore[arg-type]
    assert fleet.get_job(job.id).lease_epoch == 0


def test_unknown_ids_and_bad_leases(fleet: Fleet) -> None:
    with pytest.raises(JobNotFound, match="job 12345 not found"):
        fleet.get_job(12345)
    with pytest.raises(JobNotFound):
        fleet.cancel_job(12345)
    with pytest.raises(JobNotFound):
        fleet.retry_job(12345)
    with pytest.raises(InvalidArgument, match="expected a Lease"):
        fleet.complete("lease")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="unknown status"):
        fleet.list_jobs(status="done")


def test_result_must_be_json(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {})
    lease = fleet.claim(job.id, worker="w")
    assert lease is not None
    with pytest.raises(InvalidArgument, match="result is not JSON-serialisable"):
        fleet.complete(lease, result={1, 2})
    assert fleet.get_job(job.id).status == "running"
    fleet.complete(lease, result=[1, 2])
