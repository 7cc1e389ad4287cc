"""Shared fixtures: every contract test runs unchanged against every store."""

from __future__ import annotations

import gc
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import agentfleet
from agentfleet import Fleet, RetryPolicy
from tests import pg

if os.environ.get("MUTANT_UNDER_TEST") is not None:  # only under `make mutation`
    from tests.mutation.hooks import (  # noqa: F401
        pytest_collection_modifyitems,
        pytest_configure,
    )

# Output is laid out as for a pipe unless a test sets a width itself: a COLUMNS inherited
# from the shell, or from the parallel runner's workers (which set COLUMNS=80 and LINES=24),
# would hard-wrap the messages the tests read from commands they run.
for _inherited in ("COLUMNS", "LINES"):
    os.environ.pop(_inherited, None)

BACKENDS = ["memory", "sqlite", "postgres"]
# How long a wait on a condition may take before the test fails: a guard against a hang,
# never a speed assertion (the machine may be shared and slow).
PATIENCE = 30.0
_PG_PROBLEM: list[str | None] = []


def pg_problem() -> str | None:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(pg.postgres_problem())
    return _PG_PROBLEM[0]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fleet_options(**options): options for agentfleet.open in the env fixture "
        "(reap_interval, stale_window, retry_policy)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    problem = pg_problem()
    if problem is None:
        return f"postgres: tests use a fresh database on {pg.ADMIN_URL.split('@')[-1]}"
    if os.environ.get("CI"):
        return f"postgres: UNAVAILABLE in CI, PostgreSQL tests will fail: {problem}"
    return f"postgres: PostgreSQL tests are skipped: {problem}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    problem = pg_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but PostgreSQL is unavailable: {problem}")
        pytest.skip(f"PostgreSQL tests skipped: {problem}")
    url = pg.create_database()
    try:
        yield url
    finally:
        pg.drop_database(url)


def _frame_of(thread: threading.Thread) -> FrameType | None:
    """The thread's current frame. The collector stays off meanwhile: on Python 3.11
    `sys._current_frames` holds the interpreter's thread-list lock while it builds its
    dict, and a collection run then (a finalizer taking the same lock) hangs the process."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return sys._current_frames().get(thread.ident or -1)
    finally:
        if collecting:
            gc.enable()


def in_call(thread: threading.Thread, function: str) -> bool:
    """Whether `thread` is now inside an agentfleet function of that name (a store or Fleet
    method): with a lock the test holds, a thread in there can only be waiting for it."""
    frame = _frame_of(thread)
    package = str(Path(agentfleet.__file__).parent)
    # Under mutation testing the function runs as `x_NAME__mutmut_...` (`xǁClassǁNAME...`).
    mutated = re.compile(rf"(?:^x_|ǁ){re.escape(function)}__mutmut_")
    while frame is not None:
        name = frame.f_code.co_name
        if (name == function or mutated.search(name)) and frame.f_code.co_filename.startswith(
            package
        ):
            return True
        frame = frame.f_back
    return False


class FakeClock:
    """Real time plus an offset a test can push forward: leases expire on demand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class StoreEnv:
    """One database under test and the means to open more handles on it."""

    backend: str
    url: str
    clock: FakeClock | None
    opener: Callable[[], Fleet]
    fleet: Fleet = field(init=False)
    _opened: list[Fleet] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fleet = self.open()

    @property
    def short_ttl(self) -> float:
        return 0.4 if self.clock is None else 5.0

    @property
    def separate_connections(self) -> bool:
        return self.backend != "memory"

    def open(self) -> Fleet:
        if self.backend == "memory" and self._opened:
            return self._opened[0]
        fleet = self.opener()
        self._opened.append(fleet)
        return fleet

    def pass_time(self, seconds: float) -> None:
        if self.clock is None:
            time.sleep(seconds)
        else:
            self.clock.advance(seconds)

    def expire(self, ttl: float | None = None) -> None:
        """Let a lease of `ttl` (default short_ttl) run out on the store's clock."""
        self.pass_time((ttl or self.short_ttl) + (0.15 if self.clock is None else 1.0))

    def move_past(self, moment: datetime) -> None:
        """Make the store's clock read later than `moment`: advance the injected clock, or
        (PostgreSQL, whose clock is the server's) wait until its now() has passed it."""
        if self.clock is not None:
            gap = (moment - self.fleet.now()).total_seconds()
            self.clock.advance(max(0.0, gap) + 1.0)
            assert self.fleet.now() > moment
            return
        deadline = time.monotonic() + PATIENCE
        while self.fleet.now() <= moment:
            if time.monotonic() > deadline:
                raise AssertionError(f"the store's clock did not pass {moment}")
            time.sleep(0.01)

    def move_on(self) -> datetime:
        """Let the store's clock move on from now; returns the moment it moved past."""
        before = self.fleet.now()
        self.move_past(before)
        return before

    def expire_lease(self, job_id: int) -> None:
        """Let the lease the job holds now run out on the store's clock."""
        expires = self.fleet.get_job(job_id).lease_expires_at
        assert expires is not None, f"job {job_id} holds no lease"
        self.move_past(expires)

    def close(self) -> None:
        for fleet in self._opened:
            fleet.close()


FAST_RETRY = RetryPolicy(base=0.0, cap=0.0)


def make_env(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, **options: Any
) -> StoreEnv:
    options.setdefault("retry_policy", FAST_RETRY)
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        pg.truncate_all(url)
        return StoreEnv(backend, url, None, lambda: agentfleet.open(url, **options))
    clock = FakeClock()
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'fleet.db'}"
    return StoreEnv(backend, url, clock, lambda: agentfleet.open(url, clock=clock, **options))


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreEnv]:
    marker = request.node.get_closest_marker("fleet_options")
    store_env = make_env(request.param, tmp_path, request, **(marker.kwargs if marker else {}))
    try:
        yield store_env
    finally:
        store_env.close()


# One store of a kind, for the tests that are about that engine alone.


@pytest.fixture
def sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreEnv]:
    env = make_env("sqlite", tmp_path, request)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def pg_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreEnv]:
    env = make_env("postgres", tmp_path, request)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def fleet(env: StoreEnv) -> Fleet:
    return env.fleet
