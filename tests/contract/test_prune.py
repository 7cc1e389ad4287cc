"""Retention: `Fleet.prune` deletes finished jobs and ended plans past an age, with their
runs, events and ledger rows, in batches; never anything that has not ended, never a step
of a live plan, and a dry run deletes nothing."""

from __future__ import annotations

import pytest

from agentfleet import Fleet, InvalidArgument, JobStatus, PlanStatus
from tests.conftest import StoreEnv
from tests.plans.helpers import claim_all, drain, plan, shell

AGE = 1.0  # seconds: a window PostgreSQL's real clock can pass in a test


def _finished(fleet: Fleet, n: int, *, fail: bool = False) -> list[int]:
    ids = [fleet.enqueue("shell", {"cmd": "true"}, queue="old").id for _ in range(n)]
    for lease in fleet.claim_next(worker="w", queues=["old"], limit=n):
        if fail:
            fleet.fail(lease, "broke", retry=False)
        else:
            fleet.fenced_write(lease, "note", {"ok": True})
            fleet.complete(lease, result={"ok": True})
    return ids


def _gone(fleet: Fleet, job_id: int) -> bool:
    try:
        fleet.get_job(job_id)
    except LookupError:
        return True
    return False


def test_prune_deletes_old_finished_jobs_with_their_runs_and_events(env: StoreEnv) -> None:
    fleet = env.fleet
    old = _finished(fleet, 5)
    failed = _finished(fleet, 2, fail=True)
    env.pass_time(AGE + 0.5)
    young = _finished(fleet, 2)
    waiting = fleet.enqueue("shell", {"cmd": "true"}, queue="later").id
    [running] = fleet.claim_next(worker="w", queues=["later"], limit=1)
    assert running.job_id == waiting

    dry = fleet.prune(AGE, dry_run=True)
    assert (dry.jobs, dry.runs, dry.dry_run) == (7, 7, True)
    assert not any(_gone(fleet, i) for i in old)  # a dry run deletes nothing

    counted = fleet.prune(AGE, statuses=["succeeded"], dry_run=True)
    done = fleet.prune(AGE, statuses=["succeeded"], batch=2)
    assert (done.jobs, done.runs) == (5, 5)
    assert {**counted.as_dict(), "dry_run": False} == done.as_dict()  # what it said it would
    assert done.batches == [2, 2, 1]  # one transaction per batch
    assert done.events >= 5 * 3  # enqueued, claimed, succeeded at least
    assert all(_gone(fleet, i) for i in old)
    assert not any(_gone(fleet, i) for i in failed + young + [waiting])
    assert all(e.job_id not in old for e in fleet.events(limit=10000))
    assert fleet.runs(old[0]) == []
    pruned = [e for e in fleet.events(limit=10000) if e.kind == "pruned"]
    assert [e.data["jobs"] for e in pruned] == [5]

    again = fleet.prune(f"{AGE:g}s")  # the failed ones now: the default is every ending
    assert again.jobs == 2 and all(_gone(fleet, i) for i in failed)
    assert fleet.get_job(running.job_id).status is JobStatus.RUNNING  # never a live job
    assert fleet.prune(AGE).jobs == 0


def test_a_plan_goes_only_once_it_ended_and_with_all_its_steps(env: StoreEnv) -> None:
    fleet = env.fleet
    ended = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    drain(fleet)
    assert fleet.get_plan(ended.id).status is PlanStatus.COMPLETED
    failed = fleet.submit_plan(plan(shell("x"), shell("y", "x")))
    drain(fleet, fail={"x"})
    assert fleet.get_plan(failed.id).status is PlanStatus.FAILED  # resumable: it stays
    live = fleet.submit_plan(plan(shell("p")))
    [lease] = claim_all(fleet)
    fleet.cancel_plan(live.id)  # cancelled, but its step still runs until it stops
    env.pass_time(AGE + 0.5)

    counted = fleet.prune(AGE, dry_run=True)
    done = fleet.prune(AGE)
    assert (done.plans, done.plan_steps, done.jobs) == (1, 2, 0)  # steps are not jobs
    assert done.runs == 2 and done.events > 2
    assert {**counted.as_dict(), "dry_run": False} == done.as_dict()  # steps' runs, events
    with pytest.raises(LookupError):
        fleet.get_plan(ended.id)
    assert all(_gone(fleet, s.job_id) for s in ended.jobs)
    assert fleet.get_plan(failed.id).status is PlanStatus.FAILED
    assert not _gone(fleet, fleet.get_plan(failed.id).step("x").job_id)
    assert fleet.get_plan(live.id).status is PlanStatus.CANCELLED  # a step has not ended
    assert all(e.plan_id != ended.id for e in fleet.events(limit=10000))

    fleet.fail(lease, "stopped", retry=False)
    env.pass_time(AGE + 0.5)
    counted = fleet.prune(AGE, plans=False, dry_run=True)
    kept = fleet.prune(AGE, plans=False)  # the ended plan's steps, runs and events stay
    assert (kept.plans, kept.plan_steps, kept.runs, kept.events) == (0, 0, 0, 0)
    assert {**counted.as_dict(), "dry_run": False} == kept.as_dict()
    assert fleet.prune(AGE).plans == 1
    with pytest.raises(LookupError):
        fleet.get_plan(live.id)


