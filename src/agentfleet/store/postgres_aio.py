"""PostgreSQL on psycopg's async connections: the store's operations and the plans
layer's code, awaited.

Nothing here decides anything about jobs or plans. An operation (store/ops.py) is the
shared SQL store's generator of statements, the one its synchronous methods run; this
driver runs it on a connection of a `psycopg_pool.AsyncConnectionPool`, rendering each
statement with the same dialect (`render`, its placeholders and its parameter binding), in
the scope the operation asks for: a session for a read, one statement on its own, or a
transaction. `BridgedPostgres` is a `Dialect` over the same pool for synchronous code run
by `awaited.call` (the plan verbs): its sessions, transactions and the caller's joined
async connection are awaited one statement at a time. A lost server is StoreUnavailable,
as on the synchronous pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from agentfleet.errors import InvalidArgument, StoreUnavailable
from agentfleet.logs import redact_url
from agentfleet.store import awaited, ops
from agentfleet.store.dialect import Dialect, Params, Row, Tx, not_joinable
from agentfleet.store.ops import Notify, Operation, Scope, Steps
from agentfleet.store.postgres import LOCK_LIMITS, LOCK_PLAN, PostgresDialect, _bind, now_op
from agentfleet.store.postgres_connect import (
    DATABASE_OF,
    JOINED_SEARCH_PATH,
    NOTIFY,
    NOTIFY_CHANNEL,
    SET_SEARCH_PATH,
    USE_SCHEMA,
    check_open_transaction,
    unavailable_on_disconnect,
)
from agentfleet.store.rows import decoded

R = TypeVar("R")
T = TypeVar("T")


class AsyncPostgresTx:
    """One async connection, in a transaction or not: `PostgresTx`, awaited."""

    def __init__(self, dialect: PostgresDialect, conn: psycopg.AsyncConnection[Row]) -> None:
        self._dialect = dialect
        self.conn = conn

    async def q(self, sql: str, params: Params | None = None) -> list[Row]:
        cursor = await self.conn.execute(self._dialect.render(sql), _bind(params or {}))
        return list(await cursor.fetchall()) if cursor.description else []

    async def tuples(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        async with self.conn.cursor(row_factory=tuple_row) as cursor:
            await cursor.execute(self._dialect.render(sql), _bind(params or {}))
            return list(await cursor.fetchall()) if cursor.description else []

    async def script(self, text: str) -> None:
        await self.conn.execute(text.encode())

    async def lock_plan(self, plan_id: int) -> None:
        await self.conn.execute(LOCK_PLAN, (plan_id,))

    async def lock_limits(self) -> None:
        await self.conn.execute(LOCK_LIMITS)

    async def notify(self, queue: str = "") -> None:
        if self._dialect.notify:
            await self.conn.execute(NOTIFY, (NOTIFY_CHANNEL, queue))


class CallersAsyncPostgresTx(AsyncPostgresTx):
    """A caller's async connection, whatever its row factory: rows come back as dicts."""

    async def q(self, sql: str, params: Params | None = None) -> list[Row]:
        async with self.conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(self._dialect.render(sql), _bind(params or {}))
            return list(await cursor.fetchall()) if cursor.description else []


async def run(tx: AsyncPostgresTx, steps: Steps[R]) -> R:
    """Run an operation's steps on `tx`: `ops.run`, awaited."""
    sent: Any = None
    failure: Exception | None = None
    while True:
        try:
            step = steps.send(sent) if failure is None else steps.throw(failure)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        failure = sent = None
        try:
            if isinstance(step, Notify):
                await tx.notify(step.queue)
            elif step.tuples:
                sent = await tx.tuples(step.sql, step.params)
            else:
                sent = await tx.q(step.sql, step.params)
        except Exception as exc:  # the operation decides what a refusal means
            failure = exc


async def _use_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(USE_SCHEMA)


class AsyncPostgres:
    """A store's operations on an async pool of its own, beside the store's (same server,
    same schema, as many connections as the store's pool_size). The pool opens on the first
    call, in the running event loop, and serves that loop only."""

    def __init__(self, dialect: PostgresDialect) -> None:
        self.dialect = dialect
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] | None = None
        self._opening = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def connected(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Row]]:
        loop = asyncio.get_running_loop()
        if self.pool is not None:
            if loop is not self._loop:
                raise InvalidArgument(
                    "this asyncio fleet's connections belong to the event loop it was first "
                    "used in: open one fleet per event loop (agentfleet.aio.open), or close "
                    "it in its loop before using it in another"
                )
            return self.pool
        async with self._opening:
            if self.pool is None:
                pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
                    self.dialect.conninfo,
                    min_size=1,
                    max_size=self.dialect.pool_size,
                    kwargs={
                        "autocommit": True,
                        "row_factory": dict_row,
                        **self.dialect.connect_kwargs,
                    },
                    configure=_use_schema,
                    open=False,
                    name="agentfleet-aio",
                )
                try:
                    await pool.open(wait=True, timeout=15)
                except Exception as exc:
                    await pool.close()
                    raise StoreUnavailable(
                        f"cannot connect to PostgreSQL at {redact_url(self.dialect.conninfo)}: "
                        f"{redact_url(str(exc))}"
                    ) from exc
                self.pool, self._loop = pool, loop
        return self.pool

    async def perform(self, operation: Operation[R]) -> R:
        """Run an operation in the scope it asks for; a write of several statements in one
        transaction (`async with conn.transaction()`), the rest each on its own."""
        pool = await self.connected()
        with unavailable_on_disconnect():
            async with pool.connection() as conn:
                tx = AsyncPostgresTx(self.dialect, conn)
                if operation.scope is Scope.TRANSACTION:
                    async with conn.transaction():
                        return await run(tx, operation.steps)
                return await run(tx, operation.steps)

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        self._opening = asyncio.Lock()  # a later call may come from another loop
        if pool is not None:
            await pool.close()


