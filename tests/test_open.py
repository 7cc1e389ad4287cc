"""Opening stores: URLs, defaults, migrations and the refusal of newer schemas."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

import agentfleet
from agentfleet import InvalidArgument, SchemaTooNew
from agentfleet.connect import DEFAULT_URL


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "malformed database URL"),
        ("fleet.db", "malformed database URL"),
        ("mysql://localhost/db", "unknown database URL scheme 'mysql'"),
        ("sqlite://", "has no path"),
        ("sqlite:///", "has no path"),
    ],
)
def test_bad_urls_are_named(url: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        agentfleet.open(url)


def test_default_is_the_embedded_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with agentfleet.open() as fleet:
        assert fleet.url == DEFAULT_URL
        fleet.enqueue("shell", {})
    assert (tmp_path / ".agentfleet" / "fleet.db").exists()


def test_sqlite_file_persists_and_is_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    with agentfleet.open(url) as fleet:
        job = fleet.enqueue("shell", {"keep": True})
        assert fleet.store.schema_version() >= 1
    with agentfleet.open(url) as fleet:
        assert fleet.get_job(job.id).payload == {"keep": True}
    conn = sqlite3.connect(tmp_path / "f.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    agentfleet.open(url).close()
    conn = sqlite3.connect(tmp_path / "f.db")
    conn.execute("INSERT INTO agentfleet_schema (version) VALUES (999)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNew, match="999 is newer"):
        agentfleet.open(url)


def test_postgres_refuses_a_newer_schema(pg_url: str) -> None:
    import psycopg

    agentfleet.open(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO agentfleet.schema_version (version) VALUES (999)")
    try:
        with pytest.raises(SchemaTooNew, match="999 is newer"):
            agentfleet.open(pg_url)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DELETE FROM agentfleet.schema_version WHERE version = 999")


def test_postgres_cannot_take_an_injected_clock(pg_url: str) -> None:
    with pytest.raises(InvalidArgument, match="server's clock"):
        agentfleet.open(pg_url, clock=lambda: 0.0)


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(agentfleet.StoreUnavailable, match="cannot connect to PostgreSQL"):
        agentfleet.open("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=1")


def test_a_new_database_and_its_folder_are_the_owners_alone(tmp_path: Path) -> None:
    path = tmp_path / "new-folder" / "fleet.db"
    with agentfleet.open(f"sqlite:///{path}") as fleet:
        fleet.enqueue("shell", {"cmd": "true"})
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for file in path.parent.iterdir():  # the database, its WAL and its shared memory
        assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0, file
