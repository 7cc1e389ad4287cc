"""PostgreSQL errors sorted as a real server raises them: a lost connection (a terminated
backend, a server that does not answer, a pool with no connection to give) becomes
StoreUnavailable; a statement the server refused (a lock it could not take) stays itself."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import ConnectionPool, PoolTimeout

from agentfleet import StoreUnavailable
from agentfleet.store.postgres_connect import lost_connection, unavailable_on_disconnect


def _raised(action: object) -> psycopg.OperationalError:
    try:
        action()  # type: ignore[operator]
    except psycopg.OperationalError as exc:
        return exc
    raise AssertionError("no error")


def test_a_terminated_backend_is_a_lost_connection(pg_url: str) -> None:
    with (
        psycopg.connect(pg_url, autocommit=True) as victim,
        psycopg.connect(pg_url, autocommit=True) as killer,
    ):
        pid = victim.info.backend_pid
        killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        exc = _raised(lambda: victim.execute("SELECT 1"))
    assert lost_connection(exc), (type(exc), exc.sqlstate)
    refused = pytest.raises(StoreUnavailable, match="lost the connection to PostgreSQL")
    with refused, unavailable_on_disconnect():
        raise exc


def test_a_server_that_does_not_answer_is_a_lost_connection() -> None:
    exc = _raised(lambda: psycopg.connect("postgresql://postgres@127.0.0.1:9/x", connect_timeout=5))
    assert exc.sqlstate is None and lost_connection(exc)


def test_a_pool_with_no_connection_to_give_is_a_lost_connection(pg_url: str) -> None:
    pool = ConnectionPool(pg_url, min_size=1, max_size=1, timeout=0.1, open=True)
    with pool, pool.connection():
        exc = _raised(lambda: pool.getconn(timeout=0.1))
    assert isinstance(exc, PoolTimeout) and lost_connection(exc)


def test_a_lock_the_server_could_not_take_is_not_a_lost_connection(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS lock_probe (x int)")
    try:
        with psycopg.connect(pg_url) as holder, psycopg.connect(pg_url) as waiter:
            holder.execute("LOCK TABLE lock_probe IN ACCESS EXCLUSIVE MODE")
            waiter.execute("SET lock_timeout = '50ms'")
            exc = _raised(lambda: waiter.execute("SELECT * FROM lock_probe"))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as setup:
            setup.execute("DROP TABLE lock_probe")
    assert isinstance(exc, psycopg.errors.LockNotAvailable) and not lost_connection(exc)
    with pytest.raises(psycopg.OperationalError) as raised, unavailable_on_disconnect():
        raise exc
    assert raised.value is exc  # the server's own refusal, as it came
