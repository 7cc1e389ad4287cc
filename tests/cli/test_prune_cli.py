"""`agentfleet prune`, as a person runs it: the real console script, its output piped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import agentfleet


def _cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["agentfleet", "--db", db, *args],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_prune_from_the_command_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    with agentfleet.open(db) as fleet:
        for _ in range(3):
            fleet.enqueue("shell", {"cmd": "true"})
        for lease in fleet.claim_next(worker="w", limit=3):
            fleet.complete(lease)
        fleet.enqueue("shell", {"cmd": "true"})  # queued: never pruned
    time.sleep(1.2)
    dry = _cli(db, "prune", "--older-than", "1s", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    said = "would delete 3 job(s) and 0 plan(s) with 0 step(s), 3 run(s) and 9 event(s)"
    assert said in dry.stdout
    assert "nothing was deleted (--dry-run)" in dry.stderr
    done = _cli(db, "prune", "--older-than", "1s", "--status", "succeeded", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["jobs"] == 3
    with agentfleet.open(db) as fleet:
        assert [j.status.value for j in fleet.list_jobs()] == ["queued"]
    bad = _cli(db, "prune", "--older-than", "1s", "--status", "running")
    assert bad.returncode == 2 and "only finished jobs: running" in bad.stderr
    bare = _cli(db, "prune", "--older-than", "30")
    assert bare.returncode == 2 and "'30' has no unit" in bare.stderr and "30d" in bare.stderr
    missing = _cli(db, "prune")
    assert missing.returncode == 2 and "--older-than" in missing.stderr


def test_config_from_the_command_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert _cli(db, "config", "ls").returncode == 4  # no database yet: a read makes none
    assert _cli(db, "init").returncode == 0
    assert _cli(db, "config", "ls").stdout.strip() == "no settings"
    done = _cli(db, "config", "set", "retention", "30d")
    assert done.returncode == 0 and done.stdout.strip() == "retention = 30d", done.stderr
    assert _cli(db, "config", "get", "retention").stdout.strip() == "30d"
    assert json.loads(_cli(db, "config", "ls", "--json").stdout) == {"retention": "30d"}
    bad = _cli(db, "config", "set", "retention", "soon")
    assert bad.returncode == 2 and "invalid duration 'soon'" in bad.stderr
    bare = _cli(db, "config", "set", "retention", "30")
    assert bare.returncode == 2 and "retention: '30' has no unit" in bare.stderr
    assert _cli(db, "config", "get", "retention").stdout.strip() == "30d"  # left as it was
    unknown = _cli(db, "config", "get", "retain")
    assert unknown.returncode == 2 and "known: retention" in unknown.stderr
    assert _cli(db, "config", "unset", "retention").returncode == 0
    gone = _cli(db, "config", "get", "retention")
    assert gone.returncode == 3 and "retention is not set" in gone.stderr
