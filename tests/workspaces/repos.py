"""Real git repositories for the workspace tests, made in temporary folders."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.test"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A repository on branch main with one commit holding `files`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    for name, text in (files or {"README.md": "hello\n", "src/app.py": "print('v1')\n"}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "first")
    return path


def bare_remote(repo: Path, path: Path, name: str = "origin") -> Path:
    """A bare repository at `path`, added to `repo` as remote `name`."""
    git(path.parent, "init", "--quiet", "--bare", str(path))
    git(repo, "remote", "add", name, str(path))
    return path


def head(repo: Path, ref: str = "HEAD") -> str:
    return git(repo, "rev-parse", ref)


def fake_gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `gh` on PATH that records its arguments and prints a pull request's URL, as the
    real one does on success."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gh.log"
    gh = bin_dir / "gh"
    gh.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do printf "%s\\n" "$a"; done > "{log}"\n'
        'echo "Creating pull request for agentfleet into main"\n'
        'echo "https://github.example/acme/shop/pull/42"\n'
    )
    gh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log
