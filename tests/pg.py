"""PostgreSQL for tests: each run creates its own database and drops it."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

ADMIN_URL = os.environ.get(
    "AGENTFLEET_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'agentfleet[postgres]')"
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"no PostgreSQL answers at {urlsplit(ADMIN_URL).netloc}: {exc}".splitlines()[0]
    return None


def create_database(prefix: str | None = None) -> str:
    import psycopg

    prefix = prefix or os.environ.get("AGENTFLEET_TEST_DB_PREFIX", "agentfleet_test")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(ADMIN_URL, name)


def drop_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(url: str) -> None:
    """Empty every agentfleet table (schema_version excepted) between tests."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'agentfleet' "
            "AND tablename <> 'schema_version'"
        ).fetchall()
        if rows:
            tables = ", ".join(f"agentfleet.{r[0]}" for r in rows)
            conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
