"""The dialect layer: one SQL text, run on SQLite or on PostgreSQL.

Statements are written once, with `:name` parameters and a few tokens, and each dialect
renders them for its driver and its clock. This is the public way into a store's database
for everything above the driver (the shared SQL store, the plans layer, the benchmarks):
nothing outside a backend touches its connections.

Tokens:
    {now}            the store's clock (SQLite: the clock read once per transaction;
                     PostgreSQL: the server's now(), the one clock of the fleet)
    {stamp}          a time that orders like the commits it records (run start and end;
                     PostgreSQL's clock_timestamp(), taken after the snapshot)
    {now+:name}      {now} plus the parameter `name`, in seconds; {now-:name} minus it
    {ago:column}     the statement's start minus the value of `column` (seconds), e.g.
                     {ago:l.rate_seconds}: after a lock taken by an earlier statement
    {for_update} {for_share} {skip_locked}
                     row locks; empty on SQLite, whose write lock already serialises
    col {any:name}   `col` is one of the list parameter `name`
    {json:name}      the parameter `name`, a JSON document passed as text (`to_json`)
    {has_label:name} the job's payload lists the label in the parameter `name`
    {leases:name}    the row's (id, lease_epoch) is one of the pairs in the parameter `name`,
                     a JSON list of [id, epoch] passed as text

Parameters: a `datetime` is bound as the dialect stores time, a list or tuple as the
dialect passes a list. Columns come back in each engine's own form; `json_in` and
`time_in` turn them into Python values (a JSON string stays a string on both).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar

from agentfleet.errors import InvalidArgument

Row = dict[str, Any]
Params = Mapping[str, Any]

_TOKEN = re.compile(
    r"\{(now|stamp|for_update|for_share|skip_locked)\}"
    r"|\{now([+-]):(\w+)\}|\{(json|has_label|leases):(\w+)\}|\{ago:(\w+(?:\.\w+)?)\}"
)
_ANY = re.compile(r"(\w+(?:\.\w+)?)\s*\{any:(\w+)\}")
_LOCKS = {
    "for_update": "FOR UPDATE",
    "for_share": "FOR SHARE",
    "skip_locked": "FOR UPDATE SKIP LOCKED",
}


def to_json(value: Any) -> str:
    """A JSON value as the text both engines accept for a JSON column (None is `null`)."""
    return json.dumps(value, separators=(",", ":"))


def status_list(values: Any) -> str:
    """A parenthesised SQL list of status literals; `(NULL)`, matching nothing, if empty."""
    names = sorted(v.value if hasattr(v, "value") else str(v) for v in values)
    for name in names:
        if not name.isidentifier():
            raise InvalidArgument(f"not a status: {name!r}")
    return "(" + (", ".join(f"'{name}'" for name in names) or "NULL") + ")"


@dataclass(frozen=True)
class Syntax:
    """How the tokens read in one dialect. The defaults are SQLite's, the embedded store;
    another engine names only where it differs. Templates take `{param}` (the parameter's
    name), `{sign}` and `{column}`."""

    now: str = ":now"  # bound per transaction from the store's clock
    stamp: str = ":now"
    row_locks: bool = False  # SQLite's one write lock already serialises every writer
    shifted: str = "(:now {sign} :{param})"
    ago: str = "(:now - {column})"
    member_of: str = "{column} IN (SELECT value FROM json_each(:{param}))"
    json: str = ":{param}"
    has_label: str = "EXISTS (SELECT 1 FROM json_each(payload, '$.labels') WHERE value = :{param})"
    leases: str = "(id, lease_epoch) IN (SELECT value ->> 0, value ->> 1 FROM json_each(:{param}))"

    def token(self, name: str) -> str:
        if name in _LOCKS:
            return _LOCKS[name] if self.row_locks else ""
        return str(getattr(self, name))


class Tx(ABC):
    """One connection inside a transaction (or, from `session`, outside any)."""

    @abstractmethod
    def q(self, sql: str, params: Params | None = None) -> list[Row]:
        """Run one statement; its rows as dicts (none for a statement without rows)."""

    def one(self, sql: str, params: Params | None = None) -> Row | None:
        rows = self.q(sql, params)
        return rows[0] if rows else None

    @abstractmethod
    def tuples(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """Run one statement; its rows as tuples, for paths that read many rows."""

    @abstractmethod
    def script(self, text: str) -> None:
        """Run schema DDL (or a maintenance command) as written: no tokens, no parameters."""

    @abstractmethod
    def lock_plan(self, plan_id: int) -> None:
        """Serialise decisions about one plan until the transaction ends."""

    @abstractmethod
    def lock_limits(self) -> None:
        """Serialise claims of jobs that name a fleet-wide limit until the transaction
        ends, so that each claim counts the running jobs the others committed."""

    @abstractmethod
    def notify(self, queue: str = "") -> None:
        """Tell idle workers that work may be ready, once the transaction commits."""


class Dialect(ABC):
    """A database's driver: its transactions, its clock and its few syntax differences."""

    name: ClassVar[str]
    schema_table: ClassVar[str]  # records the applied schema migrations
    syntax: ClassVar[Syntax]

    @abstractmethod
    def tx(self) -> AbstractContextManager[Tx]:
        """A write transaction: every statement in it commits together, or none does."""

    @abstractmethod
    def session(self) -> AbstractContextManager[Tx]:
        """A connection outside any transaction: each statement is its own atomic step."""

    @abstractmethod
    def joined(self, conn: object) -> AbstractContextManager[Tx]:
        """The caller's open transaction on `conn`, a connection of its own to this database:
        the statements run in it and commit or roll back with it (nothing here begins or
        ends it). They run as one sub-transaction (a savepoint), so a write that fails
        leaves the caller's transaction as it was and usable. A connection that cannot be
        joined (another database, no transaction open, closed or failed, another driver's)
        is refused with InvalidArgument, before anything is written."""

    def write(
        self, conn: object | None = None, *, statement: bool = False
    ) -> AbstractContextManager[Tx]:
        """Where a write goes: the caller's transaction on `conn` when given, else the
        store's own (for one statement, `statement`'s)."""
        if conn is not None:
            return self.joined(conn)
        return self.statement() if statement else self.tx()

    def statement(self) -> AbstractContextManager[Tx]:
        """For a write of one statement. By default a write transaction: under SQLite's WAL
        a statement that starts as a read and then writes can be refused at once, so the
        write lock is taken first; PostgreSQL runs it on its own, in one round trip."""
        return self.tx()

    @abstractmethod
    def now(self) -> datetime:
        """The store's clock: leases, run_at and the stale window are judged by it alone."""

    @abstractmethod
    def is_unique_violation(self, exc: BaseException) -> bool:
        """Whether a statement was refused by a unique index (a lock or dedupe key held)."""

    @staticmethod
    @abstractmethod
    def json_in(value: Any) -> Any:
        """A JSON column's value as Python (None stays None)."""

    @staticmethod
    @abstractmethod
    def time_in(value: Any) -> datetime | None:
        """A time column's value as an aware UTC datetime (None stays None)."""

    def placeholder(self, text: str) -> str:
        """Rewrite `:name` parameters for the driver (SQLite takes them as they are)."""
        return text

    def render(self, sql: str) -> str:
        """The statement as this driver runs it (cached: statements are few and reused)."""
        return _render(self, sql)


