"""Enqueue in the caller's transaction: the job exists if and only if the caller commits.

The caller is an application with its own connection to the fleet's database (psycopg on
PostgreSQL, sqlite3 on SQLite) and its own table, `orders`. Every test writes an order and
a job in one transaction of the caller's and looks at both from other connections.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfleet import InvalidArgument, Job, JobNotFound, JobStatus, PlanStatus
from agentfleet.aio import AsyncFleet
from agentfleet.connect import sqlite_path
from tests import pg
from tests.conftest import PATIENCE, StoreEnv, in_call, make_env
from tests.plans.helpers import plan, shell
from tests.worker.helpers import wait_until, worker_thread


class App:
    """The application beside the fleet: its connections and its own table of orders."""

    def __init__(self, env: StoreEnv) -> None:
        self.env = env
        self.backend = env.backend
        self.opened: list[Any] = []
        with self.connect() as conn:
            if self.backend == "postgres":
                conn.execute("DROP TABLE IF EXISTS public.orders")
                conn.execute("CREATE TABLE public.orders (id serial PRIMARY KEY, what text)")
            else:
                conn.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, what)")
            conn.commit()

    def connect(self, **options: Any) -> Any:
        """A connection of the application's own to the fleet's database."""
        if self.backend == "postgres":
            import psycopg

            conn: Any = psycopg.connect(self.env.url, **options)
        else:
            conn = sqlite3.connect(sqlite_path(self.env.url), **options)
        self.opened.append(conn)
        return conn

    def order(self, conn: Any, what: str) -> None:
        mark = "%s" if self.backend == "postgres" else "?"
        conn.execute(f"INSERT INTO orders (what) VALUES ({mark})", (what,))

    def orders(self) -> list[str]:
        """The orders committed, read on a connection of its own."""
        conn = self.connect()
        try:
            return [row[0] for row in conn.execute("SELECT what FROM orders ORDER BY id")]
        finally:
            conn.close()

    def close(self) -> None:
        for conn in self.opened:
            conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreEnv]:
    env = make_env(request.param, tmp_path, request)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def app(store: StoreEnv) -> Iterator[App]:
    application = App(store)
    try:
        yield application
    finally:
        application.close()


def nothing_written(env: StoreEnv) -> bool:
    fleet = env.fleet
    return fleet.list_jobs() == [] and fleet.events() == [] and fleet.list_plans() == []


# -- the job commits and rolls back with the caller -----------------------------------


def test_a_rollback_leaves_no_job_no_event_and_no_row_of_the_callers(
    store: StoreEnv, app: App
) -> None:
    conn = app.connect()
    job = store.fleet.enqueue("shell", {"cmd": "ship order 1"}, conn=conn)
    app.order(conn, "order 1")
    assert job.status is JobStatus.QUEUED and job.payload == {"cmd": "ship order 1"}
    conn.rollback()
    with pytest.raises(JobNotFound):
        store.fleet.get_job(job.id)
    assert nothing_written(store) and app.orders() == []


def test_a_rollback_after_the_callers_own_write_leaves_nothing(store: StoreEnv, app: App) -> None:
    conn = app.connect()
    app.order(conn, "order 1")
    store.fleet.enqueue("shell", {"cmd": "ship order 1"}, dedupe_key="order-1", conn=conn)
    conn.rollback()
    assert nothing_written(store) and app.orders() == []


def test_a_commit_keeps_the_job_and_the_callers_row(store: StoreEnv, app: App) -> None:
    conn = app.connect()
    app.order(conn, "order 1")
    job = store.fleet.enqueue("shell", {"cmd": "ship order 1"}, queue="ship", conn=conn)
    conn.commit()
    assert store.fleet.get_job(job.id) == job
    assert [e.kind for e in store.fleet.events(job.id)] == ["enqueued"]
    assert app.orders() == ["order 1"]


def test_the_job_is_unseen_until_the_commit_and_the_commit_wakes_a_waiting_store(
    store: StoreEnv, app: App
) -> None:
    waiter = store.open()
    assert waiter.store.wait_for_jobs(0.0) is False  # starts listening (watching)
    conn = app.connect()
    job = store.fleet.enqueue("shell", {"cmd": "true"}, conn=conn)
    assert waiter.store.wait_for_jobs(0.3) is False  # no wake-up before the commit
    assert waiter.list_jobs() == []
    if store.backend == "postgres":  # (SQLite's claim would wait for the caller's lock)
        assert waiter.claim_next(worker="early") == []
    conn.commit()
    assert waiter.store.wait_for_jobs(PATIENCE) is True
    [lease] = waiter.claim_next(worker="w")
    assert lease.job_id == job.id


def test_a_commit_wakes_an_idle_worker_that_never_polls(store: StoreEnv, app: App) -> None:
    with worker_thread(store.open(), name="idle", poll_min=3600.0, poll_max=3600.0) as worker:
        wait_until(
            lambda: worker.name in {w.name for w in store.fleet.list_workers()}, "the worker"
        )
        conn = app.connect()
        app.order(conn, "order 1")
        job = store.fleet.enqueue("shell", {"cmd": "true"}, conn=conn)
        time.sleep(0.3)
        assert worker.stats.succeeded == 0 and store.fleet.list_jobs() == []
        conn.commit()
        wait_until(
            lambda: store.fleet.get_job(job.id).status is JobStatus.SUCCEEDED,
            "the committed job to be woken up for and run",
        )
    assert worker.stats.succeeded == 1


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
def test_enqueue_many_in_a_transaction(store: StoreEnv, app: App, commit: bool) -> None:
    conn = app.connect()
    app.order(conn, "order 1")
    news = [
        store.fleet.new_job("shell", {"n": 1}),
        store.fleet.new_job("shell", {"n": 2}, dedupe_key="two"),
        store.fleet.new_job("shell", {"n": 3}, queue="other"),
    ]
    jobs = store.fleet.enqueue_many(news, conn=conn)
    assert [j.payload["n"] for j in jobs] == [1, 2, 3]
    if not commit:
        conn.rollback()
        assert nothing_written(store) and app.orders() == []
        return
    conn.commit()
    assert sorted(j.id for j in store.fleet.list_jobs()) == sorted(j.id for j in jobs)
    assert app.orders() == ["order 1"]


def test_enqueue_many_in_a_transaction_without_dedupe_keys(store: StoreEnv, app: App) -> None:
    """PostgreSQL's bulk statement (no job has a dedupe key) joins the caller's too."""
    conn = app.connect()
    jobs = store.fleet.enqueue_many([store.fleet.new_job("shell", {"n": n}) for n in range(3)],
                                    conn=conn)  # fmt: skip
    conn.rollback()
    assert nothing_written(store)
    jobs = store.fleet.enqueue_many([store.fleet.new_job("shell", {"n": n}) for n in range(3)],
                                    conn=conn)  # fmt: skip
    conn.commit()
    assert sorted(j.id for j in store.fleet.list_jobs()) == sorted(j.id for j in jobs)


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
def test_submit_plan_in_a_transaction(store: StoreEnv, app: App, commit: bool) -> None:
    conn = app.connect()
    app.order(conn, "order 1")
    p = store.fleet.submit_plan(plan(shell("build"), shell("ship", "build")), conn=conn)
    assert p.status is PlanStatus.RUNNING
    if not commit:
        conn.rollback()
        assert nothing_written(store) and app.orders() == []
        return
    conn.commit()
    assert store.fleet.get_plan(p.id).status is PlanStatus.RUNNING
    [lease] = store.fleet.claim_next(worker="w", limit=5)
    assert lease.job is not None and lease.job.step == "build"
    assert app.orders() == ["order 1"]


def test_the_asyncio_api_passes_the_connection_through(store: StoreEnv, app: App) -> None:
    fleet = AsyncFleet(store.fleet)
    # The verbs run on a worker thread: the connection must allow that.
    conn = app.connect() if store.backend == "postgres" else app.connect(check_same_thread=False)

    async def scenario() -> None:
        await fleet.enqueue("shell", {"n": 1}, conn=conn)
        await fleet.enqueue_many([store.fleet.new_job("shell", {"n": 2})], conn=conn)
        await fleet.submit_plan(plan(shell("build")), conn=conn)

    asyncio.run(scenario())
    conn.rollback()
    assert nothing_written(store)
    asyncio.run(scenario())
    conn.commit()
    assert len(store.fleet.list_jobs()) == 3 and len(store.fleet.list_plans()) == 1
    if store.backend == "sqlite":  # one made for this thread only says how to make one
        mine = app.connect()
        with pytest.raises(InvalidArgument, match="check_same_thread=False"):
            asyncio.run(fleet.enqueue("shell", {"n": 4}, conn=mine))


# -- a repeat of a dedupe key meets the caller's uncommitted job ----------------------


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
def test_a_repeat_waits_for_the_transaction_holding_its_dedupe_key(
    store: StoreEnv, app: App, commit: bool
) -> None:
    """Another enqueue of the key waits for the caller's transaction (PostgreSQL: on the
    unique index; SQLite: for the write lock). After a commit it gets the caller's job;
    after a rollback, a job of its own."""
    conn = app.connect()
    held = store.fleet.enqueue("shell", {"n": 1}, dedupe_key="nightly", conn=conn)
    other = store.open()
    got: list[Job] = []
    thread = threading.Thread(
        target=lambda: got.append(other.enqueue("shell", {"n": 2}, dedupe_key="nightly")),
        daemon=True,
    )
    thread.start()
    wait_until(lambda: _waiting(store, thread), "the second enqueue to wait")
    time.sleep(0.2)
    assert thread.is_alive(), "the second enqueue did not wait for the caller's transaction"
    if commit:
        conn.commit()
    else:
        conn.rollback()
    thread.join(PATIENCE)
    [repeat] = got
    assert repeat.payload == ({"n": 1} if commit else {"n": 2})
    assert repeat.id == held.id or not commit
    assert store.fleet.list_jobs() == [repeat]


def _waiting(store: StoreEnv, thread: threading.Thread) -> bool:
    """Whether the second enqueue waits for the caller's transaction. PostgreSQL says so
    itself (a backend of this database waiting on a lock); on SQLite the caller holds the
    only write lock, so a thread inside enqueue can only be waiting for it."""
    if store.backend == "postgres":
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%jobs%'"
            ).fetchone()
        return row is not None and row[0] > 0
    return in_call(thread, "enqueue")


# -- refusals -------------------------------------------------------------------------


def test_a_connection_to_another_database_is_refused_and_stays_usable(
    store: StoreEnv, app: App, tmp_path: Path
) -> None:
    if store.backend == "postgres":
        import psycopg

        conn: Any = psycopg.connect(pg.ADMIN_URL)
        conn.execute("CREATE TEMP TABLE orders (what text)")
        insert = "INSERT INTO orders (what) VALUES ('elsewhere')"
        message = r"conn is connected to database 'postgres', not to the fleet's database"
    else:
        conn = sqlite3.connect(tmp_path / "other.db")
        conn.execute("CREATE TABLE orders (what)")
        insert = "INSERT INTO orders (what) VALUES ('elsewhere')"
        message = r"conn is open on .*other\.db, not on the fleet's database"
    try:
        conn.execute(insert)
        with pytest.raises(InvalidArgument, match=message):
            store.fleet.enqueue("shell", {}, conn=conn)
        conn.execute(insert)  # the caller's transaction goes on
        assert [r[0] for r in conn.execute("SELECT what FROM orders")] == ["elsewhere"] * 2
        conn.commit()
    finally:
        conn.close()
    assert nothing_written(store)


def test_an_autocommit_connection_outside_a_transaction_is_refused(
    store: StoreEnv, app: App
) -> None:
    if store.backend == "postgres":
        conn = app.connect(autocommit=True)
        message = r"autocommit mode with no transaction open.*with conn\.transaction\(\)"
    else:
        conn = app.connect(isolation_level=None)
        message = r"autocommit mode with no transaction open.*BEGIN IMMEDIATE"
    with pytest.raises(InvalidArgument, match=message):
        store.fleet.enqueue("shell", {}, conn=conn)
    with pytest.raises(InvalidArgument, match=message):
        store.fleet.enqueue_many([], conn=conn)  # judged even with nothing to write
    assert nothing_written(store)


def test_an_autocommit_connection_inside_a_transaction_is_joined(store: StoreEnv, app: App) -> None:
    if store.backend == "postgres":
        conn = app.connect(autocommit=True)
        with pytest.raises(RuntimeError, match="rolled back"), conn.transaction():
            app.order(conn, "order 1")
            store.fleet.enqueue("shell", {"n": 1}, conn=conn)
            raise RuntimeError("rolled back")
        assert nothing_written(store)
        with conn.transaction():
            app.order(conn, "order 2")
            job = store.fleet.enqueue("shell", {"n": 2}, conn=conn)
    else:
        conn = app.connect(isolation_level=None)
        conn.execute("BEGIN")
        app.order(conn, "order 1")
        store.fleet.enqueue("shell", {"n": 1}, conn=conn)
        conn.execute("ROLLBACK")
        assert nothing_written(store)
        conn.execute("BEGIN IMMEDIATE")
        app.order(conn, "order 2")
        job = store.fleet.enqueue("shell", {"n": 2}, conn=conn)
        conn.execute("COMMIT")
    assert [j.id for j in store.fleet.list_jobs()] == [job.id]
    assert app.orders() == ["order 2"]


def test_a_closed_connection_is_refused(store: StoreEnv, app: App) -> None:
    conn = app.connect()
    conn.close()
    message = "conn is closed" if store.backend == "postgres" else "closed database"
    with pytest.raises(InvalidArgument, match=message):
        store.fleet.enqueue("shell", {}, conn=conn)


def test_a_failed_transaction_is_refused(pg_store: StoreEnv) -> None:
    app = App(pg_store)
    try:
        conn = app.connect()
        with pytest.raises(Exception, match="division by zero"):
            conn.execute("SELECT 1 / 0")
        with pytest.raises(InvalidArgument, match=r"its transaction has failed.*roll it back"):
            pg_store.fleet.enqueue("shell", {}, conn=conn)
        conn.rollback()
        pg_store.fleet.enqueue("shell", {}, conn=conn)
        conn.commit()
        assert len(pg_store.fleet.list_jobs()) == 1
    finally:
        app.close()


def test_a_connection_of_another_driver_is_refused(store: StoreEnv, app: App) -> None:
    if store.backend == "postgres":
        other: Any = sqlite3.connect(":memory:")
        message = "conn must be a psycopg.Connection to the fleet's database, not sqlite3"
    else:
        other = f"{store.url}"
        message = "conn must be a sqlite3.Connection to the fleet's database .*, not builtins.str"
    with pytest.raises(InvalidArgument, match=message):
        store.fleet.enqueue("shell", {}, conn=other)
    with pytest.raises(InvalidArgument, match=message):
        store.fleet.submit_plan(plan(shell("build")), conn=other)
    assert nothing_written(store)


@pytest.mark.parametrize("backend", ["memory"])
def test_the_memory_store_refuses_every_connection(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = make_env(backend, tmp_path, request)
    conn = sqlite3.connect(tmp_path / "app.db")
    try:
        with pytest.raises(InvalidArgument, match=r"memory:// fleet .* no connection of yours"):
            env.fleet.enqueue("shell", {}, conn=conn)
        with pytest.raises(InvalidArgument, match=r"memory:// fleet"):
            env.fleet.enqueue_many([env.fleet.new_job("shell", {})], conn=conn)
        with pytest.raises(InvalidArgument, match=r"memory:// fleet"):
            env.fleet.submit_plan(plan(shell("build")), conn=conn)
        assert env.fleet.list_jobs() == []
    finally:
        conn.close()
        env.close()


def test_a_job_refused_by_validation_writes_nothing_and_leaves_the_transaction_usable(
    store: StoreEnv, app: App
) -> None:
    conn = app.connect()
    app.order(conn, "order 1")
    with pytest.raises(InvalidArgument, match="engine"):
        store.fleet.enqueue("not an engine\n", {}, conn=conn)
    with pytest.raises(InvalidArgument, match="limit 'gpu' is not set"):
        store.fleet.enqueue("shell", {}, limit="gpu", conn=conn)
    app.order(conn, "order 2")
    conn.commit()
    assert nothing_written(store) and app.orders() == ["order 1", "order 2"]


def test_a_write_that_fails_midway_is_undone_and_the_transaction_goes_on(
    store: StoreEnv, app: App
) -> None:
    """The job row is in, its event is refused (by a trigger of the test's): the savepoint
    takes the job row back out, and the caller's own writes still commit."""
    conn = app.connect()
    if store.backend == "postgres":
        with app.connect() as admin:
            admin.execute(_REFUSE_EVENTS_PG)
            admin.commit()
        conn.execute("SET test.refuse_events = 'on'")
    else:
        conn.execute(
            "CREATE TEMP TRIGGER refuse_events BEFORE INSERT ON main.events "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    try:
        app.order(conn, "order 1")
        for dedupe_key in (None, "one"):  # PostgreSQL: the bulk statement, then the per-job path
            with pytest.raises(Exception, match="refused by the test"):
                store.fleet.enqueue("shell", {}, dedupe_key=dedupe_key, conn=conn)
        app.order(conn, "order 2")
        conn.commit()
        assert nothing_written(store) and app.orders() == ["order 1", "order 2"]
    finally:
        if store.backend == "postgres":
            with app.connect() as admin:
                admin.execute("DROP FUNCTION agentfleet.refuse_events_in_test() CASCADE")
                admin.commit()


_REFUSE_EVENTS_PG = """
    CREATE FUNCTION agentfleet.refuse_events_in_test() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF current_setting('test.refuse_events', true) = 'on' THEN
            RAISE EXCEPTION 'refused by the test';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER refuse_events_in_test BEFORE INSERT ON agentfleet.events
        FOR EACH ROW EXECUTE FUNCTION agentfleet.refuse_events_in_test();
"""


# -- the caller's connection is left as it was ----------------------------------------


@pytest.mark.parametrize("factory", ["namedtuple_row", "dict_row"])
def test_the_callers_search_path_and_row_factory_are_left_alone(
    pg_store: StoreEnv, factory: str
) -> None:
    """The store's schema is on the search path for its own statements only; a temporary
    table of the caller's named like a store table is not written to."""
    from psycopg import rows

    row_factory = getattr(rows, factory)
    app = App(pg_store)
    try:
        conn = app.connect(row_factory=row_factory)
        conn.execute("SET search_path = public, pg_catalog")
        conn.execute("CREATE TEMP TABLE jobs (mine text)")
        conn.commit()
        job = pg_store.fleet.enqueue("shell", {"n": 1}, dedupe_key="one", conn=conn)
        [many] = pg_store.fleet.enqueue_many([pg_store.fleet.new_job("shell", {})], conn=conn)
        assert _field(conn.execute("SHOW search_path").fetchone(), 0) == "public, pg_catalog"
        assert conn.row_factory is row_factory
        app.order(conn, "order 1")  # public.orders, by the caller's own search path
        conn.commit()
        assert _field(conn.execute("SHOW search_path").fetchone(), 0) == "public, pg_catalog"
        assert _field(conn.execute("SELECT count(*) AS n FROM jobs").fetchone(), 0) == 0
        assert {j.id for j in pg_store.fleet.list_jobs()} == {job.id, many.id}
        assert app.orders() == ["order 1"]
    finally:
        app.close()


def _field(row: Any, index: int) -> Any:
    """A row's field by position, whatever the caller's row factory makes of rows."""
    return list(row.values())[index] if isinstance(row, dict) else row[index]


def test_a_sqlite_callers_row_factory_is_left_alone(sqlite_store: StoreEnv) -> None:
    app = App(sqlite_store)
    try:
        conn = app.connect()
        conn.row_factory = lambda cursor, row: ("mine", *row)
        job = sqlite_store.fleet.enqueue("shell", {"n": 1}, dedupe_key="one", conn=conn)
        assert job.payload == {"n": 1} and job.dedupe_key == "one"
        assert conn.execute("SELECT 1").fetchone() == ("mine", 1)
        conn.commit()
        assert sqlite_store.fleet.get_job(job.id) == job
    finally:
        app.close()


def test_a_sqlite_temporary_table_named_like_a_store_table_is_refused(
    sqlite_store: StoreEnv,
) -> None:
    app = App(sqlite_store)
    try:
        conn = app.connect()
        conn.execute("CREATE TEMP TABLE jobs (mine)")
        with pytest.raises(InvalidArgument, match="temporary table named 'jobs'"):
            sqlite_store.fleet.enqueue("shell", {}, conn=conn)
        assert nothing_written(sqlite_store)
    finally:
        app.close()


def test_a_sqlite_connection_to_a_deleted_database_file_is_refused(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    """Its path names no file any more, so it cannot be shown to be the fleet's: the jobs
    would be written into a file nobody can open again."""
    gone = tmp_path / "gone.db"
    conn = sqlite3.connect(gone)
    try:
        conn.execute("CREATE TABLE orders (what)")
        conn.execute("INSERT INTO orders (what) VALUES ('lost')")
        gone.unlink()
        with pytest.raises(InvalidArgument, match=r"conn is open on .*gone\.db, not on the"):
            sqlite_store.fleet.enqueue("shell", {}, conn=conn)
    finally:
        conn.close()
    assert nothing_written(sqlite_store)


# -- SQLAlchemy -----------------------------------------------------------------------


def _engine(env: StoreEnv) -> Any:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    if env.backend == "postgres":
        return sqlalchemy.create_engine(env.url.replace("postgresql://", "postgresql+psycopg://"))
    return sqlalchemy.create_engine(f"sqlite:///{sqlite_path(env.url)}")


def test_a_sqlalchemy_session_commits_and_rolls_back_the_job(store: StoreEnv, app: App) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from sqlalchemy.orm import Session

    from agentfleet.sqlalchemy import connection_of

    engine = _engine(store)
    insert = sqlalchemy.text("INSERT INTO orders (what) VALUES (:what)")
    try:
        with Session(engine) as session:
            session.execute(insert, {"what": "order 1"})
            store.fleet.enqueue("shell", {"n": 1}, conn=connection_of(session))
            session.rollback()
        assert nothing_written(store) and app.orders() == []
        with Session(engine) as session, session.begin():
            session.execute(insert, {"what": "order 2"})
            job = store.fleet.enqueue("shell", {"n": 2}, conn=connection_of(session))
            p = store.fleet.submit_plan(plan(shell("build")), conn=connection_of(session))
        assert [j.id for j in store.fleet.list_jobs(status=None) if j.plan_id is None] == [job.id]
        assert store.fleet.get_plan(p.id).status is PlanStatus.RUNNING
        assert app.orders() == ["order 2"]
        with engine.connect() as connection:
            with pytest.raises(InvalidArgument, match="no transaction begun"):
                connection_of(connection)
            with connection.begin():
                store.fleet.enqueue("shell", {"n": 3}, conn=connection_of(connection))
        assert len(store.fleet.list_jobs()) == 3
        with Session(engine) as session:
            with pytest.raises(InvalidArgument, match=r"agentfleet\.sqlalchemy\.connection_of"):
                store.fleet.enqueue("shell", {}, conn=session)
            with pytest.raises(InvalidArgument, match="takes a SQLAlchemy Session or Connection"):
                connection_of(engine)
    finally:
        engine.dispose()
