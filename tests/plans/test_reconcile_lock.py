"""The reconciler is single-flight: while one pass holds its lock (anywhere in the fleet),
another reconcile() answers None and repairs nothing; once the lock is free it runs."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from agentfleet import Fleet, PlanStatus
from tests.conftest import PATIENCE, StoreEnv
from tests.plans.helpers import claim_all, plan, shell
from tests.worker.helpers import child_env

HOLD_THE_LOCK = """
import sys
import agentfleet
with agentfleet.open(sys.argv[1]) as fleet:
    with fleet.store.single_flight("reconcile") as mine:
        print("held" if mine else "refused", flush=True)
        sys.stdin.readline()
"""


def _drifted_plan(fleet: Fleet) -> int:
    """A plan whose only job succeeded behind the coordinator's back: it still runs."""
    p = fleet.submit_plan(plan(shell("only")))
    [lease] = claim_all(fleet)
    fleet.store.complete(lease, {"ok": True}, None)  # the plan misses this completion
    assert fleet.get_plan(p.id).status is PlanStatus.RUNNING
    return p.id


def _refused(fleet: Fleet, plan_id: int) -> None:
    assert fleet.reconcile() is None
    assert fleet.get_plan(plan_id).status is PlanStatus.RUNNING
    assert [e for e in fleet.events() if e.kind == "repair"] == []


def _repaired(fleet: Fleet, plan_id: int) -> None:
    repairs = fleet.reconcile()
    assert repairs is not None
    assert [(r.kind, r.plan_id) for r in repairs] == [("plan_advanced", plan_id)]
    assert fleet.get_plan(plan_id).status is PlanStatus.COMPLETED


def test_reconcile_refuses_while_another_handle_holds_the_lock(env: StoreEnv) -> None:
    plan_id = _drifted_plan(env.fleet)
    holder = env.open()
    with holder.store.single_flight("reconcile") as mine:
        assert mine is True
        _refused(env.fleet, plan_id)
    _repaired(env.fleet, plan_id)


def test_reconcile_refuses_inside_a_pass_of_its_own(env: StoreEnv) -> None:
    plan_id = _drifted_plan(env.fleet)
    with env.fleet.store.single_flight("reconcile") as mine:
        assert mine is True
        _refused(env.fleet, plan_id)
        with env.fleet.store.single_flight("reconcile") as again:
            assert again is False
    _repaired(env.fleet, plan_id)


def test_reconcile_refuses_while_another_process_holds_the_lock(env: StoreEnv) -> None:
    if not env.separate_connections:
        pytest.skip("the memory store lives in one process")
    plan_id = _drifted_plan(env.fleet)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, env.url],
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"  # it holds the lock now
        _refused(env.fleet, plan_id)
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(PATIENCE) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(PATIENCE)
    _repaired(env.fleet, plan_id)


def test_one_holder_at_a_time(env: StoreEnv) -> None:
    """Handles racing for the lock: exactly one holds it while all the others try."""
    contenders = 6
    fleets = [env.open() for _ in range(contenders)]
    start = threading.Barrier(contenders)
    tried = threading.Barrier(contenders)
    got: list[bool] = []
    guard = threading.Lock()

    def contend(fleet: Fleet) -> None:
        start.wait(PATIENCE)
        with fleet.store.single_flight("reconcile") as mine:
            with guard:
                got.append(mine)
            tried.wait(PATIENCE)  # the holder keeps it until everyone has tried

    threads = [threading.Thread(target=contend, args=(f,)) for f in fleets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert sorted(got) == [False] * (contenders - 1) + [True]
    with env.fleet.store.single_flight("reconcile") as mine:
        assert mine is True  # and it was given back
