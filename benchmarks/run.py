"""One command, one machine, one PostgreSQL: agentfleet beside pgqueuer and procrastinate.

    python -m benchmarks.run                      # the full run (N=50,000; backlog 10k and 1M)
    python -m benchmarks.run --quick              # a few minutes: smaller N, no 1M backlog

Prints every row, then the targets (ratios measured in this same run), and writes all of it
to benchmarks/results/latest.json. Install the peers with `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import agentfleet_bench, worker_drain, worker_latency
from benchmarks.peers import pgqueuer_bench, procrastinate_bench
from benchmarks.peers.common import Result, format_table

RESULTS = Path(__file__).parent / "results"
PGQUEUER_BATCHES = (10, 100, 1000, 2000)  # its batch_size: each peer at its own best


def _best(rows: list[Result], system: str, scenario: str) -> Result | None:
    pool = [r for r in rows if r.system == system and r.scenario == scenario]
    return max(pool, key=lambda r: r.jobs_per_s) if pool else None


def _ratio(a: float, b: float) -> str:
    return f"x{a / b:.2f}" if b else "n/a"


def targets(rows: list[Result]) -> list[tuple[str, str, bool]]:
    """Each target: (what, measured, met). Every agentfleet figure is the real worker's;
    each compares with the peer's best row of any batch size and worker count."""
    out: list[tuple[str, str, bool]] = []
    pgq = _best(rows, "pgqueuer", "drain")
    pg = _best(rows, "agentfleet", "worker_drain_postgres")
    sq = _best(rows, "agentfleet", "worker_drain_sqlite")
    if pgq is not None and pg is not None:
        out.append((
            "worker drain on PostgreSQL >= 2x pgqueuer's best",
            f"{pg.jobs_per_s:,.0f} (W={pg.workers}) vs {pgq.jobs_per_s:,.0f} "
            f"(W={pgq.workers}, batch {pgq.batch}) ({_ratio(pg.jobs_per_s, pgq.jobs_per_s)})",
            pg.jobs_per_s >= 2 * pgq.jobs_per_s,
        ))  # fmt: skip
    if pgq is not None and sq is not None:
        out.append((
            "worker drain on SQLite (FULL) >= 2x pgqueuer's best on PostgreSQL",
            f"{sq.jobs_per_s:,.0f} (W={sq.workers}) vs {pgq.jobs_per_s:,.0f} "
            f"({_ratio(sq.jobs_per_s, pgq.jobs_per_s)})",
            sq.jobs_per_s >= 2 * pgq.jobs_per_s,
        ))  # fmt: skip
    proc = _best(rows, "procrastinate", "drain")
    if proc is not None and pg is not None:
        out.append((
            "worker drain vs procrastinate's best (for the record)",
            _ratio(pg.jobs_per_s, proc.jobs_per_s),
            True,
        ))  # fmt: skip
    lat = {(r.system, r.scenario): r for r in rows if r.scenario.startswith("latency")}
    af_pg, af_sq = lat.get(("agentfleet", "latency")), lat.get(("agentfleet", "latency_sqlite"))
    pgq_lat = lat.get(("pgqueuer", "latency"))
    if af_pg and pgq_lat and af_pg.p50_ms is not None and af_pg.p99_ms is not None:
        assert pgq_lat.p50_ms is not None
        out.append((
            "PostgreSQL enqueue-to-start p50 <= pgqueuer's, p99 <= 10 ms",
            f"p50 {af_pg.p50_ms:.2f} vs {pgq_lat.p50_ms:.2f} ms, p99 {af_pg.p99_ms:.2f} ms",
            af_pg.p50_ms <= pgq_lat.p50_ms and af_pg.p99_ms <= 10.0,
        ))  # fmt: skip
    if af_sq and af_sq.p50_ms is not None and af_sq.p99_ms is not None:
        out.append((
            "SQLite enqueue-to-start p50 <= 10 ms, p99 <= 50 ms",
            f"p50 {af_sq.p50_ms:.2f} ms, p99 {af_sq.p99_ms:.2f} ms",
            af_sq.p50_ms <= 10.0 and af_sq.p99_ms <= 50.0,
        ))  # fmt: skip
    backlog = {r.scenario: r for r in rows if r.scenario.startswith("backlog_")}
    small, big = backlog.get("backlog_10000"), backlog.get("backlog_1000000")
    if small and big:
        ratio = big.jobs_per_s / small.jobs_per_s
        out.append(("1M backlog >= 0.8 of 10k", f"x{ratio:.2f}", ratio >= 0.8))
    return out


def _is_drain(row: Result) -> bool:
    return "drain" in row.scenario or row.scenario.startswith("backlog_")


