"""The merge train's two job kinds, as processes: `merge` and `land`.

    python -m agentfleet.workspaces.train_main merge|land

The payload comes in AGENTFLEET_PAYLOAD (JSON), the job's identity in the usual variables.
What it did is the last line of stdout, `AGENTFLEET_RESULT {json}`: the job's result on
success, the plan's checkpoint context on a conflict or a failed test gate. Every branch it
moves, it moves by compare-and-swap, so a process killed at any point leaves each ref at its
old commit or its new one; and a merge run again after its step is already in the
integration branch finds that and does nothing twice.

With a remote (`remote` and `remote_url` in the payload) it works in this machine's clone
of the remote (see `remote`): it fetches the step's commit and the integration branch, and
moves branches on the remote by `git push --force-with-lease`, the remote's own
compare-and-swap; a lease someone else broke meanwhile is a branch that moved (retried).

Exit codes: 0 done; 3 merge conflict; 4 the test gate failed; 5 a branch moved underneath
(retried); 6 the user's checkout is in the way; 2 bad input.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentfleet.workspaces.git import Git, GitError
from agentfleet.workspaces.refs import LocalRefs, Refs, RemoteRefs
from agentfleet.workspaces.remote import Clone, Remote, base_ref, clones_root
from agentfleet.workspaces.setup import SetupFailed, WorktreeSetup

RESULT_MARK = "AGENTFLEET_RESULT "
CONFLICT, TEST_FAILED, MOVED, IN_THE_WAY, BAD_INPUT = 3, 4, 5, 6, 2
TAIL = 4000


class Stop(Exception):
    """The train stops here: `code` for the worker, `report` for the plan's checkpoint."""

    def __init__(self, code: int, message: str, **report: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.report = report


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def integration_branch(plan_id: int | str) -> str:
    return f"agentfleet/plan-{plan_id}"


def report(fields: Mapping[str, Any]) -> None:
    print(RESULT_MARK + json.dumps(dict(fields), separators=(",", ":")), flush=True)


def _tail(text: str) -> str:
    return text[-TAIL:]


def _stat(git: Git, base: str, head: str) -> dict[str, Any]:
    stat = git.numstat(base, head)
    return {
        "files_changed": list(stat.files),
        "insertions": stat.insertions,
        "deletions": stat.deletions,
    }


class Train:
    """One plan's integration branch in one repository (or on one remote)."""

    def __init__(
        self,
        payload: Mapping[str, Any],
        env: Mapping[str, str],
        *,
        branch: str | None = None,
        again: str | None = None,
    ) -> None:
        self.payload = payload
        self.clone: Clone | None = None
        self.refs: Refs
        if payload.get("remote"):
            remote = Remote(str(payload["remote"]), str(payload["remote_url"]))
            self.clone = Clone.open(remote, clones_root(env.get("AGENTFLEET_CLONES")))
            self.repo = self.clone.git
            self.refs = RemoteRefs(self.clone)
        else:
            self.repo = Git(str(payload["repo"]))
            self.refs = LocalRefs(self.repo)
        self.plan = env["AGENTFLEET_PLAN_ID"]
        self.base = str(payload["base_commit"])
        self.branch = branch or integration_branch(self.plan)
        self.ref = f"refs/heads/{self.branch}"
        # What a person does once they have cleared the way.
        self.again = again or f"resume the plan (agentfleet plan resume {self.plan})"

    def head(self) -> str:
        """The integration branch's commit, made at the plan's base the first time."""
        self.refs.bring(self.base, base_ref(self.base))
        current = self.refs.value(self.ref)
        if current is not None:
            return current
        self.refs.swap(self.ref, self.base, None, "agentfleet: the plan's integration")
        made = self.refs.value(self.ref)
        assert made is not None
        return made

    def worktree(self, name: str, commit: str) -> Path:
        path = self.repo.common_dir() / "agentfleet" / "worktrees" / f"{name}-plan-{self.plan}"
        self.repo.worktree_remove(path)
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.repo.worktree_add(path, commit)
        return path

    def drop(self, path: Path) -> None:
        self.repo.worktree_remove(path)
        shutil.rmtree(path, ignore_errors=True)

    def test(self, where: Path, step: str) -> None:
        command = self.payload.get("test")
        if not command:
            return
        timeout = float(self.payload.get("test_timeout") or 1200)
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", str(command)], cwd=where, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise Stop(
                TEST_FAILED,
                f"the test gate ran past {timeout:g} s after merging {step}",
                kind="test_failed",
                job=step,
                output=_tail(_text(exc.stdout) + _text(exc.stderr)),
            ) from None
        if done.returncode != 0:
            raise Stop(
                TEST_FAILED,
                f"the test gate failed after merging {step}: exit {done.returncode}",
                kind="test_failed",
                job=step,
                output=_tail(done.stdout + done.stderr),
            )

    def setup(self, where: Path) -> None:
        commands = list(self.payload.get("setup") or [])
        try:
            WorktreeSetup(run=tuple(commands)).apply(self.repo.cwd, where, os.environ)
        except SetupFailed as exc:
            step = str(self.payload.get("step") or "land")
            raise Stop(
                TEST_FAILED, str(exc), kind="test_failed", job=step, output=str(exc)
            ) from None

    def merge(self) -> dict[str, Any]:
        """Merge one step's commit into the integration branch, behind the test gate."""
        step, commit = str(self.payload["step"]), str(self.payload["head_commit"])
        hints = [str(self.payload["head_ref"])] if self.payload.get("head_ref") else []
        self.refs.bring(commit, *hints, base_ref(commit))
        old = self.head()
        found = {} if self.refs.local else {"integration_ref": self.ref}
        if self.repo.is_ancestor(commit, old):  # merged by an earlier attempt of this job
            return {"integration_head": old, "step": step, "already": True, **found,
                    **_stat(self.repo, self.base, old)}  # fmt: skip
        where = self.worktree("merge", old)
        try:
            git = Git(where)
            self._apply(git, step, commit, old)
            if git.tree_of("HEAD") == git.tree_of(old):
                # Nothing new: a squash (or rebase) of this step is already in, from an
                # earlier attempt that moved the branch but did not live to report it.
                return {"integration_head": old, "step": step, "already": True, **found,
                        **_stat(self.repo, self.base, old)}  # fmt: skip
            self.setup(where)
            self.test(where, step)
            new = git.commit_of("HEAD")
            if not self.refs.swap(self.ref, new, old, f"agentfleet: merge {step}"):
                raise Stop(MOVED, f"{self.branch} moved during the merge; trying again")
            return {"integration_head": new, "step": step, **found,
                    **_stat(self.repo, self.base, new)}  # fmt: skip
        finally:
            self.drop(where)

    def _apply(
        self, git: Git, step: str, commit: str, onto: str, strategy: str | None = None
    ) -> None:
        strategy = strategy or str(self.payload.get("strategy") or "squash")
        who = [] if git.ok("config", "user.email") else [
            "-c", "user.name=agentfleet", "-c", "user.email=agentfleet@localhost"]  # fmt: skip
        message = f"agentfleet: {step} (plan {self.plan})"
        if strategy == "merge":
            ok = git.ok(*who, "merge", "--no-ff", "--no-edit", "-m", message, commit)
        elif strategy == "squash":
            ok = git.ok(*who, "merge", "--squash", commit)
            if ok:
                ok = git.ok(
                    *who, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", message
                )
        else:  # rebase: replay the step's own commits onto the integration branch
            base = git.run("merge-base", onto, commit).strip()
            ok = git.ok(*who, "cherry-pick", "--allow-empty", f"{base}..{commit}")
        if ok:
            return
        files = git.run("diff", "--name-only", "--diff-filter=U").split()
        for abort in (("merge", "--abort"), ("cherry-pick", "--abort")):
            git.ok(*abort)
        step_base = git.run("merge-base", onto, commit).strip()
        other = git.run("diff", "--no-color", step_base, onto, "--", *files) if files else ""
        raise Stop(
            CONFLICT,
            f"merging {step} conflicts in {', '.join(files) or 'the tree'}",
            kind="merge_conflict",
            job=step,
            files=files,
            onto=onto,
            other_diff=_tail(other),
        )

    def land(self) -> dict[str, Any]:
        """Open the pull request, or move `into` to the integration branch (compare-and-swap)."""
        head = self.head()
        stat = _stat(self.repo, self.base, head)
        pr = self.payload.get("pr")
        if pr:
            base = str(pr.get("base") or self.payload["into"])
            if self.clone is None:
                url = open_pr(self.repo, self.branch, pr, base)
                return {"pr_url": url, "integration_head": head, **stat}
            remote = str(pr.get("remote") or "origin")
            if remote != self.clone.remote.name:  # the integration branch is on the other
                self.clone.configure(Remote(remote, str(pr["remote_url"])))
                self.repo.run("push", "--quiet", remote, f"{head}:{self.ref}")
            where = self.worktree("pr", head)  # gh reads the remotes of a checkout
            try:
                url = create_pr(where, self.branch, pr, base)
            finally:
                self.drop(where)
            return {"pr_url": url, "integration_head": head, **stat}
        return {**self._move_into(head), **stat}

    def _move_into(self, head: str) -> dict[str, Any]:
        into = str(self.payload["into"])
        ref = f"refs/heads/{into}"
        old = self.refs.value(ref)
        if old is not None and not self.repo.is_ancestor(old, head):
            # `into` moved meanwhile: merge it in (a true merge, so `into` moves on by a
            # fast-forward that keeps its history) and test again before landing
            where = self.worktree("land", head)
            try:
                self._apply(Git(where), into, old, head, strategy="merge")
                self.setup(where)
                self.test(where, into)
                new = Git(where).commit_of("HEAD")
                if not self.refs.swap(self.ref, new, head, f"agentfleet: merge {into}"):
                    raise Stop(MOVED, f"{self.branch} moved while landing; trying again")
                head = new
            finally:
                self.drop(where)
        checked_out = ""
        if self.refs.local:  # only the user's own checkout can have `into` checked out
            checked_out = self.repo.run("symbolic-ref", "--quiet", "HEAD", check=False).strip()
        if checked_out == ref:
            if self.repo.dirty():
                raise Stop(
                    IN_THE_WAY,
                    f"{into} is checked out in {self.repo.cwd} with uncommitted changes: "
                    f"commit or stash them, then {self.again}",
                    kind="checkout_dirty",
                    job="land",
                )
            self.repo.run("merge", "--ff-only", "--quiet", head)  # moves the branch and files
        elif not self.refs.swap(ref, head, old, "agentfleet: land the plan"):
            raise Stop(MOVED, f"{into} moved while landing; trying again")
        return {"into": into, "landed": head, "integration_head": head}


