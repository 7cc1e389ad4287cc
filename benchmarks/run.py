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

from benchmarks import agentfleet_bench
from benchmarks.peers import pgqueuer_bench, procrastinate_bench
from benchmarks.peers.common import Result, format_table

RESULTS = Path(__file__).parent / "results"


def _best(rows: list[Result], system: str, scenario: str, batch: int | None = None) -> Result:
    pool = [
        r
        for r in rows
        if r.system == system and r.scenario == scenario and (batch is None or r.batch == batch)
    ]
    return max(pool, key=lambda r: r.jobs_per_s)


def targets(rows: list[Result]) -> list[tuple[str, str, bool]]:
    """Each target: (what, measured, met)."""
    af = _best(rows, "agentfleet", "drain")
    pgq = _best(rows, "pgqueuer", "drain")
    out = [
        (
            "drain >= 2x pgqueuer's best",
            f"{af.jobs_per_s:,.0f} vs {pgq.jobs_per_s:,.0f} jobs/s "
            f"(x{af.jobs_per_s / pgq.jobs_per_s:.2f})",
            af.jobs_per_s >= 2 * pgq.jobs_per_s,
        )
    ]
    proc = [r for r in rows if r.system == "procrastinate" and r.scenario == "drain"]
    if proc:
        best = max(proc, key=lambda r: r.jobs_per_s)
        out.append(
            (
                "drain vs procrastinate's best (for the record)",
                f"x{af.jobs_per_s / best.jobs_per_s:.1f}",
                True,
            )
        )
    lat = [r for r in rows if r.scenario == "latency"]
    af_lat = next((r for r in lat if r.system == "agentfleet"), None)
    pgq_lat = next((r for r in lat if r.system == "pgqueuer"), None)
    if af_lat and pgq_lat and af_lat.p50_ms and pgq_lat.p50_ms and af_lat.p99_ms:
        out.append(
            (
                "latency p50 <= pgqueuer's, p99 <= 10 ms",
                f"p50 {af_lat.p50_ms:.2f} vs {pgq_lat.p50_ms:.2f} ms, p99 {af_lat.p99_ms:.2f} ms",
                af_lat.p50_ms <= pgq_lat.p50_ms and af_lat.p99_ms <= 10.0,
            )
        )
    backlog = {r.scenario: r for r in rows if r.scenario.startswith("backlog_")}
    small, big = backlog.get("backlog_10000"), backlog.get("backlog_1000000")
    if small and big:
        ratio = big.jobs_per_s / small.jobs_per_s
        out.append(("1M backlog >= 0.8 of 10k", f"x{ratio:.2f}", ratio >= 0.8))
    if any(r.scenario == "drain_sqlite" for r in rows):
        sq = _best(rows, "agentfleet", "drain_sqlite")
        out.append(
            (
                "SQLite (FULL) drain >= 2x pgqueuer on PostgreSQL",
                f"{sq.jobs_per_s:,.0f} (W={sq.workers}) vs {pgq.jobs_per_s:,.0f} "
                f"(x{sq.jobs_per_s / pgq.jobs_per_s:.2f})",
                sq.jobs_per_s >= 2 * pgq.jobs_per_s,
            )
        )
    return out


def _drain_speed(rows: list[Result]) -> float:
    return max(r.jobs_per_s for r in rows if r.scenario.startswith("drain"))


def best_of(repeats: int, measure: Callable[..., list[Result]], *args: int) -> list[Result]:
    """Run a drain measurement `repeats` times (each on a fresh database) and keep the run
    whose drain was fastest: on a shared two-core machine a single run can lose a third
    to a neighbour. Every system gets the same number of tries."""
    best = max((measure(*args) for _ in range(max(1, repeats))), key=_drain_speed)
    if repeats > 1:
        for row in best:
            if row.scenario.startswith("drain"):
                row.notes += f"; best of {repeats}"
    return best


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
    rows: list[Result] = []
    started = time.time()

    def show(new: list[Result]) -> None:
        rows.extend(new)
        print(format_table(new), flush=True)

    # SQLite first, while the PostgreSQL server is idle: its commits flush to the same disk
    # the server's checkpointer writes the other runs' pages to. One file, one writer at a
    # time: a second process overlaps its Python with the first one's writes.
    for workers in (1, 2):
        show(best_of(repeats, agentfleet_bench.sqlite, n, workers))
    for workers in args.workers:
        for batch in (100, agentfleet_bench.BATCH):
            show(best_of(repeats, agentfleet_bench.drain, n, workers, batch))
        for batch in (10, 100):
            show(best_of(repeats, pgqueuer_bench.drain, n, workers, batch))
        show(procrastinate_bench.drain(n_proc, workers, 10))  # far behind: one try
    show([agentfleet_bench.latency(1000 if not args.quick else 300)])
    show([agentfleet_bench.latency(1000 if not args.quick else 300, sqlite_file=True)])
    show([pgqueuer_bench.latency(1000 if not args.quick else 300)])
    backlogs = [10_000] if args.quick else [10_000, 1_000_000]
    show([agentfleet_bench.backlog(size) for size in backlogs])

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
