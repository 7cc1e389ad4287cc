"""PostgreSQL on psycopg's async connections: the store's own operations, awaited.

Nothing here decides anything about jobs. An operation (store/ops.py) is the shared SQL
store's generator of statements, the one its synchronous methods run; this driver runs it
on a connection of a `psycopg_pool.AsyncConnectionPool`, rendering each statement with the
same dialect (`render`, its placeholders and its parameter binding), in the scope the
operation asks for: a session for a read, one statement on its own, or a transaction.
A lost server is StoreUnavailable, as on the synchronous pool.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from agentfleet.errors import InvalidArgument, StoreUnavailable
from agentfleet.logs import redact_url
from agentfleet.store.dialect import Params, Row
from agentfleet.store.ops import Notify, Operation, Scope, Steps
from agentfleet.store.postgres import (
    NOTIFY,
    NOTIFY_CHANNEL,
    USE_SCHEMA,
    PostgresDialect,
    _bind,
    _unavailable_on_disconnect,
)

R = TypeVar("R")


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

    async def notify(self, queue: str = "") -> None:
        if self._dialect.notify:
            await self.conn.execute(NOTIFY, (NOTIFY_CHANNEL, queue))


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

    async def _pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Row]]:
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
        pool = await self._pool()
        with _unavailable_on_disconnect():
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


__all__ = ["AsyncPostgres", "AsyncPostgresTx", "run"]
