"""Which database a command uses when none is named: the nearest .agentfleet/fleet.db in
this folder or above (as git finds .git). A read never creates one; a command that adds
work creates one here and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet.connect import find_database
from tests.worker.helpers import child_env, cli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if find_database(tmp_path) is not None:
        pytest.skip("a database already lies in a folder above the test's")
    root = tmp_path / "project"
    (root / "jobs" / "deep").mkdir(parents=True)
    return root


def test_a_command_in_a_subfolder_uses_the_projects_database(project: Path) -> None:
    made = cli("init", cwd=project, env=child_env())
    assert made.returncode == 0, made.stderr
    assert "created a new database" in made.stderr
    enqueued = cli("enqueue", "--json", "--", "echo", "hi", cwd=project, env=child_env())
    assert enqueued.returncode == 0, enqueued.stderr
    listed = cli("ls", "--json", cwd=project / "jobs" / "deep", env=child_env())
    assert listed.returncode == 0, listed.stderr
    assert "echo" in listed.stdout
    assert not (project / "jobs" / ".agentfleet").exists()
    assert not (project / "jobs" / "deep" / ".agentfleet").exists()


def test_a_read_with_no_database_around_says_so_and_creates_nothing(project: Path) -> None:
    for args in (["ls"], ["show", "1"], ["plan", "ls"], ["workers"]):
        refused = cli(*args, cwd=project, env=child_env())
        assert refused.returncode == 4, (args, refused.stderr)
        assert "no agentfleet database in" in refused.stderr and "agentfleet init" in refused.stderr
    assert not (project / ".agentfleet").exists()


def test_adding_work_with_no_database_creates_one_here_and_says_where(project: Path) -> None:
    done = cli("enqueue", "--", "true", cwd=project / "jobs", env=child_env())
    assert done.returncode == 0, done.stderr
    where = project / "jobs" / ".agentfleet" / "fleet.db"
    assert f"created a new database: {where}" in done.stderr and where.is_file()


def test_a_read_of_a_mistyped_database_says_so_and_creates_nothing(project: Path) -> None:
    """A --db or AGENTFLEET_DB naming no file is a typo, not an empty fleet."""
    typo = project / "typo" / "fleet.db"
    url = f"sqlite:///{typo}"
    for args in (["--db", url, "ls"], ["--db", url, "workers"], ["--db", url, "show", "1"]):
        refused = cli(*args, cwd=project, env=child_env())
        assert refused.returncode == 4, (args, refused.stdout, refused.stderr)
        assert f"no database at {typo}" in refused.stderr and "init" in refused.stderr
    from_env = cli("plan", "ls", cwd=project, env=child_env(AGENTFLEET_DB=url))
    assert from_env.returncode == 4 and "AGENTFLEET_DB" in from_env.stderr
    assert not typo.parent.exists()
    made = cli("--db", url, "init", cwd=project, env=child_env())  # as the message says
    assert made.returncode == 0, made.stderr
    assert cli("--db", url, "ls", cwd=project, env=child_env()).returncode == 0
