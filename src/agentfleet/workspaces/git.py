"""Git, as the workspaces use it: a few plumbing commands run with a clear error each.

Every branch agentfleet owns moves by compare-and-swap (`git update-ref REF NEW OLD`), so a
worker that dies half-way leaves a ref at its old commit or its new one, never between.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ZERO = "0" * 40  # `git update-ref REF NEW ZERO`: create REF only if it does not exist yet
# Git must never stop to ask anything, and never read the user's editor or pager.
_QUIET_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_PAGER": "cat",
    "GIT_OPTIONAL_LOCKS": "0",
}


class GitError(RuntimeError):
    """A git command failed: says which, where, and what git said."""

    def __init__(self, args: Sequence[str], cwd: Path, stderr: str, code: int) -> None:
        said = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {code}"
        super().__init__(f"git {' '.join(args)} (in {cwd}) failed: {said}")
        self.args_ = list(args)
        self.stderr = stderr
        self.code = code


@dataclass(frozen=True)
class NumStat:
    """What a change touched: its files, and lines added and removed."""

    files: tuple[str, ...]
    insertions: int
    deletions: int


class Git:
    """Git commands in one repository (or worktree) folder."""

    def __init__(self, cwd: str | Path, env: Mapping[str, str] | None = None) -> None:
        self.cwd = Path(cwd)
        self.env = {**os.environ, **_QUIET_ENV, **(env or {})}

    def run(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float | None = None
    ) -> str:
        """Git's stdout; GitError when it fails (with `check`) or runs past `timeout`."""
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=self.cwd,
                env=self.env,
                input=input,
                capture_output=True,
                text=True,
                stdin=None if input is not None else subprocess.DEVNULL,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise GitError(args, self.cwd, f"no answer within {timeout:g} s", 124) from None
        if check and done.returncode != 0:
            raise GitError(args, self.cwd, done.stderr, done.returncode)
        return done.stdout

    def ok(self, *args: str) -> bool:
        """Whether the command succeeds (for questions git answers with its exit code)."""
        return (
            subprocess.run(
                ["git", *args],
                cwd=self.cwd,
                env=self.env,
                capture_output=True,
                stdin=subprocess.DEVNULL,
            ).returncode
            == 0
        )

    # -- questions --------------------------------------------------------------------

    def toplevel(self) -> Path:
        return Path(self.run("rev-parse", "--show-toplevel").strip())

    def common_dir(self) -> Path:
        """The repository's own .git folder, shared by all its worktrees."""
        found = Path(self.run("rev-parse", "--git-common-dir").strip())
        return found if found.is_absolute() else (self.cwd / found).resolve()

    def commit_of(self, ref: str) -> str:
        return self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()

    def tree_of(self, commit: str) -> str:
        return self.run("rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}").strip()

    def ref_value(self, ref: str) -> str | None:
        """The commit a ref points at, or None when it does not exist."""
        out = self.run("rev-parse", "--verify", "--quiet", ref, check=False).strip()
        return out or None

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self.ok("merge-base", "--is-ancestor", older, newer)

    def dirty(self) -> bool:
        return bool(self.run("status", "--porcelain", "--untracked-files=all").strip())

    def numstat(self, base: str, head: str) -> NumStat:
        files, added, removed = [], 0, 0
        out = self.run("diff", "--numstat", "-z", "--no-renames", base, head)
        for entry in filter(None, out.split("\0")):
            plus, minus, name = entry.split("\t", 2)
            files.append(name)
            added += int(plus) if plus.isdigit() else 0  # "-" for a binary file
            removed += int(minus) if minus.isdigit() else 0
        return NumStat(tuple(files), added, removed)

    def diff(self, base: str, head: str, *, color: bool = False) -> str:
        return self.run("diff", "--color=always" if color else "--no-color", base, head)

    # -- moves ------------------------------------------------------------------------

    def update_ref(self, ref: str, new: str, old: str, message: str) -> bool:
        """Move `ref` to `new` only if it is at `old` (ZERO: only if it does not exist).
        Returns whether it moved; it never moves a ref someone else moved meanwhile."""
        return self.ok("update-ref", "-m", message, ref, new, old)

    def worktree_add(self, path: Path, commit: str) -> None:
        """A worktree at `path` with `commit` checked out detached: attempts commit there
        and publish through refs of their own, so no branch is ever checked out twice."""
        self.run("worktree", "add", "--detach", "--quiet", str(path), commit)

    def worktree_remove(self, path: Path) -> None:
        self.run("worktree", "remove", "--force", str(path), check=False)
        self.run("worktree", "prune", check=False)

    def commit_all(self, message: str, trailers: Mapping[str, str]) -> str | None:
        """Commit everything left uncommitted (new files too); the new commit, or None when
        there was nothing to commit."""
        self.run("add", "--all")
        if not self.run("diff", "--cached", "--name-only").strip():
            return None
        text = message + "\n\n" + "".join(f"{k}: {v}\n" for k, v in trailers.items())
        # The user's own identity when git has one; agentfleet's when it has none.
        who = [] if self.ok("config", "user.email") else [
            "-c", "user.name=agentfleet", "-c", "user.email=agentfleet@localhost",
        ]  # fmt: skip
        self.run(*who, "commit", "--quiet", "--no-verify", "--file", "-", input=text)
        return self.commit_of("HEAD")
