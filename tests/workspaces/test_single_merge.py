"""`agentfleet merge JOB --into BRANCH` and `agentfleet pr JOB`: one job's branch merged
behind a test gate, or proposed in a pull request, as the plan's train does for its steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentfleet.cli import app
from tests.conftest import StoreEnv
from tests.worker.helpers import run_burst
from tests.workspaces.repos import bare_remote, fake_gh, git, head, make_repo


def _cli(url: str, *args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(app, ["--db", url, *args], catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


def _job(store: StoreEnv, repo: Path, cmd: str) -> int:
    job = store.fleet.enqueue("shell", {"cmd": cmd, "cwd": str(repo), "workspace": "worktree"})
    run_burst(store.fleet)
    assert store.fleet.get_job(job.id).result["no_changes"] is False
    return job.id


def test_merge_moves_a_clean_checked_out_branch_and_a_second_merge_finds_it_there(
    store: StoreEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    job_id = _job(store, repo, "echo feature > feature.txt")
    code, out, err = _cli(
        store.url, "merge", str(job_id), "--into", "main", "--test", "test -f feature.txt"
    )
    assert code == 0, err
    assert f"merged job {job_id} into main: 1 files, +1 -0" in out
    assert (repo / "feature.txt").read_text() == "feature\n"  # fast-forwarded in the checkout
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "branch", "--list", "agentfleet/*-merge") == ""  # no scratch left
    code, out, _ = _cli(store.url, "merge", str(job_id), "--into", "main", "--json")
    assert code == 0 and json.loads(out)["already"] is True


def test_merge_into_a_branch_not_checked_out_is_a_compare_and_swap(
    store: StoreEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "branch", "release")
    job_id = _job(store, repo, "echo fix > fix.txt")
    before = head(repo)
    code, _, err = _cli(store.url, "merge", str(job_id), "--into", "release")
    assert code == 0, err
    assert git(repo, "show", "release:fix.txt") == "fix"
    assert head(repo) == before and not (repo / "fix.txt").exists()  # main untouched


def test_a_failing_test_gate_or_a_conflict_leaves_the_branch_where_it_was(
    store: StoreEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    job_id = _job(store, repo, "echo mine > README.md")
    before = head(repo)
    code, _, err = _cli(
        store.url, "merge", str(job_id), "--into", "main", "--test", "echo red; exit 1"
    )
    assert code == 1 and "the test gate failed" in err and "red" in err
    assert head(repo) == before
    (repo / "README.md").write_text("theirs\n")
    git(repo, "commit", "--quiet", "-am", "a change of main's own")
    moved = head(repo)
    code, out, _ = _cli(store.url, "merge", str(job_id), "--into", "main", "--json")
    body = json.loads(out)
    assert code == 1 and body["merged"] is False and body["files"] == ["README.md"]
    assert head(repo) == moved and git(repo, "status", "--porcelain") == ""


def test_merge_refuses_what_it_cannot_merge(store: StoreEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    plain = store.fleet.enqueue("shell", {"cmd": "true"}).id
    nothing = store.fleet.enqueue(
        "shell", {"cmd": "true", "cwd": str(repo), "workspace": "worktree"}
    ).id
    run_burst(store.fleet)
    changed = _job(store, repo, "echo x > x.txt")
    for job_id, reason in (
        (plain, "is not a worktree job"),
        (nothing, "changed nothing"),
    ):
        code, _, err = _cli(store.url, "merge", str(job_id), "--into", "main")
        assert code == 2 and reason in err
    code, _, err = _cli(store.url, "merge", str(changed), "--into", "nope")
    assert code == 2 and "branch 'nope' does not exist" in err
    code, _, err = _cli(store.url, "merge", str(changed), "--into", "main", "--strategy", "octopus")
    assert code == 2 and "strategy must be" in err


def test_pr_pushes_the_branch_and_prints_the_url_gh_gave(
    store: StoreEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    remote = bare_remote(repo, tmp_path / "remote.git")
    log = fake_gh(tmp_path, monkeypatch)
    job_id = _job(store, repo, "echo fix > fix.txt")
    code, out, err = _cli(store.url, "pr", str(job_id), "--base", "main", "--body", "Fixes it.")
    assert code == 0, err
    assert out.strip() == "https://github.example/acme/shop/pull/42"
    branch = f"agentfleet/job-{job_id}"
    assert log.read_text().splitlines() == [
        "pr", "create", "--head", branch, "--base", "main",
        "--title", "echo fix > fix.txt", "--body", "Fixes it.",
    ]  # fmt: skip
    assert git(remote, "rev-parse", branch) == head(repo, branch)