class BridgedTx(Tx):
    """An async connection as the synchronous `Tx` the plans layer is written for: each
    statement awaited on the loop by `awaited.wait` (so only inside `awaited.call`)."""

    def __init__(self, tx: AsyncPostgresTx) -> None:
        self._tx = tx

    def q(self, sql: str, params: Params | None = None) -> list[Row]:
        return awaited.wait(self._tx.q(sql, params))

    def tuples(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return awaited.wait(self._tx.tuples(sql, params))

    def script(self, text: str) -> None:
        awaited.wait(self._tx.script(text))

    def lock_plan(self, plan_id: int) -> None:
        awaited.wait(self._tx.lock_plan(plan_id))

    def lock_limits(self) -> None:
        awaited.wait(self._tx.lock_limits())

    def notify(self, queue: str = "") -> None:
        awaited.wait(self._tx.notify(queue))


class BridgedPostgres(Dialect):
    """PostgreSQL's dialect whose sessions and transactions are connections of an
    `AsyncPostgres` pool: synchronous store and plan code, run by `awaited.call`, works on
    the async connections without a thread (the syntax and clock are PostgreSQL's)."""

    name, schema_table = PostgresDialect.name, PostgresDialect.schema_table
    syntax = PostgresDialect.syntax
    json_in = time_in = staticmethod(decoded)

    def __init__(self, aio: AsyncPostgres) -> None:
        self.aio = aio

    @property
    def notify(self) -> bool:
        """Whether writes wake idle workers (the store's own dialect says)."""
        return self.aio.dialect.notify

    def placeholder(self, text: str) -> str:
        return self.aio.dialect.placeholder(text)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return self.aio.dialect.is_unique_violation(exc)

    def now(self) -> datetime:
        with self.session() as tx:
            return ops.run(tx, now_op().steps)

    @contextmanager
    def session(self) -> Iterator[Tx]:
        pool = awaited.wait(self.aio.connected())
        with unavailable_on_disconnect(), _entered(pool.connection()) as conn:
            yield BridgedTx(AsyncPostgresTx(self.aio.dialect, conn))

    def statement(self) -> AbstractContextManager[Tx]:
        return self.session()  # one statement is its own transaction, as on the sync pool

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        pool = awaited.wait(self.aio.connected())
        with (
            unavailable_on_disconnect(),
            _entered(pool.connection()) as conn,
            _entered(conn.transaction()),
        ):
            yield BridgedTx(AsyncPostgresTx(self.aio.dialect, conn))

    @contextmanager
    def joined(self, conn: object) -> Iterator[Tx]:
        """The caller's transaction on its own `psycopg.AsyncConnection`, in a savepoint,
        as `PostgresDialect.joined` joins a synchronous one (the same checks, the same
        search path for these statements only, NOTIFY sent if and only if it commits)."""
        if not isinstance(conn, psycopg.AsyncConnection):
            raise not_joinable(conn, "a psycopg.AsyncConnection to the fleet's database")
        pg = self.aio.dialect
        check_open_transaction(conn)
        with unavailable_on_disconnect():
            row = awaited.wait(_database_of(conn))
        search_path = pg.search_path_on_fleets(row, session=self.session)
        with unavailable_on_disconnect(), _entered(conn.transaction()):
            awaited.wait(conn.execute(SET_SEARCH_PATH, (JOINED_SEARCH_PATH,)))
            yield BridgedTx(CallersAsyncPostgresTx(pg, conn))
            awaited.wait(conn.execute(SET_SEARCH_PATH, (search_path,)))


async def _database_of(conn: psycopg.AsyncConnection[Any]) -> tuple[Any, ...]:
    async with conn.cursor(row_factory=tuple_row) as cursor:
        await cursor.execute(DATABASE_OF)
        row = await cursor.fetchone()
    assert row is not None
    return row


@contextmanager
def _entered(manager: AbstractAsyncContextManager[T]) -> Iterator[T]:
    """An async context manager entered and left from synchronous code (`awaited.wait`)."""
    value = awaited.wait(manager.__aenter__())
    try:
        yield value
    except BaseException as exc:
        if not awaited.wait(manager.__aexit__(type(exc), exc, exc.__traceback__)):
            raise
    else:
        awaited.wait(manager.__aexit__(None, None, None))


__all__ = ["AsyncPostgres", "AsyncPostgresTx", "BridgedPostgres", "BridgedTx", "run"]
