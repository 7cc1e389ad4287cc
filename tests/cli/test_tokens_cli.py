"""`agentfleet tokens create|ls|revoke`, as a person runs them: the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import agentfleet
from agentfleet.store.tokens import Tokens


def _cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    return subprocess.run(
        ["agentfleet", "--db", db, *args],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_create_ls_revoke_from_the_command_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    made = _cli(db, "tokens", "create", "--role", "worker", "--name", "box-7")
    assert made.returncode == 0, made.stderr
    assert "token box-7 (worker)" in made.stdout and "Shown once" in made.stdout
    [text] = [line for line in made.stdout.splitlines() if line.startswith("aft_")]
    as_json = _cli(db, "tokens", "create", "--role", "read", "--name", "dashboard", "--json")
    assert as_json.returncode == 0, as_json.stderr
    read = json.loads(as_json.stdout)
    assert (read["name"], read["role"], read["live"]) == ("dashboard", "read", True)
    assert read["token"].startswith(f"aft_{read['id']}_")
    with agentfleet.open(db) as fleet:
        found = Tokens(fleet.store.dialect).lookup(text)
        assert found is not None and found.name == "box-7"

    listed = _cli(db, "tokens", "ls")
    assert listed.returncode == 0, listed.stderr
    assert "box-7" in listed.stdout and "dashboard" in listed.stdout and "live" in listed.stdout
    assert text not in listed.stdout and read["token"] not in listed.stdout
    rows = json.loads(_cli(db, "tokens", "ls", "--json").stdout)
    assert [(r["name"], r["role"], r["live"]) for r in rows] == [
        ("box-7", "worker", True),
        ("dashboard", "read", True),
    ]
    assert all("token" not in r and "secret_hash" not in r for r in rows)

    revoked = _cli(db, "tokens", "revoke", "box-7")
    assert revoked.returncode == 0 and "token box-7 revoked" in revoked.stdout
    again = _cli(db, "tokens", "revoke", "box-7")
    assert again.returncode == 3 and "'box-7' names no live token" in again.stderr
    assert "revoked" in _cli(db, "tokens", "ls").stdout
    with agentfleet.open(db) as fleet:
        assert Tokens(fleet.store.dialect).lookup(text) is None


def test_a_bad_role_or_a_taken_name_exits_2(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    bad = _cli(db, "tokens", "create", "--role", "root", "--name", "x")
    assert bad.returncode == 2 and "choose one of worker, read, operate, admin" in bad.stderr
    assert _cli(db, "tokens", "create", "--role", "read", "--name", "x").returncode == 0
    taken = _cli(db, "tokens", "create", "--role", "admin", "--name", "x")
    assert taken.returncode == 2 and "'x' is already the name of a live token" in taken.stderr
    assert "no tokens" not in _cli(db, "tokens", "ls").stdout
