"""Real `agentfleet worker` processes: enqueue-to-start latency, and connections on PostgreSQL.

Starts `agentfleet worker` (the console script, as a user would) and lets it go idle, on the
embedded SQLite store and on PostgreSQL. This process then enqueues `shell` jobs one at a
time, each after a pause and only once the previous one has finished, so the worker is idle
each time. Enqueue-to-start is the job's run `started_at` (stamped by the claim) minus the
job's `created_at` (stamped by the enqueue), both by the store. Prints p50/p99/max, the idle
worker's CPU use, and on PostgreSQL the most connections the worker held.

    python -m benchmarks.worker_latency                        # SQLite and PostgreSQL
    python -m benchmarks.worker_latency --stores sqlite --jobs 50
    python -m benchmarks.worker_latency --stores sqlite-remote postgres-remote  # --server
    python -m benchmarks.worker_latency fleet --workers 60     # 60 workers, one PostgreSQL

`fleet` starts that many workers against one fresh PostgreSQL database, waits until every
one is up, runs two `sleep` jobs per worker and reports how many workers stayed alive, the
connections each held (by its application_name) and the database's peak, beside the
server's max_connections.

Another worker build can be measured with `--command`, e.g.
`--command "env PYTHONPATH=/path/to/src python -m agentfleet.cli"`. Speed is never asserted
in the test suite; it only runs this bounded (tests/test_benchmarks_smoke.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import agentfleet
from agentfleet import Fleet, Job, JobStatus

BENCH_APP = "agentfleet bench"  # this process's own connections, left out of the counts
DONE = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
PATIENCE = 120.0
SERVE_TOKEN = "agentfleet-bench-serve-token"
STORES = ("sqlite", "postgres", "sqlite-remote", "postgres-remote")


@dataclass
class Latency:
    store: str
    jobs: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    idle_cpu_pct: float
    connections: int | None = None  # the most the worker held (PostgreSQL)
    samples_ms: list[float] = field(default_factory=list, repr=False)


@dataclass
class FleetRun:
    workers: int
    alive: int
    registered: int
    jobs: int
    succeeded: int
    ran_a_job: int
    max_connections_per_worker: int
    peak_connections: int
    server_max_connections: int
    too_many_clients: int  # workers whose log says the server refused them
    refused_samples: int = 0  # counts this benchmark could not take: the server was full


def worker_command(command: str | None = None) -> list[str]:
    """`agentfleet` as installed beside this Python (else on PATH, else `python -m`)."""
    if command:
        return shlex.split(command)
    script = Path(sys.executable).parent / "agentfleet"
    if script.is_file():
        return [str(script)]
    found = shutil.which("agentfleet")
    return [found] if found else [sys.executable, "-m", "agentfleet.cli"]


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLEET_")}


def _start_worker(
    command: list[str],
    url: str,
    name: str,
    folder: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    server: tuple[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    """A worker on the database `url`; with `server` (its address and a worker token
    named `name`), a remote worker that reaches the same database through that server."""
    log = folder / f"{name}.log"
    where = ["--db", url] if server is None else []
    remote = [] if server is None else ["--server", server[0], "--token", server[1]]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, *where, "worker", "--name", name, *remote, *extra],
            cwd=folder,
            env={**_child_env(), **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each worker this run started, then SIGKILL whichever is still there."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait(predicate: Callable[[], Any], what: str, timeout: float = PATIENCE) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)
    return value


@contextlib.contextmanager
def served(command: list[str], url: str, folder: Path) -> Iterator[str]:
    """`agentfleet serve` on the database `url` (a loopback port), for remote workers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = folder / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--db", url, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=folder,
            env={**_child_env(), "AGENTFLEET_TOKEN": SERVE_TOKEN},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    address = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{address}/healthz", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    try:
        _wait(healthy, "the server to start")
        yield address
    finally:
        _stop([proc])


def _registered(fleet: Fleet, names: set[str]) -> set[str]:
    return {w.name for w in fleet.list_workers() if w.name in names and w.stopped_at is None}


