"""Fleet-wide limits: at most N jobs naming a limit run at once, whoever claims them."""

from __future__ import annotations

import pytest

from agentfleet import Fleet, InvalidArgument, JobStatus
from agentfleet.store.limits import Limit, parse_rate
from tests.conftest import StoreEnv


def _jobs(fleet: Fleet, n: int, limit: str = "api", **options: object) -> list[int]:
    return [
        fleet.enqueue("shell", {"cmd": "true"}, queue="lim", limit=limit, **options).id  # type: ignore[arg-type]
        for _ in range(n)
    ]


def test_a_batch_never_takes_more_than_the_limit_leaves_room_for(env: StoreEnv) -> None:
    fleet = env.fleet
    fleet.set_limit("api", 2)
    ids = _jobs(fleet, 5)
    free = fleet.enqueue("shell", {"cmd": "true"}, queue="lim")
    first = fleet.claim_next(worker="w", queues=["lim"], limit=10)
    assert sorted(lease.job_id for lease in first) == sorted([*ids[:2], free.id])
    assert fleet.claim_next(worker="w2", queues=["lim"], limit=10) == []
    done = next(lease for lease in first if lease.job_id == ids[0])
    fleet.complete(done)
    (next_one,) = fleet.claim_next(worker="w2", queues=["lim"], limit=10)
    assert next_one.job_id == ids[2]  # claim order holds within the limit
    assert fleet.limits() == [Limit("api", 2, running=2, queued=2)]


def test_a_batch_takes_no_more_than_it_asked_for_with_and_without_limits(env: StoreEnv) -> None:
    fleet = env.fleet
    fleet.set_limit("api", 10)  # room for all: only the batch's own size bounds it
    free = fleet.enqueue("shell", {"cmd": "true"}, queue="lim")
    limited = _jobs(fleet, 4)
    taken = fleet.claim_next(worker="w", queues=["lim"], limit=3)
    assert sorted(lease.job_id for lease in taken) == sorted([free.id, *limited[:2]])
    rest = fleet.claim_next(worker="w", queues=["lim"], limit=3)
    assert sorted(lease.job_id for lease in rest) == limited[2:]


def test_claim_by_id_respects_the_limit(env: StoreEnv) -> None:
    fleet = env.fleet
    fleet.set_limit("api", 1)
    a, b = _jobs(fleet, 2)
    assert fleet.claim(a, worker="w") is not None
    assert fleet.claim(b, worker="w") is None
    assert fleet.get_job(b).status is JobStatus.QUEUED


def test_raising_a_limit_lets_more_start_and_removing_it_pauses_its_jobs(env: StoreEnv) -> None:
    fleet = env.fleet
    fleet.set_limit("api", 1)
    ids = _jobs(fleet, 4)
    assert len(fleet.claim_next(worker="w", queues=["lim"], limit=10)) == 1
    fleet.set_limit("api", 3)
    assert len(fleet.claim_next(worker="w", queues=["lim"], limit=10)) == 2
    assert fleet.remove_limit("api") and not fleet.remove_limit("api")
    assert fleet.claim_next(worker="w", queues=["lim"], limit=10) == []
    assert fleet.get_job(ids[3]).status is JobStatus.QUEUED
    fleet.set_limit("api", 0)  # zero: nothing more starts, until it is raised
    assert fleet.claim_next(worker="w", queues=["lim"], limit=10) == []


def test_limits_are_independent_and_a_limit_of_one_is_a_lock(env: StoreEnv) -> None:
    fleet = env.fleet
    fleet.set_limit("a", 1)
    fleet.set_limit("b", 2)
    _jobs(fleet, 3, "a")
    _jobs(fleet, 3, "b")
    names = [fleet.get_job(lease.job_id).payload["limit"]
             for lease in fleet.claim_next(worker="w", queues=["lim"], limit=10)]  # fmt: skip
    assert sorted(names) == ["a", "b", "b"]


def test_bad_limits_are_refused_with_the_reason(env: StoreEnv) -> None:
    fleet = env.fleet
    with pytest.raises(InvalidArgument, match="limit 'nope' is not set"):
        fleet.enqueue("shell", {"cmd": "true"}, limit="nope")
    with pytest.raises(InvalidArgument, match="limit 'nope' is not set"):
        fleet.enqueue_many([fleet.new_job("shell", {"cmd": "true", "limit": "nope"})])
    with pytest.raises(InvalidArgument, match="max_running"):
        fleet.set_limit("api", -1)
    with pytest.raises(InvalidArgument, match="limit"):
        fleet.set_limit("", 1)
    assert fleet.list_jobs() == []


# -- rates ------------------------------------------------------------------------------

# A window the tests can wait out on PostgreSQL, whose clock is the server's.
WINDOW = 1.0