def _drain_speed(rows: list[Result]) -> float:
    return max(r.jobs_per_s for r in rows if _is_drain(r))


def best_of(repeats: int, measure: Callable[..., list[Result]], *args: Any) -> list[Result]:
    """Run a drain measurement `repeats` times (each on a fresh database) and keep the run
    whose drain was fastest: on a shared two-core machine a single run can lose a third
    to a neighbour. Every system gets the same number of tries."""
    best = max((measure(*args) for _ in range(max(1, repeats))), key=_drain_speed)
    if repeats > 1:
        for row in best:
            if _is_drain(row):
                row.notes += f"; best of {repeats}"
    return best


def _latency_row(store: str, jobs: int, gap: float) -> Result:
    """Enqueue-to-start of an idle real worker (benchmarks/worker_latency.py) as a row."""
    got = worker_latency.latency(store, jobs, gap=gap)
    return Result(
        "agentfleet",
        {"postgres": "latency", "sqlite": "latency_sqlite"}.get(
            store, f"latency_{store.replace('-', '_')}"
        ),
        1,
        1,
        jobs,
        0.0,
        0.0,
        got.p50_ms,
        worker_latency.percentile(got.samples_ms, 95),
        got.p99_ms,
        notes=f"agentfleet worker{' --server' if store.endswith('-remote') else ''}, idle; "
        f"a shell job each {gap:g}s (x0.5-1.5); "
        f"idle CPU {got.idle_cpu_pct:.1f}%",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="agentfleet vs pgqueuer vs procrastinate")
    parser.add_argument("--quick", action="store_true", help="small N, no 1M backlog")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--repeats", type=int, default=None, help="tries per drain, best kept (default 3; quick 1)"
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    n = args.jobs or (10_000 if args.quick else 50_000)
    n_proc = min(n, 2_000 if args.quick else 10_000)
    n_shell = 500 if args.quick else 2_000
    rows: list[Result] = []
    started = time.time()

    def show(new: list[Result]) -> None:
        rows.extend(new)
        print(format_table(new), flush=True)

    def real(store: str, workers: int, engine: str = "python", jobs: int = n) -> list[Result]:
        return [worker_drain.drain(store, jobs, workers, engine=engine)]

    # SQLite first, while the PostgreSQL server is idle: its commits flush to the same disk
    # the server's checkpointer writes the other runs' pages to.
    for workers in (1, 2):
        show(best_of(repeats, real, "sqlite", workers))
    for workers in args.workers:
        show(best_of(repeats, real, "postgres", workers))
        for batch in PGQUEUER_BATCHES:
            show(best_of(repeats, pgqueuer_bench.drain, n, workers, batch))
        show(procrastinate_bench.drain(n_proc, workers, 10))  # far behind: one try
    show(real("postgres", 1, "shell", n_shell))  # what a process per job costs
    # Remote workers (`agentfleet worker --server`) beside the direct rows: the same drain
    # through one `agentfleet serve` on each store (fewer jobs: the hop costs throughput).
    n_remote = min(n, 2_000 if args.quick else 10_000)
    for store in ("sqlite-remote", "postgres-remote"):
        show(best_of(repeats, real, store, 2, "python", n_remote))
    ceiling = agentfleet_bench.drain(n, 2, agentfleet_bench.BATCH)
    for row in ceiling:
        if row.scenario.startswith("drain"):
            row.scenario = "store_ceiling"  # the store's own loop, not a worker: never a target
            row.notes = "Fleet.complete_and_claim in a loop, no worker; " + row.notes
    show(ceiling)
    latency_jobs, gap = (100, 0.1) if args.quick else (300, 0.2)
    show([_latency_row("postgres", latency_jobs, gap)])
    show([_latency_row("sqlite", latency_jobs, gap)])
    show([_latency_row("postgres-remote", latency_jobs, gap)])
    show([_latency_row("sqlite-remote", latency_jobs, gap)])
    show([pgqueuer_bench.latency(1000 if not args.quick else 300)])
    backlogs = [10_000] if args.quick else [10_000, 1_000_000]
    for size in backlogs:  # the same tries for both sizes, so their ratio is fair
        show(best_of(repeats, lambda size: [worker_drain.backlog(size)], size))

    print("\n" + format_table(rows))
    print("\ntargets (same run):")
    checks = targets(rows)
    for what, measured, met in checks:
        print(f"  [{'met' if met else 'NOT met'}] {what}: {measured}")
    RESULTS.mkdir(exist_ok=True)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "seconds": round(time.time() - started, 1),
        "rows": [r.to_dict() for r in rows],
        "targets": [{"what": w, "measured": m, "met": ok} for w, m, ok in checks],
    }
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
