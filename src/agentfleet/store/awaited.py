"""Synchronous code run on the event loop, its waits awaited (greenlet; no thread).

The plans layer is written once, as synchronous code over a `Tx`. To run it on psycopg's
async connections without a copy in async form, `call` runs it in a greenlet of its own:
each statement's `wait` switches back to the loop's coroutine, which awaits the driver and
switches the result (or the exception) back in. SQLAlchemy's asyncio extension runs its
synchronous ORM on async drivers the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import greenlet

P = ParamSpec("P")
R = TypeVar("R")


class _Awaiting(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet whose code may `wait`: its parent is the coroutine that awaits for it."""


def wait(awaitable: Awaitable[R]) -> R:
    """Await `awaitable` from synchronous code that `call` runs."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Awaiting):
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()  # never awaited: no "coroutine was never awaited" warning
        raise RuntimeError("awaited.wait outside awaited.call: nothing to await it")
    result: R = current.parent.switch(awaitable)
    return result


async def call(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`fn(*args, **kwargs)`, each `wait` inside it awaited on the running loop."""
    runner = _Awaiting(fn)
    pending: Any = runner.switch(*args, **kwargs)
    while not runner.dead:
        try:
            value = await pending
        except BaseException as exc:  # the driver's error goes back in, where it was awaited
            pending = runner.throw(exc)
        else:
            pending = runner.switch(value)
    return pending  # type: ignore[no-any-return]


__all__ = ["call", "wait"]
