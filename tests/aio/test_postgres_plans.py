"""The asyncio API's plan verbs on PostgreSQL's async connections: submit_plan, get_plan,
list_plans, approve, reject, resume, cancel_plan and abandon_plan run the plans layer's
own code on the loop (`awaited.call` over the handle's async pool), with no thread and no
synchronous connection, and answer as the synchronous Fleet does. A person's path is
walked: a review rejected and reworked, approved twice at once (one wins), a failed plan
resumed then abandoned, a cancel repeated."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import agentfleet
from agentfleet import CheckpointConflict, Fleet, PlanStatus
from agentfleet.aio import AsyncFleet
from agentfleet.plans.model import Plan
from tests.aio.helpers import errors_both_ways, off_the_loop_refused
from tests.plans.helpers import drain, gate, plan, shell

PLAN_VERBS = (
    "submit_plan",
    "submit_spec",
    "get_plan",
    "list_plans",
    "approve",
    "reject",
    "resume",
    "cancel_plan",
    "abandon_plan",
)


def _review_plan() -> dict[str, Any]:
    return plan(shell("build"), gate("review", "build", on_reject="build"), shell("ship", "review"))


def test_a_review_is_rejected_reworked_and_approved_twice_at_once_with_one_winner(
    url: str, sync_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = agentfleet.open(url)
    fleet = AsyncFleet(handle)
    assert fleet.native
    off_the_loop_refused(monkeypatch, handle, PLAN_VERBS)

    async def scenario() -> dict[str, Any]:
        submitted = await fleet.submit_plan(_review_plan())
        await asyncio.get_running_loop().run_in_executor(None, drain, sync_fleet)
        at_review = await fleet.get_plan(submitted.id)
        reworked = await fleet.reject(submitted.id, "add tests", checkpoint=at_review.pending)
        await asyncio.get_running_loop().run_in_executor(None, drain, sync_fleet)
        again = await fleet.get_plan(submitted.id)
        both = await asyncio.gather(
            fleet.approve(submitted.id, "ship it", checkpoint=again.pending),
            fleet.approve(submitted.id, "ship it too", checkpoint=again.pending),
            return_exceptions=True,
        )
        await asyncio.get_running_loop().run_in_executor(None, drain, sync_fleet)
        done = await fleet.get_plan(submitted.id)
        listed = await fleet.list_plans(status="completed")
        monkeypatch.undo()
        await fleet.close()
        return locals()

    seen = asyncio.run(scenario())

    assert seen["submitted"].status is PlanStatus.RUNNING
    assert (seen["at_review"].status, seen["at_review"].pending) == (
        PlanStatus.PAUSED,
        "review#1",
    )
    assert seen["reworked"].status is PlanStatus.RUNNING
    assert seen["again"].pending == "review#2"
    winners = [r for r in seen["both"] if isinstance(r, Plan)]
    losers = [r for r in seen["both"] if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1, seen["both"]
    assert isinstance(losers[0], CheckpointConflict)
    assert seen["done"] == sync_fleet.get_plan(seen["submitted"].id)
    assert seen["done"].status is PlanStatus.COMPLETED
    assert [p.id for p in seen["listed"]] == [seen["submitted"].id]
    kinds = [e.kind for e in sync_fleet.events() if e.plan_id == seen["submitted"].id]
    assert kinds.count("approved") == 1, kinds
    assert kinds.count("rejected") == 1, kinds


def test_a_failed_plan_is_resumed_then_abandoned_and_a_cancel_repeated(
    url: str, sync_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = agentfleet.open(url)
    fleet = AsyncFleet(handle)
    off_the_loop_refused(monkeypatch, handle, PLAN_VERBS)
    run = asyncio.get_running_loop

    async def scenario() -> dict[str, Any]:
        failing = await fleet.submit_plan(plan(shell("a"), shell("b", "a")))
        await run().run_in_executor(None, lambda: drain(sync_fleet, fail={"a"}))
        failed = await fleet.get_plan(failing.id)
        resumed = await fleet.resume(failing.id)
        await run().run_in_executor(None, lambda: drain(sync_fleet, fail={"a"}))
        abandoned = await fleet.abandon_plan(failing.id)
        abandoned_again = await fleet.abandon_plan(failing.id)
        gone = await fleet.get_plan(failing.id)
        waiting = await fleet.submit_plan(plan(gate("wait"), shell("after", "wait")))
        cancelled = await fleet.cancel_plan(waiting.id)
        cancelled_again = await fleet.cancel_plan(waiting.id)
        ended = await fleet.get_plan(waiting.id)
        monkeypatch.undo()
        await fleet.close()
        return locals()

    seen = asyncio.run(scenario())

    assert seen["failed"].status is PlanStatus.FAILED
    assert seen["resumed"].status is PlanStatus.RUNNING
    assert (seen["abandoned"], seen["abandoned_again"]) == (True, False)
    assert seen["gone"] == sync_fleet.get_plan(seen["failing"].id)
    assert seen["gone"].status is PlanStatus.ABANDONED
    assert (seen["cancelled"], seen["cancelled_again"]) == (True, False)
    assert seen["ended"].status is PlanStatus.CANCELLED
    steps = {s.name: s.status.value for s in sync_fleet.get_plan(seen["waiting"].id).jobs}
    assert steps == {"wait": "cancelled", "after": "cancelled"}, steps


def test_the_plan_verbs_errors_match_the_sync_fleets(url: str, sync_fleet: Fleet) -> None:
    completed = sync_fleet.submit_plan(plan(shell("a")))
    drain(sync_fleet)
    running = sync_fleet.submit_plan(plan(shell("a")))
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("get_plan", (424242,), {}),
        ("get_plan", ("seven",), {}),
        ("list_plans", (), {"status": "done"}),
        ("list_plans", (), {"limit": 0}),
        ("approve", (running.id,), {}),
        ("approve", (completed.id,), {"checkpoint": "nowhere"}),
        ("approve", (424242,), {}),
        ("reject", (running.id, 7), {}),
        ("resume", (completed.id,), {}),
        ("resume", (424242,), {}),
        ("abandon_plan", (running.id,), {}),
        ("cancel_plan", (424242,), {}),
        ("submit_plan", ({"name": "x"},), {}),
        ("submit_plan", ({"name": "x", "jobs": [{"name": "a", "engine": "nope"}]},), {}),
        ("submit_plan", (42,), {}),
    ]

    expected, got = errors_both_ways(url, sync_fleet, calls)
    assert "no error" not in expected
    assert got == expected
    assert sync_fleet.get_plan(running.id).status is PlanStatus.RUNNING  # nothing was moved


def test_a_plan_file_is_read_on_a_thread_and_written_on_the_async_pool(
    url: str, sync_fleet: Fleet, tmp_path: Path
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("name: from-a-file\njobs:\n  - name: a\n    engine: shell\n    cmd: echo a\n")

    async def scenario() -> Plan:
        async with agentfleet.aio.open(url) as fleet:
            return await fleet.submit_plan(path)

    made = asyncio.run(scenario())
    assert made == sync_fleet.get_plan(made.id)
    assert (made.name, [s.name for s in made.jobs]) == ("from-a-file", ["a"])


def test_the_bridge_refuses_a_wait_outside_its_call() -> None:
    from agentfleet.store import awaited

    async def direct() -> None:
        awaited.wait(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match=r"outside awaited\.call"):
        asyncio.run(direct())
