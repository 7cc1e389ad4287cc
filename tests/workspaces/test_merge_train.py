"""A plan's merge train with real git repositories and real workers: each step's branch
merged into the plan's integration branch one at a time behind a test gate, conflicts and
failed tests rolled back and reworked, and the work landed on `into` or in a pull request."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentfleet import (
    InvalidArgument,
    JobStatus,
    LeaseLost,
    NewJob,
    PlanSpec,
    PlanStatus,
    StepSpec,
    with_merge_train,
)
from agentfleet.cli import app
from agentfleet.dispatch import RunContext, build_execution
from agentfleet.workspaces.merge_job import integration_branch
from tests.conftest import StoreEnv
from tests.web.conftest import make_web
from tests.worker.helpers import run_burst, wait_until
from tests.workspaces.repos import bare_remote, fake_gh, git, head, make_repo


def _step(name: str, cmd: str, deps: tuple[str, ...] = ()) -> str:
    lines = [
        f"  - name: {name}",
        "    engine: shell",
        f"    cmd: {cmd!r}",
        "    workspace: worktree",
        "    cwd: repo",
    ]
    if deps:
        lines.append(f"    depends_on: [{', '.join(deps)}]")
    return "\n".join(lines) + "\n"


def _plan(
    tmp_path: Path, steps: str, *, mode: str = "auto", test: str | None = None, extra: str = ""
) -> Path:
    merge = "merge:\n  into: main\n" + (f"  test: {test!r}\n" if test else "")
    text = f"name: train\nmode: {mode}\n{merge}{extra}jobs:\n{steps}"
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


def _files(repo: Path, ref: str) -> dict[str, str]:
    names = git(repo, "ls-tree", "-r", "--name-only", ref).splitlines()
    return {n: git(repo, "show", f"{ref}:{n}") for n in names}


def test_three_steps_merge_one_at_a_time_and_land_on_main(store: StoreEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    base = head(repo)
    steps = (
        _step("alpha", "echo alpha > alpha.txt")
        + _step("beta", "echo beta > beta.txt")
        + _step(
            "gamma",  # templated too: rendered on top of what the train gives it
            "cat alpha.txt beta.txt > gamma.txt; echo {{ steps.alpha.status }} > said.txt",
            deps=("alpha", "beta"),
        )
    )
    spec = _plan(tmp_path, steps, test="test ! -f broken.txt")
    plan = store.fleet.submit_plan(spec)
    run_burst(store.fleet, concurrency=2)
    plan = store.fleet.get_plan(plan.id)
    jobs = {s.name: store.fleet.get_job(s.job_id) for s in plan.jobs}
    assert plan.status is PlanStatus.COMPLETED, {n: (j.status, j.error) for n, j in jobs.items()}
    # gamma branched from the integration branch holding alpha and beta
    assert jobs["gamma"].result["base_commit"] != base
    main = _files(repo, "main")
    assert (main["gamma.txt"], main["said.txt"]) == ("alpha\nbeta", "succeeded")
    assert set(main) == {
        "README.md",
        "src/app.py",
        "alpha.txt",
        "beta.txt",
        "gamma.txt",
        "said.txt",
    }
    assert head(repo, integration_branch(plan.id)) == head(repo, "main")
    assert (repo / "gamma.txt").read_text() == "alpha\nbeta\n"  # the clean checkout moved on
    land = jobs["land"].result
    assert land["landed"] == head(repo, "main")
    assert sorted(land["files_changed"]) == ["alpha.txt", "beta.txt", "gamma.txt", "said.txt"]
    for name in ("merge:alpha", "merge:beta", "merge:gamma"):
        assert jobs[name].status is JobStatus.SUCCEEDED
        assert jobs[name].lock == f"agentfleet-plan-{plan.id}-train"


def _by_name(store: StoreEnv, plan_id: int) -> dict[str, Any]:
    plan = store.fleet.get_plan(plan_id)
    return {s.name: store.fleet.get_job(s.job_id) for s in plan.jobs}


def test_a_supervised_plan_stops_at_pre_pr_with_the_diffstat_and_records_the_pr_url(
    store: StoreEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    remote = bare_remote(repo, tmp_path / "remote.git")
    log = fake_gh(tmp_path, monkeypatch)
    pr = "pr:\n  title: Checkout redesign\n  body: Two steps.\n"
    spec = _plan(
        tmp_path,
        _step("a", "echo a > a.txt") + _step("b", "printf 'b\\nb\\n' > b.txt"),
        mode="supervised",
        extra=pr,
    )
    plan = store.fleet.submit_plan(spec)
    run_burst(store.fleet, concurrency=2)
    plan = store.fleet.get_plan(plan.id)
    assert plan.checkpoint == "pre_pr", (plan.checkpoint_context, _by_name(store, plan.id))
    context = plan.checkpoint_context or {}
    assert context["diffstat"] == {"files_changed": ["a.txt", "b.txt"], "insertions": 3,
                                   "deletions": 0}  # fmt: skip
    assert context["branch"] == integration_branch(plan.id)
    assert not log.exists() and head(repo, "main") == head(repo, "HEAD")
    main_before = head(repo, "main")
    store.fleet.approve(plan.id, checkpoint="pre_pr")
    run_burst(store.fleet)
    plan = store.fleet.get_plan(plan.id)
    assert plan.status is PlanStatus.COMPLETED, _by_name(store, plan.id)["land"].error
    assert plan.pr_url == "https://github.example/acme/shop/pull/42"
    shown = CliRunner().invoke(app, ["--db", store.url, "plan", "show", str(plan.id)])
    assert "pull request: https://github.example/acme/shop/pull/42" in shown.stdout
    branch = integration_branch(plan.id)
    assert log.read_text().splitlines() == [
        "pr", "create", "--head", branch, "--base", "main",
        "--title", "Checkout redesign", "--body", "Two steps.",
    ]  # fmt: skip
    assert git(remote, "rev-parse", branch) == head(repo, branch)  # pushed before gh ran
    assert head(repo, "main") == main_before  # a pull request leaves main alone


def _conflicting(tmp_path: Path, mode: str, test: str | None = None) -> Path:
    # both start together from the base, so the second merge to arrive conflicts
    steps = _step("a", "echo from-a > shared.txt") + _step("b", "echo from-b > shared.txt")
    return _plan(tmp_path, steps, mode=mode, test=test)


def test_a_conflict_rolls_back_stops_the_plan_and_a_resume_reworks_the_step(
    store: StoreEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"shared.txt": "base\n"})
    main_before = head(repo, "main")
    plan = store.fleet.submit_plan(_conflicting(tmp_path, "supervised"))
    run_burst(store.fleet, concurrency=2)
    plan = store.fleet.get_plan(plan.id)
    assert plan.status is PlanStatus.PAUSED and plan.checkpoint == "on_error"
    context = plan.checkpoint_context or {}
    assert context["kind"] == "merge_conflict" and context["files"] == ["shared.txt"]
    loser = context["job"]
    winner = "a" if loser == "b" else "b"
    assert f"+from-{winner}" in context["other_diff"]
    branch = integration_branch(plan.id)
    # rolled back: the integration branch holds the first merge only, main nothing
    assert git(repo, "show", f"{branch}:shared.txt") == f"from-{winner}"
    assert head(repo, "main") == main_before
    assert "merge-plan" not in git(repo, "worktree", "list")
    held = head(repo, branch)

    store.fleet.resume(plan.id)
    jobs = _by_name(store, plan.id)
    assert jobs[loser].status is JobStatus.QUEUED
    [resumed] = [e for e in store.fleet.events(limit=10_000)
                 if e.kind == "plan_resumed" and e.plan_id == plan.id]  # fmt: skip
    assert resumed.data["reworked"] == loser
    feedback = jobs[loser].payload["feedback"]
    assert any("conflicted" in f and f"+from-{winner}" in f for f in feedback)
    run_burst(store.fleet)
    plan = store.fleet.get_plan(plan.id)
    jobs = _by_name(store, plan.id)
    assert plan.status is PlanStatus.PAUSED and plan.checkpoint == "pre_merge", plan
    assert jobs[loser].result["base_commit"] == held  # reran from the newest merged code
    store.fleet.approve(plan.id, checkpoint="pre_merge")
    run_burst(store.fleet)
    assert store.fleet.get_plan(plan.id).status is PlanStatus.COMPLETED
    assert git(repo, "show", "main:shared.txt") == f"from-{loser}"


def test_an_auto_plan_fails_on_a_conflict_with_the_same_context(
    store: StoreEnv, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo", {"shared.txt": "base\n"})
    plan = store.fleet.submit_plan(_conflicting(tmp_path, "auto"))
    run_burst(store.fleet, concurrency=2)
    plan = store.fleet.get_plan(plan.id)
    assert plan.status is PlanStatus.FAILED
    assert (plan.checkpoint_context or {})["kind"] == "merge_conflict"
    assert _by_name(store, plan.id)["land"].status is JobStatus.CANCELLED


def test_a_failing_test_gate_rolls_the_merge_back_and_names_the_output(
    store: StoreEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    steps = _step("good", "echo ok > ok.txt") + _step("bad", "echo boom > broken.txt", ("good",))
    gate = "if test -f broken.txt; then echo 'FAILED test_checkout'; exit 1; fi"
    plan = store.fleet.submit_plan(_plan(tmp_path, steps, mode="supervised", test=gate))
    run_burst(store.fleet)
    plan = store.fleet.get_plan(plan.id)
    context = plan.checkpoint_context or {}
    assert plan.checkpoint == "on_error" and context["kind"] == "test_failed"
    assert context["job"] == "bad" and "FAILED test_checkout" in context["output"]
    branch = integration_branch(plan.id)
    assert git(repo, "ls-tree", "--name-only", branch).splitlines() == ["README.md", "ok.txt",
                                                                        "src"]  # fmt: skip
    jobs = _by_name(store, plan.id)
    assert jobs["merge:bad"].status is JobStatus.FAILED and jobs["merge:bad"].attempts == 1
    shown = CliRunner().invoke(app, ["--db", store.url, "plan", "show", str(plan.id)])
    assert "stopped: the test gate failed after merging bad: exit 1" in shown.stdout
    assert "FAILED test_checkout" in shown.stdout
    assert f"agentfleet plan resume {plan.id}" in shown.stdout
    page = make_web(store).client.get(f"/plans/{plan.id}").text
    assert "the test gate failed after merging bad: exit 1" in page
    assert "FAILED test_checkout" in page


def test_pre_merge_brings_in_a_moved_main_and_tests_again_before_the_swap(
    store: StoreEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    gate = "test ! -f poison.txt"
    plan = store.fleet.submit_plan(
        _plan(tmp_path, _step("a", "echo a > a.txt"), mode="supervised", test=gate)
    )
    run_burst(store.fleet)
    assert store.fleet.get_plan(plan.id).checkpoint == "pre_merge"
    (repo / "hotfix.txt").write_text("urgent\n")  # someone lands a fix on main meanwhile
    git(repo, "add", "hotfix.txt")
    git(repo, "commit", "--quiet", "-m", "hotfix")
    hotfix = head(repo, "main")
    store.fleet.approve(plan.id, checkpoint="pre_merge")
    run_burst(store.fleet)
    assert store.fleet.get_plan(plan.id).status is PlanStatus.COMPLETED
    assert git(repo, "merge-base", "--is-ancestor", hotfix, "main") == ""  # kept the fix
    assert {"a.txt", "hotfix.txt"} <= set(_files(repo, "main"))
    assert (repo / "a.txt").exists() and git(repo, "status", "--porcelain") == ""


def test_pre_merge_into_a_dirty_checkout_says_what_to_do_and_touches_nothing(
    store: StoreEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    plan = store.fleet.submit_plan(_plan(tmp_path, _step("a", "echo a > a.txt"), mode="supervised"))
    run_burst(store.fleet)
    (repo / "README.md").write_text("my own edit, not committed\n")
    main_before = head(repo, "main")
    store.fleet.approve(plan.id, checkpoint="pre_merge")
    run_burst(store.fleet)
    plan = store.fleet.get_plan(plan.id)
    context = plan.checkpoint_context or {}
    assert plan.checkpoint == "on_error" and context["kind"] == "checkout_dirty"
    assert "commit or stash" in context["message"]
    assert head(repo, "main") == main_before
    assert (repo / "README.md").read_text() == "my own edit, not committed\n"
    git(repo, "stash")
    store.fleet.resume(plan.id)
    run_burst(store.fleet)
    assert store.fleet.get_plan(plan.id).status is PlanStatus.COMPLETED
    assert (repo / "a.txt").exists()


def test_main_moves_by_compare_and_swap_when_it_is_not_checked_out(
    store: StoreEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "switch", "--quiet", "-c", "elsewhere")
    plan = store.fleet.submit_plan(_plan(tmp_path, _step("a", "echo a > a.txt")))
    run_burst(store.fleet)
    assert store.fleet.get_plan(plan.id).status is PlanStatus.COMPLETED
    assert "a.txt" in _files(repo, "main")
    assert not (repo / "a.txt").exists()  # the checkout on another branch is untouched


def test_a_stale_attempts_commit_is_never_merged(store: StoreEnv, tmp_path: Path) -> None:
    """Attempt 1 finishes its work but its lease runs out before it reports; attempt 2 takes
    the step over, and the train merges and lands attempt 2's commit. Attempt 1's late
    completion is refused, and its commit reaches neither the job's branch nor main."""
    repo = make_repo(tmp_path / "repo")
    spec = _plan(tmp_path, _step("alpha", "echo attempt-$AGENTFLEET_LEASE_EPOCH > alpha.txt"))
    plan = store.fleet.submit_plan(spec)
    step = next(s for s in plan.jobs if s.name == "alpha")  # beside it: merge:alpha, land
    job = store.fleet.get_job(step.job_id)
    stalled = store.fleet.claim(job.id, worker="stalled", ttl=store.short_ttl)
    assert stalled is not None
    ctx = RunContext(db_url=store.url, worker="stalled")
    first = build_execution(job, stalled, ctx, on_exit=lambda: None)
    first.start()
    wait_until(first.done, "the first attempt's work")
    stale = first.outcome()
    assert stale.ok, stale.error

    wait_until(store.fleet.reap_expired, "the first attempt's lease to run out")
    run_burst(store.fleet)  # attempt 2, its merge and the landing
    with pytest.raises(LeaseLost):
        store.fleet.complete(stalled, stale.result)
    first.settled(False)

    plan = store.fleet.get_plan(plan.id)
    assert plan.status is PlanStatus.COMPLETED, plan.error
    job = store.fleet.get_job(job.id)
    assert job.status is JobStatus.SUCCEEDED and job.attempts == 2
    assert git(repo, "show", "main:alpha.txt") == "attempt-2"
    stale_commit = stale.result["head_commit"]
    assert git(repo, "show", f"{stale_commit}:alpha.txt") == "attempt-1"
    assert not _is_ancestor(repo, stale_commit, "main")
    assert head(repo, job.result["branch"]) == job.result["head_commit"] != stale_commit


