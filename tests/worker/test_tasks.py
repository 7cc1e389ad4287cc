"""The task registry, module:function resolution and Python calls in a thread."""

from __future__ import annotations

import pytest

import agentfleet
from agentfleet.errors import InvalidArgument
from agentfleet.tasks import TaskNotFound, TaskRegistry, TaskRun, task_name
from tests.worker.helpers import PATIENCE


def double(x: int) -> int:
    return x * 2


async def later(x: int) -> int:
    return x + 1


def boom() -> None:
    raise RuntimeError("it broke")


def test_register_resolve_and_import() -> None:
    registry = TaskRegistry()
    registry.register(double, name="twice")
    assert registry.resolve("twice") is double
    assert registry.resolve(task_name(double)) is double  # imported, not registered
    assert registry.resolve("os.path:join") is __import__("os").path.join
    assert registry.names() == ["twice"]
    with pytest.raises(InvalidArgument, match="already registered"):
        registry.register(later, name="twice")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nothing", "not of the form"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("os.path:no_such_function", "has no attribute"),
        ("os:sep", "is not callable"),
    ],
)
def test_unresolvable_names(ref: str, message: str) -> None:
    with pytest.raises(TaskNotFound, match=message):
        TaskRegistry().resolve(ref)


def test_fleet_task_decorator_registers_in_the_fleets_registry() -> None:
    registry = TaskRegistry()
    with agentfleet.open("memory://", tasks=registry) as fleet:

        @fleet.task
        def plain(x: int) -> int:
            return x

        @fleet.task(name="named")
        def other() -> str:
            return "x"

    assert registry.resolve(task_name(plain)) is plain
    assert registry.resolve("named") is other
    assert plain(3) == 3  # the decorator returns the function itself


def test_task_run_result_coroutine_and_exception() -> None:
    ok = TaskRun(double, [21])
    ok.start()
    assert ok.wait(PATIENCE) and ok.outcome().result == 42
    coro = TaskRun(later, kwargs={"x": 1})
    coro.start()
    assert coro.wait(PATIENCE) and coro.outcome().result == 2
    bad = TaskRun(boom)
    bad.start()
    assert bad.wait(PATIENCE)
    outcome = bad.outcome()
    assert (outcome.ok, outcome.error) == (False, "RuntimeError: it broke")
    assert "Traceback" in (bad.output().stderr or "")