def test_a_rate_lets_at_most_that_many_start_in_a_window(env: StoreEnv) -> None:
    fleet = env.fleet
    fleet.set_limit("api", 100, rate=f"2/{WINDOW:g}s")
    ids = _jobs(fleet, 5)
    first = fleet.claim_next(worker="w", queues=["lim"], limit=10)
    assert [lease.job_id for lease in first] == ids[:2]  # one batch takes only what fits
    for lease in first:
        fleet.complete(lease)  # a finished job still counts: the rate is of starts
    assert fleet.claim_next(worker="w", queues=["lim"], limit=10) == []
    assert fleet.claim(ids[2], worker="w") is None  # claim by id too
    [limit] = fleet.limits()
    assert (str(limit.rate), limit.started, limit.queued) == ("2/1s", 2, 3)
    env.pass_time(WINDOW + 0.2)  # the window moves on: two more may start
    second = fleet.claim_next(worker="w", queues=["lim"], limit=10)
    assert [lease.job_id for lease in second] == ids[2:4]
    env.pass_time(WINDOW + 0.2)
    last = fleet.claim(ids[4], worker="w")
    assert last is not None and fleet.limits()[0].started == 1


def test_a_rate_and_max_running_both_hold_and_setting_again_drops_the_rate(
    env: StoreEnv,
) -> None:
    fleet = env.fleet
    fleet.set_limit("api", 1, rate="3/h")
    ids = _jobs(fleet, 5)
    [one] = fleet.claim_next(worker="w", queues=["lim"], limit=10)  # max_running 1
    fleet.complete(one)
    [two] = fleet.claim_next(worker="w", queues=["lim"], limit=10)
    fleet.complete(two)
    [three] = fleet.claim_next(worker="w", queues=["lim"], limit=10)
    fleet.complete(three)
    assert fleet.claim_next(worker="w", queues=["lim"], limit=10) == []  # 3 an hour
    fleet.set_limit("api", 2)  # no rate now
    assert [lease.job_id for lease in fleet.claim_next(worker="w", queues=["lim"], limit=10)] == (
        ids[3:5]
    )
    assert fleet.limits()[0].rate is None


@pytest.mark.parametrize(
    ("text", "count", "seconds", "shown"),
    [
        ("10/min", 10, 60.0, "10/min"),
        ("100/h", 100, 3600.0, "100/h"),
        ("5/30s", 5, 30.0, "5/30s"),
        ("1000/day", 1000, 86400.0, "1000/day"),
        ("2/1.5s", 2, 1.5, "2/1.5s"),
        (" 3 / 2 hours ", 3, 7200.0, "3/2h"),
        ("0/min", 0, 60.0, "0/min"),
        ("2/mins", 2, 60.0, "2/min"),
        ("2147483647/s", 2**31 - 1, 1.0, "2147483647/1s"),  # the largest count: 32 bits
    ],
)
def test_rates_read_as_written(text: str, count: int, seconds: float, shown: str) -> None:
    rate = parse_rate(text)
    assert (rate.count, rate.seconds, str(rate)) == (count, seconds, shown)


@pytest.mark.parametrize("text", ["10", "10/", "/min", "10/ms", "10/fortnight", "-1/min",
                                  "10/0s", "99999999999/min", "2147483648/min", "ten/min",
                                  "5/hx", "5/ms"])  # fmt: skip
def test_a_bad_rate_is_refused_naming_it(env: StoreEnv, text: str) -> None:
    with pytest.raises(InvalidArgument, match="rate"):
        env.fleet.set_limit("api", 1, rate=text)
    assert env.fleet.limits() == []


def test_a_claim_that_waited_for_the_limits_lock_counts_its_start_from_then(
    pg_store: StoreEnv,
) -> None:
    """PostgreSQL: a limited claim waits for the limits lock. A start stamped with its
    transaction's start (before the wait) looked older than it was, so a claim right after
    it found the rate's window empty: two starts of a 1-a-second rate in the same instant."""
    import threading
    import time

    import psycopg

    from agentfleet.store.postgres import LOCK_LIMITS

    fleet = pg_store.fleet
    fleet.set_limit("api", 10, rate="1/1s")
    for _ in range(2):
        fleet.enqueue("shell", {"command": "true"}, limit="api")
    claimed: list[object] = []
    with psycopg.connect(pg_store.url) as blocker:
        blocker.execute(LOCK_LIMITS)  # held until the block ends (its transaction commits)
        claimer = threading.Thread(
            target=lambda: claimed.extend(fleet.claim_next(worker="box-1", limit=1))
        )
        claimer.start()
        for _ in range(600):  # the claim is waiting for the lock
            waiting = blocker.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if waiting and waiting[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the claim never waited for the limits lock")
        time.sleep(1.5)  # longer than the rate's window, while the claim waits
    claimer.join(timeout=60)
    assert len(claimed) == 1
    assert fleet.claim_next(worker="box-2", limit=1) == [], "the rate let two start at once"
