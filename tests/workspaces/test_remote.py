"""`remote: NAME` with real git: a bare repository is the remote, the user's clone submits,
and two workers with clones folders of their own stand for two machines. Steps run on one,
merges and landing on the other; only what goes through the remote connects them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from agentfleet import InvalidArgument, JobStatus, LeaseLost, PlanStatus
from agentfleet.dispatch import RunContext, build_execution
from agentfleet.runner import ProcessRun
from agentfleet.workspaces import single
from agentfleet.workspaces.execution import WorkspaceRun
from agentfleet.workspaces.git import GitError
from agentfleet.workspaces.merge_job import integration_branch
from agentfleet.workspaces.remote import (
    CLONES_ENV,
    Clone,
    Remote,
    base_ref,
    clones_root,
    located,
    slug,
    url_of,
)
from agentfleet.workspaces.setup import WorktreeSetup
from agentfleet.workspaces.worktree import WorkspaceSpec, attempt_ref, locate
from tests.conftest import StoreEnv
from tests.worker.helpers import cli, run_burst, wait_until
from tests.workspaces.repos import fake_gh, git, head, make_repo

TERMINAL = (PlanStatus.COMPLETED, PlanStatus.FAILED, PlanStatus.CANCELLED)


def _remote_and_clone(tmp_path: Path) -> tuple[Path, Path]:
    """A bare repository (the remote) and the user's clone of it, on branch main."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    clone = make_repo(tmp_path / "a")
    git(clone, "remote", "add", "origin", str(bare))
    git(clone, "push", "--quiet", "origin", "main")
    return bare, clone


def _untouched(clone: Path) -> tuple[str, str, str, str]:
    """What of the user's clone must never change: HEAD, files, worktrees, agentfleet refs."""
    refs = git(clone, "for-each-ref", "refs/agentfleet", "refs/heads/agentfleet")
    return head(clone), git(clone, "status", "--porcelain"), git(clone, "worktree", "list"), refs


def _step(name: str, cmd: str, deps: tuple[str, ...] = (), queue: str = "machine-1") -> str:
    lines = [
        f"  - name: {name}",
        "    engine: shell",
        f"    cmd: {cmd!r}",
        "    workspace: worktree",
        "    cwd: a",
        f"    queue: {queue}",
    ]
    if deps:
        lines.append(f"    depends_on: [{', '.join(deps)}]")
    return "\n".join(lines) + "\n"


def _plan(
    tmp_path: Path, steps: str, *, mode: str = "auto", test: str | None = None, extra: str = ""
) -> Path:
    merge = "merge:\n  into: main\n  remote: origin\n" + (f"  test: {test!r}\n" if test else "")
    path = tmp_path / "plan.yaml"
    path.write_text(f"name: remote\nmode: {mode}\n{merge}{extra}jobs:\n{steps}")
    return path


def _files(repo: Path, ref: str) -> dict[str, str]:
    names = git(repo, "ls-tree", "-r", "--name-only", ref).splitlines()
    return {n: git(repo, "show", f"{ref}:{n}") for n in names}


def _by_name(store: StoreEnv, plan_id: int) -> dict[str, Any]:
    plan = store.fleet.get_plan(plan_id)
    return {s.name: store.fleet.get_job(s.job_id) for s in plan.jobs}


def _two_machines(store: StoreEnv, tmp_path: Path, plan_id: int) -> PlanStatus:
    """Machine 1 runs the steps (queue machine-1, two at once in one clone), machine 2 the
    merges and the landing (queue default), taking turns until the plan is over or stops."""
    for _ in range(6):
        status = store.fleet.get_plan(plan_id).status
        if status in TERMINAL or status is PlanStatus.PAUSED:
            return status
        for n, queue in ((1, "machine-1"), (2, "default")):
            run_burst(
                store.fleet,
                name=f"machine-{n}",
                queues=[queue],
                concurrency=3 - n,
                clones=tmp_path / f"machine-{n}",
            )
    return store.fleet.get_plan(plan_id).status


