"""Loops: a step (or the steps from its `from:` to it) runs again, each iteration a new job,
until its `until:` holds or `max_iterations` ran; the iteration's outputs reach the next;
an approval gate in the body pauses each iteration; failures, resume, cancel and repeated
advances behave as for any step; bad loops are refused at submit."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet import Fleet, InvalidArgument, JobStatus, PlanStatus
from agentfleet.plans.loops import loop_note
from tests.plans.helpers import claim_all, gate, plan, shell


def _names(fleet: Fleet, plan_id: int) -> list[tuple[str, str]]:
    return [(s.name, s.status.value) for s in fleet.get_plan(plan_id).jobs]


def _run(fleet: Fleet, results: dict[str, list[Any]], fail: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Run what is queued until nothing is; each named step takes its next result from
    `results` (the last one repeats); steps in `fail` fail for good."""
    ran: list[str] = []
    while leases := claim_all(fleet):
        for lease in leases:
            step = lease.job.step if lease.job else ""
            assert step is not None
            ran.append(step)
            if step in fail:
                fleet.fail(lease, f"{step} broke", retry=False)
                continue
            queue = results.get(step, [{}])
            fleet.complete(lease, result=queue.pop(0) if len(queue) > 1 else queue[0])
    return ran


def _loop_events(fleet: Fleet, plan_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.kind, e.data)
        for e in fleet.events(limit=1000)
        if e.plan_id == plan_id and e.kind in ("loop_iteration", "loop_ended")
    ]


def test_a_loop_runs_until_its_condition_holds_each_iteration_a_new_job(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(
            shell("plan"),
            shell("fix", "plan", loop={"until": "steps.fix.result.green", "max_iterations": 5}),
            shell("ship", "fix"),
        )
    )
    ran = _run(fleet, {"fix": [{"green": False}, {"green": False}, {"green": True}]})
    assert ran == ["plan", "fix", "fix", "fix", "ship"]
    done = fleet.get_plan(p.id)
    assert done.status is PlanStatus.COMPLETED
    assert _names(fleet, p.id) == [
        ("plan", "succeeded"),
        ("fix (iteration 1)", "succeeded"),
        ("ship", "succeeded"),
        ("fix (iteration 2)", "succeeded"),
        ("fix", "succeeded"),
    ]
    iterations = [done.step(n) for n in ("fix (iteration 1)", "fix (iteration 2)", "fix")]
    assert len({s.job_id for s in iterations}) == 3  # three jobs
    for number, step in enumerate(iterations, 1):
        assert step.loop is not None and step.loop["iteration"] == number
        assert len(fleet.runs(step.job_id)) == 1  # each with its own run
    assert done.step("fix").result == {"green": True}
    assert done.step("ship").depends_on == ("fix",)  # the newest iteration
    assert _loop_events(fleet, p.id) == [
        ("loop_iteration", {"loop": "fix", "iteration": 2,
                            "why": "until: the condition is false"}),
        ("loop_iteration", {"loop": "fix", "iteration": 3,
                            "why": "until: the condition is false"}),
        ("loop_ended", {"loop": "fix", "iterations": 3, "by": "until"}),
    ]  # fmt: skip


def test_a_loop_ends_at_max_iterations_and_the_plan_goes_on(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(
            shell("fix", loop={"until": "steps.fix.result.green", "max_iterations": 2}),
            shell("ship", "fix"),
        )
    )
    assert _run(fleet, {"fix": [{"green": False}]}) == ["fix", "fix", "ship"]
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED
    assert _loop_events(fleet, p.id)[-1] == (
        "loop_ended",
        {"loop": "fix", "iterations": 2, "by": "max_iterations"},
    )


def test_a_loop_without_until_runs_max_iterations_times(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("poll", loop={"max_iterations": 3})))
    assert _run(fleet, {}) == ["poll"] * 3
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


def test_a_loop_step_says_where_its_loop_is(fleet: Fleet) -> None:
    """As `plan show` and the plan's page put it."""
    until = "steps.fix.result.green"
    p = fleet.submit_plan(
        plan(shell("fix", loop={"until": until, "max_iterations": 5}),
             shell("poll", loop={"max_iterations": 3}))
    )  # fmt: skip
    notes = {s.name: loop_note(s.loop or {}) for s in fleet.get_plan(p.id).jobs}
    assert notes == {
        "fix": f"iteration 1 of 5, until {until}",
        "poll": "iteration 1 of 3",
    }
    [fix] = [lease for lease in claim_all(fleet) if lease.job and lease.job.step == "fix"]
    fleet.complete(fix, result={"green": False})
    again = [s for s in fleet.get_plan(p.id).jobs if s.name == "fix" and s.status.value == "queued"]
    assert [loop_note(s.loop or {}) for s in again] == [f"iteration 2 of 5, until {until}"]


