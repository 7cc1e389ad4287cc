"""Plan lifecycle as a Hypothesis state machine: pause, fail, resume, cancel and the stale
window, from three handles on one SQLite file (and on memory), step by step against a plain
sequential model. (test_fleet_model.py models resume too, where it meets the job verbs: the
steps it re-queues and the claims a stopped plan refuses.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import agentfleet
from agentfleet import InvalidTransition, NotResumable, PlanStatus
from tests.stateful.test_fleet_model import ManualClock

STALE = 60.0
HANDLES = 3
ENDED = ("completed", "cancelled", "abandoned")
EXAMPLES = int(os.environ.get("AGENTFLEET_STATEFUL_EXAMPLES", "60"))


class PlanMachine(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.dir = Path(os.environ.get("TMPDIR", "/tmp"))
        self.fleets: list[Any] = []

    @initialize()
    def open_and_submit(self) -> None:
        if self.backend == "memory":
            url = "memory://"
        else:
            path = self.dir / f"plan-machine-{os.getpid()}-{id(self)}.db"
            path.unlink(missing_ok=True)
            self.path = path
            url = f"sqlite:///{path}"
        first = agentfleet.open(url, clock=self.clock, stale_window=STALE)
        self.fleets = [first] + [
            first
            if self.backend == "memory"
            else agentfleet.open(url, clock=self.clock, stale_window=STALE)
            for _ in range(HANDLES - 1)
        ]
        plan = first.submit_plan(
            {"name": "m", "jobs": [{"name": "a", "engine": "shell", "cmd": "true"}]}
        )
        self.plan_id = plan.id
        self.status = "running"
        self.active_at = self.clock.now

    def teardown(self) -> None:
        for fleet in {id(f): f for f in self.fleets}.values():
            fleet.close()
        if self.backend != "memory":
            for suffix in ("", "-wal", "-shm", ".reconcile.lock"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _wrote(self) -> None:
        self.active_at = self.clock.now

    @rule(h=st.integers(0, HANDLES - 1))
    def pause(self, h: int) -> None:
        fleet = self.fleets[h]
        try:
            fleet.update_plan_fields(
                self.plan_id,
                expected={"status": "running"},
                status="paused",
                checkpoint="pre_merge",
            )
            got = "ok"
        except InvalidTransition:
            got = "refused"
        expected = "ok" if self.status == "running" else "refused"
        assert got == expected, (got, expected, self.status)
        if got == "ok":
            self.status = "paused"
            self._wrote()

    @rule(h=st.integers(0, HANDLES - 1))
    def fail(self, h: int) -> None:
        try:
            self.fleets[h].update_plan_fields(
                self.plan_id, expected={"status": "running"}, status="failed"
            )
            got = "ok"
        except InvalidTransition:
            got = "refused"
        expected = "ok" if self.status == "running" else "refused"
        assert got == expected, (got, expected, self.status)
        if got == "ok":
            self.status = "failed"
            self._wrote()

    @rule(h=st.integers(0, HANDLES - 1))
    def resume(self, h: int) -> None:
        stale = self.clock.now - self.active_at > STALE
        resumable = self.status in ("failed", "paused") or (self.status == "running" and stale)
        try:
            plan = self.fleets[h].resume(self.plan_id)
            got: tuple[str, str] = ("ok", plan.status.value)
        except NotResumable as refused:
            got = ("not_resumable", refused.status)
        expected = ("ok", "running") if resumable else ("not_resumable", self.status)
        assert got == expected, (got, expected)
        if resumable:
            self.status = "running"
            self._wrote()

    @rule(h=st.integers(0, HANDLES - 1))
    def cancel(self, h: int) -> None:
        got = self.fleets[h].cancel_plan(self.plan_id)
        expected = self.status not in ENDED
        assert got == expected, (got, expected, self.status)
        if got:
            self.status = "cancelled"
            self._wrote()

    @rule(h=st.integers(0, HANDLES - 1))
    def abandon(self, h: int) -> None:
        try:
            got: object = self.fleets[h].abandon_plan(self.plan_id)
        except InvalidTransition:
            got = "refused"
        if self.status in ("failed", "paused"):
            expected: object = True
        elif self.status in ENDED:
            expected = False
        else:
            expected = "refused"  # a running plan is cancelled, not abandoned
        assert got == expected, (got, expected, self.status)
        if got is True:
            self.status = "abandoned"
            self._wrote()

    @rule(seconds=st.sampled_from([1.0, 30.0, 61.0, 120.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def matches_the_model(self) -> None:
        if not self.fleets:
            return
        plan = self.fleets[0].get_plan(self.plan_id)
        assert plan.status is PlanStatus(self.status)
        assert (self.plan_id in self.fleets[0].find_resumable_plans()) == (
            self.status in ("failed", "paused")
            or (self.status == "running" and self.clock.now - self.active_at > STALE)
        )
        if self.status in ("cancelled", "abandoned"):
            assert all(s.status.value == "cancelled" for s in plan.jobs)


class MemoryPlanMachine(PlanMachine):
    backend = "memory"


_settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPlanLifecycleSqlite = PlanMachine.TestCase
TestPlanLifecycleSqlite.settings = _settings
TestPlanLifecycleMemory = MemoryPlanMachine.TestCase
TestPlanLifecycleMemory.settings = _settings