def test_steps_on_one_machine_merges_and_landing_on_another_meet_on_the_remote(
    store: StoreEnv, tmp_path: Path
) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    base, before = head(clone), _untouched(clone)
    steps = (
        _step("alpha", "echo alpha > alpha.txt; pwd")
        + _step("beta", "echo beta > beta.txt")
        + _step("gamma", "cat alpha.txt beta.txt > gamma.txt", deps=("alpha", "beta"))
    )
    plan = store.fleet.submit_plan(_plan(tmp_path, steps, test="test -f README.md"))
    assert git(bare, "rev-parse", base_ref(base)) == base  # there for any machine to fetch
    status = _two_machines(store, tmp_path, plan.id)
    jobs = _by_name(store, plan.id)
    assert status is PlanStatus.COMPLETED, {n: (j.status, j.error) for n, j in jobs.items()}

    main = _files(bare, "main")
    assert set(main) == {"README.md", "src/app.py", "alpha.txt", "beta.txt", "gamma.txt"}
    assert main["gamma.txt"] == "alpha\nbeta"  # gamma branched from what machine 2 merged
    assert git(bare, "rev-parse", integration_branch(plan.id)) == git(bare, "rev-parse", "main")
    assert jobs["land"].result["landed"] == git(bare, "rev-parse", "main")
    for name in ("alpha", "beta", "gamma"):
        result = jobs[name].result
        assert git(bare, "rev-parse", f"agentfleet/job-{jobs[name].id}") == result["head_commit"]
        assert [r.worker for r in store.fleet.runs(jobs[name].id)] == ["machine-1"]
    for name in ("merge:alpha", "merge:beta", "merge:gamma", "land"):
        assert {r.worker for r in store.fleet.runs(jobs[name].id)} == {"machine-2"}, name
    [alpha_run] = store.fleet.runs(jobs["alpha"].id)
    assert Path((alpha_run.stdout or "").strip()).is_relative_to(tmp_path / "machine-1")
    assert _untouched(clone) == before  # the user's clone: same HEAD, files, refs
    assert head(clone, "main") == base
    assert not any((tmp_path / "machine-1").glob("*/agentfleet/worktrees/*"))  # tidied


def test_a_broken_lease_on_the_integration_branch_is_retried_and_lands_right(
    store: StoreEnv, tmp_path: Path
) -> None:
    bare, _clone = _remote_and_clone(tmp_path)
    # someone else, with a clone of their own, will move the integration branch on the
    # remote while the first merge runs its test gate
    other = tmp_path / "b"
    git(tmp_path, "clone", "--quiet", str(bare), str(other))
    (other / "intruder.txt").write_text("pushed meanwhile\n")
    git(other, "add", "intruder.txt")
    git(other, "commit", "--quiet", "-m", "meanwhile")
    intruder = head(other)
    marker = tmp_path / "moved-once"
    gate = (
        f"if mkdir {marker} 2>/dev/null; then git -C {other} push --quiet origin "
        f"{intruder}:refs/heads/agentfleet/plan-$AGENTFLEET_PLAN_ID; fi"
    )
    steps = _step("a", "echo a > a.txt") + _step("b", "echo b > b.txt")
    plan = store.fleet.submit_plan(_plan(tmp_path, steps, test=gate))
    status = _two_machines(store, tmp_path, plan.id)
    jobs = _by_name(store, plan.id)
    assert status is PlanStatus.COMPLETED, {n: (j.status, j.error) for n, j in jobs.items()}
    assert {"intruder.txt", "a.txt", "b.txt"} <= set(_files(bare, "main"))
    assert git(bare, "merge-base", "--is-ancestor", intruder, "main") == ""
    retried = [store.fleet.runs(jobs[n].id) for n in ("merge:a", "merge:b") if jobs[n].attempts > 1]
    assert len(retried) == 1, "exactly the merge whose lease broke ran again"
    first = retried[0][0]
    assert first.error is not None and "moved during the merge" in first.error


def test_landing_brings_in_a_main_that_moved_on_the_remote_and_tests_again(
    store: StoreEnv, tmp_path: Path
) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    before = _untouched(clone)
    spec = _plan(
        tmp_path, _step("a", "echo a > a.txt"), mode="supervised", test="test -f README.md"
    )
    plan = store.fleet.submit_plan(spec)
    assert _two_machines(store, tmp_path, plan.id) is PlanStatus.PAUSED
    assert store.fleet.get_plan(plan.id).checkpoint == "pre_merge"
    other = tmp_path / "b"  # someone lands a fix on the remote's main meanwhile
    git(tmp_path, "clone", "--quiet", str(bare), str(other))
    (other / "hotfix.txt").write_text("urgent\n")
    git(other, "add", "hotfix.txt")
    git(other, "commit", "--quiet", "-m", "hotfix")
    git(other, "push", "--quiet", "origin", "main")
    hotfix = head(other)
    store.fleet.approve(plan.id, checkpoint="pre_merge")
    assert _two_machines(store, tmp_path, plan.id) is PlanStatus.COMPLETED
    assert git(bare, "merge-base", "--is-ancestor", hotfix, "main") == ""  # kept the fix
    assert {"a.txt", "hotfix.txt"} <= set(_files(bare, "main"))
    assert _untouched(clone) == before


