"""SQLite writers queue on the file's write lock: a writer waits while another process
holds it, proceeds as soon as it is released, and gives up with StoreUnavailable (not a
raw driver error) once the busy timeout has passed. Nothing is half-written either way.

The other writer holds the lock until the test says so (an event, not a sleep), so what is
checked is what happened while it was held, however slow the machine."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import agentfleet
from agentfleet import NewJob, StoreUnavailable
from agentfleet.fleet import Fleet
from agentfleet.store.sqlite import SqliteStore
from tests.conftest import PATIENCE, in_call
from tests.worker.helpers import wait_until


def _hold_write_lock(path: Path, taken: threading.Event, release: threading.Event) -> None:
    """Another writer: takes the write lock on its own connection, holds it, commits."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    taken.set()
    release.wait(PATIENCE)
    conn.execute("COMMIT")
    conn.close()


def _holder(path: Path) -> tuple[threading.Thread, threading.Event]:
    taken, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, taken, release))
    holder.start()
    assert taken.wait(PATIENCE)
    return holder, release


def test_a_writer_waits_for_the_lock_and_then_writes(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    url = f"sqlite:///{path}"
    with agentfleet.open(url) as fleet, agentfleet.open(url) as reader:
        holder, release = _holder(path)
        outcome: list[object] = []

        def write() -> None:
            try:
                outcome.append(fleet.enqueue_many([NewJob("shell", {"n": i}) for i in range(3)]))
            except Exception as exc:
                outcome.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        wait_until(lambda: outcome or in_call(writer, "enqueue"), "the writer to reach the store")
        # While the lock is held the write can neither land nor give up: it waits.
        assert reader.list_jobs() == []
        assert outcome == [], "the write went ahead while another process held the lock"
        assert writer.is_alive()
        release.set()
        writer.join(PATIENCE)
        holder.join(PATIENCE)
        [jobs] = outcome
        assert isinstance(jobs, list)
        assert [fleet.get_job(job.id).payload for job in jobs] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert [j.payload for j in reader.list_jobs()] == [{"n": 2}, {"n": 1}, {"n": 0}]


def test_a_lock_held_past_the_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    store = SqliteStore(path, url=f"sqlite:///{path}", busy_timeout=0.3)
    with Fleet(store) as fleet:
        holder, release = _holder(path)
        try:
            with pytest.raises(StoreUnavailable, match="stayed locked by another writer"):
                fleet.enqueue("shell", {"n": 1})
        finally:
            release.set()  # held until the writer gave up, however long that took
            holder.join(PATIENCE)
        assert fleet.list_jobs() == []  # nothing half-written
        assert fleet.enqueue("shell", {"n": 2}).payload == {"n": 2}  # and it works again
