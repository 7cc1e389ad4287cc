"""A job's own git worktree: made from the job's base commit, committed when the agent is
done, published to the job's branch only by the completion that won its fenced write.

Where: inside the repository's own `.git` folder (`.git/agentfleet/worktrees/`), outside
the user's working tree, so the user's checkout, its HEAD and its files are never touched.
Each attempt has a folder and a ref of its own (`refs/agentfleet/attempts/job-ID/EPOCH`);
only a winning completion moves the job's branch, by compare-and-swap.

With a remote (`remote: NAME`) all this happens in the worker's own clone of the remote
instead (see `remote`): the attempt's commit is pushed to its ref on the remote before the
fenced completion is written, and the job's branch moves there only after it won.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfleet.errors import InvalidArgument
from agentfleet.workspaces.git import ZERO, Git, GitError
from agentfleet.workspaces.remote import Clone, Remote, base_ref, clones_root

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
    remote: Remote | None = None  # where the job's commits go, for other machines
    base_ref: str | None = None  # a ref on the remote that holds the base commit
    clones: Path | None = None  # this worker's clones folder (None: the default one)

    @classmethod
    def of(cls, payload: Mapping[str, Any], clones: Path | None = None) -> WorkspaceSpec | None:
        """The workspace a job asks for, or None for `workspace: none`; `clones` is where
        this worker keeps its clones of remotes."""
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
        remote = None
        if payload.get("remote") is not None:
            url = payload.get("remote_url")
            if not isinstance(url, str):
                raise InvalidArgument(
                    "a job with 'remote' needs the 'remote_url' recorded at submit"
                )
            remote = Remote(str(payload["remote"]), url)
        hint = payload.get("base_ref")
        return cls(
            Path(repo), str(subdir), base, str(prefix), globs, remote,
            hint if isinstance(hint, str) else None, clones,
        )  # fmt: skip

    def branch(self, job_id: int) -> str:
        return f"{self.branch_prefix}job-{job_id}"

    def clone(self) -> Clone | None:
        """With a remote, this worker's clone of it (made the first time)."""
        if self.remote is None:
            return None
        return Clone.open(self.remote, clones_root(self.clones))

    def home(self) -> Path:
        """The repository this worker makes the job's worktrees in: the user's own, or with
        a remote this worker's clone of the remote (never the submitter's checkout)."""
        if self.remote is None:
            return self.repo
        return Clone(clones_root(self.clones), self.remote).path


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
    return Git(spec.home()).common_dir() / "agentfleet" / "worktrees"


def prepare(spec: WorkspaceSpec, job_id: int, epoch: int) -> Prepared:
    """A fresh worktree for this attempt at the job's base commit (what an earlier attempt
    of this host left there is removed first). With a remote, the base commit is fetched
    into this worker's clone first."""
    clone = spec.clone()
    if clone is not None:
        hints = [base_ref(spec.base_commit), *([spec.base_ref] if spec.base_ref else [])]
        clone.bring(spec.base_commit, *hints)
    git = Git(spec.home())
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
    describe the change: the fields a worktree job's result holds. With a remote the commit
    is pushed to the attempt's ref there now, before the fenced completion names it, so a
    merge on another machine can fetch it."""
    git = Git(prepared.path)
    head = git.commit_all(
        f"agentfleet: job {job_id}, attempt {attempt}",
        {"Agentfleet-Job": str(job_id), "Agentfleet-Attempt": str(attempt),
         "Agentfleet-Lease-Epoch": str(epoch)},
    ) or git.commit_of("HEAD")  # fmt: skip
    ref = attempt_ref(job_id, epoch)
    Git(spec.home()).update_ref(ref, head, ZERO, "agentfleet attempt")
    clone = spec.clone()
    if clone is not None:
        clone.push(head, ref)
    stat = git.numstat(spec.base_commit, head)
    remote = {} if clone is None else {"remote": clone.remote.name, "attempt_ref": ref}
    return {
        "branch": spec.branch(job_id),
        "base_commit": spec.base_commit,
        "head_commit": head,
        "files_changed": list(stat.files),
        "insertions": stat.insertions,
        "deletions": stat.deletions,
        "no_changes": head == spec.base_commit,
        **remote,
    }


def publish(spec: WorkspaceSpec, job_id: int, head: str) -> bool:
    """Point the job's branch at the winning attempt's commit, by compare-and-swap: only
    after the fenced completion named it, so a stale attempt's commit never lands there.
    With a remote, the branch moves on the remote (only the winner ever pushes it)."""
    ref = f"refs/heads/{spec.branch(job_id)}"
    clone = spec.clone()
    if clone is not None:
        old = clone.read(ref)
        return old == head or clone.swap(ref, head, old)
    git = Git(spec.repo)
    old = git.ref_value(ref)
    if old == head:
        return True
    return git.update_ref(ref, head, old or ZERO, f"agentfleet: job {job_id} succeeded")


def discard(spec: WorkspaceSpec, prepared: Prepared) -> None:
    """Remove an attempt's worktree (its commit stays on the attempt's ref)."""
    Git(spec.home()).worktree_remove(prepared.path)
    shutil.rmtree(prepared.path, ignore_errors=True)
