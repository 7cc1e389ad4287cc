"""PostgreSQL's connections: the URL's own options, the store's schema on every
connection, LISTEN and the wait for a notification, which caller's connections a job can
be written in, and a lost server read as StoreUnavailable. Shared by the synchronous store
and the asyncio one, so that each rule is written once."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

from agentfleet.errors import InvalidArgument, StoreUnavailable
from agentfleet.store.postgres_schema import SCHEMA

NOTIFY_CHANNEL = "agentfleet_jobs"
NOTIFY = "SELECT pg_notify(%s, %s)"  # (channel, queue): sent when the transaction commits
# Every pooled connection works in the store's schema. A SET, not the `options` startup
# parameter, which PgBouncer refuses.
USE_SCHEMA = f"SET search_path = {SCHEMA}"

# Which database a connection is on: its name, and what tells it from a namesake (its oid,
# and when its server started; a server restarted since it was last read is read again).
DATABASE_OF = (
    "SELECT current_database(), (SELECT oid FROM pg_database "
    "WHERE datname = current_database()), pg_postmaster_start_time(), "
    "current_setting('search_path')"
)
# The store's tables first, then the caller's temporary ones: pg_temp, searched first
# unless named, would let a temporary table of the caller's named `jobs` take the writes.
JOINED_SEARCH_PATH = f"{SCHEMA}, pg_temp"
SET_SEARCH_PATH = "SELECT set_config('search_path', %s, true)"  # for the transaction only
_WHY_NOT = {
    TransactionStatus.INERROR: "its transaction has failed (a statement in it raised): roll "
    "it back before writing in it again",
    TransactionStatus.ACTIVE: "a command is in progress on it",
    TransactionStatus.UNKNOWN: "it is broken (its server went away)",
}


def check_open_transaction(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    """Refuse a caller's connection with no transaction to join, or one that cannot take
    a statement, saying why in words."""
    if conn.closed:
        raise InvalidArgument("conn is closed")
    status = conn.info.transaction_status
    if status in _WHY_NOT:
        raise InvalidArgument(f"conn cannot be written in: {_WHY_NOT[status]}")
    if status == TransactionStatus.IDLE and conn.autocommit:
        raise InvalidArgument(
            "conn is in autocommit mode with no transaction open, so there is no "
            "transaction to join: enqueue inside `with conn.transaction():` (or connect "
            "with autocommit=False), and commit when done"
        )


def split_url_options(url: str) -> tuple[str, int | None]:
    """The URL without agentfleet's own query options (libpq refuses unknown ones), and
    the `pool_size` it named, if any: ``postgresql://host/db?pool_size=1``."""
    head, sep, rest = url.partition("?")
    if not sep:
        return url, None
    query, hash_, fragment = rest.partition("#")
    kept: list[str] = []
    pool_size: int | None = None
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if unquote(key) != "pool_size":
            kept.append(item)
            continue
        value = unquote(value)
        if not value.isdigit() or int(value) < 1:
            raise InvalidArgument(
                f"pool_size={value!r} in the database URL must be a whole number >= 1"
            )
        pool_size = int(value)
    clean = head + ("?" + "&".join(kept) if any(kept) else "") + hash_ + fragment
    return clean, pool_size


def checked_pool_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"pool_size must be a whole number >= 1, not {value!r}")
    return value


def use_schema(conn: psycopg.Connection[Any]) -> None:
    conn.execute(USE_SCHEMA)


def listen(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")


def wait_on(conn: psycopg.Connection[Any], timeout: float, interrupt: int | None) -> bool:
    """Whether a notification reached this LISTENing connection within `timeout`; False
    at once when `interrupt` becomes readable."""
    deadline = monotonic() + max(0.0, timeout)
    while True:
        # timeout=0 reads what already came (kept from earlier queries, or waiting in the
        # socket) without blocking.
        if any(True for _ in conn.notifies(timeout=0.0)):
            return True
        left = deadline - monotonic()
        if left <= 0:
            return False
        watched = [conn.fileno()] if interrupt is None else [conn.fileno(), interrupt]
        ready, _, _ = select.select(watched, [], [], left)
        if interrupt is not None and interrupt in ready:
            return False


def lost_connection(exc: psycopg.OperationalError) -> bool:
    """The connection broke or the server went away: not a refusal by a statement."""
    if isinstance(exc, PoolTimeout):
        return True
    state = exc.sqlstate
    # No SQLSTATE: the socket broke; 08: connection exception; 57P: the server shut the
    # session down (pg_terminate_backend, a restart, a crash).
    return state is None or state.startswith(("08", "57P"))


@contextmanager
def unavailable_on_disconnect() -> Iterator[None]:
    try:
        yield
    except psycopg.OperationalError as exc:
        if not lost_connection(exc):
            raise
        raise StoreUnavailable(
            f"lost the connection to PostgreSQL ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}); "
            "a write in flight may or may not have been committed"
        ) from exc