def test_a_conflict_is_reworked_on_machine_1_from_what_machine_2_merged(
    store: StoreEnv, tmp_path: Path
) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    git(clone, "rm", "--quiet", "README.md")
    (clone / "shared.txt").write_text("base\n")
    git(clone, "add", "shared.txt")
    git(clone, "commit", "--quiet", "-m", "shared")
    git(clone, "push", "--quiet", "origin", "main")
    steps = _step("a", "echo from-a > shared.txt") + _step("b", "echo from-b > shared.txt")
    plan = store.fleet.submit_plan(_plan(tmp_path, steps, mode="supervised"))
    assert _two_machines(store, tmp_path, plan.id) is PlanStatus.PAUSED
    context = store.fleet.get_plan(plan.id).checkpoint_context or {}
    assert context["kind"] == "merge_conflict" and context["files"] == ["shared.txt"]
    loser = context["job"]
    held = git(bare, "rev-parse", integration_branch(plan.id))
    store.fleet.resume(plan.id)
    assert _two_machines(store, tmp_path, plan.id) is PlanStatus.PAUSED
    jobs = _by_name(store, plan.id)
    assert store.fleet.get_plan(plan.id).checkpoint == "pre_merge"
    assert jobs[loser].result["base_commit"] == held  # machine 1 fetched machine 2's merge
    assert [r.worker for r in store.fleet.runs(jobs[loser].id)] == ["machine-1"] * 2
    store.fleet.approve(plan.id, checkpoint="pre_merge")
    assert _two_machines(store, tmp_path, plan.id) is PlanStatus.COMPLETED
    assert git(bare, "show", "main:shared.txt") == f"from-{loser}"
    assert (
        git(bare, "rev-parse", f"agentfleet/job-{jobs[loser].id}")
        == jobs[loser].result["head_commit"]
    )  # the branch moved to the rework's commit


def test_a_stale_attempts_commit_never_reaches_the_remotes_job_branch(tmp_path: Path) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    found = locate(clone)
    payload = {"workspace": "worktree", **found, **located(clone, "origin", found["base_commit"])}
    runs = []
    # attempt 1 on machine 1, then a takeover: attempt 2 on machine 2
    for epoch, text in ((1, "stale"), (2, "winner")):
        spec = WorkspaceSpec.of(payload, tmp_path / f"machine-{epoch}")
        assert spec is not None

        def build(cwd: str, done: Any, text: str = text) -> ProcessRun:
            return ProcessRun(["/bin/sh", "-c", f"echo {text} > README.md"], cwd=cwd, on_exit=done)

        run = WorkspaceRun(
            spec, WorktreeSetup(), job_id=4, epoch=epoch, attempt=epoch,
            build=build, env={}, on_exit=lambda: None,
        )  # fmt: skip
        run.start()
        wait_until(run.done, "the attempt")
        assert run.outcome().ok, run.outcome()
        runs.append(run)
    stale, winner = runs
    stale_commit = stale.outcome().result["head_commit"]
    # each attempt's commit was pushed to its own ref before its completion was written
    assert git(bare, "show", f"{attempt_ref(4, 1)}:README.md") == "stale"
    assert git(bare, "show", f"{attempt_ref(4, 2)}:README.md") == "winner"
    assert stale.outcome().result["attempt_ref"] == attempt_ref(4, 1)
    stale.settled(False)  # its fenced completion was refused
    assert git(bare, "branch", "--list", "agentfleet/job-4") == ""
    winner.settled(True)
    won = winner.outcome().result["head_commit"]
    assert git(bare, "rev-parse", "agentfleet/job-4") == won
    assert git(bare, "show", "agentfleet/job-4:README.md") == "winner"
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", stale_commit, "agentfleet/job-4"], cwd=bare
    )
    assert done.returncode == 1  # the stale attempt's commit is not on the branch
    assert "agentfleet" not in git(clone, "branch", "--list")


