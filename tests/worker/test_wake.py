"""An idle worker starts new work when it arrives, woken by the store, not by its polls.

The workers here poll once an hour: a job they start within the test's patience was
brought to them by the store's wake-up (SQLite's data_version, PostgreSQL's NOTIFY). The
measured figures are in benchmarks/worker_latency.py; nothing here is timed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agentfleet import Fleet, JobStatus, PlanStatus, Worker
from agentfleet.store import sqlite_watch
from tests.conftest import StoreEnv
from tests.plans.helpers import gate, plan, shell
from tests.worker.helpers import wait_until, worker_thread

NEVER = 3600.0  # poll_min = poll_max: after its first claim, the worker never polls again


def _idle(fleet: Fleet, worker: Worker) -> None:
    """Wait until the worker has made its first claim (nothing) and gone to wait: it
    publishes its presence right after that claim."""
    wait_until(lambda: worker.name in {w.name for w in fleet.list_workers()}, "the worker")


def test_an_idle_worker_starts_a_new_job_without_polling(store: StoreEnv) -> None:
    with worker_thread(store.open(), name="idle", poll_min=NEVER, poll_max=NEVER) as worker:
        _idle(store.fleet, worker)
        for n in range(3):  # each one after the worker went back to waiting
            job = store.fleet.enqueue("shell", {"cmd": f"echo {n}"})
            wait_until(
                lambda job_id=job.id: store.fleet.get_job(job_id).status is JobStatus.SUCCEEDED,
                f"job {job.id} to be woken up for and run",
            )
    assert worker.stats.succeeded == 3


def test_the_step_after_an_approval_starts_without_polling(store: StoreEnv) -> None:
    with worker_thread(store.open(), name="gated", poll_min=NEVER, poll_max=NEVER) as worker:
        _idle(store.fleet, worker)
        p = store.fleet.submit_plan(
            plan(shell("draft"), gate("review", "draft"), shell("ship", "review"))
        )
        wait_until(
            lambda: store.fleet.get_plan(p.id).checkpoint == "review", "the plan to reach review"
        )
        store.fleet.approve(p.id, response="go", checkpoint="review")
        wait_until(
            lambda: store.fleet.get_plan(p.id).status is PlanStatus.COMPLETED,
            "the step after the approval to run",
        )
    assert worker.stats.succeeded == 2


def test_without_a_doorbell_sqlite_waits_by_polling_data_version(
    sqlite_store: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where inotify is missing (other systems), the wait polls data_version instead."""
    monkeypatch.setattr(sqlite_watch.FileWatch, "open", classmethod(lambda cls, path: None))
    with worker_thread(sqlite_store.open(), name="no-bell", poll_min=NEVER, poll_max=NEVER) as w:
        _idle(sqlite_store.fleet, w)
        job = sqlite_store.fleet.enqueue("shell", {"cmd": "true"})
        wait_until(
            lambda: sqlite_store.fleet.get_job(job.id).status is JobStatus.SUCCEEDED,
            "the job to be found by polling",
        )


def test_without_a_doorbell_a_wait_ends_empty_or_on_another_handles_commit(
    sqlite_store: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_watch.FileWatch, "open", classmethod(lambda cls, path: None))
    waiter = sqlite_store.open()
    assert waiter.wait_for_jobs(0.05) is False  # nothing came: it polled until the timeout
    sqlite_store.fleet.enqueue("shell", {"cmd": "true"})  # another handle's commit
    assert waiter.wait_for_jobs(600.0) is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_the_doorbell_rings_for_the_databases_own_files_only(tmp_path: Path) -> None:
    watch = sqlite_watch.FileWatch.open(tmp_path / "fleet.db")
    assert watch is not None
    try:
        assert watch.rang() is False
        (tmp_path / "notes.txt").write_text("not the database")
        assert watch.rang() is False
        (tmp_path / "fleet.db-wal").write_bytes(b"frames")
        assert watch.rang() is True and watch.rang() is False  # read once, then quiet
    finally:
        watch.close()
