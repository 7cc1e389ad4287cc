"""Silence and spending stop an agent: `idle_timeout`, a job's and a plan's `budget_usd`.

The agents are the stand-in CLIs, run by a real worker as child processes; what the tests
read is what the store recorded.
"""

from __future__ import annotations

from pathlib import Path

from agentfleet import JobStatus
from agentfleet.plans.model import PlanStatus
from agentfleet.plans.planfile import parse_plan
from tests.conftest import StoreEnv
from tests.worker.helpers import run_burst, write_shims


def _env(tmp_path: Path, *clis: str, **extra: str) -> dict[str, str]:
    env = write_shims(tmp_path / "bin", list(clis), tmp_path / "calls.jsonl")
    env["AGENTFLEET_FAKE_AGENT_SESSIONS"] = str(tmp_path / "sessions")
    return {**env, **extra}


def test_an_agent_silent_for_its_idle_timeout_is_stopped_and_retried(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    # The stand-in prints its first event, then says nothing for a minute.
    env = _env(tmp_path, "claude", AGENTFLEET_FAKE_AGENT_SLEEP="60s")
    job = fleet.enqueue(
        "claude",
        {"prompt": "think", "cwd": str(tmp_path), "env": env, "idle_timeout": 1},
        max_attempts=2,
    )
    run_burst(fleet, kill_grace=1.0, output_every=0.1)
    done = fleet.get_job(job.id)
    assert (done.status, done.attempts) == (JobStatus.FAILED, 2)  # retried, like a timeout
    errors = [run.error for run in fleet.runs(job.id)]
    assert errors == ["idle timeout: no output or event for 1s"] * 2
    assert all(run.agent and run.agent["session_id"] for run in fleet.runs(job.id))


def test_a_job_past_its_budget_is_stopped_for_good(sqlite_store: StoreEnv, tmp_path: Path) -> None:
    fleet = sqlite_store.fleet
    # opencode reports the cost of each step as it ends: the first one already passes the
    # budget, while the stand-in then waits 3 s before its next step.
    env = _env(tmp_path, "opencode", AGENTFLEET_FAKE_AGENT_SLEEP="3s")
    job = fleet.enqueue(
        "opencode",
        {"prompt": "write out.txt: hi", "cwd": str(tmp_path), "env": env, "budget_usd": 0.001},
        max_attempts=3,
    )
    run_burst(fleet, kill_grace=1.0, output_every=0.1)
    done = fleet.get_job(job.id)
    assert (done.status, done.attempts) == (JobStatus.FAILED, 1)  # no retry spends more
    [run] = fleet.runs(job.id)
    assert run.agent is not None and run.agent["cost_usd"] > 0.001
    assert done.error == (
        f"budget exceeded: job {job.id} cost ${run.agent['cost_usd']:,.4f}, over its $0.001"
    )
    assert fleet.usage(job_id=job.id).cost_usd == run.agent["cost_usd"]


def test_a_job_within_its_budget_runs_to_the_end(sqlite_store: StoreEnv, tmp_path: Path) -> None:
    fleet = sqlite_store.fleet
    env = _env(tmp_path, "opencode")
    job = fleet.enqueue(
        "opencode",
        {"prompt": "write out.txt: hi", "cwd": str(tmp_path), "env": env, "budget_usd": 1},
    )
    run_burst(fleet, output_every=0.1)
    assert fleet.get_job(job.id).status is JobStatus.SUCCEEDED


def test_a_plan_past_its_budget_starts_no_further_step(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    env = _env(tmp_path, "claude")
    step = {"engine": "claude", "cwd": str(tmp_path), "env": env}
    spec = parse_plan(
        {
            "name": "spend",
            "budget_usd": 0.002,  # one claude stand-in run costs about $0.0037
            "jobs": [
                {"name": "first", "prompt": "write a.txt: 1", **step},
                {"name": "second", "prompt": "write b.txt: 2", "depends_on": ["first"], **step},
            ],
        },
        tmp_path,
        known_engines=["claude"],
    )
    plan = fleet.submit_plan(spec)
    run_burst(fleet, output_every=0.1)
    plan = fleet.get_plan(plan.id)
    first, second = plan.step("first"), plan.step("second")
    assert plan.status is PlanStatus.FAILED
    assert fleet.runs(second.job_id) == []  # never started
    assert not (tmp_path / "b.txt").exists()
    spent = fleet.usage(plan_id=plan.id)
    assert spent.cost_usd is not None and spent.cost_usd > 0.002
    reason = f"budget exceeded: plan {plan.id} cost ${spent.cost_usd:,.4f}, over its $0.002"
    ended = fleet.get_job(first.job_id)
    if ended.status is JobStatus.SUCCEEDED:
        # claude reports its cost as it ends: the run finished before the worker read it,
        # so the plan stopped at promoting the next step.
        assert plan.checkpoint_context == {"kind": "budget", "error": reason}
        assert fleet.get_job(second.job_id).error == f"not run: {reason}"
    else:
        # The worker read the cost while the process was still exiting: it stopped it.
        assert (ended.status, ended.error) == (JobStatus.FAILED, reason)
        assert fleet.get_job(second.job_id).error == "not run: the plan failed"


def test_a_retry_of_a_job_past_its_budget_fails_before_the_agent_starts(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    env = _env(tmp_path, "opencode", AGENTFLEET_FAKE_AGENT_SLEEP="3s")
    job = fleet.enqueue(
        "opencode",
        {"prompt": "write out.txt: hi", "cwd": str(tmp_path), "env": env, "budget_usd": 0.001},
    )
    run_burst(fleet, kill_grace=1.0, output_every=0.1)
    assert fleet.get_job(job.id).status is JobStatus.FAILED
    calls = (tmp_path / "calls.jsonl").read_text().splitlines()
    fleet.retry_job(job.id)  # a person retries it: the budget still holds
    run_burst(fleet, kill_grace=1.0, output_every=0.1)
    done = fleet.get_job(job.id)
    assert done.status is JobStatus.FAILED and done.error is not None
    assert done.error.startswith(f"budget exceeded: job {job.id} cost $")
    assert (tmp_path / "calls.jsonl").read_text().splitlines() == calls  # never started
    assert fleet.runs(job.id)[-1].pgid is None
