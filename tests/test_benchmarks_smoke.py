"""The benchmark runner's agentfleet side, bounded: it runs and its figures are coherent.

Speed is never asserted here; `python -m benchmarks.run` measures it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks import agentfleet_bench


def test_sqlite_drain_smoke() -> None:
    rows = agentfleet_bench.sqlite(400, workers=2, batch=50)
    drain = next(r for r in rows if r.scenario == "drain_sqlite")
    assert drain.jobs == 400 and drain.jobs_per_s > 0 and drain.workers == 2


def test_postgres_drain_smoke(pg_url: str) -> None:
    pytest.importorskip("psycopg")
    rows = agentfleet_bench.drain(400, workers=2, batch=50)
    drain = next(r for r in rows if r.scenario == "drain")
    assert drain.jobs == 400 and "leases+epochs+runs+events" in drain.notes


def test_whatif_variants_still_match_the_batch_statement() -> None:
    """The what-if drains edit the store's statement by text: if it changes, they must too."""
    pytest.importorskip("psycopg")
    from benchmarks import whatif

    from agentfleet.store import postgres

    parts = {part for variant in whatif.VARIANTS.values() for part in variant}
    statement = postgres._COMPLETE_BATCH + postgres._CLAIM_BATCH
    assert parts and all(part in statement for part in parts)


def test_worker_latency_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    """Real `agentfleet worker` processes, a few jobs: it runs and prints its figures."""
    from benchmarks import worker_latency

    args = ["--stores", "sqlite", "--jobs", "3", "--warmup", "1", "--gap", "0.05"]
    assert worker_latency.main([*args, "--idle", "0.2"]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()
    assert "p50 ms" in header and "p99 ms" in header and "max ms" in header
    assert row.split()[:2] == ["sqlite", "3"]


def test_remote_worker_latency_and_drain_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    """`agentfleet worker --server` through a real `agentfleet serve`: the same figures."""
    from benchmarks import worker_drain, worker_latency

    args = ["--stores", "sqlite-remote", "--jobs", "3", "--warmup", "1", "--gap", "0.05"]
    assert worker_latency.main([*args, "--idle", "0.2"]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.split()[:2] == ["sqlite-remote", "3"]
    drained = worker_drain.drain("sqlite-remote", 200, 2, concurrency=50)
    assert drained.jobs == 200 and drained.scenario == "worker_drain_sqlite-remote"


def test_worker_latency_postgres_and_fleet_smoke(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("psycopg")
    from benchmarks import worker_latency

    args = ["--stores", "postgres", "--jobs", "2", "--warmup", "0", "--gap", "0.05"]
    assert worker_latency.main([*args, "--idle", "0.2"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:2] == ["postgres", "2"] and int(row[-1]) >= 1  # the connections it held
    fleet = ["fleet", "--workers", "2", "--jobs-per-worker", "1", "--sleep", "0.1"]
    assert worker_latency.main(fleet) == 0
    figures = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert (figures["workers"], figures["succeeded"]) == ("2", "2")


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_real_worker_drain_smoke(store: str, request: pytest.FixtureRequest) -> None:
    """`agentfleet worker` processes drain python and shell no-ops; every job succeeds."""
    if store == "postgres":
        request.getfixturevalue("pg_url")
    from benchmarks import worker_drain

    row = worker_drain.drain(store, 300, 2, concurrency=50)
    assert row.jobs == 300 and row.workers == 2 and row.jobs_per_s > 0
    assert row.scenario == f"worker_drain_{store}" and "jobs per worker" in row.notes
    shell = worker_drain.drain(store, 10, 1, engine="shell")
    assert shell.scenario == f"worker_drain_{store}_shell" and shell.jobs == 10


def test_real_worker_backlog_smoke(pg_url: str) -> None:
    from benchmarks import worker_drain

    row = worker_drain.backlog(500, window=200, workers=1)
    assert row.scenario == "backlog_500" and row.jobs == 200 and row.jobs_per_s > 0


def test_fleet_scale_fleet_smoke(pg_url: str, tmp_path: Path) -> None:
    """Real workers holding leases: every lease ran through the window, figures are read."""
    pytest.importorskip("psycopg")
    from benchmarks import fleet_scale

    out = tmp_path / "fleet.json"
    args = ["fleet", "--workers", "2", "--concurrency", "3", "--hold", "3", "--idle", "1"]
    assert fleet_scale.main([*args, "--settle", "0", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["leases"] == 6
    held, probed = figures["windows"]
    for window in (held, probed):
        assert window["running_at_end"] == window["sleeping_at_end"] == window["leases"] == 6
        assert window["xacts"] > 0 and window["peak_connections"] >= 2
        assert window["workers_cpu_s"] >= 0 and window["backends_cpu_s"] is not None
    assert probed["bench_calls"] > 0 and probed["peak_connections"] >= 3  # the probe worker
    assert figures["latency"]["jobs"] >= 1 and figures["latency"]["p50_ms"] > 0
    assert figures["idle"]["xacts"] > 0
    assert figures["workers_alive_at_end"] == 3 and figures["leftover_processes"] == 0


def test_fleet_scale_agent_overhead_smoke(tmp_path: Path) -> None:
    """Stand-in agent jobs, in the repository and in worktrees: every stamp was read."""
    from benchmarks import fleet_scale

    out = tmp_path / "agent.json"
    args = ["agent-overhead", "--files", "50", "--jobs", "2", "--warmup", "0"]
    assert fleet_scale.main([*args, "--json", str(out)]) == 0
    rows = {row["mode"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"cwd", "worktree"}
    for row in rows.values():
        assert row["jobs"] == 2 and len(row["start_samples_ms"]) == 2
        assert row["start_p50_ms"] > 0 and row["end_p50_ms"] > 0 and row["agent_p50_ms"] > 0
