"""What the native-verb tests share: every way off the event loop made to fail."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

import agentfleet.aio
from agentfleet import Fleet


def refused(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a native verb left the event loop (a thread or a sync connection)")


def off_the_loop_refused(
    monkeypatch: pytest.MonkeyPatch, fleet: Fleet, verbs: Iterable[str] = ()
) -> None:
    """Every way off the loop fails: asyncio.to_thread, the Fleet's and the store's
    synchronous `verbs`, and the synchronous pool's connections and transactions."""
    monkeypatch.setattr(asyncio, "to_thread", refused)
    for verb in verbs:
        monkeypatch.setattr(fleet, verb, refused)
        monkeypatch.setattr(fleet.store, verb, refused, raising=False)
    for way in ("session", "tx", "statement", "joined"):
        monkeypatch.setattr(fleet.store.dialect, way, refused)
    monkeypatch.setattr(fleet.store.dialect.pool, "connection", refused)


Call = tuple[str, tuple[Any, ...], dict[str, Any]]


def errors_both_ways(
    url: str, sync_fleet: Fleet, calls: list[Call], sync_name: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """Each call's error (type and message) from the synchronous fleet's verb and from the
    asyncio fleet's, in order; "no error" where one raised nothing."""
    names = sync_name or {}

    def sync_error(verb: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        try:
            getattr(sync_fleet, names.get(verb, verb))(*args, **kwargs)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "no error"

    async def async_errors() -> list[str]:
        async with agentfleet.aio.open(url) as fleet:
            assert fleet.native
            out = []
            for verb, args, kwargs in calls:
                try:
                    await getattr(fleet, verb)(*args, **kwargs)
                except Exception as exc:
                    out.append(f"{type(exc).__name__}: {exc}")
                else:
                    out.append("no error")
            return out

    expected = [sync_error(*call) for call in calls]
    return expected, asyncio.run(async_errors())