def test_until_sees_the_iteration_number(fleet: Fleet) -> None:
    until = "loop.iteration >= 2 and loop.max_iterations == 5"
    p = fleet.submit_plan(plan(shell("poll", loop={"until": until, "max_iterations": 5})))
    assert _run(fleet, {}) == ["poll"] * 2
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED
    assert _loop_events(fleet, p.id)[-1] == (
        "loop_ended",
        {"loop": "poll", "iterations": 2, "by": "until"},
    )
    first, second = sorted(j.id for j in fleet.list_jobs() if j.plan_id == p.id)
    [enqueued] = [e for e in fleet.events(second) if e.kind == "enqueued"]
    assert (enqueued.plan_id, enqueued.data) == (p.id, {"step": "poll", "iteration_of": first})


def test_the_previous_iteration_and_the_iteration_number_reach_the_next_prompt(
    fleet: Fleet,
) -> None:
    p = fleet.submit_plan(
        plan(
            shell("review"),
            {
                "name": "fix",
                "engine": "claude",
                "depends_on": ["review"],
                "prompt": "Fix: {{ steps.review.text }}. Try {{ loop.iteration }} of "
                "{{ loop.max_iterations }}.{% if loop.previous %} Last time: "
                "{{ loop.previous.text }}{% endif %}",
                "loop": {"until": "'DONE' in steps.fix.text", "max_iterations": 4},
            },
        )
    )
    prompts: list[str] = []
    texts = iter(["first try", "second try", "DONE"])
    while leases := claim_all(fleet):
        for lease in leases:
            assert lease.job is not None
            if lease.job.step == "review":
                fleet.complete(lease, result={"text": "the cart is empty"})
            else:
                prompts.append(lease.job.payload["prompt"])
                fleet.complete(lease, result={"agent": {"text": next(texts)}})
    assert prompts == [
        "Fix: the cart is empty. Try 1 of 4.",
        "Fix: the cart is empty. Try 2 of 4. Last time: first try",
        "Fix: the cart is empty. Try 3 of 4. Last time: second try",
    ]
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


def test_a_loop_over_several_steps_pauses_at_its_gate_each_iteration(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(
            shell("fix"),
            gate("review", "fix"),
            shell(
                "check",
                "review",
                loop={"from": "fix", "until": "steps.check.result.ok", "max_iterations": 3},
            ),
            shell("ship", "check"),
            mode="supervised",
        )
    )
    pauses = []

    def approve() -> None:
        paused = fleet.get_plan(p.id)
        assert paused.status is PlanStatus.PAUSED and paused.checkpoint == "review"
        pauses.append(paused.pending)
        fleet.approve(p.id, response="ok", checkpoint=paused.pending)

    assert _run(fleet, {}) == ["fix"]
    approve()
    assert _run(fleet, {"check": [{"ok": False}]}) == ["check", "fix"]  # iteration 2 begins
    approve()
    assert _run(fleet, {"check": [{"ok": True}]}) == ["check", "ship"]  # the loop is done
    assert pauses == ["review#1", "review#2"]
    names = {name for name, _ in _names(fleet, p.id)}
    assert {"fix (iteration 1)", "review (iteration 1)", "check (iteration 1)"} <= names
    final = fleet.get_plan(p.id)
    assert final.status is PlanStatus.PAUSED and final.checkpoint == "pre_pr"
    assert final.step("ship").depends_on == ("check",)
    assert final.step("fix (iteration 1)").loop == {
        "name": "check", "iteration": 1, "max_iterations": 3, "until": "steps.check.result.ok",
    }  # fmt: skip


def test_a_failed_iteration_stops_the_plan_and_resume_retries_that_iteration(
    fleet: Fleet,
) -> None:
    p2 = fleet.submit_plan(
        plan(shell("fix2", loop={"until": "steps.fix2.result.green", "max_iterations": 3}))
    )
    [first] = claim_all(fleet)
    fleet.complete(first, result={"green": False})
    [second] = claim_all(fleet)
    fleet.fail(second, "broke", retry=False)
    failed = fleet.get_plan(p2.id)
    assert failed.status is PlanStatus.FAILED
    assert [s.name for s in failed.jobs] == ["fix2 (iteration 1)", "fix2"]
    fleet.resume(p2.id)
    [again] = claim_all(fleet)
    assert again.job_id == second.job_id  # the same iteration's job, retried
    fleet.complete(again, result={"green": True})
    done = fleet.get_plan(p2.id)
    assert done.status is PlanStatus.COMPLETED
    assert done.step("fix2").loop["iteration"] == 2  # type: ignore[index]