def open_pr(repo: Git, branch: str, pr: Mapping[str, Any], base: str) -> str:
    """Push `branch` to `pr.remote` (default origin) and open its pull request with `gh`;
    the URL gh printed."""
    remote = str(pr.get("remote") or "origin")
    ref = f"refs/heads/{branch}"
    repo.run("push", "--quiet", remote, f"{ref}:{ref}")
    return create_pr(repo.cwd, branch, pr, base)


def create_pr(where: Path, branch: str, pr: Mapping[str, Any], base: str) -> str:
    """Run `gh pr create` in the checkout `where` for `branch` (already pushed); the URL."""
    out = subprocess.run(
        ["gh", "pr", "create", "--head", branch, "--base", base,
         "--title", str(pr["title"]), "--body", str(pr.get("body") or "")],
        cwd=where, stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"gh pr create failed: {(out.stderr or out.stdout).strip()}")
    urls = [w for w in out.stdout.split() if w.startswith(("https://", "http://"))]
    if not urls:
        raise RuntimeError(f"gh pr create printed no URL: {out.stdout.strip()!r}")
    return urls[-1]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["merge"], ["land"]):
        print("usage: python -m agentfleet.workspaces.train_main merge|land", file=sys.stderr)
        return BAD_INPUT
    try:
        payload = json.loads(os.environ["AGENTFLEET_PAYLOAD"])
        train = Train(payload, os.environ)
    except (KeyError, ValueError) as exc:
        print(f"bad merge job input: {exc}", file=sys.stderr)
        return BAD_INPUT
    except (GitError, OSError) as exc:  # the clone of the remote could not be made
        print(str(exc), file=sys.stderr)
        return 1
    try:
        result = train.merge() if args == ["merge"] else train.land()
    except Stop as stop:
        print(stop.message, file=sys.stderr)
        report({**stop.report, "message": stop.message})
        return stop.code
    except (GitError, RuntimeError, OSError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    report(result)
    print(f"{args[0]} done: {result.get('integration_head') or result.get('landed')}")
    return 0
