"""Single flight: one holder of a name across the fleet, decided by a conditional write.

The reconciler runs under it, so two reconcilers never repair the same drift twice; a
holder that dies lets the name go when its lease lapses.
"""

from __future__ import annotations

import threading

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


def test_racing_takers_of_a_free_name_have_exactly_one_winner(env: StoreEnv) -> None:
    fleets = [env.open() for _ in range(8)]
    barrier = threading.Barrier(len(fleets))
    release = threading.Event()
    won: list[bool] = []

    def take(fleet: agentfleet.Fleet) -> None:
        barrier.wait()
        with fleet.store.single_flight("race") as mine:
            won.append(mine)
            if mine:
                release.wait(10)

    threads = [threading.Thread(target=take, args=(f,)) for f in fleets]
    for thread in threads:
        thread.start()
    for _ in range(3000):  # everyone but the winner answers; the bound only stops a hang
        if len(won) >= len(fleets) - 1:
            break
        threading.Event().wait(0.01)
    release.set()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False] * (len(fleets) - 1) + [True]


def test_reconcile_works_on_a_single_connection_pool(pg_url: str) -> None:
    with agentfleet.open(pg_url, pool_size=1) as fleet:
        assert fleet.reconcile() == []
