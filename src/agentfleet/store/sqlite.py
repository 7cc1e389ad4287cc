"""SQLite backend: the embedded default, and (in memory) the test store.

Safety across threads and processes comes from SQLite itself: WAL mode, a busy timeout,
and `BEGIN IMMEDIATE` so that every transaction takes the database's single write lock
before it reads anything it will decide on. The job operations are the shared SQL store's;
this module adds only what SQLite forces: its connections and write lock, its clock (the
one machine's, or a test's), wake-ups without notifications, and the batched hot path
(json_each in place of arrays, an index named for the claim order).

The memory store is this same code over one in-memory connection guarded by a lock: one
truth for the SQL semantics, not a second implementation.
"""

from __future__ import annotations

import json
import os
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from agentfleet.errors import InvalidArgument, StoreUnavailable
from agentfleet.models import Lease, utc_from_timestamp
from agentfleet.store import limits, rules
from agentfleet.store.dialect import (
    Dialect,
    Params,
    Row,
    Syntax,
    Tx,
    bind_with,
    not_joinable,
    to_json,
)
from agentfleet.store.rows import JOB_COLUMNS, claimed_leases, sqlite_json, sqlite_time
from agentfleet.store.sql import Batch, SqlStore, pause
from agentfleet.store.sqlite_schema import LATEST_VERSION, MIGRATIONS
from agentfleet.store.sqlite_watch import FileWatch

Clock = Callable[[], float]
MMAP_BYTES = 256 * 1024 * 1024
# How often a waiter without a doorbell looks for other connections' commits: often while
# they come, less often as the database stays quiet. With one (sqlite_watch: Linux), it
# sleeps until the database's files are written, and looks anyway this often.
WAKE_CHECK_BUSY, WAKE_CHECK_QUIET = 0.002, 0.01
WAKE_CHECK_WATCHED, RING = 0.25, 0.1

_bind = bind_with(lambda value: value.timestamp(), lambda values: json.dumps(list(values)))