def test_plans_pruned_in_batches_are_counted_across_them(env: StoreEnv) -> None:
    fleet = env.fleet
    plans = [fleet.submit_plan(plan(shell("a"), shell("b", "a"))) for _ in range(2)]
    drain(fleet)
    env.pass_time(AGE + 0.5)
    done = fleet.prune(AGE, batch=1)
    assert done.batches == [1, 1]
    assert done.as_dict() == {
        "jobs": 0, "plans": 2, "plan_steps": 4, "runs": 4, "events": done.events,
        "dry_run": False,
    }  # fmt: skip
    assert done.events >= 2 * (1 + 2 * 3)  # each plan's own, and each step's enqueued, ...
    [pruned] = [e for e in fleet.events(limit=10000) if e.kind == "pruned"]
    assert pruned.data == {**done.as_dict(), "older_than_s": AGE}
    for p in plans:
        with pytest.raises(LookupError):
            fleet.get_plan(p.id)


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"older_than": "0s"}, "greater than zero"),
        ({"older_than": "soon"}, "soon"),
        ({"older_than": "1d", "statuses": ["queued"]}, "only finished jobs: queued"),
        ({"older_than": "1d", "statuses": ["nope"]}, "unknown job status 'nope'; prune takes"),
        ({"older_than": "1d", "statuses": []}, "at least one status"),
        ({"older_than": "1d", "statuses": ["queued", "running"]}, "queued, running are not"),
        ({"older_than": "30"}, "'30' has no unit and would mean 30 seconds; give one, e.g. 30d"),
        ({"older_than": "1d", "batch": 0}, "batch"),
    ],
)
def test_bad_prune_requests_are_refused(
    env: StoreEnv, kwargs: dict[str, object], said: str
) -> None:
    _finished(env.fleet, 1)
    with pytest.raises(InvalidArgument, match=said):
        env.fleet.prune(**kwargs)  # type: ignore[arg-type]
    assert len(env.fleet.list_jobs()) == 1


# -- automatic retention ----------------------------------------------------------------


def test_settings_are_checked_and_kept_for_the_whole_fleet(env: StoreEnv) -> None:
    fleet = env.fleet
    assert fleet.config() == {}
    fleet.set_config("retention", "30d")
    assert env.open().config() == {"retention": "30d"}  # another handle reads the same
    with pytest.raises(InvalidArgument, match="unknown setting 'retain'; known: retention"):
        fleet.set_config("retain", "30d")
    with pytest.raises(InvalidArgument, match="invalid duration 'forever'"):
        fleet.set_config("retention", "forever")
    assert fleet.unset_config("retention") and not fleet.unset_config("retention")
    assert fleet.prune_if_due() is None  # no retention: nothing is pruned


def test_the_retention_prunes_once_per_interval_across_the_fleet(env: StoreEnv) -> None:
    fleet, other = env.fleet, env.open()
    old = _finished(fleet, 3)
    env.pass_time(AGE + 0.5)
    fleet.set_config("retention", f"{AGE:g}s")
    first = fleet.prune_if_due(every=3600)
    assert first is not None and first.jobs == 3
    assert all(_gone(fleet, i) for i in old)
    _finished(fleet, 2)
    env.pass_time(AGE + 0.5)
    assert other.prune_if_due(every=3600) is None  # another worker: not due for an hour
    assert fleet.prune_if_due(every=3600) is None
    assert len(fleet.list_jobs()) == 2
    again = other.prune_if_due(every=AGE)  # a shorter interval has passed
    assert again is not None and again.jobs == 2
