"""Schedules on every store: each slot fires exactly once however many workers race for it,
missed slots follow catch_up, overlap: skip leaves a slot out while the last run goes on,
a paused schedule fires nothing, and bad input is refused before anything is written."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agentfleet import Fleet, InvalidArgument, JobNotFound, JobStatus
from tests.conftest import PATIENCE, StoreEnv

JOB = "---\nengine: shell\nqueue: nightly\n---\necho triage\n"
PLAN = "name: nightly\njobs:\n  - name: a\n    engine: shell\n    cmd: echo a\n"


def _file(tmp_path: Path, name: str = "triage.md", text: str = JOB) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_slot_fires_once_and_the_next_slot_is_a_minute_on(env: StoreEnv, tmp_path: Path) -> None:
    fleet = env.fleet
    made = fleet.add_schedule("triage", "* * * * *", _file(tmp_path))
    slot = made.next_at
    assert fleet.fire_schedules(now=slot - timedelta(seconds=1)) == []  # not due yet
    [fired] = fleet.fire_schedules(now=slot + timedelta(seconds=1))
    assert fired.slot == slot and fired.job_id is not None
    assert fired.outcome == f"started job {fired.job_id}"
    job = fleet.get_job(fired.job_id)
    assert (job.engine, job.queue, job.payload["cmd"]) == ("shell", "nightly", "echo triage")
    after = fleet.schedules.get("triage")
    assert after.next_at == slot + timedelta(minutes=1) and after.last_job_id == job.id
    assert fleet.fire_schedules(now=slot + timedelta(seconds=2)) == []  # taken


def test_two_workers_with_the_same_snapshot_fire_a_slot_once(env: StoreEnv, tmp_path: Path) -> None:
    """Both saw the slot due; only the first to move it on starts its job."""
    fleet, other = env.fleet, env.open()
    fleet.add_schedule("triage", "* * * * *", _file(tmp_path))
    seen = fleet.schedules.get("triage")
    now = seen.next_at + timedelta(seconds=1)
    first = fleet.schedules._fire(seen, now)
    second = other.schedules._fire(seen, now)
    assert first is not None and first.job_id is not None
    assert second is None
    assert [j.id for j in fleet.list_jobs()] == [first.job_id]


def test_workers_racing_for_twenty_slots_fire_each_once(env: StoreEnv, tmp_path: Path) -> None:
    handles = [env.open() for _ in range(3)]
    handles[0].add_schedule("triage", "* * * * *", _file(tmp_path))
    first = handles[0].schedules.get("triage").next_at
    fired: list[object] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(handles))

    def race(fleet: Fleet) -> None:
        try:
            for minute in range(20):
                barrier.wait(30)
                now = first + timedelta(minutes=minute, seconds=1)
                fired.extend(f.slot for f in fleet.fire_schedules(now=now))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(h,)) for h in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert sorted(fired) == [first + timedelta(minutes=m) for m in range(20)]  # type: ignore[type-var]
    assert len(handles[0].list_jobs(limit=100)) == 20


@pytest.mark.parametrize(
    ("catch_up", "jobs", "outcome"),
    [
        ("skip", 0, "skipped: slots were missed while no worker ran (catch_up: skip)"),
        ("once", 1, "started job"),
    ],
)
def test_missed_slots_follow_catch_up(
    env: StoreEnv, tmp_path: Path, catch_up: str, jobs: int, outcome: str
) -> None:
    fleet = env.fleet
    made = fleet.add_schedule("triage", "*/5 * * * *", _file(tmp_path), catch_up=catch_up)
    now = made.next_at + timedelta(minutes=12)  # three slots passed with no worker
    [fired] = fleet.fire_schedules(now=now)
    assert fired.outcome.startswith(outcome)
    assert len(fleet.list_jobs()) == jobs
    after = fleet.schedules.get("triage")
    assert now < after.next_at <= now + timedelta(minutes=5)  # the first slot after now


def test_overlap_skip_leaves_a_slot_out_while_the_last_run_goes_on(
    env: StoreEnv, tmp_path: Path
) -> None:
    fleet = env.fleet
    made = fleet.add_schedule("triage", "* * * * *", _file(tmp_path), overlap="skip")
    slot = made.next_at
    [one] = fleet.fire_schedules(now=slot + timedelta(seconds=1))
    [two] = fleet.fire_schedules(now=slot + timedelta(minutes=1, seconds=1))
    assert two.outcome == "skipped: the previous run is still queued" and two.job_id is None
    [lease] = fleet.claim_next(worker="w", queues=["nightly"])
    fleet.complete(lease, result=None)
    [three] = fleet.fire_schedules(now=slot + timedelta(minutes=2, seconds=1))
    assert three.job_id is not None and three.job_id != one.job_id
    assert fleet.get_job(one.job_id).status is JobStatus.SUCCEEDED  # type: ignore[arg-type]


def test_overlap_skip_fires_when_the_last_run_has_been_pruned(
    env: StoreEnv, tmp_path: Path
) -> None:
    fleet = env.fleet
    made = fleet.add_schedule("triage", "* * * * *", _file(tmp_path), overlap="skip")
    [one] = fleet.fire_schedules(now=made.next_at + timedelta(seconds=1))
    [lease] = fleet.claim_next(worker="w", queues=["nightly"])
    fleet.complete(lease, result=None)
    deadline = time.monotonic() + PATIENCE  # a millisecond after it finished, it goes
    while fleet.prune(0.001).jobs == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(JobNotFound):
        fleet.get_job(one.job_id)  # type: ignore[arg-type]
    [two] = fleet.fire_schedules(now=made.next_at + timedelta(minutes=1, seconds=1))
    assert two.job_id is not None and two.job_id != one.job_id, two.outcome


def test_a_paused_schedule_fires_nothing_and_resumes_from_now(
    env: StoreEnv, tmp_path: Path
) -> None:
    fleet = env.fleet
    made = fleet.add_schedule("triage", "* * * * *", _file(tmp_path))
    assert fleet.schedules.pause("triage").paused
    assert fleet.fire_schedules(now=made.next_at + timedelta(hours=1)) == []
    resumed = fleet.schedules.resume("triage")
    assert not resumed.paused and resumed.next_at > fleet.store.now()
    fleet.schedules.remove("triage")
    assert fleet.schedules.all() == []


def test_a_plan_file_starts_a_plan_at_its_slot(env: StoreEnv, tmp_path: Path) -> None:
    fleet = env.fleet
    made = fleet.add_schedule("nightly", "0 3 * * *", _file(tmp_path, "plan.yaml", PLAN),
                              tz="Europe/Paris")  # fmt: skip
    assert made.next_at.astimezone(made.next_at.tzinfo).minute == 0
    [fired] = fleet.fire_schedules(now=made.next_at + timedelta(seconds=1))
    assert fired.plan_id is not None and fired.job_id is None
    plan = fleet.get_plan(fired.plan_id)
    assert plan.name == "nightly" and [s.name for s in plan.jobs] == ["a"]


def test_the_store_clock_decides_what_is_due(env: StoreEnv, tmp_path: Path) -> None:
    if env.clock is None:
        pytest.skip("PostgreSQL's clock is the server's: the other tests pass `now`")
    fleet = env.fleet
    made = fleet.add_schedule("triage", "* * * * *", _file(tmp_path))
    env.move_past(made.next_at)
    [fired] = fleet.fire_schedules()
    assert fired.slot == made.next_at


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("triage", "61 * * * *"), "bad cron expression '61 * * * *'"),
        (("triage", "* * *"), "bad cron expression"),
        (("triage", "* * * * *", {"tz": "Mars/Olympus"}), "unknown time zone 'Mars/Olympus'"),
        (("triage", "* * * * *", {"catch_up": "all"}), "catch_up must be one of skip, once"),
        (("triage", "* * * * *", {"overlap": "queue"}), "overlap must be one of allow, skip"),
    ],
)
def test_bad_schedules_are_refused_and_nothing_is_written(
    env: StoreEnv, tmp_path: Path, args: tuple, said: str
) -> None:
    name, cron, *rest = args
    options = rest[0] if rest else {}
    with pytest.raises(InvalidArgument) as caught:
        env.fleet.add_schedule(name, cron, _file(tmp_path), **options)
    assert said in str(caught.value)
    assert env.fleet.schedules.all() == []


def test_a_bad_file_or_a_taken_name_is_refused(env: StoreEnv, tmp_path: Path) -> None:
    fleet = env.fleet
    with pytest.raises(InvalidArgument, match="cannot read"):
        fleet.add_schedule("triage", "* * * * *", tmp_path / "missing.md")
    broken = _file(tmp_path, "broken.md", "---\nengine: nope\n---\nhi\n")
    with pytest.raises(InvalidArgument, match="engine"):
        fleet.add_schedule("triage", "* * * * *", broken)
    gate = _file(tmp_path, "gate.md", "---\nengine: approval\n---\nok?\n")
    with pytest.raises(InvalidArgument, match="approval gate only exists inside a plan"):
        fleet.add_schedule("triage", "* * * * *", gate)  # checked as submit checks jobs
    fleet.add_schedule("triage", "* * * * *", _file(tmp_path))
    with pytest.raises(InvalidArgument, match="a schedule named 'triage' exists"):
        fleet.add_schedule("triage", "0 * * * *", _file(tmp_path))
    assert [s.cron for s in fleet.schedules.all()] == ["* * * * *"]


def test_overlap_skip_waits_for_a_plan_too(env: StoreEnv, tmp_path: Path) -> None:
    """The previous slot's plan, not its first job, decides: a running plan holds the
    next slot back, an ended one lets it start."""
    fleet = env.fleet
    made = fleet.add_schedule(
        "nightly", "* * * * *", _file(tmp_path, "plan.yaml", PLAN), overlap="skip"
    )
    slot = made.next_at
    [one] = fleet.fire_schedules(now=slot + timedelta(seconds=1))
    assert one.plan_id is not None
    [two] = fleet.fire_schedules(now=slot + timedelta(minutes=1, seconds=1))
    assert two.outcome == "skipped: the previous run is still running" and two.plan_id is None
    fleet.cancel_plan(one.plan_id)
    [three] = fleet.fire_schedules(now=slot + timedelta(minutes=2, seconds=1))
    assert three.plan_id is not None and three.plan_id != one.plan_id
    assert three.outcome == f"started plan {three.plan_id}"
