"""`agentfleet merge JOB --into BRANCH` and `agentfleet pr JOB`: for one finished worktree
job what a plan's merge train does for its steps.

The merge goes through the train's own code: the job's commit is merged into a scratch
branch made at `into`'s head, the test gate runs there, and `into` then moves by
compare-and-swap (or by a fast-forward of a clean checkout that has it checked out), so a
conflict or a failed test leaves `into` exactly where it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfleet.errors import InvalidArgument
from agentfleet.models import Job, JobStatus
from agentfleet.workspaces.git import Git, GitError
from agentfleet.workspaces.merge_job import Stop, Train, open_pr


@dataclass(frozen=True)
class Finished:
    """A succeeded worktree job's change, as the merge needs it."""

    job_id: int
    repo: Git
    branch: str
    base_commit: str
    head_commit: str


def finished(job: Job) -> Finished:
    """The job's change, or InvalidArgument saying why it has none to merge."""
    result = job.result if isinstance(job.result, dict) else {}
    if "head_commit" not in result or not isinstance(job.payload.get("repo"), str):
        raise InvalidArgument(f"job {job.id} is not a worktree job (workspace: worktree)")
    if job.status is not JobStatus.SUCCEEDED:
        raise InvalidArgument(f"job {job.id} is {job.status.value}; only a succeeded job merges")
    if result.get("no_changes"):
        raise InvalidArgument(f"job {job.id} changed nothing: there is nothing to merge")
    repo = Path(job.payload["repo"])
    if not repo.is_dir():
        raise InvalidArgument(f"job {job.id}'s repository {repo} is not on this machine")
    git, branch, head = Git(repo), str(result["branch"]), str(result["head_commit"])
    remote = job.payload.get("remote")
    if remote and git.ref_value(f"refs/heads/{branch}") != head:
        raise InvalidArgument(
            f"job {job.id}'s work is on remote {remote!r}: bring it here first "
            f"(git fetch {remote} {branch}:{branch})"
        )
    return Finished(job.id, git, branch, str(result["base_commit"]), head)


def merge(
    job: Job, into: str, *, test: str | None = None, strategy: str = "squash"
) -> dict[str, Any]:
    """Merge the job's commit into `into` behind the test gate; what landed. Raises Stop
    (a conflict, a failed test, a dirty checkout) with `into` untouched."""
    if strategy not in ("squash", "merge", "rebase"):
        raise InvalidArgument(f"strategy must be squash, merge or rebase, not {strategy!r}")
    change = finished(job)
    try:
        onto = change.repo.commit_of(f"refs/heads/{into}")
    except GitError:
        onto = ""
    if not onto:
        raise InvalidArgument(f"branch {into!r} does not exist in {change.repo.cwd}")
    scratch = f"{change.branch}-merge"
    payload = {
        "repo": str(change.repo.cwd),
        "base_commit": onto,
        "step": f"job {job.id}",
        "head_commit": change.head_commit,
        "strategy": strategy,
        "test": test,
        "into": into,
    }
    train = Train(
        payload,
        {"AGENTFLEET_PLAN_ID": f"job-{job.id}"},
        branch=scratch,
        again=f"run the merge again (agentfleet merge {job.id} --into {into})",
    )
    _drop_branch(change.repo, scratch)  # what an earlier, stopped merge of this job left
    try:
        merged = train.merge()
        landed = train._move_into(str(merged["integration_head"]))
    finally:
        _drop_branch(change.repo, scratch)
    return {
        "job": job.id,
        "into": into,
        "landed": landed["landed"],
        "files_changed": merged["files_changed"],
        "insertions": merged["insertions"],
        "deletions": merged["deletions"],
        "already": bool(merged.get("already")),
    }


def pull_request(
    job: Job, *, title: str | None, body: str | None, base: str, remote: str = "origin"
) -> str:
    """Push the job's branch and open its pull request with `gh`; the URL."""
    change = finished(job)
    if change.repo.ref_value(f"refs/heads/{change.branch}") != change.head_commit:
        raise InvalidArgument(f"branch {change.branch} is not at job {job.id}'s commit")
    pr = {"title": title or _title(job), "body": body or "", "remote": remote}
    return open_pr(change.repo, change.branch, pr, base)


def _title(job: Job) -> str:
    text = str(job.payload.get("prompt") or job.payload.get("cmd") or f"job {job.id}")
    first = text.strip().splitlines()[0] if text.strip() else f"job {job.id}"
    return first[:72]


def _drop_branch(repo: Git, branch: str) -> None:
    ref = f"refs/heads/{branch}"
    old = repo.ref_value(ref)
    if old is not None:
        repo.run("update-ref", "-d", ref, old)


__all__ = ["Finished", "Stop", "finished", "merge", "pull_request"]
