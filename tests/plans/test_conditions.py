"""Conditions and trigger rules: a false `when:` skips its step and, under all_success, the
steps after it; one_success, all_done and none_failed behave as Airflow names them; a
failure a tolerant dependent expects does not stop the plan; bad input is refused."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet import Fleet, InvalidArgument, JobStatus, PlanStatus
from tests.plans.helpers import claim_all, plan, shell


def _finish(fleet: Fleet, results: dict[str, Any], fail: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Run what is queued until nothing is: named steps fail for good, others succeed."""
    while leases := claim_all(fleet):
        for lease in leases:
            step = lease.job.step if lease.job else None
            if step in fail:
                fleet.fail(lease, f"{step} broke", retry=False)
            else:
                fleet.complete(lease, result=results.get(step or "", {}))


def _statuses(fleet: Fleet, plan_id: int) -> dict[str, str]:
    return {s.name: s.status.value for s in fleet.get_plan(plan_id).jobs}


def test_a_false_when_skips_the_step_and_the_steps_after_it(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(
            shell("review"),
            shell("fix", "review", when="steps.review.result.verdict == 'fix'"),
            shell("ship-fix", "fix"),
            shell("ship", "review", when="steps.review.result.verdict == 'ship'"),
        )
    )
    _finish(fleet, {"review": {"verdict": "ship"}})
    assert _statuses(fleet, p.id) == {
        "review": "succeeded", "fix": "skipped", "ship-fix": "skipped", "ship": "succeeded",
    }  # fmt: skip
    done = fleet.get_plan(p.id)
    assert done.status is PlanStatus.COMPLETED
    fix = fleet.get_job(done.step("fix").job_id)
    assert fix.error == "when: the condition is false" and fix.attempts == 0
    assert fleet.get_job(done.step("ship-fix").job_id).error == (
        "all_success: a dependency was skipped"
    )


def test_one_success_runs_as_soon_as_one_dependency_succeeds_and_tolerates_failures(
    fleet: Fleet,
) -> None:
    """Review with three agents, synthesize when one succeeds: failed reviewers are
    expected, so the plan goes on."""
    p = fleet.submit_plan(
        plan(
            shell("r1"),
            shell("r2"),
            shell("r3"),
            shell("synthesize", "r1", "r2", "r3", trigger_rule="one_success"),
        )
    )
    leases = {lease.job.step: lease for lease in claim_all(fleet) if lease.job}
    fleet.fail(leases["r1"], "no", retry=False)
    assert fleet.get_plan(p.id).status is PlanStatus.RUNNING  # tolerated
    fleet.complete(leases["r2"], result={})
    [synthesize] = claim_all(fleet)
    assert synthesize.job is not None and synthesize.job.step == "synthesize"  # r3 runs on
    fleet.complete(leases["r3"], result={})
    fleet.complete(synthesize, result={})
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


def test_one_success_is_skipped_when_every_dependency_failed(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(shell("r1"), shell("r2"), shell("synthesize", "r1", "r2", trigger_rule="one_success"))
    )
    _finish(fleet, {}, fail={"r1", "r2"})
    assert _statuses(fleet, p.id)["synthesize"] == "skipped"
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED
    synthesize = fleet.get_job(fleet.get_plan(p.id).step("synthesize").job_id)
    assert synthesize.error == "one_success: no dependency succeeded"


def test_all_success_skips_at_once_when_one_dependency_is_skipped_while_others_run(
    fleet: Fleet,
) -> None:
    p = fleet.submit_plan(
        plan(
            shell("review"),
            shell("fix", "review", when="steps.review.result.verdict == 'fix'"),
            shell("docs", "review"),
            shell("release", "fix", "docs"),
        )
    )
    [review] = claim_all(fleet)
    fleet.complete(review, result={"verdict": "ship"})
    [docs] = claim_all(fleet)  # fix was skipped; docs runs
    assert _statuses(fleet, p.id) == {
        "review": "succeeded", "fix": "skipped", "docs": "running", "release": "skipped",
    }  # fmt: skip
    release = fleet.get_job(fleet.get_plan(p.id).step("release").job_id)
    assert release.error == "all_success: a dependency was skipped"
    fleet.complete(docs, result={})
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