def test_after_a_takeover_only_the_new_attempts_commit_is_on_the_job_branch(
    store: StoreEnv, tmp_path: Path
) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    body = {"cmd": 'echo "$AGENTFLEET_LEASE_EPOCH" > epoch.txt', "cwd": str(clone),
            "workspace": "worktree", "remote": "origin"}  # fmt: skip
    job_id = store.fleet.enqueue("shell", body).id
    [lease] = store.fleet.claim_next(worker="machine-1", ttl=store.short_ttl)
    ctx = RunContext(db_url=store.url, worker="machine-1", clones=tmp_path / "machine-1")
    stale = build_execution(store.fleet.get_job(job_id), lease, ctx, lambda: None)
    stale.start()
    wait_until(stale.done, "machine 1's attempt")
    stale_result = stale.outcome().result
    assert git(bare, "show", f"{attempt_ref(job_id, lease.epoch)}:epoch.txt") == str(lease.epoch)
    # machine 1 goes quiet before writing its completion; machine 2 takes the job over
    store.expire_lease(job_id)
    store.fleet.reap_expired()
    run_burst(store.fleet, name="machine-2", clones=tmp_path / "machine-2")
    with pytest.raises(LeaseLost):
        store.fleet.complete(lease, stale_result)
    stale.settled(False)
    job = store.fleet.get_job(job_id)
    assert job.status is JobStatus.SUCCEEDED and job.lease_epoch != lease.epoch
    branch = f"agentfleet/job-{job_id}"
    assert git(bare, "rev-parse", branch) == job.result["head_commit"]
    assert git(bare, "show", f"{branch}:epoch.txt") == str(job.lease_epoch)
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", stale_result["head_commit"], branch], cwd=bare
    )
    assert done.returncode == 1  # machine 1's commit is kept on its attempt ref only


