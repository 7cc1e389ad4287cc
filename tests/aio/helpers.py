"""What the native-verb tests share: every way off the event loop made to fail."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

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