def test_all_done_runs_after_failures_and_skips(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(
            shell("a"),
            shell("b", when="false"),
            shell("report", "a", "b", trigger_rule="all_done"),
        )
    )
    _finish(fleet, {}, fail={"a"})
    assert _statuses(fleet, p.id) == {"a": "failed", "b": "skipped", "report": "succeeded"}
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


def test_none_failed_runs_past_skips_but_not_past_a_failure(fleet: Fleet) -> None:
    ok = fleet.submit_plan(
        plan(shell("a"), shell("b", when="false"), shell("c", "a", "b", trigger_rule="none_failed"))
    )
    _finish(fleet, {})
    assert _statuses(fleet, ok.id)["c"] == "succeeded"
    bad = fleet.submit_plan(
        plan(shell("x"), shell("y", "x", trigger_rule="none_failed"), mode="supervised")
    )
    _finish(fleet, {}, fail={"x"})
    stopped = fleet.get_plan(bad.id)
    assert stopped.status is PlanStatus.PAUSED and stopped.checkpoint == "on_error"
    assert (stopped.checkpoint_context or {})["job"] == "x"  # a failure none_failed does not expect


def test_all_success_is_the_default_and_a_failure_still_stops_the_plan(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    _finish(fleet, {}, fail={"a"})
    assert fleet.get_plan(p.id).status is PlanStatus.FAILED
    assert _statuses(fleet, p.id)["b"] != JobStatus.SKIPPED.value


@pytest.mark.parametrize(
    ("step", "said"),
    [
        ({"when": "steps.nope.ok"}, "step 'b', when: there is no step named 'nope'"),
        ({"when": "steps.c.ok"}, "step 'b', when: it refers to steps.c"),
        ({"when": "steps.a.ok ==="}, "step 'b', when: bad expression"),
        ({"when": "  "}, "'when' must be an expression"),
        ({"trigger_rule": "any"}, "'trigger_rule' must be one of all_success, one_success"),
    ],
)
def test_bad_conditions_are_refused_at_submit(
    fleet: Fleet, step: dict[str, Any], said: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        fleet.submit_plan(plan(shell("a"), shell("b", "a", **step), shell("c", "b")))
    assert said in str(caught.value)
    assert fleet.list_plans() == []


def test_plan_show_json_and_the_page_say_when_a_step_runs_and_why_it_was_skipped(
    tmp_path: Any,
) -> None:
    from typer.testing import CliRunner

    import agentfleet
    from agentfleet.cli import app
    from agentfleet.serialize import plan_dict

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with agentfleet.open(url) as fleet:
        p = fleet.submit_plan(
            plan(
                shell("review"),
                shell("fix", "review", when="steps.review.result.verdict == 'fix'"),
                shell("sum", "review", "fix", trigger_rule="all_done"),
            )
        )
        _finish(fleet, {"review": {"verdict": "ship"}})
        shown = plan_dict(fleet.get_plan(p.id))
    steps = {s["name"]: s for s in shown["jobs"]}
    assert steps["fix"]["when"] == "steps.review.result.verdict == 'fix'"
    assert steps["sum"]["trigger_rule"] == "all_done" and steps["review"]["when"] is None
    out = CliRunner().invoke(app, ["--db", url, "plan", "show", str(p.id)], env={"COLUMNS": "200"})
    assert "if steps.review.result.verdict == 'fix'" in out.stdout
    assert "review, fix (all_done)" in out.stdout
    assert "skipped  when: the condition is false" in out.stdout


def test_a_skipped_step_says_so_in_its_events(fleet: Fleet) -> None:
    """The job's own event stream (show, the API) tells why it never ran, under its plan."""
    p = fleet.submit_plan(
        plan(shell("review"), shell("fix", "review", when="steps.review.result.verdict == 'fix'"))
    )
    _finish(fleet, {"review": {"verdict": "ship"}})
    fix = fleet.get_plan(p.id).step("fix").job_id
    skipped = [e for e in fleet.events(fix) if e.kind == "skipped"]
    assert [(e.job_id, e.plan_id, e.data) for e in skipped] == [
        (fix, p.id, {"step": "fix", "why": "when: the condition is false"})
    ]
