"""The bounded fault runs: real worker processes, real faults, a few seconds each.

Each run asks for the faults its test is about (``require``): it injects for at least
DURATION seconds and then goes on until those counts are reached, however slow the machine
(with a generous hang guard). What is asserted is that the faults happened and that the
history checks out, never how many fit in some seconds.

Every job is a real child process that records when it ran; the history check includes
that no two attempts of one job, and no two jobs of one lock, ever ran at the same moment.
The mixed runs add remote workers (over `agentfleet serve`, through a proxy that cuts
their connections) and restart the server.

The long version is ``python -m tests.faults.run`` (see its --help).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import pg_problem
from tests.faults.harness import RunConfig, RunResult, run_scenario

DURATION = float(os.environ.get("AGENTFLEET_FAULTS_SECONDS", "4"))


def _run(
    backend: str,
    scenario: str,
    tmp_path: Path,
    require: dict[str, int],
    *,
    workers: int = 3,
    remote_workers: int = 0,
) -> RunResult:
    if backend == "postgres":
        problem = pg_problem()
        if problem is not None:
            if os.environ.get("CI"):
                pytest.fail(f"CI is set but PostgreSQL is unavailable: {problem}")
            pytest.skip(f"PostgreSQL tests skipped: {problem}")
    config = RunConfig(
        backend=backend,
        scenario=scenario,
        duration=DURATION,
        out=tmp_path,
        workers=workers,
        remote_workers=remote_workers,
        ttl=0.6,
        seed=hash((backend, scenario)) & 0xFFFF,
        kill_every=(0.5, 1.2),
        drain_timeout=60,
        require=require,
    )
    result = run_scenario(config)
    print("\n" + result.describe())
    assert result.ok, result.describe()
    for kind, wanted in require.items():
        assert result.faults[kind] >= wanted, result.describe()
    assert result.report.stats["jobs"] > 0 and result.report.stats["jobs.succeeded"] > 0
    if scenario != "write-kill":  # there the workers only write; elsewhere jobs are processes
        assert result.report.stats["processes"] > 0, result.describe()
    return result


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_loses_nothing_and_runs_nothing_twice(backend: str, tmp_path: Path) -> None:
    _run(backend, "kill", tmp_path, require={"sigkill": 2})


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_paused_holder_is_replaced_and_its_writes_refused(backend: str, tmp_path: Path) -> None:
    # A trial whose job the harness's own random cancel ended is not a replacement: the
    # run goes on until one holder really was replaced. The woken worker always writes
    # (it is naive on purpose), so a replaced trial leaves refused writes behind.
    result = _run(backend, "pause", tmp_path, require={"sigstop_replaced": 1})
    assert result.report.stats["pause.trials_replaced"] >= 1
    assert result.report.stats["pause.woken_writes_refused"] >= 1


@pytest.mark.postgres
def test_terminated_connections_lose_nothing(tmp_path: Path) -> None:
    _run("postgres", "terminate", tmp_path, require={"pg_terminate_backend": 3})


def test_sqlite_survives_kills_mid_write(tmp_path: Path) -> None:
    result = _run("sqlite", "write-kill", tmp_path, require={"sigkill": 3})
    assert result.integrity == "ok"


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_faults_at_once(backend: str, tmp_path: Path) -> None:
    _run(backend, "all", tmp_path, require={"sigkill": 1, "sigstop_trials": 1})


@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_and_remote_workers_under_every_fault(backend: str, tmp_path: Path) -> None:
    # Two direct workers and two remote ones (over `agentfleet serve`, through a proxy that
    # cuts their connections), with kills, pauses past the ttl and server restarts. A
    # remote worker must have been killed, and three replaced while paused (their writes then
    # refused by the fence), for the run to count.
    result = _run(
        backend,
        "all",
        tmp_path,
        require={
            "sigkill_remote": 1,
            "sigstop_replaced_remote": 3,
            "server_restart": 1,
            "connections_cut": 1,
        },
        workers=2,
        remote_workers=2,
    )
    assert result.report.stats["remote.complete.ok"] > 0, result.describe()
    assert result.report.stats["pause.woken_writes_refused"] >= 1
