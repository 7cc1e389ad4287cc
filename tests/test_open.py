"""Opening stores: URLs, defaults, migrations and the refusal of newer schemas."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

import agentfleet
from agentfleet import InvalidArgument, SchemaTooNew, StoreUnavailable
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
    path = tmp_path / "new-folder" / "inside" / "fleet.db"  # folders made as needed
    with agentfleet.open(f"sqlite:///{path}") as fleet:
        fleet.enqueue("shell", {"cmd": "true"})
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for file in path.parent.iterdir():  # the database, its WAL and its shared memory
        assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0, file


@pytest.mark.parametrize(
    ("url", "clean", "size"),
    [
        ("postgresql://u@h/db", "postgresql://u@h/db", None),
        ("postgresql://u@h/db?pool_size=1", "postgresql://u@h/db", 1),
        (
            "postgresql://u@h/db?application_name=a%20b&pool_size=3&sslmode=disable",
            "postgresql://u@h/db?application_name=a%20b&sslmode=disable",
            3,
        ),
        ("postgresql://u@h/db?sslmode=disable", "postgresql://u@h/db?sslmode=disable", None),
    ],
)
def test_pool_size_is_taken_out_of_a_postgresql_url(url: str, clean: str, size: int | None) -> None:
    pytest.importorskip("psycopg")
    from agentfleet.store.postgres import split_url_options

    assert split_url_options(url) == (clean, size)


@pytest.mark.parametrize("value", ["0", "-1", "two", ""])
def test_a_bad_pool_size_in_the_url_is_named(value: str) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(InvalidArgument, match="pool_size"):
        agentfleet.open(f"postgresql://nobody@127.0.0.1:1/none?pool_size={value}")


def test_the_urls_pool_size_wins_and_the_url_keeps_it(pg_url: str) -> None:
    url = f"{pg_url}?pool_size=2"
    with agentfleet.open(url, pool_size=5) as fleet:
        assert fleet.store.dialect.pool.max_size == 2  # type: ignore[attr-defined]
        assert fleet.url == url  # what jobs that may reach the database are handed
        assert fleet.enqueue("shell", {}).id >= 1


@pytest.mark.parametrize(("asked", "level"), [(None, 2), ("normal", 1), ("EXTRA", 3)])
def test_a_sqlite_fleet_commits_with_full_sync_unless_told(
    asked: str | None, level: int, tmp_path: Path
) -> None:
    """FULL by default: a commit survives a power cut, not only a crash."""
    options = {} if asked is None else {"synchronous": asked}
    with agentfleet.open(f"sqlite:///{tmp_path}/f.db", **options) as fleet:
        fleet.enqueue("shell", {"cmd": "true"})
        with fleet.store.dialect.session() as tx:
            assert tx.tuples("PRAGMA synchronous") == [(level,)]


@pytest.mark.parametrize("asked", ["ful", "", 2])
def test_an_unknown_sqlite_sync_level_is_refused_before_any_file_is_made(
    asked: object, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgument, match="synchronous must be one of OFF, NORMAL, FULL"):
        agentfleet.open(f"sqlite:///{tmp_path}/f.db", synchronous=asked)
    assert not (tmp_path / "f.db").exists()


@pytest.mark.parametrize("what", ["not a database", "a folder"])
def test_a_sqlite_path_that_is_no_database_is_store_unavailable_naming_it(
    what: str, tmp_path: Path
) -> None:
    path = tmp_path / "fleet.db"
    if what == "a folder":
        path.mkdir()
        reason = "unable to open database file"
    else:
        path.write_bytes(b"notes, not a database\n" * 100)
        reason = "file is not a database"
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(StoreUnavailable, match=f"cannot open the SQLite database {path}: {reason}"):
        agentfleet.open(f"sqlite:///{path}")
    assert (path.read_bytes() if path.is_file() else None) == before  # left as it was


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_fleet_closes_twice_without_complaint(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """As `with agentfleet.open(...) as fleet: ... fleet.close()` does."""
    url = (
        request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path}/f.db"
    )
    fleet = agentfleet.open(url)
    fleet.enqueue("shell", {"cmd": "true"})
    fleet.wait_for_jobs(0.0)  # as an idle worker waits: on PostgreSQL, a listener
    fleet.close()
    fleet.close()


def test_a_sqlite_database_is_in_wal_mode_so_readers_never_block_its_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fleet.db"
    with agentfleet.open(f"sqlite:///{path}") as fleet:
        fleet.enqueue("shell", {"cmd": "true"})
        reader = sqlite3.connect(path)
        try:
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
            fleet.enqueue("shell", {"cmd": "true"})  # while the reader's snapshot is open
            assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
            reader.execute("COMMIT")
            assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            reader.close()
        assert len(fleet.list_jobs()) == 2