def _finished(fleet: Fleet, job_id: int) -> Job | None:
    job = fleet.get_job(job_id)
    return job if job.status in DONE else None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _database(store: str) -> Iterator[str]:
    if store == "sqlite":
        with tempfile.TemporaryDirectory(prefix="agentfleet-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'fleet.db'}"
        return
    from benchmarks.peers.common import fresh_database

    with fresh_database(f"worker_{store}") as url:
        yield url


def _connections(url: str) -> dict[str, int]:
    """Connections to the URL's database per application_name, this process's left out."""
    import psycopg

    from benchmarks.peers.common import base_url

    database = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(base_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name <> %s AND pid <> pg_backend_pid() "
            "GROUP BY application_name",
            (database, BENCH_APP),
        ).fetchall()
    return {str(name): int(n) for name, n in rows}


def latency(
    store: str,
    jobs: int = 100,
    *,
    gap: float = 0.5,
    warmup: int = 3,
    idle: float = 2.0,
    command: str | None = None,
) -> Latency:
    """Enqueue-to-start of one idle worker, one job at a time (see the module docstring).
    A `-remote` store's worker reaches the database through `agentfleet serve` (the
    server's own connections are then the ones counted on PostgreSQL)."""
    cmd = worker_command(command)
    base, _, remote = store.partition("-")
    postgres = base == "postgres"
    with (
        _database(base) as url,
        tempfile.TemporaryDirectory(prefix="agentfleet-worker-") as tmp,
        agentfleet.open(url, application_name=BENCH_APP) as fleet,
        contextlib.ExitStack() as stack,
    ):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        server = None
        if remote:
            address = stack.enter_context(served(cmd, url, Path(tmp)))
            server = (address, fleet.create_token(name, "worker")[1])
        proc, log = _start_worker(cmd, url, name, Path(tmp), server=server)
        try:

            def up() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"the worker exited ({proc.returncode}):\n{_tail(log)}")
                return name in _registered(fleet, {name})

            _wait(up, "the worker to start")
            most = max(_connections(url).values(), default=0) if postgres else 0
            cpu_before, started = _cpu_seconds(proc.pid), time.monotonic()
            time.sleep(idle)
            idle_cpu = (_cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - started)
            samples: list[float] = []
            for i in range(warmup + jobs):
                time.sleep(gap * random.uniform(0.5, 1.5))
                job = fleet.enqueue("shell", {"cmd": "true"})
                done = _wait(partial(_finished, fleet, job.id), f"job {job.id} to finish")
                if done.status is not JobStatus.SUCCEEDED:
                    raise RuntimeError(f"job {job.id} ended {done.status}: {done.error}")
                run = fleet.runs(job.id)[0]
                if i >= warmup:
                    samples.append((run.started_at - job.created_at).total_seconds() * 1000.0)
                if postgres and i % 10 == 0:
                    most = max(most, *_connections(url).values(), 0)
            if postgres:
                most = max(most, *_connections(url).values(), 0)
        finally:
            _stop([proc])
    return Latency(
        store,
        jobs,
        percentile(samples, 50),
        percentile(samples, 99),
        max(samples),
        idle_cpu * 100.0,
        most if postgres else None,
        samples,
    )


