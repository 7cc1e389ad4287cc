"""fenced_write: a job's writes through the coordinator land only while its lease holds."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from agentfleet import Fleet, InvalidArgument, JobStatus, Lease, LeaseLost
from tests.conftest import PATIENCE, StoreEnv, in_call
from tests.worker.helpers import wait_until


def _claim(fleet: Fleet, worker: str = "w", ttl: float = 30) -> Lease:
    job = fleet.enqueue("shell", {})
    lease = fleet.claim(job.id, worker=worker, ttl=ttl)
    assert lease is not None
    return lease


def test_write_while_held_and_rewrite_replaces(fleet: Fleet) -> None:
    lease = _claim(fleet)
    entry = fleet.fenced_write(lease, "effect", {"n": 1})
    assert (entry.job_id, entry.key, entry.epoch, entry.value, entry.worker) == (
        lease.job_id,
        "effect",
        lease.epoch,
        {"n": 1},
        "w",
    )
    fleet.fenced_write(lease, "effect", {"n": 2})
    fleet.fenced_write(lease, "other", [1, "two", None])
    assert [(e.key, e.epoch, e.value) for e in fleet.ledger(lease.job_id)] == [
        ("effect", 1, {"n": 2}),
        ("other", 1, [1, "two", None]),
    ]
    assert fleet.ledger(lease.job_id + 1000) == []


def test_stale_epoch_is_refused_and_writes_nothing(env: StoreEnv) -> None:
    fleet = env.fleet
    stale = _claim(fleet, "paused", ttl=env.short_ttl)
    fleet.fenced_write(stale, "effect", "early")
    env.expire()
    successor = fleet.claim(stale.job_id, worker="fresh", ttl=60)
    assert successor is not None
    with pytest.raises(LeaseLost) as lost:
        fleet.fenced_write(stale, "effect", "late")
    assert lost.value.current_epoch == successor.epoch
    fleet.fenced_write(successor, "effect", "fresh")
    assert [(e.epoch, e.value, e.worker) for e in fleet.ledger(stale.job_id)] == [
        (1, "early", "paused"),
        (2, "fresh", "fresh"),
    ]


def test_expired_but_not_taken_lease_still_writes(env: StoreEnv) -> None:
    lease = _claim(env.fleet, ttl=env.short_ttl)
    env.expire()
    assert env.fleet.fenced_write(lease, "k", 1).epoch == lease.epoch


@pytest.mark.parametrize("ending", ["complete", "fail", "release", "reap"])
def test_refused_once_the_lease_has_ended(env: StoreEnv, ending: str) -> None:
    fleet = env.fleet
    lease = _claim(fleet, ttl=env.short_ttl)
    if ending == "complete":
        fleet.complete(lease)
    elif ending == "fail":
        assert fleet.fail(lease, "boom", delay=0) is JobStatus.QUEUED
    elif ending == "release":
        fleet.release(lease)
    else:
        env.expire()
        assert dict(fleet.reap_expired()) == {lease.job_id: JobStatus.QUEUED}
    with pytest.raises(LeaseLost):
        fleet.fenced_write(lease, "effect", "after the end")
    assert fleet.ledger(lease.job_id) == []


def test_cancel_requested_job_still_owns_its_epoch(fleet: Fleet) -> None:
    lease = _claim(fleet)
    assert fleet.cancel_job(lease.job_id)
    assert fleet.fenced_write(lease, "progress", "stopping").epoch == lease.epoch


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("", 1, "key must not be empty"),
        ("a\nb", 1, "key must be a single line"),
        (5, 1, "key must be a string"),
        ("k", {1, 2}, "value is not JSON-serialisable"),
        ("k", float("nan"), "value is not JSON-serialisable"),
    ],
)
def test_bad_key_or_value_is_refused(fleet: Fleet, key: Any, value: Any, message: str) -> None:
    lease = _claim(fleet)
    with pytest.raises(InvalidArgument, match=message):
        fleet.fenced_write(lease, key, value)
    with pytest.raises(InvalidArgument, match="expected a Lease"):
        fleet.fenced_write("lease", "k", 1)  # type: ignore[arg-type]
    assert fleet.ledger(lease.job_id) == []


def _sqlite_claim_held(env: StoreEnv, job_id: int) -> AbstractContextManager[Callable[[], None]]:
    @contextmanager
    def held() -> Any:
        path = env.url[len("sqlite:///") :]
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE jobs SET lease_epoch = lease_epoch + 1, worker = 'thief' WHERE id = ?",
            (job_id,),
        )
        try:
            yield lambda: conn.execute("COMMIT")
        finally:
            conn.close()

    return held()


def _postgres_claim_held(env: StoreEnv, job_id: int) -> AbstractContextManager[Callable[[], None]]:
    @contextmanager
    def held() -> Any:
        import psycopg

        conn = psycopg.connect(env.url)
        conn.execute(
            "UPDATE agentfleet.jobs SET lease_epoch = lease_epoch + 1, worker = 'thief' "
            "WHERE id = %s",
            (job_id,),
        )
        try:
            yield conn.commit
        finally:
            conn.close()

    return held()


def _blocked_on_the_claim(env: StoreEnv, writer: threading.Thread) -> bool:
    """The writer is waiting for the claim in progress: on PostgreSQL its statement waits
    on the row's lock (the server says so); on SQLite it is inside fenced_write while the
    claim holds the database's only write lock, so it can only be waiting."""
    if env.backend == "postgres":
        import psycopg

        with psycopg.connect(env.url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%ledger%'"
            ).fetchone()
        return row is not None and row[0] > 0
    return in_call(writer, "fenced_write")


def test_a_write_racing_a_claim_waits_for_it_then_is_refused(env: StoreEnv) -> None:
    """The fence is judged on the row the concurrent claim leaves, not on an old snapshot."""
    if not env.separate_connections:
        pytest.skip("the memory store runs one statement at a time")
    lease = _claim(env.fleet)
    writer = env.open()
    outcome: list[object] = []

    def write() -> None:
        try:
            outcome.append(writer.fenced_write(lease, "effect", "from the old epoch"))
        except Exception as exc:
            outcome.append(exc)

    opener = _sqlite_claim_held if env.backend == "sqlite" else _postgres_claim_held
    with opener(env, lease.job_id) as commit:
        thread = threading.Thread(target=write)
        thread.start()
        wait_until(
            lambda: outcome or _blocked_on_the_claim(env, thread),
            "the write to meet the claim in progress",
        )
        assert outcome == [], "the write did not wait for the claim in progress"
        commit()
        thread.join(PATIENCE)
    assert len(outcome) == 1 and isinstance(outcome[0], LeaseLost), outcome
    assert outcome[0].current_epoch == lease.epoch + 1
    assert env.fleet.ledger(lease.job_id) == []
