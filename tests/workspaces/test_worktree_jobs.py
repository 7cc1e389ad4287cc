"""Worktree jobs run by a real worker: each in its own worktree and branch, the user's
checkout untouched, only a winning completion published, setup failures named."""

from __future__ import annotations

from pathlib import Path

from agentfleet import JobStatus
from agentfleet.dispatch import RunContext
from agentfleet.workspaces.execution import WorkspaceRun
from agentfleet.workspaces.setup import WorktreeSetup
from agentfleet.workspaces.worktree import WorkspaceSpec, attempt_ref, locate
from tests.conftest import StoreEnv
from tests.worker.helpers import run_burst, wait_until
from tests.workspaces.repos import git, head, make_repo


def _job(store: StoreEnv, repo: Path, cmd: str, **payload: object) -> int:
    body = {"cmd": cmd, "cwd": str(repo), "workspace": "worktree", **payload}
    return store.fleet.enqueue("shell", body).id


def test_three_unlocked_jobs_on_one_repository_each_get_exactly_their_own_change(
    store: StoreEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    before = (head(repo), git(repo, "status", "--porcelain"))
    jobs = {
        name: _job(store, repo, f"sleep 0.3; echo {name} > {name}.txt; echo edit >> README.md")
        for name in ("alpha", "beta", "gamma")
    }
    run_burst(store.fleet, concurrency=3)
    for name, job_id in jobs.items():
        job = store.fleet.get_job(job_id)
        assert job.status is JobStatus.SUCCEEDED, job.error
        result = job.result
        assert result["branch"] == f"agentfleet/job-{job_id}"
        assert result["files_changed"] == ["README.md", f"{name}.txt"]
        assert result["base_commit"] == before[0] and result["no_changes"] is False
        assert head(repo, result["branch"]) == result["head_commit"]
        changed = git(repo, "diff", "--name-only", before[0], result["branch"]).splitlines()
        assert changed == ["README.md", f"{name}.txt"]  # nothing of the others' work
    assert (head(repo), git(repo, "status", "--porcelain")) == before  # checkout untouched
    assert not (repo / "alpha.txt").exists()
    assert "job-" not in git(repo, "worktree", "list")  # finished worktrees are gone


def test_a_job_runs_in_the_same_subfolder_of_its_worktree(store: StoreEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    job_id = _job(store, repo / "src", "pwd; echo more >> app.py")
    run_burst(store.fleet)
    job = store.fleet.get_job(job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    [run] = store.fleet.runs(job_id)
    where = Path((run.stdout or "").strip())
    assert where.name == "src" and where.is_relative_to(repo / ".git" / "agentfleet" / "worktrees")
    assert job.result["files_changed"] == ["src/app.py"]


def test_a_setup_failure_is_named_and_the_job_never_runs(store: StoreEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    marker = tmp_path / "ran"
    job_id = _job(
        store, repo, f"touch {marker}", worktree_setup={"copy": [".env"], "run": ["true"]}
    )
    run_burst(store.fleet)
    job = store.fleet.get_job(job_id)
    assert job.status is JobStatus.FAILED and job.attempts == 1  # not retried
    assert job.error is not None and "workspace setup failed: copy .env" in job.error
    assert not marker.exists()


def test_setup_copies_links_and_runs_before_the_job(store: StoreEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "node_modules").mkdir()
    (repo / "node_modules" / "lib.js").write_text("x\n")
    setup = {"copy": [".env"], "link": ["node_modules"], "run": ["echo prepared > setup.log"]}
    job_id = _job(store, repo, "cat .env setup.log node_modules/lib.js", worktree_setup=setup)
    run_burst(store.fleet)
    [run] = store.fleet.runs(job_id)
    assert store.fleet.get_job(job_id).status is JobStatus.SUCCEEDED
    assert run.stdout == "SECRET=1\nprepared\nx\n"


def test_a_failed_jobs_worktree_is_kept_to_inspect(store: StoreEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    job_id = _job(store, repo, "echo half > half.txt; exit 2")
    store.fleet.get_job(job_id)
    run_burst(store.fleet, reap_every=3600)
    job = store.fleet.get_job(job_id)
    assert job.status is JobStatus.FAILED
    assert f"job-{job_id}-e" in git(repo, "worktree", "list")  # kept for a person to look at


def test_only_the_completion_that_won_publishes_its_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    spec = WorkspaceSpec.of({"workspace": "worktree", **locate(repo)})
    assert spec is not None
    ctx = RunContext(db_url="memory://", worker="w")
    runs = []
    for epoch, text in ((1, "stale"), (2, "winner")):
        from agentfleet.runner import ProcessRun

        def build(cwd: str, done: object, text: str = text) -> ProcessRun:
            return ProcessRun(["/bin/sh", "-c", f"echo {text} > README.md"], cwd=cwd, on_exit=done)  # type: ignore[arg-type]

        run = WorkspaceRun(
            spec, WorktreeSetup(), job_id=4, epoch=epoch, attempt=epoch,
            build=build, env={}, on_exit=lambda: None,
        )  # fmt: skip
        run.start()
        wait_until(run.done, "the attempt")
        assert run.outcome().ok, run.outcome()
        runs.append(run)
    stale, winner = runs
    stale.settled(False)  # its fenced completion was refused
    assert git(repo, "branch", "--list", "agentfleet/job-4") == ""
    winner.settled(True)
    won = winner.outcome().result["head_commit"]
    assert head(repo, "agentfleet/job-4") == won
    assert git(repo, "show", f"{won}:README.md") == "winner"
    assert git(repo, "show", f"{attempt_ref(4, 1)}:README.md") == "stale"  # kept, unmerged
    del ctx
