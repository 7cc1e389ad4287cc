"""A SQLite database this process may only read opens for reading: `ls` and `show` work,
writes are StoreUnavailable saying so, and nothing is half-written. The file (and, for the
harder case, its folder) is made immutable with chattr, which binds even root."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentfleet
from agentfleet import StoreUnavailable


def _chattr(flag: str, *paths: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True)
    return done.returncode == 0


@pytest.fixture(params=["file", "file-and-folder"])
def read_only_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "fleet.db"
    with agentfleet.open(f"sqlite:///{path}") as fleet:
        fleet.enqueue("shell", {"cmd": "echo kept"})
    frozen = [path] if request.param == "file" else [path, tmp_path]
    if not _chattr("+i", *frozen):
        pytest.skip("cannot make a file immutable here (needs chattr on a supporting file system)")
    try:
        yield f"sqlite:///{path}"
    finally:
        _chattr("-i", *frozen)


def test_a_read_only_database_opens_for_reading(read_only_db: str) -> None:
    with agentfleet.open(read_only_db) as fleet:
        [job] = fleet.list_jobs()
        assert job.payload == {"cmd": "echo kept"}
        assert fleet.store.schema_version() >= 7


def test_a_write_to_a_read_only_database_is_store_unavailable(read_only_db: str) -> None:
    with agentfleet.open(read_only_db) as fleet:
        with pytest.raises(StoreUnavailable, match="read-only"):
            fleet.enqueue("shell", {"cmd": "echo lost"})
        assert len(fleet.list_jobs()) == 1


def test_the_command_line_lists_a_read_only_database(read_only_db: str, tmp_path: Path) -> None:
    from tests.worker.helpers import cli

    listed = cli("--db", read_only_db, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    refused = cli("--db", read_only_db, "enqueue", "--", "echo", "no")
    assert refused.returncode == 4 and "read-only" in refused.stderr
    assert "Traceback" not in refused.stderr
