"""Store operations written once and free of IO, for a synchronous and an asyncio driver.

An operation is a generator: it yields the statements it needs (`Query`, or `Notify` for a
wake-up at commit), is sent each statement's rows, and returns its result. A statement that
raises is thrown back into the generator at its `yield`, so an operation maps a driver's
refusal (a unique index, say) to its own error the same way on every driver. The store's
synchronous methods run their operation on a `Tx` with `run`; the asyncio API runs the same
generator on an async connection, so a verb's statements and rules exist once.

`Operation` pairs the steps with the scope they need:
    READ         a session: each statement is its own atomic step
    STATEMENT    a write of one statement (PostgreSQL: one round trip, no BEGIN/COMMIT)
    TRANSACTION  a write transaction: every statement commits together, or none does
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from agentfleet.store.dialect import Dialect, Params, Tx

R = TypeVar("R")


class Scope(Enum):
    READ = "read"
    STATEMENT = "statement"
    TRANSACTION = "transaction"


@dataclass(frozen=True, slots=True)
class Query:
    """One statement in the dialect's `:name` and `{token}` form; `tuples` asks for its rows
    as tuples (the readers by position), else as dicts."""

    sql: str
    params: Params | None = None
    tuples: bool = False


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell idle workers of `queue` that work may be ready, once the transaction commits."""

    queue: str = ""


Step = Query | Notify
Steps = Generator[Step, Any, R]


@dataclass(frozen=True)
class Operation(Generic[R]):
    steps: Steps[R]
    scope: Scope


def run(tx: Tx, steps: Steps[R]) -> R:
    """Run an operation's steps on `tx`: the synchronous driver."""
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
                tx.notify(step.queue)
            elif step.tuples:
                sent = tx.tuples(step.sql, step.params)
            else:
                sent = tx.q(step.sql, step.params)
        except Exception as exc:  # the operation decides what a refusal means
            failure = exc


def perform(dialect: Dialect, operation: Operation[R], conn: object | None = None) -> R:
    """Run an operation in the scope it asks for (a write in the caller's transaction on
    `conn` when given, as `Dialect.write`)."""
    if operation.scope is Scope.READ:
        context = dialect.session()
    else:
        context = dialect.write(conn, statement=operation.scope is Scope.STATEMENT)
    with context as tx:
        return run(tx, operation.steps)


__all__ = ["Notify", "Operation", "Query", "Scope", "Step", "Steps", "perform", "run"]
