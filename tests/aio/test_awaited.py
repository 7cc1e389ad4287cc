"""The bridge that runs the synchronous plans layer on the event loop: each `wait` is
awaited, its result or its error goes back in where it was awaited, and a `wait` outside
the bridge is refused without leaving a coroutine that was never awaited."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Generator
from typing import Any

import pytest

from agentfleet.store import awaited


async def _value(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def _broken() -> int:
    await asyncio.sleep(0)
    raise ValueError("the driver refused")


def _sync_code() -> list[object]:
    """Code written synchronously: it waits twice, and handles an error of the second."""
    seen: list[object] = [awaited.wait(_value(1))]
    try:
        awaited.wait(_broken())
    except ValueError as exc:
        seen.append(str(exc))
    seen.append(awaited.wait(_value(3)))
    return seen


def _unhandled() -> int:
    return awaited.wait(_broken())


def test_each_wait_is_awaited_and_an_error_goes_back_in_where_it_was_awaited() -> None:
    assert asyncio.run(awaited.call(_sync_code)) == [1, "the driver refused", 3]
    with pytest.raises(ValueError, match="the driver refused"):
        asyncio.run(awaited.call(_unhandled))


def test_a_wait_outside_the_bridge_is_refused_and_its_coroutine_closed() -> None:
    coroutine = _value(1)
    with pytest.raises(RuntimeError, match=r"awaited\.wait outside awaited\.call"):
        awaited.wait(coroutine)
    assert coroutine.cr_frame is None  # closed: it can never run, and says nothing later
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        del coroutine
        gc.collect()
    assert not [w for w in said if "never awaited" in str(w.message)]


class _Awaitable:
    """An awaitable that is not a coroutine: it has no `close`."""

    def __await__(self) -> Generator[Any, None, int]:
        yield from asyncio.sleep(0).__await__()
        return 1


def test_a_wait_outside_the_bridge_is_refused_for_any_awaitable() -> None:
    with pytest.raises(RuntimeError, match=r"awaited\.wait outside awaited\.call"):
        awaited.wait(_Awaitable())
    assert asyncio.run(awaited.call(lambda: awaited.wait(_Awaitable()))) == 1
