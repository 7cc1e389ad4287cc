"""Databases made by an earlier release open, upgrade and keep working.

tests/fixtures/fleet-v5.db and fleet-v5.sql were written by the schema-v5 code (see
tests/fixtures/make_v5.py for what they hold). Each test opens a copy with the current code
and uses only the public API, so these keep passing whatever the store looks like inside.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import agentfleet
from agentfleet import Fleet, Job, JobStatus, LeaseLost, PlanStatus, RunStatus, StoreUnavailable
from tests import pg
from tests.conftest import pg_problem

FIXTURES = Path(__file__).parent / "fixtures"
ROLES = {"queued", "locked", "expired", "succeeded", "failed", "cancelled"}


def load_dump(url: str, dump: Path) -> None:
    """Run a plain pg_dump file, without its psql-only meta-commands (\\restrict ...)."""
    import psycopg

    lines = dump.read_text(encoding="utf-8").splitlines()
    script = "\n".join(line for line in lines if not line.startswith("\\"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(script)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and pg_problem() is not None:
        request.getfixturevalue("pg_url")  # skips, or fails under CI, as the others do
    return str(request.param)


@pytest.fixture
def v5_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A copy of the version-5 database of this backend."""
    if backend == "sqlite":
        copy = tmp_path / "fleet-v5.db"
        shutil.copyfile(FIXTURES / "fleet-v5.db", copy)
        yield f"sqlite:///{copy}"
        return
    url = pg.create_database("agentfleet_upgrade")
    try:
        load_dump(url, FIXTURES / "fleet-v5.sql")
        yield url
    finally:
        pg.drop_database(url)


