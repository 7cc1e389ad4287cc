"""agentfleet side of the side-by-side benchmark: drain, enqueue, latency, backlog, SQLite.

Workers are OS processes that loop on `Fleet.complete_and_claim`: each call completes the
previous batch (every row fenced by its epoch, runs closed, events logged) and claims the
next (SKIP LOCKED, epoch bumped, runs opened, events logged) in ONE statement and ONE commit.

Run from the repository root, e.g.::

    python -m benchmarks.agentfleet_bench drain --jobs 50000 --workers 1 2 4 --batch 100
    python -m benchmarks.agentfleet_bench latency --jobs 1000
    python -m benchmarks.agentfleet_bench sqlite --jobs 50000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import agentfleet
from agentfleet import Lease, NewJob
from benchmarks.peers.common import (
    Result,
    WorkerLink,
    emit,
    fresh_database,
    percentile,
    run_drain,
    run_latency,
    run_worker_safely,
)

SYSTEM = "agentfleet"
ENQUEUE_CHUNK = 5000
# The fast path's batch: per-statement costs (a round trip, a commit and its flush, the
# plan) are spread over 2,000 jobs. Beyond that, PostgreSQL's sorts and joins in the
# statement cost more than they save.
BATCH = 2000
# SQLite's per-transaction costs are larger (the write lock handed between processes, the
# page cache each other process's commit empties, the WAL flush), and nothing in its
# statements grows worse with size, so the embedded store takes bigger batches.
SQLITE_BATCH = 5000


def _enqueue(url: str, n_jobs: int, single: int) -> tuple[float, list[float], float]:
    """Enqueue `single` jobs one call each (timed per call), the rest in chunks."""
    calls: list[float] = []
    with agentfleet.open(url) as fleet:
        started = time.perf_counter()
        for _ in range(single):
            t = time.perf_counter()
            fleet.enqueue("noop", {})
            calls.append((time.perf_counter() - t) * 1000.0)
        single_s = time.perf_counter() - started
        started = time.perf_counter()
        left = n_jobs - single
        while left > 0:
            chunk = min(ENQUEUE_CHUNK, left)
            fleet.enqueue_many([NewJob("noop", {}) for _ in range(chunk)])
            left -= chunk
        batch_s = time.perf_counter() - started
        if url.startswith("postgresql"):
            with fleet.store.dialect.session() as tx:
                tx.script("ANALYZE jobs")  # as autovacuum would (untimed), as for the peers
    return single_s, calls, batch_s


def _drain_body(link: WorkerLink, url: str, batch: int) -> None:
    with agentfleet.open(url, reap_interval=3600) as fleet:
        worker = f"bench-{os.getpid()}"
        link.ready()
        link.wait_start()
        held: list[Lease] = []
        done = 0
        while True:
            completed, held = fleet.complete_and_claim(
                [(lease, None) for lease in held], worker=worker, limit=batch, ttl=60
            )
            done += len(completed)
            if not held:
                break
        link.done(done)
        link.wait_stop()


def _drain_worker(link: WorkerLink, url: str, batch: int) -> None:
    run_worker_safely(link, lambda: _drain_body(link, url, batch))


def _drain_rows(url: str, n_jobs: int, workers: int, batch: int, label: str) -> list[Result]:
    single = min(1000, n_jobs // 2)
    single_s, calls, batch_s = _enqueue(url, n_jobs, single)
    run = run_drain(_drain_worker, url, (batch,), workers, timeout=1800.0)
    with agentfleet.open(url) as fleet:
        counts = fleet.queue_counts()
    if counts != {("default", "succeeded"): n_jobs} or run.jobs != n_jobs:
        raise RuntimeError(f"drain incomplete: {counts}, processed {run.jobs}/{n_jobs}")
    per_worker = "/".join(str(r.jobs) for r in run.reports)
    return [
        Result(
            SYSTEM,
            f"enqueue_single{label}",
            1,
            1,
            single,
            single_s,
            single / single_s,
            percentile(calls, 50),
            percentile(calls, 95),
            percentile(calls, 99),
            notes="one enqueue() call per job",
        ),
        Result(
            SYSTEM,
            f"enqueue_batch{label}",
            1,
            ENQUEUE_CHUNK,
            n_jobs - single,
            batch_s,
            (n_jobs - single) / batch_s,
            notes="enqueue_many: one statement per chunk",
        ),
        Result(
            SYSTEM,
            f"drain{label}",
            workers,
            batch,
            n_jobs,
            run.seconds,
            n_jobs / run.seconds,
            peak_rss_mb=run.peak_rss_mb,
            notes=f"complete_and_claim; leases+epochs+runs+events; jobs per worker "
            f"{per_worker}; {run.cpu_note()}",
        ),
    ]


def drain(n_jobs: int, workers: int, batch: int) -> list[Result]:
    with fresh_database(f"agentfleet_w{workers}_b{batch}") as url:
        return _drain_rows(url, n_jobs, workers, batch, "")


def sqlite(n_jobs: int, workers: int = 1, batch: int = SQLITE_BATCH) -> list[Result]:
    """The embedded store as it ships: WAL, synchronous=FULL, one file on local disk."""
    with tempfile.TemporaryDirectory(prefix="agentfleet-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'fleet.db'}"
        rows = _drain_rows(url, n_jobs, workers, batch, "_sqlite")
    for row in rows:
        row.notes += "; SQLite WAL, synchronous=FULL"
    return rows


def _latency_body(link: WorkerLink, url: str, batch: int) -> None:
    latencies: list[float] = []
    with agentfleet.open(url, reap_interval=3600) as fleet:
        worker = f"bench-{os.getpid()}"
        fleet.wait_for_jobs(0.01)  # start listening before the producer starts
        link.ready()
        link.wait_start()
        held: list[Lease] = []
        while not link.should_stop():
            _, held = fleet.complete_and_claim(
                [(lease, None) for lease in held], worker=worker, limit=batch, ttl=60
            )
            now = time.time()
            for lease in held:
                payload = lease.job.payload if lease.job else {}
                if payload.get("measure"):
                    latencies.append((now - float(payload["t"])) * 1000.0)
                    link.add_progress()
            if not held:
                fleet.wait_for_jobs(0.2)
        link.done(len(latencies), latencies)
        link.wait_stop()


def _latency_worker(link: WorkerLink, url: str, batch: int) -> None:
    run_worker_safely(link, lambda: _latency_body(link, url, batch))


def latency(
    n_jobs: int = 1000,
    workers: int = 1,
    batch: int = 10,
    pause_ms: float = 10.0,
    warmup: int = 20,
    sqlite_file: bool = False,
) -> Result:
    """Enqueue-to-start latency: idle workers woken by LISTEN/NOTIFY (SQLite: data_version)."""

    def produce(url: str) -> float:
        with agentfleet.open(url) as fleet:
            time.sleep(0.3)
            started = time.perf_counter()
            for i in range(warmup + n_jobs):
                fleet.enqueue("noop", {"t": repr(time.time()), "measure": i >= warmup})
                time.sleep(pause_ms / 1000.0)
            return time.perf_counter() - started

    def measure(url: str) -> Result:
        wake = "SQLite doorbell + data_version" if sqlite_file else "LISTEN/NOTIFY wake-up"
        return run_latency(
            SYSTEM,
            _latency_worker,
            (url, batch),
            workers,
            n_jobs,
            lambda: produce(url),
            scenario="latency" + ("_sqlite" if sqlite_file else ""),
            batch=batch,
            timeout=120.0,
            notes=f"one enqueue every {pause_ms:g} ms, {warmup} warm-up; {wake}",
        )

    if sqlite_file:
        with tempfile.TemporaryDirectory(prefix="agentfleet-bench-") as tmp:
            return measure(f"sqlite:///{Path(tmp) / 'fleet.db'}")
    with fresh_database("agentfleet_latency") as url:
        return measure(url)


def backlog(
    backlog_size: int, drained: int = 20000, workers: int = 2, batch: int = BATCH
) -> Result:
    """Claim cost against a backlog: drain `drained` jobs while `backlog_size` stay queued."""
    with fresh_database(f"agentfleet_backlog_{backlog_size}") as url:
        with agentfleet.open(url) as fleet:
            left = backlog_size
            started = time.perf_counter()
            while left > 0:  # the backlog: lower priority, so never claimed in the window
                chunk = min(ENQUEUE_CHUNK * 4, left)
                fleet.enqueue_many([NewJob("noop", {}, priority=-1) for _ in range(chunk)])
                left -= chunk
            fill_s = time.perf_counter() - started
            fleet.enqueue_many([NewJob("noop", {}, priority=1) for _ in range(drained)])
            with fleet.store.dialect.session() as tx:
                tx.script("VACUUM ANALYZE jobs")
                # Untimed, like the fill: write out the fill's dirty pages now, or the
                # measured window pays for evicting them (1M jobs outgrow shared_buffers).
                tx.script("CHECKPOINT")
        run = run_drain(_backlog_worker, url, (batch, drained // workers), workers, 1800.0)
    return Result(
        SYSTEM,
        f"backlog_{backlog_size}",
        workers,
        batch,
        run.jobs,
        run.seconds,
        run.jobs / run.seconds,
        notes=f"{backlog_size} queued behind; fill {fill_s:.0f}s; {run.cpu_note()}",
    )


def _backlog_body(link: WorkerLink, url: str, batch: int, quota: int) -> None:
    """Drain exactly `quota` jobs: the measured window, with the backlog still queued."""
    with agentfleet.open(url, reap_interval=3600) as fleet:
        worker = f"bench-{os.getpid()}"
        link.ready()
        link.wait_start()
        held: list[Lease] = []
        done = 0
        while True:
            finishing = [(lease, None) for lease in held]
            wanted = quota - done - len(held)
            if wanted <= 0:
                done += len(fleet.complete_many(finishing))
                break
            completed, held = fleet.complete_and_claim(
                finishing, worker=worker, limit=min(batch, wanted), ttl=60
            )
            done += len(completed)
        link.done(done)
        link.wait_stop()


def _backlog_worker(link: WorkerLink, url: str, batch: int, quota: int) -> None:
    run_worker_safely(link, lambda: _backlog_body(link, url, batch, quota))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("scenario", choices=["drain", "latency", "sqlite", "backlog"])
    parser.add_argument("--jobs", type=int, default=50000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=None,
        help=f"jobs per complete_and_claim (default {BATCH}; sqlite {SQLITE_BATCH})",
    )
    parser.add_argument("--backlog", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    args = parser.parse_args(argv)
    rows: list[Result] = []
    if args.scenario == "drain":
        for batch in args.batch or [BATCH]:
            for workers in args.workers:
                rows += drain(args.jobs, workers, batch)
    elif args.scenario == "sqlite":
        for batch in args.batch or [SQLITE_BATCH]:
            for workers in args.workers:
                rows += sqlite(args.jobs, workers, batch)
        rows.append(latency(min(args.jobs, 1000), sqlite_file=True))
    elif args.scenario == "latency":
        rows.append(latency(args.jobs))
    else:
        rows += [backlog(size) for size in args.backlog]
    emit(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
