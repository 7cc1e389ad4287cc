"""SQLite writers queue on the file's write lock: a writer waits while another process
holds it, proceeds as soon as it is released, and gives up with StoreUnavailable (not a
raw driver error) once the busy timeout has passed. Nothing is half-written either way."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

import agentfleet
from agentfleet import NewJob, StoreUnavailable
from agentfleet.fleet import Fleet
from agentfleet.store.sqlite import SqliteStore


def _hold_write_lock(path: Path, seconds: float, taken: threading.Event) -> None:
    """Another writer: takes the write lock on its own connection, holds it, commits."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    taken.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_a_writer_waits_for_the_lock_and_then_writes(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    with agentfleet.open(f"sqlite:///{path}") as fleet:
        taken = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, 0.5, taken))
        holder.start()
        assert taken.wait(5)
        started = time.monotonic()
        jobs = fleet.enqueue_many([NewJob("shell", {"n": i}) for i in range(3)])
        waited = time.monotonic() - started
        holder.join()
        assert waited >= 0.3, "the write went ahead while another process held the lock"
        assert [fleet.get_job(job.id).payload for job in jobs] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_a_lock_held_past_the_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    store = SqliteStore(path, url=f"sqlite:///{path}", busy_timeout=0.3)
    with Fleet(store) as fleet:
        taken = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, 2.0, taken))
        holder.start()
        assert taken.wait(5)
        with pytest.raises(StoreUnavailable, match="stayed locked by another writer"):
            fleet.enqueue("shell", {"n": 1})
        holder.join()
        assert fleet.list_jobs() == []  # nothing half-written
        assert fleet.enqueue("shell", {"n": 2}).payload == {"n": 2}  # and it works again
