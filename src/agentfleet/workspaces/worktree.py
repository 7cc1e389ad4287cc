"""A job's own git worktree: made from the job's base commit, committed when the agent is
done, published to the job's branch only by the completion that won its fenced write.

Where: inside the repository's own `.git` folder (`.git/agentfleet/worktrees/`), outside
the user's working tree, so the user's checkout, its HEAD and its files are never touched.
Each attempt has a folder and a ref of its own (`refs/agentfleet/attempts/job-ID/EPOCH`);
only a winning completion moves the job's branch, by compare-and-swap.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfleet.errors import InvalidArgument
from agentfleet.workspaces.git import ZERO, Git, GitError

WORKTREE = "worktree"
DEFAULT_BRANCH_PREFIX = "agentfleet/"


@dataclass(frozen=True)
class WorkspaceSpec:
    """What a job's payload says about its workspace (recorded at submit)."""

    repo: Path  # the top level of the user's checkout
    subdir: str  # where the job runs, relative to the top level
    base_commit: str
    branch_prefix: str = DEFAULT_BRANCH_PREFIX
    touch: tuple[str, ...] = ()  # the globs the job may change (none: anything)

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> WorkspaceSpec | None:
        """The workspace a job asks for, or None for `workspace: none`."""
        if payload.get("workspace") != WORKTREE:
            return None
        repo, base = payload.get("repo"), payload.get("base_commit")
        if not isinstance(repo, str) or not isinstance(base, str):
            raise InvalidArgument(
                "a worktree job needs the 'repo' and 'base_commit' recorded at submit"
            )
        subdir = payload.get("subdir") or ""
        prefix = payload.get("branch_prefix") or DEFAULT_BRANCH_PREFIX
        globs = tuple(str(g) for g in payload.get("touch") or ())
        return cls(Path(repo), str(subdir), base, str(prefix), globs)

    def branch(self, job_id: int) -> str:
        return f"{self.branch_prefix}job-{job_id}"


def locate(cwd: str | Path, base: str | None = None) -> dict[str, str]:
    """At submit: the repository `cwd` lies in, where in it, and the commit to branch from
    (`base`, a ref; default the repository's HEAD now), as payload fields."""
    folder = Path(cwd).resolve()
    if not folder.is_dir():
        raise InvalidArgument(f"cwd {str(cwd)!r} is not a folder")
    git = Git(folder)
    try:
        top = git.toplevel()
    except GitError:
        raise InvalidArgument(
            f"workspace: worktree needs cwd inside a git repository; {folder} is not"
        ) from None
    ref = base or "HEAD"
    try:
        commit = git.commit_of(ref)
    except GitError:
        raise InvalidArgument(f"base {ref!r} is not a commit in {top}") from None
    if not commit:
        raise InvalidArgument(f"base {ref!r} is not a commit in {top}")
    return {
        "repo": str(top),
        "subdir": str(folder.relative_to(top)) if folder != top else "",
        "base_commit": commit,
    }


@dataclass(frozen=True)
class Prepared:
    """An attempt's worktree: the folder, and where in it the job runs."""

    path: Path
    cwd: Path


def worktrees_root(spec: WorkspaceSpec) -> Path:
    return Git(spec.repo).common_dir() / "agentfleet" / "worktrees"


def prepare(spec: WorkspaceSpec, job_id: int, epoch: int) -> Prepared:
    """A fresh worktree for this attempt at the job's base commit (what an earlier attempt
    of this host left there is removed first)."""
    git = Git(spec.repo)
    root = worktrees_root(spec)
    path = root / f"job-{job_id}-e{epoch}"
    # What earlier attempts of this job left on this host (a worker that crashed, or was
    # taken over) goes first: their leases are over, since this attempt holds the job.
    for stale in root.glob(f"job-{job_id}-e*") if root.is_dir() else []:
        git.worktree_remove(stale)
        shutil.rmtree(stale, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    git.worktree_add(path, spec.base_commit)
    cwd = path / spec.subdir if spec.subdir else path
    cwd.mkdir(parents=True, exist_ok=True)
    return Prepared(path, cwd)


def attempt_ref(job_id: int, epoch: int) -> str:
    return f"refs/agentfleet/attempts/job-{job_id}/{epoch}"


def finish(
    spec: WorkspaceSpec, prepared: Prepared, job_id: int, epoch: int, attempt: int
) -> dict[str, Any]:
    """Commit what the agent left uncommitted, keep the commit on the attempt's own ref, and
    describe the change: the fields a worktree job's result holds."""
    git = Git(prepared.path)
    head = git.commit_all(
        f"agentfleet: job {job_id}, attempt {attempt}",
        {"Agentfleet-Job": str(job_id), "Agentfleet-Attempt": str(attempt),
         "Agentfleet-Lease-Epoch": str(epoch)},
    ) or git.commit_of("HEAD")  # fmt: skip
    Git(spec.repo).update_ref(attempt_ref(job_id, epoch), head, ZERO, "agentfleet attempt")
    stat = git.numstat(spec.base_commit, head)
    return {
        "branch": spec.branch(job_id),
        "base_commit": spec.base_commit,
        "head_commit": head,
        "files_changed": list(stat.files),
        "insertions": stat.insertions,
        "deletions": stat.deletions,
        "no_changes": head == spec.base_commit,
    }


def publish(spec: WorkspaceSpec, job_id: int, head: str) -> bool:
    """Point the job's branch at the winning attempt's commit, by compare-and-swap: only
    after the fenced completion named it, so a stale attempt's commit never lands there."""
    git = Git(spec.repo)
    ref = f"refs/heads/{spec.branch(job_id)}"
    old = git.ref_value(ref)
    if old == head:
        return True
    return git.update_ref(ref, head, old or ZERO, f"agentfleet: job {job_id} succeeded")


def discard(spec: WorkspaceSpec, prepared: Prepared) -> None:
    """Remove an attempt's worktree (its commit stays on the attempt's ref)."""
    Git(spec.repo).worktree_remove(prepared.path)
    shutil.rmtree(prepared.path, ignore_errors=True)
