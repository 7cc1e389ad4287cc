"""At a gate, what to review is shown: the upstream steps' results and their output's
tails; at an on-error stop, how the failing step ended and the command for all of it."""

from __future__ import annotations

from agentfleet import Fleet, RunOutput
from agentfleet.plans.review import tail, what_to_review
from tests.plans.helpers import gate, plan, shell


def test_a_gate_shows_what_the_steps_before_it_produced(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(shell("backend"), shell("tests"), gate("review", "backend", "tests"))
    )
    for lease in fleet.claim_next(worker="w", limit=5):
        assert lease.job is not None
        lines = "".join(f"{lease.job.step} line {i}\n" for i in range(40))
        fleet.complete(lease, {"step": lease.job.step}, output=RunOutput(exit_code=0, stdout=lines))
    at_gate = fleet.get_plan(p.id)
    items = {item.step: item for item in what_to_review(fleet, at_gate)}
    assert sorted(items) == ["backend", "tests"]
    backend = items["backend"]
    assert backend.result == {"step": "backend"} and backend.status == "succeeded"
    assert backend.stdout_tail.splitlines() == [f"backend line {i}" for i in range(28, 40)]
    assert backend.logs_command == f"agentfleet logs {backend.job_id}"


def test_an_on_error_stop_shows_the_failing_steps_stderr(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build", max_attempts=1), mode="supervised"))
    [lease] = fleet.claim_next(worker="w")
    fleet.fail(lease, "exit code 2", retry=False, output=RunOutput(2, "", "make: *** [all]\n"))
    stopped = fleet.get_plan(p.id)
    assert stopped.checkpoint == "on_error"
    [item] = what_to_review(fleet, stopped)
    assert (item.step, item.error, item.stderr_tail) == ("build", "exit code 2", "make: *** [all]")


def test_a_running_plan_has_nothing_to_review(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    assert what_to_review(fleet, p) == []


def test_tail_keeps_the_last_lines_and_characters() -> None:
    assert tail("a\nb\nc\n", lines=2) == "b\nc"
    assert tail("x" * 50, chars=10) == "x" * 10
    assert tail(None) == ""


def test_a_stopped_step_that_never_ran_is_shown_with_empty_tails(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    b = p.step("b").job_id
    assert fleet.cancel_job(b) is True  # b never ran: it has no run, so no output
    [item] = what_to_review(fleet, fleet.get_plan(p.id))
    assert (item.step, item.job_id, item.status) == ("b", b, "cancelled")
    assert (item.stdout_tail, item.stderr_tail) == ("", "")


def test_a_plan_cancelled_at_an_error_stop_has_nothing_to_review(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build", max_attempts=1), mode="supervised"))
    [lease] = fleet.claim_next(worker="w")
    fleet.fail(lease, "broke", retry=False)
    assert fleet.get_plan(p.id).checkpoint == "on_error"
    assert fleet.cancel_plan(p.id) is True
    assert what_to_review(fleet, fleet.get_plan(p.id)) == []


def test_tail_keeps_the_ends_of_the_last_lines_and_drops_only_trailing_newlines() -> None:
    assert tail("one\ntwo  \n\n", lines=1) == "two  "
    assert tail("one\nrun XX\n\n\n", lines=2) == "one\nrun XX"