def latest_version(backend: str, tmp_path: Path) -> int:
    """What the current code makes of an empty database."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        with agentfleet.open(url) as fresh:
            return fresh.store.schema_version()
    url = pg.create_database("agentfleet_fresh")
    try:
        with agentfleet.open(url) as fresh:
            return fresh.store.schema_version()
    finally:
        pg.drop_database(url)


def by_role(fleet: Fleet) -> dict[str, Job]:
    jobs = {job.payload["labels"][1]: job for job in fleet.list_jobs(label="v5")}
    assert set(jobs) == ROLES
    return jobs


def test_opens_at_the_latest_version_with_everything_readable(
    backend: str, v5_url: str, tmp_path: Path
) -> None:
    with agentfleet.open(v5_url) as fleet:
        assert fleet.store.schema_version() == latest_version(backend, tmp_path)
        jobs = by_role(fleet)
        assert {role: job.status for role, job in jobs.items()} == {
            "queued": JobStatus.QUEUED,
            "locked": JobStatus.QUEUED,
            "expired": JobStatus.RUNNING,
            "succeeded": JobStatus.SUCCEEDED,
            "failed": JobStatus.FAILED,
            "cancelled": JobStatus.CANCELLED,
        }
        queued = jobs["queued"]
        assert (queued.engine, queued.priority, queued.timeout) == ("claude", 5, 600.0)
        assert queued.payload["prompt"].startswith("Fix the flaky test")
        assert jobs["locked"].lock == jobs["expired"].lock == "repo-v5"
        assert len(fleet.list_jobs()) == 9  # and the plan's three

        expired = jobs["expired"]
        assert (expired.worker, expired.lease_epoch, expired.attempts) == ("w-gone", 1, 1)
        [running] = fleet.runs(expired.id)
        assert (running.status, running.stdout) == (RunStatus.RUNNING, "step 1 of 3\n")
        [done] = fleet.runs(jobs["succeeded"].id)
        assert (done.status, done.exit_code, done.stdout) == (RunStatus.SUCCEEDED, 0, "done\n")
        assert fleet.get_job(jobs["succeeded"].id).result == {"ok": True}
        failed = fleet.runs(jobs["failed"].id)
        assert [(r.attempt, r.status, r.exit_code) for r in failed] == [
            (1, RunStatus.FAILED, 7),
            (2, RunStatus.FAILED, 7),
        ]
        assert jobs["failed"].error == "exit code 7"
        assert fleet.runs(jobs["cancelled"].id) == []

        kinds = [e.kind for e in fleet.events(jobs["succeeded"].id)]
        assert kinds[0] == "enqueued" and "claimed" in kinds and kinds[-1] == "succeeded"
        assert any(e.plan_id is not None for e in fleet.events(limit=1000))

        [artifact] = fleet.ledger(jobs["succeeded"].id)
        assert (artifact.key, artifact.epoch, artifact.worker) == ("artifact", 1, "w1")
        assert artifact.value == {"path": "dist/app.whl", "bytes": 1234}
        [progress] = fleet.ledger(expired.id)
        assert (progress.key, progress.value) == ("progress", {"step": 1})

        workers = {w.name: w for w in fleet.list_workers()}
        assert set(workers) == {"w1", "w-gone"}
        assert workers["w1"].stopped_at is not None and workers["w-gone"].stopped_at is None
        assert (workers["w1"].host, workers["w1"].queues) == ("box-1", ("default",))

        [plan] = fleet.list_plans()
        assert (plan.name, plan.status, plan.checkpoint) == (
            "v5-plan",
            PlanStatus.PAUSED,
            "review",
        )
        assert plan.checkpoint_context is not None
        assert plan.checkpoint_context["message"] == "Ship the v5 build?"
        assert plan.metadata == {"made_by": "schema v5"}
        assert [(s.name, s.status, s.depends_on) for s in plan.jobs] == [
            ("build", JobStatus.SUCCEEDED, ()),
            ("review", JobStatus.WAITING, ("build",)),
            ("ship", JobStatus.WAITING, ("review",)),
        ]
        assert plan.step("build").result == {"artifact": "build-1"}
        assert fleet.get_plan(plan.id) == plan


def test_every_object_is_usable_after_the_upgrade(v5_url: str) -> None:
    with agentfleet.open(v5_url) as fleet:
        jobs = by_role(fleet)
        first_new = fleet.enqueue("shell", {"cmd": "echo new"})
        assert first_new.id > max(job.id for job in fleet.list_jobs() if job != first_new)

        # The queued job: still deduplicated while live, then claimed and completed.
        queued = jobs["queued"]
        again = fleet.enqueue("claude", {"prompt": "again"}, dedupe_key="v5-queued")
        assert again.id == queued.id
        lease = fleet.claim(queued.id, worker="w-new")
        assert lease is not None and lease.epoch == 1
        fleet.complete(lease, {"fixed": True})
        assert fleet.get_job(queued.id).status is JobStatus.SUCCEEDED

        # The expired running job is reaped; its lock and its fencing still hold.
        expired = jobs["expired"]
        [stale_run] = fleet.runs(expired.id)
        assert (expired.id, JobStatus.QUEUED) in fleet.reap_expired()
        assert fleet.runs(expired.id)[0].status is RunStatus.EXPIRED
        locked = fleet.claim(jobs["locked"].id, worker="w-new")
        assert locked is not None
        assert fleet.claim(expired.id, worker="w-new") is None  # repo-v5 is held
        fleet.complete(locked)
        retaken = fleet.claim(expired.id, worker="w-new")
        assert retaken is not None and retaken.epoch == 2
        fleet.fenced_write(retaken, "progress", {"step": 3})
        stale = replace(retaken, epoch=1, worker="w-gone", run_id=stale_run.id, attempt=1)
        with pytest.raises(LeaseLost):
            fleet.complete(stale, {"late": True})
        fleet.complete(retaken, {"steps": 3})
        assert fleet.get_job(expired.id).result == {"steps": 3}
        assert [(e.epoch, e.value) for e in fleet.ledger(expired.id)] == [
            (1, {"step": 1}),
            (2, {"step": 3}),
        ]

        # Failed and cancelled jobs can be queued again.
        for role in ("failed", "cancelled"):
            retried = fleet.retry_job(jobs[role].id)
            assert (retried.status, retried.attempts) == (JobStatus.QUEUED, 0)

        # The plan goes through its gate, its last step and the pre_pr checkpoint to the end.
        [plan] = fleet.list_plans()
        approved = fleet.approve(plan.id, "ship it")
        assert approved.status is PlanStatus.RUNNING
        assert approved.step("review").result["response"] == "ship it"
        ship = fleet.claim(approved.step("ship").job_id, worker="w-new")
        assert ship is not None
        assert fleet.plan_inputs(ship.job_id)["review"]["result"]["response"] == "ship it"
        fleet.complete(ship, {"shipped": True})
        at_pr = fleet.get_plan(plan.id)
        assert (at_pr.status, at_pr.checkpoint) == (PlanStatus.PAUSED, "pre_pr")
        finished = fleet.approve(plan.id)
        assert finished.status is PlanStatus.COMPLETED and finished.completed_at is not None

        # Workers keep reporting in.
        fleet.worker_seen("w-gone", host="box-2", pid=4343, queues=[], concurrency=1)
        fleet.worker_stopped("w-gone")
        assert all(w.stopped_at is not None for w in fleet.list_workers())


def test_a_database_of_the_previous_version_upgrades_and_takes_tokens(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database written at version 14 (the migrations before the tokens table) opens at
    the latest version, keeps what it held and then stores tokens."""
    from agentfleet.store import postgres, postgres_schema, sqlite, sqlite_schema

    module, schema = (sqlite, sqlite_schema) if backend == "sqlite" else (postgres, postgres_schema)
    previous = [(v, script) for v, script in schema.MIGRATIONS if v < schema.LATEST_VERSION]
    url = f"sqlite:///{tmp_path / 'fleet-prev.db'}" if backend == "sqlite" else None
    url = url or pg.create_database("agentfleet_upgrade")
    try:
        with monkeypatch.context() as patched:
            patched.setattr(module, "MIGRATIONS", previous)
            patched.setattr(module, "LATEST_VERSION", previous[-1][0])
            with agentfleet.open(url) as old:
                assert old.store.schema_version() == schema.LATEST_VERSION - 1
                job = old.enqueue("shell", {"cmd": "true", "labels": ["before"]})
                old.set_config("retention", "30d")
        with agentfleet.open(url) as fleet:
            assert fleet.store.schema_version() == schema.LATEST_VERSION
            assert fleet.get_job(job.id).payload["cmd"] == "true"
            assert fleet.config() == {"retention": "30d"}
            assert fleet.tokens() == []
            info, _ = fleet.create_token("box-7", "worker")
            assert [t.id for t in fleet.tokens()] == [info.id]
            assert fleet.revoke_token("box-7")
    finally:
        if backend == "postgres":
            pg.drop_database(url)


def test_a_sqlite_upgrade_that_would_leave_broken_foreign_keys_is_refused_and_undone(
    tmp_path: Path,
) -> None:
    """A file whose rows already break a foreign key (a run of no job, written with the
    checks off) is not upgraded over them: the upgrade is refused, naming the rows, and
    the file stays at its version with what it held."""
    import sqlite3

    copy = tmp_path / "fleet-v5.db"
    shutil.copyfile(FIXTURES / "fleet-v5.db", copy)
    conn = sqlite3.connect(copy)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute(
            "INSERT INTO runs (job_id, attempt, epoch, worker, status, started_at) "
            "VALUES (999999, 1, 1, 'w', 'running', '2026-01-01T00:00:00Z')"
        )
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(StoreUnavailable, match=r"would break foreign keys: \[.*runs"):
        agentfleet.open(f"sqlite:///{copy}")
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("SELECT max(version) FROM agentfleet_schema").fetchone() == (5,)
        assert conn.execute("SELECT count(*) FROM runs WHERE job_id = 999999").fetchone() == (1,)
    finally:
        conn.close()
