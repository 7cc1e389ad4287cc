"""A merge process SIGKILLed at any point leaves the integration branch at its old commit or
its new one, never between; run again, it finishes; run once more, it finds the step merged.

`git` on the merge's PATH is a shim that counts its calls and, at the chosen call, kills the
merge process (its parent, started by this test) just before or just after running git, so
every boundary between the merge's git commands is tried.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentfleet.workspaces.merge_job import integration_branch
from tests.workspaces.repos import git, head, make_repo

PLAN = 7
SHIM = """#!/bin/sh
n=$(cat "$SHIM_COUNT" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$SHIM_COUNT"
if [ "$n" = "$SHIM_KILL_AT" ] && [ "$SHIM_KILL_WHEN" = before ]; then
    kill -9 "$PPID"; exit 1
fi
"$SHIM_REAL_GIT" "$@"
code=$?
if [ "$n" = "$SHIM_KILL_AT" ] && [ "$SHIM_KILL_WHEN" = after ]; then
    kill -9 "$PPID"
fi
exit $code
"""


def _setup(tmp_path: Path) -> tuple[Path, dict[str, Any], str]:
    repo = make_repo(tmp_path / "repo")
    base = head(repo)
    git(repo, "checkout", "--quiet", "-b", "step")
    (repo / "feature.txt").write_text("feature\n")
    git(repo, "add", "feature.txt")
    git(repo, "commit", "--quiet", "-m", "the step's work")
    step_commit = head(repo)
    git(repo, "checkout", "--quiet", "main")
    payload = {
        "repo": str(repo),
        "base_commit": base,
        "step": "alpha",
        "head_commit": step_commit,
        "strategy": "squash",
        "test": "test -f feature.txt",
    }
    return repo, payload, base


def _run(tmp_path: Path, payload: dict[str, Any], kill_at: int = 0, when: str = "") -> int:
    shim_dir = tmp_path / "shim"
    if not shim_dir.exists():
        shim_dir.mkdir()
        (shim_dir / "git").write_text(SHIM)
        (shim_dir / "git").chmod(0o755)
    count = tmp_path / "count"
    count.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PATH": f"{shim_dir}{os.pathsep}{os.environ['PATH']}",
        "SHIM_REAL_GIT": shutil.which("git") or "git",
        "SHIM_COUNT": str(count),
        "SHIM_KILL_AT": str(kill_at),
        "SHIM_KILL_WHEN": when,
        "AGENTFLEET_PAYLOAD": json.dumps(payload),
        "AGENTFLEET_PLAN_ID": str(PLAN),
        "AGENTFLEET_JOB_ID": "12",
        "AGENTFLEET_LEASE_EPOCH": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "agentfleet.workspaces.train_main", "merge"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode


def _calls(tmp_path: Path) -> int:
    return int((tmp_path / "count").read_text())


def _integration(repo: Path) -> str | None:
    ref = f"refs/heads/{integration_branch(PLAN)}"
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", ref], cwd=repo, capture_output=True, text=True
    )
    return done.stdout.strip() or None


def _holds_the_step(repo: Path, commit: str, base: str) -> bool:
    """A commit on `base` whose tree is the base's plus the step's file, and nothing else."""
    parent = git(repo, "rev-parse", f"{commit}^")
    files = git(repo, "diff", "--name-only", base, commit).splitlines()
    return parent == base and files == ["feature.txt"]


def test_the_shim_sees_every_git_call(tmp_path: Path) -> None:
    repo, payload, base = _setup(tmp_path)
    assert _run(tmp_path, payload) == 0
    assert _calls(tmp_path) >= 8  # the merge runs many git commands, each a kill point
    merged = _integration(repo)
    assert merged is not None and _holds_the_step(repo, merged, base)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_merge_killed_at_any_git_call_leaves_the_branch_old_or_new(
    tmp_path: Path, when: str
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    _, payload, _ = _setup(probe)
    assert _run(probe, payload) == 0
    calls = _calls(probe)

    for kill_at in range(1, calls + 1):
        where = tmp_path / f"{when}-{kill_at}"
        where.mkdir()
        repo, payload, base = _setup(where)
        code = _run(where, payload, kill_at, when)
        state = _integration(repo)
        if code == 0:  # killed after its last git call: the merge had already finished
            assert state is not None and _holds_the_step(repo, state, base)
        else:
            assert code == -9, f"call {kill_at} {when}: exit {code}"
            assert state in (None, base) or _holds_the_step(repo, state, base), (
                f"killed {when} git call {kill_at}: the branch is at {state}"
            )
        assert _run(where, payload) == 0, f"the rerun after a kill at call {kill_at} failed"
        merged = _integration(repo)
        assert merged is not None and _holds_the_step(repo, merged, base)
        assert _run(where, payload) == 0
        assert _integration(repo) == merged  # found merged: nothing is merged twice
        assert git(repo, "status", "--porcelain") == ""  # the user's checkout is untouched
        assert head(repo) == base
