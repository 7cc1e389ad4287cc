"""Plans end to end with real workers running real shell jobs, on every store."""

from __future__ import annotations

from pathlib import Path

from agentfleet import JobStatus, PlanStatus
from tests.conftest import StoreEnv
from tests.plans.helpers import plan
from tests.worker.helpers import wait_until, worker_thread


def _sh(name: str, cmd: str, *deps: str, **extra: object) -> dict[str, object]:
    return {"name": name, "engine": "shell", "cmd": cmd, "depends_on": list(deps), **extra}


def test_auto_plan_runs_through_with_workers(env: StoreEnv, tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    step = (
        f'echo "$AGENTFLEET_STEP" >> {log}; echo "plan $AGENTFLEET_PLAN_ID step $AGENTFLEET_STEP"'
    )
    p = env.fleet.submit_plan(
        plan(
            _sh("build", step),
            _sh("unit", step, "build"),
            _sh("lint", step, "build"),
            _sh("ship", step, "unit", "lint"),
            max_parallel=2,
        )
    )
    with (
        worker_thread(env.fleet, name="w1", concurrency=2),
        worker_thread(env.open(), name="w2", concurrency=2),
    ):
        wait_until(lambda: env.fleet.get_plan(p.id).status is PlanStatus.COMPLETED, "the plan")
    order = log.read_text().split()
    assert order[0] == "build" and order[-1] == "ship" and sorted(order[1:3]) == ["lint", "unit"]
    done = env.fleet.get_plan(p.id)
    ship = env.fleet.runs(done.step("ship").job_id)[-1]
    assert ship.stdout == f"plan {p.id} step ship\n"
    inputs = env.fleet.plan_inputs(done.step("ship").job_id)
    assert inputs["unit"]["stdout"] == f"plan {p.id} step unit\n"


def test_supervised_plan_stops_on_error_resumes_and_completes(
    env: StoreEnv, tmp_path: Path
) -> None:
    fixed = tmp_path / "fixed"
    p = env.fleet.submit_plan(
        plan(
            _sh("prepare", "echo ready"),
            _sh(
                "flaky",
                f"test -f {fixed} || {{ echo 'not fixed yet' >&2; exit 1; }}",
                "prepare",
                max_attempts=1,
            ),
            _sh("finish", "echo done", "flaky"),
            mode="supervised",
        )
    )
    with worker_thread(env.fleet, name="w1"):
        wait_until(lambda: env.fleet.get_plan(p.id).checkpoint == "on_error", "on_error")
        stopped = env.fleet.get_plan(p.id)
        assert stopped.status is PlanStatus.PAUSED
        assert stopped.checkpoint_context is not None
        assert stopped.checkpoint_context["job"] == "flaky"
        assert stopped.step("finish").status is JobStatus.WAITING
        fixed.touch()
        env.fleet.resume(p.id)
        wait_until(lambda: env.fleet.get_plan(p.id).checkpoint == "pre_pr", "pre_pr")
    assert env.fleet.approve(p.id).status is PlanStatus.COMPLETED
    flaky_runs = env.fleet.runs(env.fleet.get_plan(p.id).step("flaky").job_id)
    assert [r.status.value for r in flaky_runs] == ["failed", "succeeded"]
    assert flaky_runs[0].stderr == "not fixed yet\n"