def test_a_single_job_with_a_remote_works_in_a_clone_from_the_clones_folder(
    store: StoreEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    before = _untouched(clone)
    clones = tmp_path / "clones"
    monkeypatch.setenv(CLONES_ENV, str(clones))
    body = {"cmd": "pwd; echo more >> app.py", "cwd": str(clone / "src"),
            "workspace": "worktree", "remote": "origin"}  # fmt: skip
    job_id = store.fleet.enqueue("shell", body).id
    job = store.fleet.get_job(job_id)
    assert job.payload["remote_url"] == str(bare)
    run_burst(store.fleet)
    job = store.fleet.get_job(job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    [run] = store.fleet.runs(job_id)
    where = Path((run.stdout or "").strip())
    assert where.name == "src" and where.is_relative_to(clones / slug(str(bare)))
    assert job.result["files_changed"] == ["src/app.py"] and job.result["remote"] == "origin"
    assert git(bare, "rev-parse", f"agentfleet/job-{job_id}") == job.result["head_commit"]
    assert _untouched(clone) == before
    failing = store.fleet.enqueue("shell", {**body, "cmd": "exit 2"}, max_attempts=1).id
    run_burst(store.fleet)
    kept = store.fleet.workspaces(clones / slug(str(bare)))  # ls looks into the clone
    assert [(w.job_id, w.status) for w in kept] == [(failing, "failed")]
    # merging the one job into the user's own checkout needs its branch fetched first
    fetch = f"git fetch origin agentfleet/job-{job_id}:agentfleet/job-{job_id}"
    with pytest.raises(InvalidArgument, match=fetch):
        single.merge(job, "main")
    git(clone, *fetch.split()[1:])
    assert single.merge(job, "main")["landed"] == head(clone, "main")
    assert "more" in (clone / "src" / "app.py").read_text()


def test_a_pull_request_from_a_plan_with_a_remote(
    store: StoreEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    log = fake_gh(tmp_path, monkeypatch)
    plan = store.fleet.submit_plan(
        _plan(tmp_path, _step("a", "echo a > a.txt"), extra="pr:\n  title: Remote work\n")
    )
    status = _two_machines(store, tmp_path, plan.id)
    assert status is PlanStatus.COMPLETED, _by_name(store, plan.id)["land"].error
    branch = integration_branch(plan.id)
    assert store.fleet.get_plan(plan.id).pr_url == "https://github.example/acme/shop/pull/42"
    assert log.read_text().splitlines()[:6] == [
        "pr", "create", "--head", branch, "--base", "main",
    ]  # fmt: skip
    assert "a.txt" in _files(bare, branch)
    assert git(bare, "rev-parse", "main") == head(clone)  # a pull request leaves main alone


def test_an_unknown_remote_is_refused_at_submit_naming_it(store: StoreEnv, tmp_path: Path) -> None:
    _bare, clone = _remote_and_clone(tmp_path)
    body = {"cmd": "true", "cwd": str(clone), "workspace": "worktree", "remote": "upstream"}
    with pytest.raises(InvalidArgument, match=r"remote 'upstream' is not a remote of .*origin"):
        store.fleet.enqueue("shell", body)
    with pytest.raises(InvalidArgument, match="applies only to workspace: worktree"):
        store.fleet.enqueue("shell", {"cmd": "true", "remote": "origin"})
    with pytest.raises(InvalidArgument, match="copy and link"):
        store.fleet.enqueue(
            "shell", {**body, "remote": "origin", "worktree_setup": {"copy": [".env"]}}
        )
    plan = _plan(tmp_path, _step("a", "true")).read_text().replace("origin", "nowhere")
    (tmp_path / "plan.yaml").write_text(plan)
    with pytest.raises(InvalidArgument, match=r"job 'a': remote 'nowhere' is not a remote"):
        store.fleet.submit_plan(tmp_path / "plan.yaml")
    assert store.fleet.list_plans() == []


def test_steps_naming_different_remotes_cannot_share_a_train(
    store: StoreEnv, tmp_path: Path
) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    git(clone, "remote", "add", "mirror", str(bare))
    steps = _step("a", "true") + _step("b", "true").replace(
        "    queue: machine-1\n", "    queue: machine-1\n    remote: mirror\n"
    )
    with pytest.raises(InvalidArgument, match="lands through one remote"):
        store.fleet.submit_plan(_plan(tmp_path, steps))


def test_the_clones_folder_defaults_to_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CLONES_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert clones_root() == tmp_path / "cache" / "agentfleet" / "clones"
    monkeypatch.setenv(CLONES_ENV, str(tmp_path / "mine"))
    assert clones_root() == tmp_path / "mine"
    assert clones_root(tmp_path / "given") == tmp_path / "given"
    assert slug("git@example.test:acme/shop.git") != slug("https://example.test/acme/shop.git")
    assert slug("git@example.test:acme/shop.git").startswith("git-example.test-acme-shop.git-")


def test_a_remote_that_refuses_fetches_by_commit_is_fetched_by_the_refs_that_hold_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    (clone / "new.txt").write_text("new\n")
    git(clone, "add", "new.txt")
    git(clone, "commit", "--quiet", "-m", "new")
    commit = head(clone)
    git(clone, "commit", "--quiet", "--allow-empty", "-m", "on top")
    git(clone, "push", "--quiet", "origin", "HEAD:refs/agentfleet/somewhere")
    # the old wire protocol: a server then hands out only the tips of refs, not what lies
    # below them
    for key, value in {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.version",
                       "GIT_CONFIG_VALUE_0": "0"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    mine = Clone.open(Remote("origin", str(bare)), tmp_path / "machine-1")
    with pytest.raises(GitError, match=f"commit {commit} is not on remote origin"):
        mine.bring(commit)
    mine.bring(commit, "refs/agentfleet/nowhere", "refs/agentfleet/somewhere")
    assert mine.has(commit)


def test_a_remote_given_as_a_relative_path_is_recorded_absolute(tmp_path: Path) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    git(clone, "remote", "add", "near", "../remote.git")
    assert url_of(clone, "near") == str(bare)
    git(clone, "remote", "add", "far", "git@example.test:acme/shop.git")
    assert url_of(clone, "far") == "git@example.test:acme/shop.git"  # not a path: as it is


def test_agentfleet_worker_takes_its_clones_folder_from_the_command_line(
    store: StoreEnv, tmp_path: Path
) -> None:
    bare, clone = _remote_and_clone(tmp_path)
    body = {"cmd": "echo cli > cli.txt", "cwd": str(clone), "workspace": "worktree",
            "remote": "origin"}  # fmt: skip
    job_id = store.fleet.enqueue("shell", body).id
    clones = tmp_path / "from-the-command-line"
    done = cli("--db", store.url, "worker", "--burst", "--quiet", "--clones", str(clones))
    assert done.returncode == 0, done.stderr
    job = store.fleet.get_job(job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert (clones / slug(str(bare)) / "HEAD").is_file()
    assert git(bare, "show", f"agentfleet/job-{job_id}:cli.txt") == "cli"