def test_cancel_during_an_iteration_starts_no_next_one(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(shell("fix", loop={"until": "steps.fix.result.green", "max_iterations": 5}))
    )
    [first] = claim_all(fleet)
    assert fleet.cancel_plan(p.id)
    with pytest.raises(Exception):  # noqa: B017 - the stop reaches the lease
        fleet.complete(first, result={"green": False})
    assert claim_all(fleet) == []
    assert [s.name for s in fleet.get_plan(p.id).jobs] == ["fix"]


def test_advancing_again_starts_each_iteration_once(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(
            shell("fix", loop={"until": "steps.fix.result.green", "max_iterations": 5}),
            shell("ship", "fix"),  # left queued: the plan still runs while it is advanced
        )
    )
    [first] = claim_all(fleet)
    fleet.complete(first, result={"green": False})
    for _ in range(3):  # a reconciler pass, a retried request, a second coordinator
        fleet.plans.advance(p.id)
        fleet.reconcile()
    assert [s.name for s in fleet.get_plan(p.id).jobs] == ["fix (iteration 1)", "ship", "fix"]
    [second] = claim_all(fleet)
    fleet.complete(second, result={"green": True})
    for _ in range(3):
        fleet.plans.advance(p.id)
        fleet.reconcile()
    assert fleet.get_plan(p.id).status is PlanStatus.RUNNING
    ended = [e for e in _loop_events(fleet, p.id) if e[0] == "loop_ended"]
    assert ended == [("loop_ended", {"loop": "fix", "iterations": 2, "by": "until"})]


def test_a_skipped_loop_never_iterates(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(
            shell("review"),
            shell(
                "fix",
                "review",
                when="steps.review.result.broken",
                loop={"until": "steps.fix.ok", "max_iterations": 3},
            ),
            shell("after", "fix", trigger_rule="none_failed"),
        )
    )
    assert _run(fleet, {"review": [{"broken": False}]}) == ["review", "after"]
    assert _names(fleet, p.id) == [
        ("review", "succeeded"), ("fix", "skipped"), ("after", "succeeded"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("jobs", "said"),
    [
        ([shell("a", loop={"max_iterations": 0})], "max_iterations"),
        ([shell("a", loop={"max_iterations": 101})], "from 1 to 100"),
        ([shell("a", loop={"until": "steps.nope.ok"})], "no step named 'nope'"),
        ([shell("a", loop={"until": "steps.a.ok and"})], "loop.until: bad expression"),
        ([shell("a"), shell("b", loop={"from": "a"})], "'a' is not"),
        ([shell("a", loop={"from": "zzz"})], "names no job"),
        ([shell("a", loop={"whilst": "x"})], "unknown field 'whilst'"),
        ([shell("a", loop="yes")], "must be a mapping"),
        (
            [shell("a"), shell("b", "a", loop={"from": "a"}), shell("c", "a")],
            "depends on 'a', inside loop 'b'",
        ),
        (
            [shell("a"), shell("b", "a", loop={"from": "a"}), shell("c", "b", loop={"from": "b"})],
            "loops may not overlap",
        ),
        ([shell("a", cmd="echo {{ loop.iteration }}")], "unknown name(s) ['loop']"),
        ([shell("a (iteration 1)")], "kept for a loop's earlier iterations"),
    ],
)
def test_a_bad_loop_is_refused_naming_the_problem(
    fleet: Fleet, jobs: list[dict[str, Any]], said: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        fleet.submit_plan(plan(*jobs))
    assert said in str(err.value)
    assert fleet.list_plans() == []


def test_a_plan_step_is_held_to_its_fleet_wide_limit(fleet: Fleet) -> None:
    fleet.set_limit("api", 1)
    p = fleet.submit_plan(plan(shell("a", limit="api"), shell("b", limit="api"), shell("c")))
    first = {str(lease.job.step): lease for lease in claim_all(fleet) if lease.job}
    assert sorted(first) in (["a", "c"], ["b", "c"])  # one of the two limited steps
    assert claim_all(fleet) == []  # the other waits for the limit
    held = next(name for name in ("a", "b") if name in first)
    fleet.complete(first[held], result={})
    [other] = claim_all(fleet)
    assert other.job is not None and other.job.step == ("b" if held == "a" else "a")
    assert fleet.get_plan(p.id).step(other.job.step).status is JobStatus.RUNNING
    with pytest.raises(InvalidArgument, match="limit 'nope' is not set"):
        fleet.submit_plan(plan(shell("x", limit="nope")))
