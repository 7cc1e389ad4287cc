"""Worktrees on this host and what became of their jobs: listed, and cleaned once their
attempt is over (a failed job's is kept for inspection unless asked)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentfleet.errors import InvalidArgument, JobNotFound
from agentfleet.models import Job, JobStatus
from agentfleet.workspaces.git import Git, GitError

_NAME = re.compile(r"^job-(\d+)-e(\d+)$")


@dataclass(frozen=True)
class Leftover:
    path: Path
    job_id: int
    epoch: int
    status: str  # the job's status, or "gone" when the database has no such job
    live: bool  # the attempt that made it still holds the job's lease

    @property
    def kept_for_inspection(self) -> bool:
        return self.status == JobStatus.FAILED.value


def repository_of(folder: Path) -> Path:
    """The repository `folder` lies in: a checkout's top level, or a bare repository (a
    worker's clone of a remote keeps the worktrees of jobs with `remote:`)."""
    git = Git(folder)
    try:
        return git.toplevel()
    except (GitError, OSError):
        pass
    try:
        if git.run("rev-parse", "--is-bare-repository").strip() == "true":
            return git.common_dir()
    except (GitError, OSError):
        pass
    raise InvalidArgument(f"{folder} is not inside a git repository")


def worktrees(repo: Path, lookup: Callable[[int], Job]) -> list[Leftover]:
    """Every agentfleet worktree of `repo` on this host, with its job's fate."""
    root = Git(repo).common_dir() / "agentfleet" / "worktrees"
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        match = _NAME.match(path.name)
        if match is None:
            continue
        job_id, epoch = int(match[1]), int(match[2])
        try:
            job = lookup(job_id)
            status = job.status.value
            live = job.status is JobStatus.RUNNING and job.lease_epoch == epoch
        except JobNotFound:
            status, live = "gone", False
        found.append(Leftover(path, job_id, epoch, status, live))
    return found


def clean(repo: Path, lookup: Callable[[int], Job], *, failed_too: bool = False) -> list[Leftover]:
    """Remove the worktrees whose attempt is over; returns what was removed."""
    removed = []
    git = Git(repo)
    for item in worktrees(repo, lookup):
        if item.live or (item.kept_for_inspection and not failed_too):
            continue
        git.worktree_remove(item.path)
        shutil.rmtree(item.path, ignore_errors=True)
        removed.append(item)
    return removed
