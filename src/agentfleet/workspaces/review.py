"""A worktree job's change, read back for people: its branch, commits, files and diff."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfleet.errors import InvalidArgument
from agentfleet.models import Job
from agentfleet.workspaces.git import Git, GitError

MAX_DIFF_BYTES = 2 * 1024 * 1024  # a page or a terminal shows no more than this


@dataclass(frozen=True)
class FileDiff:
    path: str
    insertions: int
    deletions: int
    patch: str  # the unified diff of this one file


@dataclass(frozen=True)
class JobChange:
    job_id: int
    branch: str
    base_commit: str
    head_commit: str
    files: tuple[FileDiff, ...]
    truncated: bool = False

    @property
    def insertions(self) -> int:
        return sum(f.insertions for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions for f in self.files)

    @property
    def patch(self) -> str:
        return "".join(f.patch for f in self.files)


def workspace_result(job: Job) -> dict[str, Any] | None:
    """The workspace part of a job's result, when it has one."""
    result = job.result
    if isinstance(result, dict) and isinstance(result.get("head_commit"), str):
        return result
    return None


def change_of(job: Job) -> JobChange:
    """The job's change against its base, read from the repository it was submitted in."""
    result = workspace_result(job)
    if result is None:
        raise InvalidArgument(
            f"job {job.id} has no change to show: only a succeeded 'workspace: worktree' job "
            "records one"
        )
    repo = Path(str(job.payload.get("repo", "")))
    base, head = str(result["base_commit"]), str(result["head_commit"])
    git = Git(repo)
    try:
        text = git.run("diff", "--no-color", "--no-ext-diff", "--no-renames", base, head)
        numstat = git.run("diff", "--numstat", "--no-renames", base, head)
    except (GitError, OSError) as exc:
        remote = job.payload.get("remote")
        fetch = f" (fetch them: git fetch {remote} {result['branch']})" if remote else ""
        raise InvalidArgument(
            f"job {job.id}'s commits are not in {repo} on this machine{fetch}: {exc}"
        ) from None
    counts: dict[str, tuple[int, int]] = {}
    for line in numstat.splitlines():
        added, removed, name = line.split("\t", 2)
        counts[name] = (
            int(added) if added.isdigit() else 0,
            int(removed) if removed.isdigit() else 0,
        )
    truncated = len(text.encode()) > MAX_DIFF_BYTES
    if truncated:
        text = text.encode()[:MAX_DIFF_BYTES].decode(errors="ignore")
    files = []
    for chunk in _split_files(text):
        path = _path_of(chunk)
        insertions, deletions = counts.get(path, (0, 0))
        files.append(FileDiff(path, insertions, deletions, chunk))
    return JobChange(job.id, str(result["branch"]), base, head, tuple(files), truncated)


def _split_files(text: str) -> list[str]:
    parts: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("diff --git ") or not parts:
            parts.append(line)
        else:
            parts[-1] += line
    return parts


def _path_of(chunk: str) -> str:
    first = chunk.split("\n", 1)[0]  # diff --git a/PATH b/PATH
    if " b/" in first:
        return first.rsplit(" b/", 1)[1]
    return first.removeprefix("diff --git ")
