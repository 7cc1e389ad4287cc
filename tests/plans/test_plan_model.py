"""DAG validation, plan files and the transition table: refused with errors that name things."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet import Fleet, InvalidArgument, InvalidTransition, PlanStatus
from agentfleet.plans.model import check_plan_transition, predecessors
from agentfleet.plans.planfile import load_plan_file
from tests.plans.helpers import plan, shell


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ([shell("a"), shell("a")], "duplicate job names in plan: a"),
        ([shell("a", "ghost")], "job 'a' depends on unknown job\\(s\\): ghost"),
        ([shell("a", "a")], "job 'a' depends on itself"),
        ([shell("a", "c"), shell("b", "a"), shell("c", "b")], "dependency cycle: a -> c -> b -> a"),
        ([], "'jobs' must be a non-empty list"),
    ],
)
def test_bad_dags_are_refused_naming_the_problem(
    fleet: Fleet, jobs: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        fleet.submit_plan(plan(*jobs))
    assert fleet.list_plans() == [] and fleet.list_jobs() == []


def test_plan_file_with_inline_and_file_jobs(tmp_path: Path, fleet: Fleet) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "frontend.md").write_text(
        "---\nengine: claude\nyolo: true\nlock: web\n---\nBuild the checkout page.\n"
    )
    (tmp_path / "plan.yaml").write_text(
        "name: checkout\nmode: supervised\nmax_parallel: 2\njobs:\n"
        "  - name: backend\n    engine: shell\n    cmd: echo api\n"
        "  - name: review\n    engine: approval\n    message: Looks right?\n"
        "    on_reject: backend\n    depends_on: [backend]\n"
        "  - name: frontend\n    file: jobs/frontend.md\n    depends_on: [review]\n"
    )
    created = fleet.submit_plan(tmp_path / "plan.yaml")
    assert (created.name, created.mode.value, created.max_parallel) == ("checkout", "supervised", 2)
    assert [s.name for s in created.jobs] == ["backend", "review", "frontend"]
    front = fleet.get_job(created.step("frontend").job_id)
    assert (front.engine, front.lock, front.payload["yolo"]) == ("claude", "web", True)
    assert created.step("frontend").depends_on == ("review",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\njobs: []\n", "'jobs' must be a non-empty list"),
        ("name: x\nmod: auto\njobs: []\n", "unknown field 'mod' \\(did you mean 'mode'\\?\\)"),
        ("jobs:\n  - name: a\n    engine: shell\n    cmd: x\n", "'name' is required"),
        ("name: x\nmode: fast\njobs: []\n", "'mode' must be 'auto' or 'supervised'"),
        (
            "name: x\njobs:\n  - name: a\n    engine: clade\n    prompt: hi\n",
            "did you mean 'claude'",
        ),
        ("name: x\njobs:\n  - name: a\n    file: missing.md\n", "missing.md"),
        ("name: [unclosed\n", "bad YAML"),
        ("name: x\nzzz: 1\njobs: []\n", "unknown field 'zzz'$"),
    ],
)
def test_bad_plan_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=message):
        load_plan_file(path)


def test_an_unreadable_plan_file_says_why(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"^cannot read plan file .*: No such file"):
        load_plan_file(tmp_path / "missing.yaml")


def test_a_plan_file_may_use_only_the_engines_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("name: x\njobs:\n  - name: a\n    engine: claude\n    prompt: hi\n")
    assert [s.job.engine for s in load_plan_file(path).steps] == ["claude"]
    with pytest.raises(InvalidArgument, match="unknown engine 'claude'"):
        load_plan_file(path, known_engines=["shell"])


def test_transition_table() -> None:
    check_plan_transition(PlanStatus.PAUSED, PlanStatus.RUNNING)
    with pytest.raises(InvalidTransition):
        check_plan_transition(PlanStatus.COMPLETED, PlanStatus.RUNNING)
    with pytest.raises(InvalidTransition):
        check_plan_transition(PlanStatus.CANCELLED, PlanStatus.PAUSED)
    assert predecessors(PlanStatus.RUNNING) == {
        PlanStatus.PENDING,
        PlanStatus.PAUSED,
        PlanStatus.FAILED,
    }