@lru_cache(maxsize=2048)
def _render(dialect: Dialect, sql: str) -> str:
    syntax = dialect.syntax

    def token(match: re.Match[str]) -> str:
        simple, sign, shifted, kind, param, column = match.groups()
        if simple:
            return syntax.token(simple)
        if sign:
            return syntax.shifted.format(sign=sign, param=shifted)
        if column:
            return syntax.ago.format(column=column)
        return str(getattr(syntax, kind)).format(param=param)

    text = _ANY.sub(lambda m: syntax.member_of.format(column=m[1], param=m[2]), sql)
    return dialect.placeholder(_TOKEN.sub(token, text))


def not_joinable(conn: object, expected: str) -> InvalidArgument:
    """The refusal of a connection of a kind this store cannot write in, saying which kind
    it takes (and, for a SQLAlchemy handle, how to get at its driver's connection)."""
    kind = type(conn)
    hint = ""
    if kind.__module__.split(".")[0] == "sqlalchemy":
        hint = " (for a SQLAlchemy session or connection: agentfleet.sqlalchemy.connection_of)"
    elif kind.__module__.split(".")[0] == "psycopg" and kind.__name__.startswith("Async"):
        hint = " (an async connection is joined by the asyncio API: agentfleet.aio)"
    return InvalidArgument(
        f"conn must be {expected}, not {kind.__module__}.{kind.__qualname__}{hint}"
    )


def bind_with(
    time_out: Callable[[datetime], Any], list_out: Callable[[Sequence[Any]], Any]
) -> Callable[[Params], dict[str, Any]]:
    """A parameter binder converting times and lists the way one driver takes them."""

    def bind(params: Params) -> dict[str, Any]:
        out = dict(params)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = time_out(value)
            elif isinstance(value, list | tuple):
                out[key] = list_out(value)
        return out

    return bind


__all__ = [
    "Dialect",
    "Params",
    "Row",
    "Syntax",
    "Tx",
    "bind_with",
    "not_joinable",
    "status_list",
    "to_json",
]
