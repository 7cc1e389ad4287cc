"""procrastinate 3.10.0 peer benchmark: drain throughput, enqueue throughput, pickup latency.

Configuration follows procrastinate's documentation:

* async tasks and the async ``PsycopgConnector`` ("the recommended way"), psycopg 3 pool;
* worker ``concurrency`` > 1 for async jobs (how-to "Execute multiple jobs at the
  same time" uses 30) with the pool sized ``concurrency + 1`` (discussion "Mind the
  size of your PostgreSQL pool": short jobs need as many connections as sub-workers,
  plus one); default here 10, because 4 workers x 32 connections would exceed
  ``max_connections=100``, and for no-op jobs on 2 cores 1, 10 and 30 measured alike;
* ``listen_notify=True`` (default) so idle workers wake on NOTIFY;
* ``delete_jobs="successful"`` (how-to "Delete finished jobs"), keeping the jobs
  table small as in production; ``--delete-jobs never`` restores the default;
* jobs deferred with ``batch_defer_async`` (how-to "Batch defer multiple jobs");
* drain = ``run_worker_async(wait=False)``: the worker exits once caught up.

Run from the repository root, e.g.::

    python -m benchmarks.peers.procrastinate_bench drain --jobs 10000 --workers 1 2 4
    python -m benchmarks.peers.procrastinate_bench latency --jobs 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence

import procrastinate
import psycopg

from benchmarks.peers.common import (
    DrainRun,
    Result,
    WorkerLink,
    emit,
    fresh_database,
    install_termination_handler,
    least_disturbed,
    peer_parser,
    percentile,
    run_drain,
    run_latency,
    run_worker_safely,
)

SYSTEM = "procrastinate"
QUEUE = "bench"
NOOP = "bench.noop"
PROBE = "bench.probe"
DEFAULT_CONCURRENCY = 10
DELETE_CHOICES = ("never", "successful", "always")


def _app(url: str, pool_size: int) -> procrastinate.App:
    # The app is built inside this module on purpose (tasks carry explicit names);
    # silence the "instantiated in the main Python module" advice when run with -m.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    connector = procrastinate.PsycopgConnector(conninfo=url, min_size=pool_size, max_size=pool_size)
    return procrastinate.App(connector=connector)


# --------------------------------------------------------------------------- setup


async def _install(url: str) -> None:
    app = _app(url, 1)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def _enqueue(
    url: str, n_jobs: int, enqueue_batch: int, single_sample: int
) -> tuple[float, list[float], float]:
    """Defer ``single_sample`` jobs one by one, the rest with ``batch_defer_async``."""
    app = _app(url, 1)
    async with app.open_async():
        deferrer = app.configure_task(name=NOOP, queue=QUEUE)
        calls_ms: list[float] = []
        started = time.perf_counter()
        for _ in range(single_sample):
            t = time.perf_counter()
            await deferrer.defer_async()
            calls_ms.append((time.perf_counter() - t) * 1000.0)
        single_s = time.perf_counter() - started

        remaining = n_jobs - single_sample
        started = time.perf_counter()
        while remaining > 0:
            size = min(enqueue_batch, remaining)
            await deferrer.batch_defer_async(*({} for _ in range(size)))
            remaining -= size
        batch_s = time.perf_counter() - started
    return single_s, calls_ms, batch_s


def _sql(url: str, query: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def _analyze(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def _leftover(url: str) -> int:
    return _sql(url, "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")


# --------------------------------------------------------------------------- workers


async def _drain_worker_async(
    link: WorkerLink, url: str, concurrency: int, delete_jobs: str
) -> None:
    app = _app(url, concurrency + 1)
    done = 0

    @app.task(name=NOOP, queue=QUEUE)
    async def noop() -> None:
        nonlocal done
        done += 1

    async with app.open_async():
        link.ready()
        await asyncio.get_running_loop().run_in_executor(None, link.wait_start)
        await app.run_worker_async(
            queues=[QUEUE],
            concurrency=concurrency,
            wait=False,
            delete_jobs=delete_jobs,
            install_signal_handlers=False,
        )
        link.done(done)
        await asyncio.get_running_loop().run_in_executor(None, link.wait_stop)


def _drain_worker(link: WorkerLink, url: str, concurrency: int, delete_jobs: str) -> None:
    run_worker_safely(
        link, lambda: asyncio.run(_drain_worker_async(link, url, concurrency, delete_jobs))
    )


async def _latency_worker_async(
    link: WorkerLink, url: str, concurrency: int, delete_jobs: str
) -> None:
    app = _app(url, concurrency + 1)
    latencies_ms: list[float] = []

    @app.task(name=PROBE, queue=QUEUE)
    async def probe(measured: bool, sent_at: float) -> None:
        started = time.time()
        if measured:
            latencies_ms.append((started - sent_at) * 1000.0)
            link.add_progress()

    async with app.open_async():
        link.ready()
        await asyncio.get_running_loop().run_in_executor(None, link.wait_start)
        worker = asyncio.create_task(
            app.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency,
                wait=True,
                listen_notify=True,
                delete_jobs=delete_jobs,
                install_signal_handlers=False,
            )
        )
        while not link.should_stop() and not worker.done():
            await asyncio.sleep(0.05)
        worker.cancel()  # documented graceful stop
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        link.done(len(latencies_ms), latencies_ms)


def _latency_worker(link: WorkerLink, url: str, concurrency: int, delete_jobs: str) -> None:
    run_worker_safely(
        link, lambda: asyncio.run(_latency_worker_async(link, url, concurrency, delete_jobs))
    )


# --------------------------------------------------------------------------- scenarios


@dataclasses.dataclass
class _DrainOutcome:
    single_s: float
    calls_ms: list[float]
    batch_s: float
    run: DrainRun


def _drain_once(
    n_jobs: int,
    workers: int,
    concurrency: int,
    single: int,
    enqueue_batch: int,
    delete_jobs: str,
    analyze: bool,
    wait_quiet: float,
    timeout: float,
) -> _DrainOutcome:
    with fresh_database(f"procrastinate_w{workers}_c{concurrency}") as url:
        asyncio.run(_install(url))
        single_s, calls_ms, batch_s = asyncio.run(_enqueue(url, n_jobs, enqueue_batch, single))
        if analyze:
            _analyze(url)
        run = run_drain(
            _drain_worker, url, (concurrency, delete_jobs), workers, timeout, wait_quiet
        )
        leftover = _leftover(url)
    if run.jobs != n_jobs or leftover:
        raise RuntimeError(f"drain incomplete: processed {run.jobs}/{n_jobs}, left {leftover}")
    return _DrainOutcome(single_s, calls_ms, batch_s, run)


def drain(
    n_jobs: int,
    workers: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    *,
    enqueue_batch: int = 1000,
    single_sample: int = 1000,
    delete_jobs: str = "successful",
    analyze: bool = True,
    wait_quiet: float = 0.0,
    attempts: int = 1,
    max_other: float = 0.1,
    timeout: float = 1800.0,
) -> list[Result]:
    """Defer ``n_jobs`` no-op jobs, then time ``workers`` processes draining them.

    ``concurrency`` (sub-workers per process) takes the ``batch`` column of the
    results: procrastinate fetches one job per query, so it has no batch size.
    Rows: ``enqueue_single``, ``enqueue_batch``, ``drain``; ``analyze``,
    ``attempts`` and ``max_other`` behave as in ``pgqueuer_bench.drain``.
    """
    if n_jobs < 2 or workers < 1 or concurrency < 1:
        raise ValueError("need n_jobs >= 2, workers >= 1, concurrency >= 1")
    if delete_jobs not in DELETE_CHOICES:
        raise ValueError(f"delete_jobs must be one of {DELETE_CHOICES}")
    single = min(single_sample, n_jobs // 2)
    config = f"psycopg pool {concurrency + 1}, concurrency {concurrency}, delete {delete_jobs}"
    if not analyze:
        config += ", no ANALYZE"
    outcome, tries = least_disturbed(
        lambda: _drain_once(
            n_jobs,
            workers,
            concurrency,
            single,
            enqueue_batch,
            delete_jobs,
            analyze,
            wait_quiet,
            timeout,
        ),
        lambda o: o.run.other_fraction,
        attempts,
        max_other,
    )
    run = outcome.run
    single_s, calls_ms, batch_s = outcome.single_s, outcome.calls_ms, outcome.batch_s
    per_worker = "/".join(str(r.jobs) for r in run.reports)
    return [
        Result(
            system=SYSTEM,
            scenario="enqueue_single",
            workers=1,
            batch=1,
            jobs=single,
            seconds=single_s,
            jobs_per_s=single / single_s,
            p50_ms=percentile(calls_ms, 50),
            p95_ms=percentile(calls_ms, 95),
            p99_ms=percentile(calls_ms, 99),
            notes="defer_async; per-call latency",
        ),
        Result(
            system=SYSTEM,
            scenario="enqueue_batch",
            workers=1,
            batch=enqueue_batch,
            jobs=n_jobs - single,
            seconds=batch_s,
            jobs_per_s=(n_jobs - single) / batch_s,
            notes="batch_defer_async",
        ),
        Result(
            system=SYSTEM,
            scenario="drain",
            workers=workers,
            batch=concurrency,
            jobs=n_jobs,
            seconds=run.seconds,
            jobs_per_s=n_jobs / run.seconds,
            peak_rss_mb=run.peak_rss_mb,
            notes=f"{config}; jobs per worker {per_worker}; {run.cpu_note()}; try {tries}",
        ),
    ]


async def _produce(url: str, n_jobs: int, warmup: int, pause_s: float) -> float:
    app = _app(url, 1)
    async with app.open_async():
        deferrer = app.configure_task(name=PROBE, queue=QUEUE)
        await asyncio.sleep(0.5)  # let the workers reach LISTEN
        for _ in range(warmup):
            await deferrer.defer_async(measured=False, sent_at=time.time())
            await asyncio.sleep(pause_s)
        started = time.perf_counter()
        for _ in range(n_jobs):
            await deferrer.defer_async(measured=True, sent_at=time.time())
            await asyncio.sleep(pause_s)
        return time.perf_counter() - started


def latency(
    n_jobs: int = 1000,
    workers: int = 1,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    pause_ms: float = 10.0,
    warmup: int = 20,
    delete_jobs: str = "successful",
    wait_quiet: float = 0.0,
    timeout: float = 600.0,
) -> Result:
    """Defer-to-start latency with idle workers woken by LISTEN/NOTIFY."""
    if n_jobs < 1 or workers < 1:
        raise ValueError("need n_jobs >= 1 and workers >= 1")
    with fresh_database(f"procrastinate_latency_w{workers}") as url:
        asyncio.run(_install(url))
        return run_latency(
            SYSTEM,
            _latency_worker,
            (url, concurrency, delete_jobs),
            workers,
            n_jobs,
            lambda: asyncio.run(_produce(url, n_jobs, warmup, pause_ms / 1000.0)),
            batch=concurrency,
            timeout=timeout,
            wait_quiet=wait_quiet,
            notes=f"concurrency {concurrency}; paced {pause_ms:g} ms apart, {warmup} warm-up",
        )


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = peer_parser(__doc__)
    parser.add_argument("--delete-jobs", choices=DELETE_CHOICES, default="successful")
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("drain", help="defer N jobs, then drain them with W worker processes")
    d.add_argument("--jobs", type=int, default=2000)
    d.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    d.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[DEFAULT_CONCURRENCY],
        help="sub-workers per worker process (pool size is this + 1)",
    )
    d.add_argument("--enqueue-batch", type=int, default=1000)
    d.add_argument("--single-sample", type=int, default=1000)
    d.add_argument(
        "--no-analyze", action="store_true", help="skip ANALYZE between enqueue and drain"
    )

    lat = sub.add_parser("latency", help="defer-to-start latency of idle LISTENing workers")
    lat.add_argument("--jobs", type=int, default=1000)
    lat.add_argument("--workers", type=int, default=1)
    lat.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    lat.add_argument("--pause-ms", type=float, default=10.0)
    lat.add_argument("--warmup", type=int, default=20)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    install_termination_handler()
    if args.command == "drain":
        for concurrency in args.concurrency:
            for workers in args.workers:
                emit(
                    drain(
                        args.jobs,
                        workers,
                        concurrency,
                        enqueue_batch=args.enqueue_batch,
                        single_sample=args.single_sample,
                        delete_jobs=args.delete_jobs,
                        analyze=not args.no_analyze,
                        wait_quiet=args.wait_quiet,
                        attempts=args.attempts,
                        max_other=args.max_other,
                    ),
                    args.json,
                )
    else:
        emit(
            [
                latency(
                    args.jobs,
                    args.workers,
                    concurrency=args.concurrency,
                    pause_ms=args.pause_ms,
                    warmup=args.warmup,
                    wait_quiet=args.wait_quiet,
                    delete_jobs=args.delete_jobs,
                )
            ],
            args.json,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
