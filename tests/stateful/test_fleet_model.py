"""Hypothesis stateful test: random schedules of every verb, across three handles on one
database, compared step by step with the sequential model in model.py.

Plans come in as far as jobs meet them: auto-mode plans of independent steps, whose jobs the
job verbs act on like any other, plus pausing a plan and resuming it (the resume contract,
DESIGN point 6, stated in Model.resume). The plan lifecycle on its own (cancel, approval
gates, stale windows from several handles) is test_plan_model.py's.

Memory: three "connections" are one shared handle. SQLite: three Fleet handles on one file.
Time is a manual clock (no real time passes), so expiry is exact and the schedule decides
it. Examples per backend: AGENTFLEET_STATEFUL_EXAMPLES (default modest; raise it for a long
run), steps per example: AGENTFLEET_STATEFUL_STEPS.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

import agentfleet
from agentfleet import (
    AgentFleetError,
    Fleet,
    JobCancelled,
    Lease,
    LeaseLost,
    NotResumable,
    RetryPolicy,
)
from tests.stateful.model import MJob, Model, Outcome, err, micro, ok

EXAMPLES = int(os.environ.get("AGENTFLEET_STATEFUL_EXAMPLES", "150"))
STEPS = int(os.environ.get("AGENTFLEET_STATEFUL_STEPS", "50"))
HANDLES = 3
STALE = 60.0  # the plans' stale window: a few steps of time pass it


class ManualClock:
    """The FakeClock pattern without the real time underneath: only `advance` moves it."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run(fn: Any) -> Outcome:
    """The real call's outcome in the model's terms."""
    try:
        return ok(fn())
    except JobCancelled:
        return err("JobCancelled")
    except LeaseLost as exc:
        return err("LeaseLost", (exc.current_epoch, exc.status))
    except NotResumable as exc:
        return err("NotResumable", exc.status)
    except AgentFleetError as exc:
        return err(type(exc).__name__)


def grant(lease: Lease) -> dict[str, Any]:
    return {
        "job": lease.job_id,
        "epoch": lease.epoch,
        "attempt": lease.attempt,
        "expires": lease.expires_at.timestamp(),
    }


def expected_grant(g: dict[str, Any]) -> dict[str, Any]:
    return {**g, "expires": micro(g["expires"])}


# A job to act on: mostly one that exists (by index), sometimes an id that never did.
jobs_ids = st.integers(min_value=0, max_value=99)
handles = st.integers(min_value=0, max_value=HANDLES - 1)
workers = st.sampled_from(["w1", "w2", "w3"])
ttls = st.sampled_from([5.0, 30.0])


