"""Shared plumbing for the peer benchmarks.

* one fresh PostgreSQL database per measurement, always dropped afterwards;
* the :class:`Result` row every benchmark emits;
* a percentile helper and a peak-RSS probe;
* :class:`WorkerPool`, which starts worker OS processes (``spawn``), waits until
  each is ready, releases them all at once and collects their reports.

The server is taken from ``AGENTFLEET_BENCH_POSTGRES`` (a ``postgresql://`` URL
whose user may create databases); the default is the local trust-auth server.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import multiprocessing.context
import multiprocessing.queues
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import os
import queue
import re
import resource
import secrets
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ENV_POSTGRES = "AGENTFLEET_BENCH_POSTGRES"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_PREFIX = "bench_"


# --------------------------------------------------------------------------- databases


def base_url() -> str:
    """The maintenance-database URL used to create and drop benchmark databases."""
    return os.environ.get(ENV_POSTGRES) or DEFAULT_POSTGRES


def database_url(dbname: str, base: str | None = None) -> str:
    """``base`` with its database replaced by ``dbname`` (URL form, usable by asyncpg too)."""
    parts = urlsplit(base or base_url())
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{ENV_POSTGRES} must be a postgresql:// URL")
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    return slug[:30] or "run"


def create_database(name: str) -> str:
    """Create ``bench_<name>_<random>`` and return its name."""
    dbname = f"{DB_PREFIX}{_slug(name)}_{secrets.token_hex(4)}"
    with psycopg.connect(base_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return dbname


def drop_database(dbname: str) -> None:
    """Drop ``dbname``, disconnecting whatever still uses it."""
    if not dbname.startswith(DB_PREFIX):
        raise ValueError(f"refusing to drop {dbname!r}: not a benchmark database")
    with psycopg.connect(base_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


@contextlib.contextmanager
def fresh_database(name: str) -> Iterator[str]:
    """Yield the URL of a brand-new database; drop it on exit, whatever happened."""
    dbname = create_database(name)
    try:
        yield database_url(dbname)
    finally:
        drop_database(dbname)


def list_benchmark_databases(pattern: str = DB_PREFIX) -> list[str]:
    """Names of existing databases starting with ``pattern`` (``bench_`` by default)."""
    if not pattern.startswith(DB_PREFIX):
        raise ValueError(f"pattern must start with {DB_PREFIX!r}")
    with psycopg.connect(base_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1",
            (pattern,),
        ).fetchall()
    return [str(row[0]) for row in rows]


def install_termination_handler() -> None:
    """Turn SIGTERM into ``SystemExit`` so ``finally`` blocks still drop databases."""

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


# --------------------------------------------------------------------------- results


@dataclasses.dataclass
class Result:
    """One measured figure, shared by every system the harness compares."""

    system: str
    scenario: str
    workers: int
    batch: int
    jobs: int
    seconds: float
    jobs_per_s: float
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float | None = None
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (0-100) with linear interpolation between ranks."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= pct <= 100.0:
        raise ValueError("pct must be within [0, 100]")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def peak_rss_mb() -> float:
    """Peak resident set size of the calling process in MiB (VmHWM, else ru_maxrss)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / 1024.0