def _is_ancestor(repo: Path, older: str, newer: str) -> bool:
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", older, newer], cwd=repo, capture_output=True
    )
    return done.returncode == 0


def test_the_python_api_adds_a_train_to_a_plan_spec(store: StoreEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")

    def step(name: str, cmd: str) -> StepSpec:
        payload = {"cmd": cmd, "cwd": str(repo), "workspace": "worktree"}
        return StepSpec(name=name, job=NewJob("shell", payload))

    spec = PlanSpec("api", (step("a", "echo a > a.txt"), step("b", "echo b > b.txt")))
    trained = with_merge_train(spec, {"into": "main", "test": "test -f README.md"})
    names = [s.name for s in trained.steps]
    assert names == ["a", "b", "merge:a", "merge:b", "land"]
    with pytest.raises(InvalidArgument, match="already has a merge train"):
        with_merge_train(trained, {"into": "main"})
    with pytest.raises(InvalidArgument, match=r"merge\.into"):
        with_merge_train(spec, {"test": "true"})
    plan = store.fleet.submit_plan(trained)
    run_burst(store.fleet, concurrency=2)
    assert store.fleet.get_plan(plan.id).status is PlanStatus.COMPLETED
    assert _files(repo, "main") == {"README.md": "hello", "src/app.py": "print('v1')",
                                    "a.txt": "a", "b.txt": "b"}  # fmt: skip
