"""Single flight: one holder of a name across the fleet, decided by a conditional write.

The reconciler runs under it, so two reconcilers never repair the same drift twice; a
holder that dies lets the name go when its lease lapses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

import agentfleet
from tests.conftest import StoreEnv


def test_a_held_name_is_refused_to_everyone_else_until_released(env: StoreEnv) -> None:
    other = env.open()
    with env.fleet.store.single_flight("reconcile") as mine:
        assert mine is True
        with other.store.single_flight("reconcile") as theirs:
            assert theirs is False
        assert other.reconcile() is None  # the reconciler stands aside
        with other.store.single_flight("another-name") as unrelated:
            assert unrelated is True
    with other.store.single_flight("reconcile") as theirs:
        assert theirs is True
    assert other.reconcile() == []


def test_a_holder_that_never_lets_go_loses_the_name_when_its_lease_lapses(env: StoreEnv) -> None:
    holding = env.fleet.store.single_flight("reconcile", ttl=env.short_ttl)
    assert holding.__enter__() is True  # and never exits: a holder that died mid-pass
    with env.open().store.single_flight("reconcile") as theirs:
        assert theirs is False
    env.expire()
    with env.open().store.single_flight("reconcile") as theirs:
        assert theirs is True


@contextmanager
def read_check_write_single_flight(fleet: agentfleet.Fleet, name: str) -> Iterator[bool]:
    """DELIBERATELY BROKEN single flight, kept so the race test stays honest: read whether
    the name is free, decide in Python, then write without naming what was read."""
    db = fleet.store.dialect
    with db.session() as tx:
        held = tx.one("SELECT holder FROM single_flight WHERE name = :name", {"name": name})
    if held is not None:
        yield False
        return
    time.sleep(0.005)  # any await point or round trip between the check and the write
    with db.tx() as tx:
        tx.q(
            "INSERT INTO single_flight (name, holder, expires_at) "
            "VALUES (:name, 'me', {now+:ttl}) ON CONFLICT (name) DO UPDATE "
            "SET holder = excluded.holder, expires_at = excluded.expires_at",
            {"name": name, "ttl": 60.0},
        )
    yield True


Taker = Callable[[agentfleet.Fleet, str], AbstractContextManager[bool]]


def _race(env: StoreEnv, take_with: Taker) -> list[bool]:
    fleets = [env.open() for _ in range(8)]
    barrier = threading.Barrier(len(fleets))
    release = threading.Event()
    won: list[bool] = []
    errors: list[BaseException] = []

    def take(fleet: agentfleet.Fleet) -> None:
        barrier.wait()
        try:
            with take_with(fleet, "race") as mine:
                won.append(mine)
                if mine:
                    release.wait(10)
        except BaseException as exc:  # a taker that errs must fail the test, not vanish
            errors.append(exc)
            won.append(False)

    threads = [threading.Thread(target=take, args=(f,)) for f in fleets]
    for thread in threads:
        thread.start()
    for _ in range(3000):  # everyone answers while the winner holds; the bound stops a hang
        if len(won) == len(fleets):
            break
        threading.Event().wait(0.01)
    release.set()
    for thread in threads:
        thread.join()
    assert errors == []
    return sorted(won)


def test_racing_takers_of_a_free_name_have_exactly_one_winner(env: StoreEnv) -> None:
    assert _race(env, lambda fleet, name: fleet.store.single_flight(name)) == [False] * 7 + [True]


def test_the_race_catches_a_read_check_write_single_flight(env: StoreEnv) -> None:
    if not env.separate_connections:
        pytest.skip("the memory store runs one statement at a time")
    most = max(_race(env, read_check_write_single_flight).count(True) for _ in range(5))
    assert most > 1, "the race failed to expose the broken single flight"


def test_reconcile_works_on_a_single_connection_pool(pg_url: str) -> None:
    with agentfleet.open(pg_url, pool_size=1) as fleet:
        assert fleet.reconcile() == []
