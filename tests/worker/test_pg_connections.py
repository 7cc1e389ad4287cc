"""The connections a worker costs PostgreSQL, counted by the server in pg_stat_activity.

A worker needs its queries and its LISTEN, and they share one connection; reconciling takes
none more. So 60 workers fit in the default max_connections=100 (two each would not). Each
test here has a database of its own, so the server's count is exactly what it started; the
counts are read once the workers are up (a worker probes the server once at start, on a
connection it closes before its own opens).
`python -m benchmarks.worker_latency fleet --workers 60` is the full-size version.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import agentfleet
from agentfleet import Fleet, JobStatus, PlanStatus
from tests import pg
from tests.conftest import PATIENCE
from tests.plans.helpers import gate, plan, shell
from tests.worker.helpers import spawn_worker, stop_process, wait_until

pytestmark = pytest.mark.postgres

TEST_APP = "agentfleet test"  # the test's own handle, left out of the counts
PER_WORKER = 1  # its queries and its LISTEN, on one connection


@pytest.fixture
def own_db(pg_url: str) -> Iterator[str]:
    url = pg.create_database()
    try:
        yield url
    finally:
        pg.drop_database(url)


def connections(url: str) -> dict[str, int]:
    """Connections to this database per application_name, the test's own left out."""
    import psycopg

    database = urlsplit(url).path.lstrip("/")
    with psycopg.connect(pg.ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name <> %s GROUP BY application_name",
            (database, TEST_APP),
        ).fetchall()
    return {str(app): int(n) for app, n in rows}


class Peak:
    """The most connections seen per application_name (and in all) over many samples."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.per_app: dict[str, int] = {}
        self.total = 0

    def sample(self) -> None:
        counts = connections(self.url)
        self.total = max(self.total, sum(counts.values()))
        for app, n in counts.items():
            self.per_app[app] = max(self.per_app.get(app, 0), n)


def app_of(name: str) -> str:
    return f"agentfleet worker {name}"


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(PATIENCE)
    stop_process(worker)


def _done(fleet: Fleet, ids: list[int]) -> bool:
    return all(fleet.get_job(job_id).status is JobStatus.SUCCEEDED for job_id in ids)


def test_a_worker_process_holds_one_connection(own_db: str, tmp_path: Path) -> None:
    """Plain jobs, a plan through an approval, a dead worker's job taken over and two
    reconcile passes: the server sees one connection of the worker throughout."""
    peak = Peak(own_db)
    with agentfleet.open(own_db, application_name=TEST_APP) as fleet:
        jobs = [fleet.enqueue("shell", {"cmd": f"sleep 0.2; echo {n}"}).id for n in range(4)]
        orphan = fleet.enqueue("shell", {"cmd": "echo taken over"})
        assert fleet.claim(orphan.id, worker="vanished", ttl=1) is not None  # never renewed
        p = fleet.submit_plan(
            plan(shell("draft"), gate("review", "draft"), shell("ship", "review"))
        )
        name = f"count-{uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        worker = spawn_worker(own_db, "--name", name, "--ttl", "3s", log=tmp_path / "w.log")
        try:
            wait_until(lambda: name in {w.name for w in fleet.list_workers()}, "the worker")

            def at_review() -> bool:
                peak.sample()
                return fleet.get_plan(p.id).checkpoint == "review"

            wait_until(at_review, "the plan to reach its gate")
            fleet.approve(p.id, checkpoint="review")

            def finished() -> bool:
                peak.sample()
                return (
                    _done(fleet, [*jobs, orphan.id])
                    and fleet.get_plan(p.id).status is PlanStatus.COMPLETED
                )

            wait_until(finished, "every job and the plan to finish")

            def second_reconcile_passed() -> bool:
                peak.sample()  # a pass runs at start, the next one 5 s later
                return time.monotonic() - started > 6.5

            wait_until(second_reconcile_passed, "a second reconcile pass")
            assert worker.poll() is None, (tmp_path / "w.log").read_text()
        finally:
            _stop(worker)
    assert fleet_runs_by(own_db, orphan.id) == ["vanished", name]
    assert peak.per_app == {app_of(name): PER_WORKER}  # and every connection is named


def fleet_runs_by(url: str, job_id: int) -> list[str]:
    with agentfleet.open(url, application_name=TEST_APP) as fleet:
        return [run.worker for run in fleet.runs(job_id)]


def test_ten_worker_processes_hold_one_connection_each(own_db: str, tmp_path: Path) -> None:
    names = [f"ten-{n}-{uuid.uuid4().hex[:4]}" for n in range(10)]
    peak = Peak(own_db)
    workers = [spawn_worker(own_db, "--name", n, log=tmp_path / f"{n}.log") for n in names]
    try:
        with agentfleet.open(own_db, application_name=TEST_APP) as fleet:

            def all_up() -> bool:
                for worker, n in zip(workers, names, strict=True):
                    assert worker.poll() is None, (tmp_path / f"{n}.log").read_text()
                return {w.name for w in fleet.list_workers()} >= set(names)

            wait_until(all_up, "ten workers to start", timeout=PATIENCE * 4)
            peak.sample()
            jobs = [fleet.enqueue("shell", {"cmd": "sleep 0.3"}).id for _ in range(20)]

            def finished() -> bool:
                peak.sample()
                return _done(fleet, jobs)

            wait_until(finished, "twenty jobs to finish", timeout=PATIENCE * 2)
            peak.sample()
            assert all(worker.poll() is None for worker in workers)
    finally:
        for worker in workers:
            _stop(worker)
    assert peak.per_app == {app_of(n): PER_WORKER for n in names}
    assert peak.total == PER_WORKER * len(names)


def test_one_connection_handle_listens_on_its_only_connection(own_db: str) -> None:
    """pool_size=1 (what a worker opens): waits and queries share the one connection, and
    a notification that arrives while it runs a query still wakes the next wait."""
    app = f"single-{uuid.uuid4().hex[:6]}"
    with (
        agentfleet.open(f"{own_db}?pool_size=1", application_name=app) as waiter,
        agentfleet.open(own_db, application_name=TEST_APP) as other,
    ):
        assert waiter.store.dialect.pool.max_size == 1  # type: ignore[attr-defined]
        assert waiter.wait_for_jobs(0.0) is False  # starts listening
        job = other.enqueue("shell", {})
        assert waiter.get_job(job.id).status is JobStatus.QUEUED  # a query in between
        assert waiter.wait_for_jobs(PATIENCE) is True
        assert connections(own_db) == {app: 1}