class FleetMachine(RuleBasedStateMachine):
    backend = "memory"
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.model = Model(now=self.clock.now, stale=STALE)
        self.dir = tempfile.mkdtemp(prefix="agentfleet-model-")
        options: dict[str, Any] = {
            "clock": self.clock,
            "reap_interval": -1,  # reaping is a rule of its own, never a side effect
            "retry_policy": RetryPolicy(base=0.0, cap=0.0),
            "stale_window": STALE,
        }
        if self.backend == "memory":
            shared = agentfleet.open("memory://", **options)
            self.fleets: list[Fleet] = [shared] * HANDLES
        else:
            url = f"sqlite:///{self.dir}/fleet.db"
            # Durability is not under test here: skip the fsyncs, keep the semantics.
            self.fleets = [
                agentfleet.open(url, synchronous="OFF", **options) for _ in range(HANDLES)
            ]

    def teardown(self) -> None:
        for fleet in dict.fromkeys(self.fleets):
            fleet.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def job(self, pick: int) -> int:
        ids = sorted(self.model.jobs)
        if not ids or pick >= 90:
            return 10_000 + pick
        return ids[pick % len(ids)]

    def same(self, expected: Outcome, actual: Outcome, what: str) -> None:
        assert actual == expected, f"{what}: store said {actual}, the model says {expected}"

    # -- rules -----------------------------------------------------------------------

    @initialize(
        jobs=st.lists(
            st.tuples(
                st.sampled_from(["a", "b"]),
                st.integers(0, 1),
                st.sampled_from([None, "L1", "L1", "L2"]),
            ),
            min_size=2,
            max_size=5,
        )
    )
    def some_jobs(self, jobs: list[tuple[str, int, str | None]]) -> None:
        """Start with a few jobs, often sharing a lock, so every schedule has work."""
        for queue, priority, lock in jobs:
            self.enqueue(0, queue, priority, lock, 3, None, None)

    @rule(
        h=handles,
        queue=st.sampled_from(["a", "b"]),
        priority=st.integers(0, 2),
        lock=st.sampled_from([None, "L1", "L1", "L2"]),
        max_attempts=st.integers(1, 3),
        dedupe=st.sampled_from([None, None, None, "d1", "d2"]),
        delay=st.sampled_from([None, None, 0.0, 5.0]),
    )
    def enqueue(
        self,
        h: int,
        queue: str,
        priority: int,
        lock: str | None,
        max_attempts: int,
        dedupe: str | None,
        delay: float | None,
    ) -> None:
        actual = run(
            lambda: (
                self.fleets[h]
                .enqueue(
                    "shell",
                    {"q": queue},
                    queue=queue,
                    priority=priority,
                    lock=lock,
                    max_attempts=max_attempts,
                    dedupe_key=dedupe,
                    run_at=None if delay is None else timedelta(seconds=delay),
                )
                .id
            )
        )
        new_id = actual[1] if actual[0] == "ok" else -1
        expected = self.model.enqueue(queue, priority, lock, max_attempts, dedupe, delay, new_id)
        self.same(expected, actual, "enqueue")

    @rule(target=leases, h=handles, job=jobs_ids, worker=workers, ttl=ttls)
    def claim(self, h: int, job: int, worker: str, ttl: float) -> Any:
        job = self.job(job)
        expected = self.model.claim(job, worker, ttl)
        lease = self.fleets[h].claim(job, worker=worker, ttl=ttl)
        got = None if lease is None else grant(lease)
        want = None if expected[1] is None else expected_grant(expected[1])
        assert got == want, f"claim({job}): store {got}, model {want}"
        return multiple() if lease is None else lease

    @rule(
        target=leases,
        h=handles,
        worker=workers,
        queues=st.sampled_from([None, ["a"], ["b"], ["a", "b"]]),
        limit=st.integers(1, 3),
        ttl=ttls,
    )
    def claim_next(
        self, h: int, worker: str, queues: list[str] | None, limit: int, ttl: float
    ) -> Any:
        expected = self.model.claim_next(worker, queues, limit, ttl)
        got = self.fleets[h].claim_next(worker=worker, queues=queues, limit=limit, ttl=ttl)
        assert [grant(x) for x in got] == [expected_grant(g) for g in expected[1]], (
            f"claim_next(queues={queues}, limit={limit})"
        )
        return multiple(*got)

    @rule(lease=leases, h=handles, ttl=ttls)
    def renew(self, lease: Lease, h: int, ttl: float) -> None:
        expected = self.model.renew(lease.job_id, lease.epoch, ttl)
        if expected[0] == "ok":
            expected = ok(micro(expected[1]))
        actual = run(lambda: self.fleets[h].renew(lease, ttl=ttl).expires_at.timestamp())
        self.same(expected, actual, f"renew(job {lease.job_id} epoch {lease.epoch})")

    @rule(lease=leases, h=handles, result=st.sampled_from([None, {"ok": True}, [1, "x"]]))
    def complete(self, lease: Lease, h: int, result: Any) -> None:
        expected = self.model.complete(lease.job_id, lease.epoch, result)
        actual = run(lambda: self.fleets[h].complete(lease, result=result))
        self.same(expected, actual, f"complete(job {lease.job_id} epoch {lease.epoch})")

    @rule(lease=leases, h=handles, retry=st.booleans(), delay=st.sampled_from([0.0, 3.0]))
    def fail(self, lease: Lease, h: int, retry: bool, delay: float) -> None:
        expected = self.model.fail(lease.job_id, lease.epoch, "boom", delay if retry else None)
        actual = run(lambda: str(self.fleets[h].fail(lease, "boom", retry=retry, delay=delay)))
        self.same(expected, actual, f"fail(job {lease.job_id} epoch {lease.epoch})")

    @rule(lease=leases, h=handles)
    def release(self, lease: Lease, h: int) -> None:
        expected = self.model.release(lease.job_id, lease.epoch, "stopping")
        actual = run(lambda: str(self.fleets[h].release(lease, reason="stopping")))
        self.same(expected, actual, f"release(job {lease.job_id} epoch {lease.epoch})")

    @rule(lease=leases, h=handles, key=st.sampled_from(["k1", "k2"]), value=st.integers(0, 9))
    def fenced_write(self, lease: Lease, h: int, key: str, value: int) -> None:
        expected = self.model.fenced_write(lease.job_id, lease.epoch, key, value)

        def call() -> tuple[int, str, int, Any]:
            e = self.fleets[h].fenced_write(lease, key, value)
            return (e.job_id, e.key, e.epoch, e.value)

        self.same(expected, run(call), f"fenced_write(job {lease.job_id} epoch {lease.epoch})")

    @rule(seconds=st.sampled_from([1.0, 3.0, 5.0, 5.0, 6.0, 30.0, 31.0]))
    def expire(self, seconds: float) -> None:
        """Let time pass on the store's clock (5.0 lands exactly on a 5 s lease's expiry)."""
        self.clock.advance(seconds)
        self.model.now = self.clock.now

    @rule(lease=leases, past=st.sampled_from([0.0, 0.001]))
    def expire_to_the_edge(self, lease: Lease, past: float) -> None:
        """Move the clock to exactly a lease's expiry, or just past it: the boundary."""
        job = self.model.jobs.get(lease.job_id)
        if job is not None and job.expires is not None and job.expires + past > self.clock.now:
            self.clock.now = job.expires + past
            self.model.now = self.clock.now

    @rule(h=handles, job=jobs_ids)
    def cancel(self, h: int, job: int) -> None:
        job = self.job(job)
        self.same(self.model.cancel(job), run(lambda: self.fleets[h].cancel_job(job)), "cancel")

    @rule(h=handles, job=jobs_ids)
    def retry(self, h: int, job: int) -> None:
        job = self.job(job)
        actual = run(lambda: self.fleets[h].retry_job(job).id)
        self.same(self.model.retry(job), actual, f"retry_job({job})")

    @rule(h=handles)
    def reap(self, h: int) -> None:
        actual = run(lambda: sorted((i, str(s)) for i, s in self.fleets[h].reap_expired()))
        self.same(self.model.reap(), actual, "reap_expired")

    @rule(h=handles, job=jobs_ids, stale=st.booleans(), priority=st.integers(0, 2))
    def update_priority(self, h: int, job: int, stale: bool, priority: int) -> None:
        job = self.job(job)
        known = self.model.jobs.get(job)
        rev = (known.rev if known else 1) - (1 if stale else 0)
        expected = self.model.update_priority(job, rev, priority)
        actual = run(
            lambda: self.fleets[h].update_if_match("jobs", job, rev, {"priority": priority}).status
        )
        self.same(expected, actual, f"update_if_match({job}, rev {rev})")

    def plan(self, pick: int) -> int:
        ids = sorted(self.model.plans)
        if not ids or pick >= 90:
            return 20_000 + pick
        return ids[pick % len(ids)]

    @rule(
        h=handles,
        steps=st.lists(
            st.tuples(
                st.sampled_from(["a", "b"]),
                st.sampled_from([None, "L1", "L2"]),
                st.integers(1, 2),
            ),
            min_size=1,
            max_size=3,
        ),
        max_parallel=st.integers(1, 2),
    )
    def submit_plan(
        self, h: int, steps: list[tuple[str, str | None, int]], max_parallel: int
    ) -> None:
        spec = {
            "name": "modelled",
            "mode": "auto",
            "max_parallel": max_parallel,
            "jobs": [
                {
                    "name": f"s{i}",
                    "engine": "shell",
                    "cmd": "true",
                    "queue": queue,
                    "lock": lock,
                    "max_attempts": attempts,
                }
                for i, (queue, lock, attempts) in enumerate(steps)
            ],
        }
        plan = self.fleets[h].submit_plan(spec)
        modelled = [MJob(0, q, 0, lock, attempts, None, 0.0) for q, lock, attempts in steps]
        expected = self.model.submit_plan(
            plan.id, [s.job_id for s in plan.jobs], modelled, max_parallel
        )
        self.same(expected, ok(plan.status.value), "submit_plan")

    @rule(h=handles, pick=jobs_ids)
    def pause_plan(self, h: int, pick: int) -> None:
        plan_id = self.plan(pick)
        actual = run(
            lambda: (
                self.fleets[h]
                .update_plan_fields(
                    plan_id, expected={"status": "running"}, status="paused", checkpoint="pre_merge"
                )
                .status.value
            )
        )
        self.same(self.model.pause(plan_id), actual, f"pause plan {plan_id}")

    @rule(h=handles, pick=jobs_ids)
    def resume(self, h: int, pick: int) -> None:
        plan_id = self.plan(pick)
        before = self.model.plans[plan_id].status if plan_id in self.model.plans else None
        actual = run(lambda: self.fleets[h].resume(plan_id).status.value)
        self.same(self.model.resume(plan_id), actual, f"resume plan {plan_id}")
        event(f"resume of a {before} plan: {actual[0]} {actual[-1]}")

    # -- the whole state, after every step ----------------------------------------------

    @invariant()
    def state_matches_the_model(self) -> None:
        fleet = self.fleets[0]
        stored = {j.id: j for j in fleet.list_jobs(limit=1000)}
        assert set(stored) == set(self.model.jobs), "the job sets differ"
        for job_id, m in self.model.jobs.items():
            j = stored[job_id]
            got = (
                str(j.status),
                j.attempts,
                j.lease_epoch,
                j.worker,
                None if j.lease_expires_at is None else j.lease_expires_at.timestamp(),
                j.run_at.timestamp(),
                j.cancel_requested,
                j.result,
                j.error,
                None if j.finished_at is None else j.finished_at.timestamp(),
                j.rev,
                j.updated_at.timestamp(),
                j.priority,
                j.lock,
                j.queue,
                j.plan_id,
            )
            want = (
                m.status,
                m.attempts,
                m.epoch,
                m.worker,
                micro(m.expires),
                micro(m.run_at),
                m.cancel_requested,
                m.result,
                m.error,
                micro(m.finished),
                m.rev,
                micro(m.updated),
                m.priority,
                m.lock,
                m.queue,
                m.plan,
            )
            assert got == want, f"job {job_id}: store {got}, model {want}"
            runs = [
                (r.epoch, r.worker, r.attempt, str(r.status), r.error) for r in fleet.runs(job_id)
            ]
            model_runs = [
                (r.epoch, r.worker, r.attempt, r.status, r.error)
                for (jid, _), r in sorted(self.model.runs.items())
                if jid == job_id
            ]
            assert runs == model_runs, f"runs of job {job_id}: store {runs}, model {model_runs}"
            ledger = [(e.key, e.epoch, e.value) for e in fleet.ledger(job_id)]
            model_ledger = sorted(
                (k, e, v) for (jid, k, e), v in self.model.ledger.items() if jid == job_id
            )
            assert ledger == model_ledger, f"ledger of job {job_id}"
        for plan_id, mp in self.model.plans.items():
            p = fleet.get_plan(plan_id)
            got_plan = (p.status.value, p.rev, p.updated_at.timestamp())
            assert got_plan == (mp.status, mp.rev, micro(mp.updated)), f"plan {plan_id}"
        resumable = sorted(i for i, mp in self.model.plans.items() if self.model._resumable(mp))
        assert fleet.find_resumable_plans() == resumable


class SqliteFleetMachine(FleetMachine):
    backend = "sqlite"


_settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestMemoryModel = FleetMachine.TestCase
TestMemoryModel.settings = _settings
TestSqliteModel = SqliteFleetMachine.TestCase
TestSqliteModel.settings = _settings
