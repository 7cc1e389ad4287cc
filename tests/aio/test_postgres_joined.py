"""The asyncio API writes in the caller's transaction on its own `psycopg.AsyncConnection`:
enqueue, enqueue_many and submit_plan join it on the loop (no thread), so the jobs and the
plan exist if and only if the caller commits, and idle workers hear of them only then. A
connection that cannot be joined is refused as the synchronous fleet refuses one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import agentfleet
from agentfleet import Fleet, InvalidArgument
from agentfleet.aio import AsyncFleet
from agentfleet.store.postgres import NOTIFY_CHANNEL
from tests import pg
from tests.aio.helpers import refused
from tests.conftest import PATIENCE
from tests.plans.helpers import plan, shell


@pytest.fixture
def url(pg_url: str) -> Iterator[str]:
    pg.truncate_all(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.orders")
        conn.execute("CREATE TABLE public.orders (id serial PRIMARY KEY, what text)")
    yield pg_url


def _orders(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT what FROM public.orders ORDER BY id")]


def _notified(listener: psycopg.Connection[Any], *, expected: bool = False) -> list[str]:
    """The wake-ups heard: waiting up to PATIENCE for the two queues' when `expected`,
    else for half a second (long enough for one sent already to arrive)."""
    stop_after = 2 if expected else None  # "orders", then "default" (same ones merge)
    timeout = PATIENCE if expected else 0.5
    heard = listener.notifies(timeout=timeout, stop_after=stop_after)
    return [n.payload for n in heard if n.channel == NOTIFY_CHANNEL]


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
def test_jobs_and_a_plan_exist_if_and_only_if_the_caller_commits(
    url: str, sync_fleet: Fleet, monkeypatch: pytest.MonkeyPatch, commit: bool
) -> None:
    handle = agentfleet.open(url)
    fleet = AsyncFleet(handle)
    listener = psycopg.connect(url, autocommit=True)
    listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
    monkeypatch.setattr(asyncio, "to_thread", refused)  # joined on the loop, no thread

    async def scenario() -> list[str]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await conn.execute("INSERT INTO public.orders (what) VALUES ('order 1')")
            await fleet.enqueue("shell", {"n": 1}, conn=conn, queue="orders")
            await fleet.enqueue_many([handle.new_job("shell", {"n": 2})], conn=conn)
            await fleet.submit_plan(plan(shell("build")), conn=conn)
            unseen = sync_fleet.list_jobs()  # another connection sees nothing yet
            heard_before = _notified(listener)
            await (conn.commit() if commit else conn.rollback())
        monkeypatch.undo()
        await fleet.close()
        assert unseen == [] and heard_before == []
        return _notified(listener, expected=commit)

    try:
        heard = asyncio.run(scenario())
    finally:
        listener.close()
    if commit:
        assert _orders(url) == ["order 1"]
        assert sorted(j.payload.get("n", 0) for j in sync_fleet.list_jobs()) == [0, 1, 2]
        assert len(sync_fleet.list_plans()) == 1
        assert "orders" in heard
    else:
        assert _orders(url) == [] and sync_fleet.list_jobs() == []
        assert sync_fleet.list_plans() == [] and heard == []


def test_an_async_connection_that_cannot_be_joined_is_refused_and_stays_usable(
    url: str, sync_fleet: Fleet
) -> None:
    other_db = pg.create_database("agentfleet_test_aio_other")

    async def scenario() -> dict[str, str]:
        refused: dict[str, str] = {}
        async with agentfleet.aio.open(url) as fleet:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as idle:
                try:
                    await fleet.enqueue("shell", {}, conn=idle)
                except InvalidArgument as exc:
                    refused["autocommit"] = str(exc)
            async with await psycopg.AsyncConnection.connect(other_db) as elsewhere:
                try:
                    await fleet.submit_plan(plan(shell("build")), conn=elsewhere)
                except InvalidArgument as exc:
                    refused["elsewhere"] = str(exc)
                await elsewhere.execute("SELECT 1")  # its transaction is still usable
            async with await psycopg.AsyncConnection.connect(url) as mine:
                try:
                    sync_fleet.enqueue("shell", {}, conn=mine)
                except InvalidArgument as exc:
                    refused["sync fleet"] = str(exc)
        return refused

    try:
        refused = asyncio.run(scenario())
    finally:
        pg.drop_database(other_db)
    assert "autocommit mode with no transaction open" in refused["autocommit"]
    assert "not to the fleet's database" in refused["elsewhere"]
    assert "agentfleet.aio" in refused["sync fleet"]
    assert sync_fleet.list_jobs() == [] and sync_fleet.list_plans() == []


def test_a_callers_async_connection_with_dict_rows_is_joined_and_left_as_it_was(
    url: str, sync_fleet: Fleet
) -> None:
    """The store reads the caller's database by its own row shape, whatever the caller's
    rows are made into."""
    from psycopg.rows import dict_row

    handle = agentfleet.open(url)
    fleet = AsyncFleet(handle)

    async def scenario() -> int:
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
            job = await fleet.enqueue("shell", {"n": 1}, conn=conn)
            assert conn.row_factory is dict_row
            cursor = await conn.execute("SELECT 1 AS one")
            assert await cursor.fetchone() == {"one": 1}
            await conn.commit()
        await fleet.close()
        return job.id

    job_id = asyncio.run(scenario())
    assert [j.id for j in sync_fleet.list_jobs()] == [job_id]