def process_cpu_seconds() -> float:
    """User + system CPU seconds consumed so far by the calling process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class CpuSample:
    """Machine-wide CPU counters (seconds, summed over all CPUs) from /proc/stat."""

    busy: float
    total: float

    @classmethod
    def take(cls) -> CpuSample:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except OSError:
            return cls(0.0, 0.0)
        ticks = [int(x) for x in fields[:8]]
        hz = os.sysconf("SC_CLK_TCK")
        idle = ticks[3] + ticks[4]  # idle + iowait
        return cls(busy=(sum(ticks) - idle) / hz, total=sum(ticks) / hz)

    def busy_since(self, earlier: CpuSample) -> float:
        """CPU seconds the whole machine spent busy between ``earlier`` and this sample."""
        return self.busy - earlier.busy


def _pid_cpu_seconds(stat_text: str) -> float:
    # Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    fields = stat_text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(dbname: str) -> float | None:
    """CPU seconds used so far by the local PostgreSQL backends connected to ``dbname``.

    Backends are recognised by their process title (``postgres: ... <dbname> ...``);
    ``None`` when none is visible (e.g. the server runs on another host).
    """
    needle = f" {dbname} ".encode()
    total, found = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if not cmdline.startswith(b"postgres:") or needle not in cmdline:
                continue
            total += _pid_cpu_seconds((entry / "stat").read_text())
            found = True
        except (OSError, IndexError, ValueError):
            continue
    return total if found else None


def machine_busy_fraction(interval: float = 1.0) -> float:
    """Fraction (0-1) of all CPUs busy during the next ``interval`` seconds."""
    first = CpuSample.take()
    time.sleep(interval)
    second = CpuSample.take()
    span = second.total - first.total
    return 0.0 if span <= 0 else (second.busy - first.busy) / span


def wait_for_quiet(max_busy: float = 0.25, timeout: float = 300.0) -> float:
    """Wait until the machine is mostly idle, so other load does not skew a measurement.

    Returns the last busy fraction seen (0-1); gives up after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    busy = machine_busy_fraction()
    while busy > max_busy and time.monotonic() < deadline:
        busy = machine_busy_fraction()
    return busy


def format_table(results: Sequence[Result]) -> str:
    """A plain-text table of ``results``."""

    def num(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    header = (
        f"{'system':<13} {'scenario':<15} {'W':>2} {'batch':>5} {'jobs':>7} {'seconds':>8} "
        f"{'jobs/s':>9} {'p50ms':>7} {'p95ms':>7} {'p99ms':>7} {'rssMB':>6}  notes"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.system:<13} {r.scenario:<15} {r.workers:>2} {r.batch:>5} {r.jobs:>7} "
            f"{r.seconds:>8.2f} {r.jobs_per_s:>9,.0f} {num(r.p50_ms, 2):>7} "
            f"{num(r.p95_ms, 2):>7} {num(r.p99_ms, 2):>7} {num(r.peak_rss_mb):>6}  {r.notes}"
        )
    return "\n".join(lines)


