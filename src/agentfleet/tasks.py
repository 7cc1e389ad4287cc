"""Python tasks: a registry of functions, and running one in a thread of the worker.

A job of engine ``python`` names its function in ``payload["func"]``: either a name
registered with ``@fleet.task`` (by default ``module:qualname``) or any importable
``package.module:function``. It is called with ``payload["args"]`` and ``payload["kwargs"]``;
its return value (JSON) is the job's result. A coroutine function is run with asyncio.

Python tasks run inside the worker's process: what they print goes to the worker's own
output; an exception's traceback is kept as the run's stderr. A thread cannot be killed,
so on a timeout, cancel or stop the attempt is closed and the thread is abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import queue
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

from agentfleet.errors import InvalidArgument
from agentfleet.execution import Outcome
from agentfleet.models import RunOutput

__all__ = ["REGISTRY", "TaskNotFound", "TaskRegistry", "TaskRun", "task", "task_name"]

F = TypeVar("F", bound=Callable[..., Any])


class TaskNotFound(InvalidArgument):
    """The function a python job names cannot be found or imported."""


def task_name(fn: Callable[..., Any]) -> str:
    """The default name of a task: ``module:qualname``."""
    return f"{fn.__module__}:{fn.__qualname__}"


class TaskRegistry:
    """Names to functions. Workers look names up here first, then import ``module:func``."""

    def __init__(self) -> None:
        self._tasks: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()

    def register(self, fn: F, name: str | None = None) -> F:
        if not callable(fn):
            raise InvalidArgument(f"a task must be callable, not {type(fn).__name__}")
        key = task_name(fn) if name is None else name
        if not isinstance(key, str) or not key.strip():
            raise InvalidArgument("a task name must be a non-empty string")
        with self._lock:
            existing = self._tasks.get(key)
            if existing is not None and existing is not fn:
                raise InvalidArgument(f"another function is already registered as task {key!r}")
            self._tasks[key] = fn
        return fn

    def get(self, name: str) -> Callable[..., Any] | None:
        with self._lock:
            return self._tasks.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._tasks)

    def resolve(self, ref: str) -> Callable[..., Any]:
        """A registered task, else ``package.module:function`` imported."""
        found = self.get(ref)
        if found is not None:
            return found
        module_name, sep, attr_path = ref.partition(":")
        if not sep or not module_name or not attr_path:
            raise TaskNotFound(
                f"no task is registered as {ref!r}, and it is not of the form "
                "'package.module:function'"
            )
        try:
            target: Any = importlib.import_module(module_name)
        except Exception as exc:
            raise TaskNotFound(
                f"cannot import module {module_name!r} for task {ref!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        for part in attr_path.split("."):
            if not hasattr(target, part):
                raise TaskNotFound(f"module {module_name!r} has no attribute {attr_path!r}")
            target = getattr(target, part)
        if not callable(target):
            raise TaskNotFound(f"{ref!r} is not callable")
        found = self.get(ref)  # importing may have registered it under a custom name
        return found or target


REGISTRY = TaskRegistry()
"""The process-wide registry ``@fleet.task`` registers into."""


@overload
def task(fn: F) -> F: ...


@overload
def task(*, name: str | None = None) -> Callable[[F], F]: ...


def task(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """``@agentfleet.task``: register a function in the process-wide registry, as
    ``@fleet.task`` does, for a module of tasks that opens no fleet of its own (what
    ``agentfleet worker --import`` loads)."""

    def register(target: Callable[..., Any]) -> Callable[..., Any]:
        return REGISTRY.register(target, name)

    return register if fn is None else register(fn)


def call_arguments(payload: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    args = payload.get("args") or []
    kwargs = payload.get("kwargs") or {}
    if not isinstance(args, Sequence) or isinstance(args, str | bytes):
        raise InvalidArgument("payload 'args' must be a list")
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise InvalidArgument("payload 'kwargs' must be a mapping with string keys")
    return list(args), dict(kwargs)


class TaskThreads:
    """Threads kept for python tasks, so that a short task costs no thread start.

    A task starts on an idle thread, else on a new one while fewer than ``size`` run.
    Beyond that it waits its turn: a few threads run thousands of short tasks a second
    with less contention for the interpreter than one thread per task. So that a task never
    waits long behind tasks that block, a watchdog starts a thread for every waiting task
    once ``stall`` seconds pass with tasks waiting and none finishing (a task abandoned on
    a timeout holds only its own thread). A thread idle for ``idle_exit`` seconds leaves.
    """

    def __init__(self, size: int = 8, idle_exit: float = 60.0, stall: float = 0.02) -> None:
        self.size, self.idle_exit, self.stall = size, idle_exit, stall
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0  # threads alive
        self._idle = 0  # threads waiting for work that no task has been promised to
        self._waiting = 0  # tasks queued that no thread has been promised to
        self._finished = 0  # tasks finished so far: the watchdog's sign of progress
        self._watching = False

    def submit(self, fn: Callable[[], None]) -> None:
        spawn = watch = False
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that thread is promised this task
            elif self._threads < self.size:
                self._threads += 1
                spawn = True
            else:
                self._waiting += 1
                watch, self._watching = not self._watching, True
        self._work.put(fn)
        if spawn:
            self._spawn()
        if watch:
            threading.Thread(target=self._watch, daemon=True, name="agentfleet-tasks").start()

    def _spawn(self) -> None:
        threading.Thread(target=self._serve, daemon=True, name="agentfleet-task").start()

    def _serve(self) -> None:
        while True:
            try:
                fn = self._work.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nothing was promised to this thread: leave
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a task was promised to a waiting thread: take it
            with contextlib.suppress(Exception):  # a task's errors are caught where it runs
                fn()
            with self._lock:
                self._finished += 1
                if self._waiting > 0:
                    self._waiting -= 1  # take a waiting task next
                else:
                    self._idle += 1

    def _watch(self) -> None:
        seen = -1
        while True:
            time.sleep(self.stall)
            with self._lock:
                if self._waiting == 0:
                    self._watching = False
                    return
                stalled = self._finished == seen
                seen = self._finished
                extra = self._waiting if stalled else 0
                self._waiting -= extra
                self._threads += extra
            for _ in range(extra):
                self._spawn()


THREADS = TaskThreads()
"""The threads every python task of this process runs on."""


class TaskRun:
    """A Python call on one of the task threads; ``on_exit`` is called from that thread."""

    killable = False

    def __init__(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.fn = fn
        self.args = list(args)
        self.kwargs = dict(kwargs or {})
        self._on_exit = on_exit
        self._finished = False
        self._running = threading.Lock()  # held until the call ends (lighter than an Event)
        self._running.acquire()
        self._outcome = Outcome(ok=False, error="the task has not finished")
        self._stderr = ""

    @property
    def output_version(self) -> int:
        return 1 if self._finished else 0

    @property
    def pgid(self) -> int | None:
        return None  # it runs inside the worker

    def start(self) -> None:
        THREADS.submit(self._run)

    def lease_held(self, since: float, ttl: float) -> None:
        """A thread dies with its worker; there is nothing to arm."""

    def _run(self) -> None:
        try:
            result = self.fn(*self.args, **self.kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            self._outcome = Outcome(ok=True, result=result)
        except BaseException as exc:
            self._stderr = traceback.format_exc()
            self._outcome = Outcome(ok=False, error=f"{type(exc).__name__}: {exc}", retry=True)
        finally:
            self._finished = True
            self._running.release()
            if self._on_exit is not None:
                self._on_exit()

    def done(self) -> bool:
        return self._finished

    def wait(self, timeout: float | None = None) -> bool:
        if not self._finished and self._running.acquire(timeout=-1 if timeout is None else timeout):
            self._running.release()
        return self._finished

    def terminate(self) -> None:
        """A thread cannot be stopped; the worker abandons it instead."""

    def kill(self) -> None:
        """A thread cannot be stopped; the worker abandons it instead."""

    def output(self) -> RunOutput:
        return RunOutput(None, None, self._stderr or None)

    def settled(self, won: bool) -> None:
        return None  # a function call has nothing to publish

    def outcome(self) -> Outcome:
        return self._outcome


async def _await(awaitable: Any) -> Any:
    return await awaitable