class SqliteTx(Tx):
    def __init__(self, dialect: SqliteDialect, conn: sqlite3.Connection, now: float) -> None:
        self._dialect = dialect
        self.conn = conn
        self.now = now

    def _execute(self, sql: str, params: Params | None) -> sqlite3.Cursor:
        values = _bind(params) if params else {}
        values["now"] = self.now
        return self.conn.execute(self._dialect.render(sql), values)

    def q(self, sql: str, params: Params | None = None) -> list[Row]:
        return [dict(row) for row in self._execute(sql, params).fetchall()]

    def tuples(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        cursor = self._execute(sql, params)
        cursor.row_factory = None
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows

    def script(self, text: str) -> None:
        for statement in (part.strip() for part in text.split(";")):
            if statement:
                self.conn.execute(statement)

    def lock_plan(self, plan_id: int) -> None:
        return None  # BEGIN IMMEDIATE already holds the database's only write lock

    def lock_limits(self) -> None:
        return None  # BEGIN IMMEDIATE already holds the database's only write lock

    def notify(self, queue: str = "") -> None:
        return None  # no notifications: waiters watch data_version (SqliteStore.wait_for_jobs)


class CallersSqliteTx(SqliteTx):
    """A caller's connection, whatever its row factory: rows come back as the store reads
    them."""

    def _execute(self, sql: str, params: Params | None) -> sqlite3.Cursor:
        cursor = super()._execute(sql, params)
        cursor.row_factory = sqlite3.Row
        return cursor


class SqliteDialect(Dialect):
    """SQLite's connections (one per thread, or one shared in memory) and its syntax."""

    name = "sqlite"
    schema_table = "agentfleet_schema"
    syntax = Syntax()  # the defaults are SQLite's
    json_in = staticmethod(sqlite_json)
    time_in = staticmethod(sqlite_time)

    def __init__(
        self, path: Path | None, *, clock: Clock, busy_timeout: float, synchronous: str
    ) -> None:
        self.clock = clock
        self.memory = path is None
        self.path = ":memory:" if path is None else str(path)
        self.busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._registry_lock = threading.Lock()
        # Memory: one connection, one lock, no yield between compare and set.
        self._memory_lock = threading.RLock()
        self._shared: sqlite3.Connection | None = None

    def is_unique_violation(self, exc: BaseException) -> bool:
        return (
            isinstance(exc, sqlite3.IntegrityError)
            and exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_UNIQUE
        )

    def now(self) -> datetime:
        return utc_from_timestamp(self.clock())  # type: ignore[return-value]

    # -- connections and transactions -------------------------------------------------

    def _open_connection(self) -> sqlite3.Connection:
        cannot_open = f"cannot open the SQLite database {self.path}"
        try:
            conn = self._connect(self.path, uri=False)
        except sqlite3.OperationalError as exc:
            # The file is readable but neither it nor its folder is writable, so SQLite
            # cannot make the WAL's index beside it. Then no writer is at work either (it
            # would have made one): read it as the immutable file it is.
            try:
                conn = self._connect(f"file:{self.path}?mode=ro&immutable=1", uri=True)
            except sqlite3.Error:
                raise StoreUnavailable(f"{cannot_open}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # not a SQLite database, or a damaged one
            raise StoreUnavailable(f"{cannot_open}: {exc}") from exc
        with self._registry_lock:
            self._connections.append(conn)
        return conn

    def _connect(self, target: str, *, uri: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            target,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=not self.memory,
            uri=uri,
        )
        try:
            self._set_up(conn, read_only=uri)
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_up(self, conn: sqlite3.Connection, *, read_only: bool) -> None:
        conn.row_factory = sqlite3.Row
        if not self.memory and not read_only:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        if not self.memory:
            # Another process's commit empties this connection's page cache; mapped pages
            # are then re-read from memory rather than by a system call each.
            conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # fails now, not later

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (the one shared connection, in memory)."""
        if self.memory:
            if self._shared is None:
                self._shared = self._open_connection()
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open_connection()
            self._local.conn = conn
        return conn

    def _guard(self) -> AbstractContextManager[Any]:
        return self._memory_lock if self.memory else nullcontext()

    @contextmanager
    def tx(self) -> Iterator[SqliteTx]:
        """A write transaction holding the database write lock from its first statement."""
        with self._guard(), _unavailable_when_read_only(self.path):
            conn = self.connection()
            self._begin_immediate(conn)
            try:
                yield SqliteTx(self, conn, self.clock())
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def session(self) -> Iterator[SqliteTx]:
        with self._guard():
            yield SqliteTx(self, self.connection(), self.clock())

    @contextmanager
    def joined(self, conn: object) -> Iterator[SqliteTx]:
        """The caller's transaction on its own sqlite3 connection to this database file.
        One that has none open yet, where Python's sqlite3 would open one before the first
        write, gets it here with BEGIN IMMEDIATE (the write lock first, as every store
        transaction takes it); an autocommit connection with none open is refused."""
        caller = self._joinable(conn)
        if not caller.in_transaction:
            caller.execute("BEGIN IMMEDIATE")
        with _unavailable_when_read_only(self.path):
            caller.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                yield CallersSqliteTx(self, caller, self.clock())
            except BaseException:
                if caller.in_transaction:  # else SQLite already rolled it all back
                    caller.execute(f"ROLLBACK TO {_SAVEPOINT}")
                    caller.execute(f"RELEASE {_SAVEPOINT}")
                raise
            caller.execute(f"RELEASE {_SAVEPOINT}")

    def _joinable(self, conn: object) -> sqlite3.Connection:
        """`conn` if the store can write in its transaction; else why not, in words."""
        if self.memory:
            raise InvalidArgument(
                "a memory:// fleet keeps its database inside this process, on a connection "
                "of its own: there is no connection of yours to join (use SQLite or "
                "PostgreSQL to enqueue in your own transaction)"
            )
        if not isinstance(conn, sqlite3.Connection):
            raise not_joinable(conn, f"a sqlite3.Connection to the fleet's database {self.path}")
        try:
            cursor = conn.cursor()
            cursor.row_factory = None
            files = cursor.execute("PRAGMA database_list").fetchall()
            shadow = cursor.execute(_SHADOWING).fetchone()
        except sqlite3.ProgrammingError as exc:  # closed, or made on another thread
            hint = ""
            if "thread" in str(exc):  # the asyncio API calls SQLite on a worker thread
                hint = "; open it with sqlite3.connect(..., check_same_thread=False)"
            raise InvalidArgument(f"conn cannot be used here: {exc}{hint}") from exc
        main = next((str(row[2]) for row in files if row[1] == "main"), "")
        if not _same_file(main, self.path):
            raise InvalidArgument(
                f"conn is open on {main or 'a database in memory'}, not on the fleet's "
                f"database {self.path}: a job can only be written in a transaction on "
                "the fleet's own database"
            )
        if shadow is not None:
            raise InvalidArgument(
                f"conn has a temporary table named {shadow[0]!r}, which SQLite would write "
                "the store's rows to on that connection: drop it, or enqueue on another "
                "connection"
            )
        if not conn.in_transaction and _autocommits(conn):
            raise InvalidArgument(
                "conn is in autocommit mode with no transaction open, so there is no "
                'transaction to join: run conn.execute("BEGIN IMMEDIATE") first (or connect '
                "without isolation_level=None), and commit when done"
            )
        return conn

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, retrying every fraction of a millisecond while another
        process holds it. SQLite's own busy handler sleeps 1, 2, 5, 10 ms and longer, so
        two busy workers handed the lock back and forth late and mostly idled; the same
        busy timeout still bounds the wait."""
        if self.memory:
            conn.execute("BEGIN IMMEDIATE")
            return
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + self.busy_timeout
            pause = 0.0001
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                        raise
                    if time.monotonic() >= deadline:
                        raise StoreUnavailable(
                            f"the SQLite database {self.path} stayed locked by another "
                            f"writer for {self.busy_timeout:g} s"
                        ) from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    def close(self) -> None:
        with self._registry_lock:
            for conn in self._connections:
                with suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()
        self._shared = None


# What the batch completion reads: [[job_id, epoch, result JSON], ...].
_COMPLETE_BATCH = """
    UPDATE jobs SET status = 'succeeded', result = i.result, error = NULL,
        finished_at = :now, updated_at = :now, lease_expires_at = NULL, rev = rev + 1
    FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS epoch,
                 json_extract(value, '$[2]') AS result
          FROM json_each(:items)) AS i
    WHERE jobs.id = i.id AND jobs.lease_epoch = i.epoch AND NOT jobs.cancel_requested
      AND +jobs.status = 'running' -- '+': look jobs up by id, not scan by status
    RETURNING jobs.id, jobs.lease_epoch, jobs.plan_id"""

_CLOSE_BATCH_RUNS = """
    UPDATE runs SET status = 'succeeded', finished_at = :now
    WHERE status = 'running' AND (job_id, epoch) IN (
        SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:pairs))"""

# Where a claimed row's payload is, and what it says when the job names a limit.
_PAYLOAD = JOB_COLUMNS.replace(" ", "").split(",").index("payload")
_NAMES_A_LIMIT = '"limit"'
_LOG_BATCH = """
    INSERT INTO events (job_id, kind, at, epoch, worker, data)
    SELECT j.id, :kind, :now, j.lease_epoch, j.worker, {data} FROM jobs j
    WHERE j.id IN (SELECT value FROM json_each(:ids)) ORDER BY j.id"""


class SqliteStore(SqlStore):
    """The shared SQL store over a SQLite file (one connection per thread) or memory."""

    dialect: SqliteDialect

    def __init__(
        self,
        path: str | Path | None,
        *,
        url: str,
        clock: Clock | None = None,
        busy_timeout: float = 30.0,
        synchronous: str = "FULL",
    ) -> None:
        levels = ("OFF", "NORMAL", "FULL", "EXTRA")  # SQLite takes any other word as NORMAL
        if not isinstance(synchronous, str) or synchronous.upper() not in levels:
            raise InvalidArgument(
                f"synchronous must be one of {', '.join(levels)}, not {synchronous!r}"
            )
        if path is not None:
            _create_private(Path(path))
        dialect = SqliteDialect(
            None if path is None else Path(path),
            clock=clock or time.time,
            busy_timeout=busy_timeout,
            synchronous=synchronous,
        )
        super().__init__(dialect, url=url)
        self._wake_check = WAKE_CHECK_BUSY
        self._seen = threading.local()  # per thread: the data_version its connection saw last
        self._watches: list[FileWatch] = []  # and its doorbell, closed with the store
        self._watches_lock = threading.Lock()
        self.migrate(MIGRATIONS, LATEST_VERSION)

    def migrate(self, migrations: Sequence[tuple[int, str]], latest: int) -> None:
        """Differs by necessity: SQLite changes a constraint by rebuilding the table, which
        needs foreign keys off (a PRAGMA that only works outside a transaction); they are
        checked before the migration commits."""
        conn = self.dialect.connection()
        conn.execute("PRAGMA foreign_keys=OFF")
        try:
            super().migrate(migrations, latest)
        finally:
            conn.execute("PRAGMA foreign_keys=ON")

    def before_commit_of_migration(self, tx: Tx) -> None:
        broken = tx.q("PRAGMA foreign_key_check")
        if broken:
            raise StoreUnavailable(f"the schema upgrade would break foreign keys: {broken[:5]}")

    # -- the batched hot path ---------------------------------------------------------
    # Differs by necessity: SQLite has no arrays and no data-modifying CTEs, so a batch
    # passes its ids as JSON and takes a few statements inside one write transaction;
    # rows become Jobs and Leases after the commit, not under the write lock.

    def batch(self, done: Sequence[tuple[Lease, Any]], claim: rules.Claim | None) -> Batch:
        items = _completion_items(done)
        with self.dialect.tx() as tx:
            completed, plans = self._complete_in(tx, items)
            rows, run_ids = self._claim_in(tx, claim) if claim else ([], {})
        return (
            completed,
            plans,
            claimed_leases([self.read.job(r) for r in rows], run_ids, claim.ttl if claim else 0.0),
        )

    def _claim_in(
        self, tx: SqliteTx, claim: rules.Claim
    ) -> tuple[list[tuple[Any, ...]], dict[int, int]]:
        """Claim in the caller's transaction: the claimed rows, and each one's run id."""
        ready, params = claim.ready()
        rows = tx.tuples(
            f"""
            UPDATE jobs SET {rules.CLAIM_SET}
            WHERE id IN (
                SELECT j.id FROM jobs j INDEXED BY jobs_ready  -- claim order, no sort
                WHERE {ready}
                ORDER BY j.priority DESC, j.id
                LIMIT :limit)
            RETURNING {JOB_COLUMNS}
            """,
            params,
        )
        if not rows:
            return rows, {}
        ids = json.dumps([row[0] for row in rows])
        opened = tx.tuples(
            "INSERT INTO runs (job_id, attempt, epoch, worker, status, started_at) "
            "SELECT id, attempts, lease_epoch, worker, 'running', :now FROM jobs "
            "WHERE id IN (SELECT value FROM json_each(:ids)) RETURNING job_id, id",
            {"ids": ids},
        )
        claimed = _LOG_BATCH.format(data="json_object('attempt', j.attempts)")
        tx.conn.execute(claimed, {"ids": ids, "kind": "claimed", "now": tx.now})
        limited = [row[0] for row in rows if _NAMES_A_LIMIT in row[_PAYLOAD]]
        if limited:  # a rate counts these starts (a cheap look at the payload text first)
            limits.record_starts(tx, limited)
        return rows, dict(opened)

    def _complete_in(self, tx: SqliteTx, items: str | None) -> tuple[list[int], list[int]]:
        """Complete every lease that still owns its job, fenced per row; three statements."""
        if items is None:
            return [], []
        rows = tx.tuples(_COMPLETE_BATCH, {"items": items})
        if rows:
            pairs = json.dumps([[job_id, epoch] for job_id, epoch, _ in rows])
            tx.conn.execute(_CLOSE_BATCH_RUNS, {"pairs": pairs, "now": tx.now})
            ids = json.dumps([row[0] for row in rows])
            tx.conn.execute(
                _LOG_BATCH.format(data="'{}'"), {"ids": ids, "kind": "succeeded", "now": tx.now}
            )
        plans = sorted({plan for _, _, plan in rows if plan is not None})
        return [row[0] for row in rows], plans

    # -- wake-ups ---------------------------------------------------------------------

    def wait_for_jobs(self, timeout: float, interrupt: int | None = None) -> bool:
        """Wake when another connection commits (SQLite has no notifications).

        `PRAGMA data_version` changes when any other connection has committed, and reading
        it touches no table. On Linux the wait sleeps until the database's files are
        written (inotify, see sqlite_watch) and then reads it; elsewhere it is read every
        2 ms while the database is busy, backing off to every 10 ms while it is quiet. The
        version each thread saw last is kept between calls, so a commit that lands while
        the caller is busy wakes its next call at once. A wake only says the database
        changed: the caller's claim decides whether there is work. This thread's own
        commits do not count (they change no version its connection reads).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if self.dialect.memory:
            pause(timeout, interrupt)
            return False
        conn = self.dialect.connection()
        watch = self._watch()  # before the first read: no write after it goes unrung
        # A ring comes with a commit's first WAL write; the commit shows in data_version
        # only once it is synced and published (through the mapped -shm file, which rings
        # nothing), so after a ring the version is polled for a short while.
        polling_until = 0.0 if watch is None or not watch.rang() else time.monotonic() + RING
        seen: int | None = getattr(self._seen, "version", None)
        while True:
            version: int = conn.execute("PRAGMA data_version").fetchone()[0]
            self._seen.version = version
            if seen is not None and version != seen:
                self._wake_check = WAKE_CHECK_BUSY
                return True
            seen = version
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return False
            if watch is None or now < polling_until:
                if pause(min(self._wake_check, left), interrupt):
                    return False
                self._wake_check = min(self._wake_check * 1.2, WAKE_CHECK_QUIET)
                if watch is not None and watch.rang():
                    polling_until = time.monotonic() + RING
                continue
            watched = [watch.fileno()] if interrupt is None else [watch.fileno(), interrupt]
            ready, _, _ = select.select(watched, [], [], min(WAKE_CHECK_WATCHED, left))
            if interrupt is not None and interrupt in ready:
                return False
            if ready and watch.rang():
                polling_until = time.monotonic() + RING
                self._wake_check = WAKE_CHECK_BUSY

    def _watch(self) -> FileWatch | None:
        """This thread's doorbell, made on its first wait (None where there is none)."""
        if not hasattr(self._seen, "watch"):
            watch = FileWatch.open(self.dialect.path)
            self._seen.watch = watch
            if watch is not None:
                with self._watches_lock:
                    self._watches.append(watch)
        found: FileWatch | None = self._seen.watch
        return found

    def close(self) -> None:
        self.dialect.close()
        self._seen = threading.local()  # a new connection counts versions afresh
        with self._watches_lock:
            for watch in self._watches:
                watch.close()
            self._watches.clear()


_SAVEPOINT = "agentfleet_write"
# A connection's temporary tables come first when SQLite looks a name up: one named like a
# table of the store would take the store's writes.
_SHADOWING = (
    "SELECT name FROM temp.sqlite_schema WHERE type IN ('table', 'view') AND name IN "
    "(SELECT name FROM main.sqlite_schema WHERE type = 'table') ORDER BY name LIMIT 1"
)


def _same_file(one: str, other: str) -> bool:
    try:
        return bool(one) and os.path.samefile(one, other)
    except OSError:
        return False


def _autocommits(conn: sqlite3.Connection) -> bool:
    """Whether the connection runs each statement on its own unless told BEGIN: Python's
    `autocommit=True` (3.12 on), or the legacy `isolation_level=None`. A connection in the
    legacy mode otherwise opens a transaction before a write, and the caller commits it."""
    autocommit = getattr(conn, "autocommit", None)
    if isinstance(autocommit, bool):
        return autocommit
    return conn.isolation_level is None


@contextmanager
def _unavailable_when_read_only(path: str) -> Iterator[None]:
    """A write to a database this process may only read is StoreUnavailable, saying so."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_READONLY:
            raise
        raise StoreUnavailable(
            f"the SQLite database {path} is read-only here: reads work, writes do not ({exc})"
        ) from exc


def _create_private(path: Path) -> None:
    """A database this store creates, and its folder, are its owner's alone: the file holds
    every job's prompt, environment and output."""
    folder = path.parent
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    if not path.exists():
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _completion_items(done: Sequence[tuple[Lease, Any]]) -> str | None:
    """[[job_id, epoch, result JSON], ...] for the batch completion, or None for none;
    built before the write lock is taken."""
    if not done:
        return None
    return json.dumps(
        [
            [lease.job_id, lease.epoch, "null" if result is None else to_json(result)]
            for lease, result in done
        ],
        separators=(",", ":"),
    )