def markdown_table(results: Sequence[Result]) -> str:
    """``results`` as a Markdown table (notes left out)."""

    def num(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = [
        "| system | scenario | W | batch | jobs | seconds | jobs/s | p50 ms | p95 ms | p99 ms "
        "| peak RSS MB |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        lines.append(
            f"| {r.system} | {r.scenario} | {r.workers} | {r.batch} | {r.jobs:,} "
            f"| {r.seconds:.2f} | {r.jobs_per_s:,.0f} | {num(r.p50_ms, 2)} | {num(r.p95_ms, 2)} "
            f"| {num(r.p99_ms, 2)} | {num(r.peak_rss_mb)} |"
        )
    return "\n".join(lines)


def load_results(path: Path) -> list[Result]:
    """Read the JSON lines written by :func:`emit`."""
    with path.open(encoding="utf-8") as fh:
        return [Result(**json.loads(line)) for line in fh if line.strip()]


def emit(results: Sequence[Result], json_path: Path | None) -> None:
    """Print ``results`` as a table; append them as JSON lines to ``json_path`` if given."""
    print(format_table(results), flush=True)
    if json_path is not None:
        with json_path.open("a", encoding="utf-8") as fh:
            for r in results:
                fh.write(json.dumps(r.to_dict()) + "\n")


# --------------------------------------------------------------------------- processes


@dataclasses.dataclass
class WorkerReport:
    """What a worker process sends back to the parent."""

    index: int
    kind: Literal["ready", "done", "error"]
    finished_at: float = 0.0  # time.time() when the worker's run returned
    jobs: int = 0
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0  # user + system CPU seconds of the worker since the start signal
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    error: str = ""


@dataclasses.dataclass
class WorkerLink:
    """The worker's end of the parent/worker protocol (picklable under ``spawn``)."""

    index: int
    messages: multiprocessing.queues.Queue[WorkerReport]
    start: multiprocessing.synchronize.Event
    stop: multiprocessing.synchronize.Event
    progress: multiprocessing.sharedctypes.Synchronized[int]
    cpu_at_start: float = 0.0

    def ready(self) -> None:
        self.messages.put(WorkerReport(index=self.index, kind="ready"))

    def wait_start(self, timeout: float = 86400.0) -> None:
        # Long on purpose: the parent may first wait for the machine to be quiet, and
        # it always releases (or terminates) its workers when it leaves the pool.
        if not self.start.wait(timeout):
            raise TimeoutError("no start signal from the parent")
        self.cpu_at_start = process_cpu_seconds()

    def wait_stop(self, timeout: float = 600.0) -> None:
        """Block until the parent says stop (it samples CPU of our backends first)."""
        self.stop.wait(timeout)

    def should_stop(self) -> bool:
        return self.stop.is_set()

    def add_progress(self, count: int = 1) -> None:
        """Count finished jobs in a counter the parent can read while workers run."""
        with self.progress.get_lock():
            self.progress.value += count

    def done(self, jobs: int, latencies_ms: list[float] | None = None) -> None:
        self.messages.put(
            WorkerReport(
                index=self.index,
                kind="done",
                finished_at=time.time(),
                jobs=jobs,
                peak_rss_mb=peak_rss_mb(),
                cpu_s=process_cpu_seconds() - self.cpu_at_start,
                latencies_ms=latencies_ms or [],
            )
        )

    def failed(self) -> None:
        self.messages.put(
            WorkerReport(index=self.index, kind="error", error=traceback.format_exc())
        )


WorkerTarget = Callable[..., None]


class WorkerError(RuntimeError):
    """A worker process failed or did not answer in time."""


class WorkerPool:
    """Start ``workers`` processes running ``target(link, *args)`` and coordinate them.

    Usage: ``with WorkerPool(...) as pool: pool.wait_ready(); t0 = pool.go();
    reports = pool.collect(timeout)``. Leaving the block terminates stragglers.
    """

    def __init__(self, target: WorkerTarget, args: Sequence[object], workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._ctx: multiprocessing.context.SpawnContext = multiprocessing.get_context("spawn")
        self._messages: multiprocessing.queues.Queue[WorkerReport] = self._ctx.Queue()
        self._start = self._ctx.Event()
        self._stop = self._ctx.Event()
        self._progress: multiprocessing.sharedctypes.Synchronized[int] = self._ctx.Value("q", 0)
        self._procs = [
            self._ctx.Process(
                target=target,
                args=(
                    WorkerLink(i, self._messages, self._start, self._stop, self._progress),
                    *args,
                ),
                name=f"bench-worker-{i}",
                daemon=True,
            )
            for i in range(workers)
        ]

    def __enter__(self) -> WorkerPool:
        for proc in self._procs:
            proc.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._start.set()  # never leave a worker blocked on the start signal
        self._stop.set()
        deadline = time.monotonic() + (2.0 if exc_type else 10.0)
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(3.0)
            if proc.is_alive():
                proc.kill()
                proc.join(3.0)
        self._messages.close()

    def _next(self, deadline: float, what: str) -> WorkerReport:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerError(f"timed out waiting for workers to be {what}")
            try:
                report = self._messages.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                dead = [p for p in self._procs if p.exitcode not in (None, 0)]
                if dead:
                    codes = ", ".join(f"{p.name}={p.exitcode}" for p in dead)
                    raise WorkerError(f"worker process died ({codes})") from None
                continue
            if report.kind == "error":
                raise WorkerError(f"worker {report.index} failed:\n{report.error}")
            return report

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        pending = len(self._procs)
        while pending:
            report = self._next(deadline, "ready")
            if report.kind != "ready":
                raise WorkerError(f"unexpected {report.kind!r} before start")
            pending -= 1

    def go(self) -> float:
        """Release every worker; return the wall-clock start time."""
        started = time.time()
        self._start.set()
        return started

    def progress(self) -> int:
        """Jobs the workers have counted through :meth:`WorkerLink.add_progress`."""
        return int(self._progress.value)

    def wait_progress(self, target: int, timeout: float) -> None:
        """Block until the workers' progress counter reaches ``target``."""
        deadline = time.monotonic() + timeout
        while self.progress() < target:
            if time.monotonic() > deadline:
                raise WorkerError(f"only {self.progress()}/{target} jobs seen before timeout")
            dead = [p for p in self._procs if p.exitcode is not None]
            if dead:
                with contextlib.suppress(queue.Empty):
                    report = self._messages.get(timeout=1.0)
                    if report.kind == "error":
                        raise WorkerError(f"worker {report.index} failed:\n{report.error}")
                raise WorkerError(f"worker {dead[0].name} exited early ({dead[0].exitcode})")
            time.sleep(0.02)

    def stop(self) -> None:
        """Ask workers that run until told (latency mode) to finish."""
        self._stop.set()

    def collect(self, timeout: float) -> list[WorkerReport]:
        deadline = time.monotonic() + timeout
        reports = [self._next(deadline, "done") for _ in self._procs]
        return sorted(reports, key=lambda r: r.index)


@dataclasses.dataclass
class DrainRun:
    """Outcome of :func:`run_drain`: timing plus where the CPU went."""

    seconds: float  # start signal -> last worker finished
    reports: list[WorkerReport]
    background_busy: float  # machine busy fraction just before the start (other load)
    machine_busy_s: float  # CPU seconds the whole machine was busy during the drain
    backend_cpu_s: float | None  # CPU seconds of the workers' own PostgreSQL backends
    cpus: int

    @property
    def jobs(self) -> int:
        return sum(r.jobs for r in self.reports)

    @property
    def peak_rss_mb(self) -> float:
        return max(r.peak_rss_mb for r in self.reports)

    @property
    def workers_cpu_s(self) -> float:
        return sum(r.cpu_s for r in self.reports)

    @property
    def other_cpu_s(self) -> float | None:
        """Busy CPU not spent by the workers or their backends: other load + PG housekeeping."""
        if self.backend_cpu_s is None:
            return None
        return max(0.0, self.machine_busy_s - self.workers_cpu_s - self.backend_cpu_s)

    @property
    def other_fraction(self) -> float:
        """Share of the machine's CPU capacity taken by other load during the drain."""
        if self.other_cpu_s is None or self.seconds <= 0:
            return 0.0
        return self.other_cpu_s / (self.seconds * self.cpus)

    @property
    def cpu_ms_per_job(self) -> float | None:
        """Workers' plus their backends' CPU per job: a cost that other load barely moves."""
        if self.backend_cpu_s is None or not self.jobs:
            return None
        return (self.workers_cpu_s + self.backend_cpu_s) * 1000.0 / self.jobs

    def cpu_note(self) -> str:
        backends = "n/a" if self.backend_cpu_s is None else f"{self.backend_cpu_s:.1f}s"
        other = "n/a" if self.other_cpu_s is None else f"{self.other_cpu_s:.1f}s"
        per_job = "n/a" if self.cpu_ms_per_job is None else f"{self.cpu_ms_per_job:.2f}"
        return (
            f"cpu: workers {self.workers_cpu_s:.1f}s, their pg backends {backends}, "
            f"other {other} (of {self.seconds * self.cpus:.1f}s), {per_job} ms/job; "
            f"busy before start {self.background_busy * 100:.0f}%"
        )


def run_latency(
    system: str,
    target: WorkerTarget,
    args: Sequence[object],
    workers: int,
    n_jobs: int,
    produce: Callable[[], float],
    *,
    scenario: str = "latency",
    batch: int,
    timeout: float,
    wait_quiet: float = 0.0,
    notes: str,
) -> Result:
    """Start ``workers`` idle workers, run ``produce`` (it enqueues the paced jobs and
    returns the seconds it took), wait until the workers have measured ``n_jobs`` starts,
    and report their enqueue-to-start percentiles."""
    with WorkerPool(target, args, workers) as pool:
        pool.wait_ready()
        if wait_quiet > 0:
            wait_for_quiet(timeout=wait_quiet)
        background = machine_busy_fraction(0.5)
        pool.go()
        produce_s = produce()
        pool.wait_progress(n_jobs, timeout)
        pool.stop()
        reports = pool.collect(timeout)
    samples = [ms for r in reports for ms in r.latencies_ms]
    return Result(
        system=system,
        scenario=scenario,
        workers=workers,
        batch=batch,
        jobs=len(samples),
        seconds=produce_s,
        jobs_per_s=len(samples) / produce_s,
        p50_ms=percentile(samples, 50),
        p95_ms=percentile(samples, 95),
        p99_ms=percentile(samples, 99),
        peak_rss_mb=max(r.peak_rss_mb for r in reports),
        notes=f"{notes}; background before start {background * 100:.0f}%",
    )


def peer_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every peer benchmark takes, before its own subcommands."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    parser.add_argument("--json", type=Path, help="append results as JSON lines to this file")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement wait up to SECONDS for other CPU load to fade",
    )
    parser.add_argument(
        "--attempts",
        type=int,
        default=1,
        help="repeat a drain while other load took more than --max-other of the CPU",
    )
    parser.add_argument("--max-other", type=float, default=0.1, metavar="FRACTION")
    return parser


def run_drain(
    target: WorkerTarget,
    url: str,
    args: Sequence[object],
    workers: int,
    timeout: float,
    wait_quiet: float = 0.0,
) -> DrainRun:
    """Start ``workers`` processes on database ``url``, release them together, wait for all.

    Workers must call ``link.done(...)`` when drained and then ``link.wait_stop()``
    before disconnecting, so that the CPU of their backends can be read. With
    ``wait_quiet`` > 0, first wait up to that many seconds for other load on the
    machine to fade (see :func:`wait_for_quiet`).
    """
    dbname = urlsplit(url).path.lstrip("/")
    with WorkerPool(target, (url, *args), workers) as pool:
        pool.wait_ready()
        if wait_quiet > 0:
            wait_for_quiet(timeout=wait_quiet)
        background = machine_busy_fraction(0.5)
        backends_before = backend_cpu_seconds(dbname)
        before = CpuSample.take()
        started = pool.go()
        reports = pool.collect(timeout)
        after = CpuSample.take()
        backends_after = backend_cpu_seconds(dbname)
        pool.stop()
    backend_cpu: float | None = None
    if backends_before is not None and backends_after is not None:
        backend_cpu = backends_after - backends_before
    return DrainRun(
        seconds=max(r.finished_at for r in reports) - started,
        reports=reports,
        background_busy=background,
        machine_busy_s=after.busy_since(before),
        backend_cpu_s=backend_cpu,
        cpus=os.cpu_count() or 1,
    )


T = TypeVar("T")


def least_disturbed(
    measure: Callable[[], T],
    disturbance: Callable[[T], float],
    attempts: int = 1,
    max_disturbance: float = 0.1,
) -> tuple[T, int]:
    """Repeat ``measure`` until ``disturbance(result) <= max_disturbance``.

    At most ``attempts`` tries; returns the least disturbed result and the number
    of tries made. Use it to discard measurements skewed by other load.
    """
    best: T | None = None
    best_score = float("inf")
    tries = 0
    while tries < max(1, attempts):
        tries += 1
        result = measure()
        score = disturbance(result)
        if score < best_score:
            best, best_score = result, score
        if score <= max_disturbance:
            break
    assert best is not None
    return best, tries


def run_worker_safely(link: WorkerLink, body: Callable[[], None]) -> None:
    """Run ``body`` in a worker; report any exception to the parent instead of dying mute."""
    try:
        body()
    except BaseException:
        link.failed()
        raise


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark housekeeping: list or drop leftover databases, print reports."
    )
    parser.add_argument(
        "--drop-stale",
        metavar="PREFIX",
        help="drop leftover databases whose name starts with PREFIX (e.g. bench_pgqueuer_)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="JSONL",
        help="print the results saved with --json as a Markdown table",
    )
    args = parser.parse_args(argv)
    if args.report:
        print(markdown_table(load_results(args.report)))
    elif args.drop_stale:
        for dbname in list_benchmark_databases(args.drop_stale):
            drop_database(dbname)
            print(f"dropped {dbname}")
    else:
        for dbname in list_benchmark_databases():
            print(dbname)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
