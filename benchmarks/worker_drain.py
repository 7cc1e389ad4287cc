"""The drain as users run it: `agentfleet worker` processes started from the console script.

N no-op jobs are enqueued first (untimed), then W workers are started together as a user
starts them::

    agentfleet --db URL worker --burst --import benchmarks.noop_tasks --concurrency C

and each leaves once nothing is ready and nothing runs. The rate is N over the store's own
window: from the first run's `started_at` (stamped by the claim) to the last run's
`finished_at` (stamped by the completion), so a worker's start-up (imports, connecting) is
left out but everything the worker does per job is in: leases with fencing epochs, a run
record per attempt, an event per transition, its log lines (to a file, as under a service
manager). A `shell` row (`true`) shows what a process per job costs.

    python -m benchmarks.worker_drain                               # both stores, W=1,2,4
    python -m benchmarks.worker_drain --stores sqlite --jobs 20000 --workers 1
    python -m benchmarks.worker_drain --engine shell --jobs 2000
    python -m benchmarks.worker_drain --stores postgres-remote --workers 2   # --server workers

CPU per job is the workers' own CPU seconds (user + system, their children included) over
N; on a shared machine it moves less than the wall-clock rate does. "The rest of the machine"
is every other busy CPU second from launch to exit (/proc/stat) over N: the database
server's work for the drain, and whatever else ran.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import agentfleet
from agentfleet import NewJob
from benchmarks.noop_tasks import NOOP
from benchmarks.peers.common import CpuSample, Result, format_table
from benchmarks.worker_latency import (
    BENCH_APP,
    STORES,
    _database,
    _start_worker,
    _stop,
    _tail,
    served,
    worker_command,
)

SYSTEM = "agentfleet"
ENQUEUE_CHUNK = 5000
CONCURRENCY = {"python": 1000, "shell": 8}  # what each row's workers run with (--concurrency)
PATIENCE = 1800.0
ROOT = str(Path(__file__).resolve().parent.parent)
PYTHONPATH = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
# Whether the backlog's window still has work, read through the two partial indexes. It is
# asked 20 times a second while the window drains: a count over the jobs table was a
# sequential scan of the whole backlog each time, and at 1,000,000 jobs it kept one of the
# machine's two cores busy, which the measured workers then lacked.
WINDOW_LEFT = (
    "SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND priority = 1)"
    " OR EXISTS (SELECT 1 FROM jobs WHERE status = 'running' AND priority = 1) AS left"
)


def _payload(engine: str) -> dict[str, object]:
    return {"func": NOOP} if engine == "python" else {"cmd": ["true"]}


def _enqueue(url: str, engine: str, jobs: int) -> None:
    with agentfleet.open(url, application_name=BENCH_APP) as fleet:
        left = jobs
        while left > 0:
            chunk = min(ENQUEUE_CHUNK, left)
            fleet.enqueue_many([NewJob(engine, _payload(engine)) for _ in range(chunk)])
            left -= chunk
        if url.startswith("postgresql"):
            with fleet.store.dialect.session() as tx:
                tx.script("ANALYZE jobs")  # as autovacuum would (untimed), as for the peers


def _window(url: str) -> tuple[float, dict[str, int], dict[str, int]]:
    """The store's drain window in seconds, the jobs per status, and the runs per worker."""
    with (
        agentfleet.open(url, application_name=BENCH_APP) as fleet,
        fleet.store.dialect.session() as tx,
    ):
        row = tx.one("SELECT min(started_at) AS a, max(finished_at) AS b FROM runs")
        assert row is not None
        first, last = (fleet.store.dialect.time_in(row[k]) for k in ("a", "b"))
        statuses = {
            str(r["status"]): int(r["n"])
            for r in tx.q("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        }
        per_worker = {
            str(r["worker"]): int(r["n"])
            for r in tx.q("SELECT worker, count(*) AS n FROM runs GROUP BY worker")
        }
    return (last - first).total_seconds(), statuses, per_worker


def drain(
    store: str,
    jobs: int,
    workers: int,
    *,
    engine: str = "python",
    concurrency: int | None = None,
    command: str | None = None,
    extra: Sequence[str] = (),
) -> Result:
    """One drain by `workers` real worker processes; raises if any job is left undone.
    A `-remote` store's workers reach the database through one `agentfleet serve` (its
    CPU then counts in "the rest of the machine")."""
    cmd = worker_command(command)
    width = concurrency or CONCURRENCY[engine]
    base, _, remote = store.partition("-")
    with (
        _database(base) as url,
        tempfile.TemporaryDirectory(prefix="agentfleet-drain-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        _enqueue(url, engine, jobs)
        servers: list[tuple[str, str] | None] = [None] * workers
        if remote:
            address = stack.enter_context(served(cmd, url, Path(tmp)))
            with agentfleet.open(url, application_name=BENCH_APP) as fleet:
                servers = [
                    (address, fleet.create_token(f"drain-{i}", "worker")[1]) for i in range(workers)
                ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine_before = CpuSample.take()
        launched = time.monotonic()
        started = [
            _start_worker(
                cmd,
                url,
                f"drain-{i}",
                Path(tmp),
                "--burst",
                "--import",
                "benchmarks.noop_tasks",
                "--concurrency",
                str(width),
                *extra,
                env={"PYTHONPATH": PYTHONPATH},  # so `--import benchmarks.noop_tasks` resolves
                server=servers[i],
            )
            for i in range(workers)
        ]
        procs = [proc for proc, _ in started]
        try:
            for proc, log in started:
                try:
                    code = proc.wait(max(1.0, PATIENCE - (time.monotonic() - launched)))
                except subprocess.TimeoutExpired:
                    raise RuntimeError(f"a worker did not finish:\n{_tail(log)}") from None
                if code != 0:
                    raise RuntimeError(f"a worker exited {code}:\n{_tail(log)}")
        finally:
            _stop(procs)
        wall = time.monotonic() - launched
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine_busy = CpuSample.take().busy_since(machine_before)
        seconds, statuses, per_worker = _window(url)
    if statuses != {"succeeded": jobs}:
        raise RuntimeError(f"drain incomplete: {statuses}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rest = max(0.0, machine_busy - cpu)  # the database server's, and any other load's
    shares = "/".join(str(n) for _, n in sorted(per_worker.items()))
    return Result(
        SYSTEM,
        f"worker_drain_{store}" + ("" if engine == "python" else f"_{engine}"),
        workers,
        width,
        jobs,
        seconds,
        jobs / seconds,
        notes=f"agentfleet worker --concurrency {width}, {engine} no-op; jobs per worker "
        f"{shares}; worker CPU {cpu / jobs * 1e6:.0f} us/job (start-up included), the rest of "
        f"the machine {rest / jobs * 1e6:.0f} us/job; {wall:.1f}s from launch to exit",
    )


def backlog(
    size: int, window: int = 20000, workers: int = 2, *, command: str | None = None
) -> Result:
    """The claim's cost against a backlog: real workers drain `window` jobs while `size`
    stay queued behind them (lower priority, so never claimed in the window)."""
    cmd = worker_command(command)
    width = CONCURRENCY["python"]
    with (
        _database("postgres") as url,
        tempfile.TemporaryDirectory(prefix="agentfleet-backlog-") as tmp,
        agentfleet.open(url, application_name=BENCH_APP) as fleet,
    ):
        started = time.perf_counter()
        left = size
        while left > 0:
            chunk = min(ENQUEUE_CHUNK * 4, left)
            fleet.enqueue_many([NewJob("python", _payload("python"), priority=-1)
                                for _ in range(chunk)])  # fmt: skip
            left -= chunk
        fill_s = time.perf_counter() - started
        fleet.enqueue_many([NewJob("python", _payload("python"), priority=1)
                            for _ in range(window)])  # fmt: skip
        with fleet.store.dialect.session() as tx:
            tx.script("VACUUM ANALYZE jobs")
            # Untimed, like the fill: write out the fill's dirty pages now, or the measured
            # window pays for evicting them (1M jobs outgrow the default shared_buffers).
            tx.script("CHECKPOINT")
        started_workers = [
            _start_worker(
                cmd,
                url,
                f"backlog-{i}",
                Path(tmp),
                "--import",
                "benchmarks.noop_tasks",
                "--concurrency",
                str(width),
                "--grace",
                "1ms",
                env={"PYTHONPATH": ROOT},
            )
            for i in range(workers)
        ]
        procs = [proc for proc, _ in started_workers]
        try:
            deadline = time.monotonic() + PATIENCE
            while True:
                with fleet.store.dialect.session() as tx:
                    row = tx.one(WINDOW_LEFT)
                if row is not None and not row["left"]:
                    break
                for proc, log in started_workers:
                    if proc.poll() is not None:
                        raise RuntimeError(f"a worker exited {proc.returncode}:\n{_tail(log)}")
                if time.monotonic() > deadline:
                    raise RuntimeError("the backlog window did not drain")
                time.sleep(0.05)
        finally:
            _stop(procs)
        with fleet.store.dialect.session() as tx:
            done = tx.one("SELECT count(*) AS n FROM jobs WHERE priority = 1 "
                          "AND status = 'succeeded'")  # fmt: skip
            if done is None or int(done["n"]) != window:
                raise RuntimeError(f"the backlog window ended with {done} of {window} succeeded")
            row = tx.one(
                "SELECT min(r.started_at) AS a, max(r.finished_at) AS b FROM runs r "
                "JOIN jobs j ON j.id = r.job_id WHERE j.priority = 1"
            )
        assert row is not None
        seconds = (row["b"] - row["a"]).total_seconds()
    return Result(
        SYSTEM,
        f"backlog_{size}",
        workers,
        width,
        window,
        seconds,
        window / seconds,
        notes=f"agentfleet worker x{workers}, {size} queued behind; fill {fill_s:.0f}s",
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", nargs="+", default=["postgres", "sqlite"],
                        choices=STORES)  # fmt: skip
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--engine", choices=["python", "shell"], default="python")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--command", help="another worker build, e.g. 'python -m agentfleet.cli'")
    args = parser.parse_args(argv)
    rows = []
    for store in args.stores:
        for w in args.workers:
            rows.append(drain(store, args.jobs, w, engine=args.engine,
                              concurrency=args.concurrency, command=args.command))  # fmt: skip
    print(format_table(rows))


if __name__ == "__main__":
    main()
