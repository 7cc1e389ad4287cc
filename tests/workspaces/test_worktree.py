"""A job's worktree: made at its base commit outside the user's checkout, committed when
done, published to its branch only by compare-and-swap."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agentfleet.errors import InvalidArgument
from agentfleet.workspaces import worktree
from agentfleet.workspaces.git import Git
from agentfleet.workspaces.worktree import WorkspaceSpec
from tests.workspaces.repos import git, head, make_repo


def _spec(repo: Path, sub: str = "") -> WorkspaceSpec:
    fields = worktree.locate(repo / sub if sub else repo)
    return WorkspaceSpec.of({"workspace": "worktree", **fields}) or pytest.fail("no spec")


def test_locate_records_the_repository_subfolder_and_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "src").mkdir(exist_ok=True)
    fields = worktree.locate(repo / "src")
    assert fields == {"repo": str(repo.resolve()), "subdir": "src", "base_commit": head(repo)}
    git(repo, "checkout", "--quiet", "-b", "feature")
    (repo / "README.md").write_text("changed\n")
    git(repo, "commit", "--quiet", "-am", "second")
    assert worktree.locate(repo, base="main")["base_commit"] == head(repo, "main")


def test_locate_refuses_a_folder_outside_git_and_an_unknown_base(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="inside a git repository"):
        worktree.locate(tmp_path)
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(InvalidArgument, match="is not a commit"):
        worktree.locate(repo, base="no-such-branch")


def test_an_attempt_works_in_its_own_worktree_and_the_checkout_is_untouched(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    spec = _spec(repo, "src")
    before = (head(repo), git(repo, "status", "--porcelain"), git(repo, "branch", "--list"))
    ready = worktree.prepare(spec, job_id=7, epoch=1)
    assert ready.path.is_relative_to(repo / ".git") and ready.cwd == ready.path / "src"
    (ready.cwd / "app.py").write_text("print('v2')\n")
    (ready.cwd / "new.py").write_text("x = 1\n")
    result = worktree.finish(spec, ready, job_id=7, epoch=1, attempt=1)
    assert result["files_changed"] == ["src/app.py", "src/new.py"]
    assert (result["insertions"], result["deletions"], result["no_changes"]) == (2, 1, False)
    assert result["base_commit"] == spec.base_commit != result["head_commit"]
    message = git(repo, "log", "-1", "--format=%B", result["head_commit"])
    assert "Agentfleet-Job: 7" in message and "Agentfleet-Attempt: 1" in message
    assert (head(repo), git(repo, "status", "--porcelain"), git(repo, "branch", "--list")) == before
    assert (repo / "src" / "app.py").read_text() == "print('v1')\n"


def test_an_attempt_that_changed_nothing_says_so(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    spec = _spec(repo)
    ready = worktree.prepare(spec, job_id=3, epoch=1)
    result = worktree.finish(spec, ready, job_id=3, epoch=1, attempt=1)
    assert result["no_changes"] is True and result["files_changed"] == []
    assert result["head_commit"] == spec.base_commit


def test_only_the_winning_attempt_is_published_and_branches_move_by_compare_and_swap(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    spec = _spec(repo)
    stale = worktree.prepare(spec, job_id=5, epoch=1)
    (stale.cwd / "README.md").write_text("stale attempt\n")
    stale_head = worktree.finish(spec, stale, 5, 1, 1)["head_commit"]
    winner = worktree.prepare(spec, job_id=5, epoch=2)
    (winner.cwd / "README.md").write_text("winning attempt\n")
    won = worktree.finish(spec, winner, 5, 2, 2)["head_commit"]
    assert worktree.publish(spec, 5, won) is True
    assert head(repo, "agentfleet/job-5") == won
    assert head(repo, worktree.attempt_ref(5, 1)) == stale_head  # kept, never merged
    assert worktree.publish(spec, 5, won) is True  # idempotent
    # a branch someone else moved meanwhile is not overwritten behind their back
    git(repo, "update-ref", "refs/heads/agentfleet/job-6", head(repo))
    other = worktree.prepare(spec, job_id=6, epoch=1)
    (other.cwd / "README.md").write_text("six\n")
    six = worktree.finish(spec, other, 6, 1, 1)["head_commit"]
    assert worktree.publish(spec, 6, six) is True  # it was where we read it
    assert head(repo, "agentfleet/job-6") == six


def test_discard_removes_the_worktree_and_keeps_the_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    spec = _spec(repo)
    ready = worktree.prepare(spec, job_id=9, epoch=1)
    (ready.cwd / "README.md").write_text("nine\n")
    commit = worktree.finish(spec, ready, 9, 1, 1)["head_commit"]
    worktree.discard(spec, ready)
    assert not ready.path.exists()
    assert str(ready.path) not in git(repo, "worktree", "list")
    assert head(repo, worktree.attempt_ref(9, 1)) == commit


def test_worktrees_made_and_removed_at_once_in_one_repository_all_succeed(tmp_path: Path) -> None:
    """Git does not serialise `worktree add` itself: without agentfleet's lock one of several
    at once fails reading another's half-made entry."""
    repo = make_repo(tmp_path / "repo")
    base = head(repo)
    errors: list[BaseException] = []

    def make(n: int) -> None:
        try:
            for round_ in range(4):
                where = tmp_path / f"w{n}-{round_}"
                Git(repo).worktree_add(where, base)
                Git(repo).worktree_remove(where)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert git(repo, "worktree", "list").count("\n") == 0  # only the checkout itself