def fleet_run(
    workers: int = 60, jobs_per_worker: int = 2, *, sleep: float = 1.0, command: str | None = None
) -> FleetRun:
    """`workers` idle workers on one PostgreSQL database, then jobs for all of them."""
    import psycopg

    from benchmarks.peers.common import base_url

    cmd = worker_command(command)
    with psycopg.connect(base_url(), autocommit=True) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
    server_max = int(row[0]) if row else 0
    with (
        _database("postgres") as url,
        tempfile.TemporaryDirectory(prefix="agentfleet-fleet-") as tmp,
        agentfleet.open(url, application_name=BENCH_APP, pool_size=1) as fleet,
    ):
        names = [f"fleet-{i:03d}" for i in range(workers)]
        started = [_start_worker(cmd, url, name, Path(tmp)) for name in names]
        procs = [proc for proc, _ in started]
        per_worker: dict[str, int] = {}
        peak = refused_samples = 0

        def sample() -> None:
            nonlocal peak, refused_samples
            try:
                counts = _connections(url)
            except psycopg.OperationalError as exc:  # the server is full: say so, go on
                if "too many clients" not in str(exc):
                    raise
                refused_samples += 1
                return
            peak = max(peak, sum(counts.values()))
            for app, n in counts.items():
                per_worker[app] = max(per_worker.get(app, 0), n)

        try:

            def settled() -> bool:
                sample()
                up = _registered(fleet, set(names))
                return all(
                    name in up or proc.poll() is not None
                    for name, proc in zip(names, procs, strict=True)
                )

            _wait(settled, "every worker to start or die", timeout=600)
            registered = len(_registered(fleet, set(names)))
            total = workers * jobs_per_worker
            queued = [fleet.enqueue("shell", {"cmd": f"sleep {sleep:g}"}).id for _ in range(total)]

            def finished() -> bool:
                sample()
                return all(fleet.get_job(job_id).status in DONE for job_id in queued)

            _wait(finished, "every job to finish", timeout=600)
            sample()
            alive = sum(proc.poll() is None for proc in procs)
            outcome = [fleet.get_job(job_id) for job_id in queued]
        finally:
            _stop(procs)
        refused = sum("too many clients" in _tail(log, 200) for _, log in started)
    return FleetRun(
        workers=workers,
        alive=alive,
        registered=registered,
        jobs=total,
        succeeded=sum(job.status is JobStatus.SUCCEEDED for job in outcome),
        ran_a_job=len({job.worker for job in outcome if job.worker}),
        max_connections_per_worker=max(per_worker.values(), default=0),
        peak_connections=peak,
        server_max_connections=server_max,
        too_many_clients=refused,
        refused_samples=refused_samples,
    )


def print_latency(rows: Sequence[Latency]) -> None:
    print(
        f"{'store':<10} {'jobs':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'idle CPU':>9} {'connections':>11}"
    )
    for r in rows:
        held = "-" if r.connections is None else str(r.connections)
        print(
            f"{r.store:<10} {r.jobs:>5} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.max_ms:>8.2f} "
            f"{r.idle_cpu_pct:>8.1f}% {held:>11}"
        )


def print_fleet(run: FleetRun) -> None:
    for key, value in asdict(run).items():
        print(f"{key:<28} {value}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Enqueue-to-start latency and PostgreSQL connections of real "
        "`agentfleet worker` processes.",
    )
    parser.add_argument("scenario", nargs="?", choices=["latency", "fleet"], default="latency")
    parser.add_argument("--stores", nargs="+", choices=STORES, default=["sqlite", "postgres"])
    parser.add_argument("--jobs", type=int, default=100, help="measured jobs per store")
    parser.add_argument("--warmup", type=int, default=3, help="jobs run first, not measured")
    parser.add_argument(
        "--gap", type=float, default=0.5, help="mean pause before each enqueue (seconds)"
    )
    parser.add_argument(
        "--idle", type=float, default=2.0, help="idle time over which the worker's CPU is read"
    )
    parser.add_argument("--workers", type=int, default=60, help="fleet: worker processes")
    parser.add_argument("--jobs-per-worker", type=int, default=2, help="fleet: sleep jobs each")
    parser.add_argument("--sleep", type=float, default=1.0, help="fleet: each job's sleep (s)")
    parser.add_argument(
        "--command", default=None, help="the agentfleet command (default: the console script)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.scenario == "fleet":
        run = fleet_run(args.workers, args.jobs_per_worker, sleep=args.sleep, command=args.command)
        print_fleet(run)
        figures: Any = asdict(run)
    else:
        rows = [
            latency(
                store,
                args.jobs,
                gap=args.gap,
                warmup=args.warmup,
                idle=args.idle,
                command=args.command,
            )
            for store in args.stores
        ]
        print_latency(rows)
        figures = [{k: v for k, v in asdict(r).items() if k != "samples_ms"} for r in rows]
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
