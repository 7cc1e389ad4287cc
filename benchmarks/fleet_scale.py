"""A fleet of real `agentfleet worker` processes at scale, and what an agent job adds around
its agent. Prints figures; asserts nothing (the test suite only runs it bounded, in
tests/test_benchmarks_smoke.py).

    python -m benchmarks.fleet_scale fleet                      # 20 workers x 50 leases, 60 s
    python -m benchmarks.fleet_scale fleet --workers 10 --hold 30
    python -m benchmarks.fleet_scale agent-overhead             # 10,000-file repository
    python -m benchmarks.fleet_scale agent-overhead --files 2000 --jobs 10 --json out.json

Every worker is the `agentfleet worker` console script, started as a user starts it (the
helpers of `benchmarks.worker_latency`); this process only enqueues and reads, through
agentfleet's Python API, and reads PostgreSQL's statistics views and `/proc`.

`fleet`: `--workers` W workers with `--concurrency` C each, on one fresh PostgreSQL
database, hold W*C running leases of `sleep` shell jobs (enqueued in batches with
`Fleet.enqueue_many`), with lease `--ttl` (renewed every ttl/3). Once every lease is
running (its job's status `running` in the store, and its `sleep` process started: counted
in /proc below the workers) and `--settle` seconds have passed, the `--hold` window
is measured in two halves:

* *held*: nothing but the held leases. The benchmark has no connection to the database in
  this half, so every transaction counted is a worker's.
* *held + probe*: one more worker (`--concurrency 1 --queues latency`), started once the
  first half is over, waits idle while this process enqueues a `shell` job running `true`
  into the `latency` queue about every 0.5 s (0.25 to 0.75 s), one at a time, each once the
  previous one finished. Claim latency is the run's `started_at` (stamped by the claim)
  minus the job's `created_at` (stamped by the enqueue), both by the store. This half's
  transactions include the probe worker's and this process's own (one per enqueue and per
  read, counted and printed beside them, not subtracted).

For each half:

* **transactions/s**: the delta of `xact_commit + xact_rollback` in `pg_stat_database`
  for the database, per second. A worker's transactions: its heartbeat (one statement
  renews every lease due, every ttl/3), its presence (every ttl/3), its reconcile pass
  (every 5 s), its look for due schedules (every second) and, only while it has a free
  slot, its claim polls (backing off to one a second; a full worker makes none).
  PostgreSQL 15 flushes a backend's counters at most once a second while it is busy and
  within 10 s once idle, which is what `--settle` waits out (the claims of the ramp-up
  would otherwise land in the window); in steady state the lag is the same at both ends
  of the window.
* **workers' CPU**: `utime + stime` from `/proc/PID/stat` of each of the W worker
  processes only, per second and per lease (microseconds per second per lease, and % of
  one core per 1,000 leases). Left out there and printed apart: the per-job supervisors
  and the jobs themselves (every process below a worker: one small Python supervisor per
  job, renewed with each heartbeat, and its `sleep`).
* **PostgreSQL backends' CPU**: the same `/proc` reading for the client backends of that
  database (`pg_stat_activity.datname`, this process's own left out), sampled every
  second. The server's shared processes (WAL writer, checkpointer, ...) are left out.
* **connections**: the peak, over the half, of the database's connections that are not
  this process's (`benchmarks.worker_latency._connections`), beside W (+1 with the probe).

Then one worker alone on a second fresh database, nothing queued: its transactions/s and
CPU over `--idle` seconds, after `--settle`. At the end every worker gets SIGTERM
(`--grace 1s --kill-grace 1s` on its command line: its jobs are stopped and handed back),
then SIGKILL if still there after 30 s; any job process that outlived its worker (known by
pid and start time, never a process group) is killed and counted.

`agent-overhead`: a git repository of `--files` small text files in nested folders, one
commit, made with plain git in a temporary folder (under `--dir`); one `agentfleet worker
--concurrency 1` on SQLite, with the project's stand-in agent (`agentfleet.fake_agent`,
as `agentfleet demo` wires it) as `claude` on the worker's PATH, behind a shell wrapper
that writes `date +%s.%N` before it starts the stand-in and again once it exits. `--jobs` `claude`
jobs (each writes one file and commits it), one at a time, each enqueued once the
previous one finished, after `--warmup` unmeasured ones: first with `cwd` the repository
itself, then with `workspace: worktree`. Per job: *claim to agent start* is the wrapper's
first stamp minus the run's `started_at`; *agent exit to job end* is the run's
`finished_at` minus the wrapper's second stamp. For a worktree job the first holds making
the worktree and branch at the submitted commit (git writes every file of the repository,
so it grows with `--files` and with what the file system of `--dir` charges for a new
file), the second committing what the agent left and describing the change. Publishing the
job's branch and removing the worktree come once the completion is written, after
`finished_at`, and are in neither. What the agent does itself (the stand-in's interpreter
start, its edit, its own `git add` and commit) is in neither either; the wrapper's own
start (a shell and one `date`, about a millisecond) is in the first.

`--command "env PYTHONPATH=OLD/src python -m agentfleet.cli"` measures another build.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import agentfleet
from agentfleet import Fleet, JobStatus
from benchmarks.worker_latency import (
    BENCH_APP,
    DONE,
    _connections,
    _cpu_seconds,
    _database,
    _registered,
    _start_worker,
    _stop,
    _tail,
    _wait,
    percentile,
    worker_command,
)

CHUNK = 1000  # jobs per enqueue_many call
LATENCY_QUEUE = "latency"
FLEET_QUEUE = "default"
SAMPLE_EVERY = 1.0  # seconds between samples of connections and backend CPU


# --------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class Proc:
    ppid: int
    cpu: float  # utime + stime, seconds
    start: int  # start time, clock ticks after boot: with the pid, names the process
    name: str


def _proc_stat(pid: int) -> Proc | None:
    """One process's /proc/PID/stat, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    head, tail = text.rsplit(")", 1)
    fields = tail.split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return Proc(int(fields[1]), cpu, int(fields[19]), head.split("(", 1)[1])


def _cpu_or_none(pid: int) -> float | None:
    stat = _proc_stat(pid)
    return None if stat is None else stat.cpu


def _below(roots: Sequence[int]) -> dict[tuple[int, int], Proc]:
    """Every process below `roots`, by (pid, start time); the roots left out."""
    table: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            table[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, proc in table.items():
        children.setdefault(proc.ppid, []).append(pid)
    found: dict[tuple[int, int], Proc] = {}
    todo = [child for root in roots for child in children.get(root, [])]
    while todo:
        pid = todo.pop()
        found[(pid, table[pid].start)] = table[pid]
        todo.extend(children.get(pid, []))
    return found


def _descendants(roots: Sequence[int]) -> dict[tuple[int, int], float]:
    """Every process below `roots`: {(pid, start time): CPU seconds}, roots left out."""
    return {key: proc.cpu for key, proc in _below(roots).items()}


def _sleeping(roots: Sequence[int]) -> int:
    """The `sleep` processes below `roots`: the held jobs whose process has started."""
    return sum(proc.name == "sleep" for proc in _below(roots).values())


def _kill_leftovers(known: set[tuple[int, int]]) -> int:
    """SIGKILL each process of `known` still running as the same process (pid and start
    time both match); how many there were."""
    left = 0
    for pid, start in known:
        stat = _proc_stat(pid)
        if stat is not None and stat.start == start:
            left += 1
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return left


# --------------------------------------------------------------------------- PostgreSQL


def _dbname(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def _xacts(database: str) -> int:
    import psycopg

    from benchmarks.peers.common import base_url

    with psycopg.connect(base_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


class Sampler:
    """Every second, in a thread: the database's connections (this process's left out) and
    the CPU of its client backends (read from /proc). `start`/`stop` bound one window."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.database = _dbname(url)
        self.peak_connections = 0
        self.samples = 0
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._readable = True
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _backends(self) -> list[int]:
        import psycopg

        from benchmarks.peers.common import base_url

        with psycopg.connect(base_url(), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                "AND backend_type = 'client backend' AND application_name <> %s",
                (self.database, BENCH_APP),
            ).fetchall()
        return [int(row[0]) for row in rows]

    def sample(self, *, first: bool = False) -> None:
        self.peak_connections = max(self.peak_connections, sum(_connections(self.url).values()))
        self.samples += 1
        for pid in self._backends():
            cpu = _cpu_or_none(pid)
            if cpu is None:
                self._readable = self._readable and not Path(f"/proc/{pid}").exists()
                continue
            if first:
                self._first[pid] = cpu
            self._first.setdefault(pid, 0.0)  # it connected during the window
            self._last[pid] = cpu

    def _loop(self) -> None:
        while not self._done.wait(SAMPLE_EVERY):
            self.sample()

    def start(self) -> None:
        self.sample(first=True)
        self._thread = threading.Thread(target=self._loop, name="fleet-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    @property
    def backend_cpu(self) -> float | None:
        """CPU seconds of the database's backends over the window (None: /proc unreadable,
        e.g. a server on another host)."""
        if not self._readable or not self._last:
            return None
        return sum(self._last[pid] - self._first[pid] for pid in self._last)


# --------------------------------------------------------------------------- fleet


@dataclass
class Window:
    name: str
    seconds: float
    leases: int
    xacts: int
    xacts_per_s: float
    bench_calls: int  # this process's own store calls in the window (one transaction each)
    workers_cpu_s: float
    workers_us_per_s_per_lease: float
    workers_core_pct_per_1000_leases: float
    below_workers_cpu_s: float  # supervisors and jobs: every process below the W workers
    backends_cpu_s: float | None
    backends_us_per_s_per_lease: float | None
    peak_connections: int
    running_at_end: int  # held jobs with status running when the window ended
    sleeping_at_end: int  # their `sleep` processes then


@dataclass
class Latency:
    jobs: int
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass
class Idle:
    seconds: float
    xacts: int
    xacts_per_s: float
    worker_cpu_pct: float
    backend_cpu_pct: float | None


@dataclass
class FleetResult:
    workers: int
    concurrency: int
    leases: int
    ttl_s: float
    heartbeat_s: float
    ramp_s: float  # from the first enqueue until every held job's process was running
    server_max_connections: int
    claimed_s: float = 0.0  # from the first enqueue until every held job was `running`
    sleeping_at_start: int = 0  # held jobs' `sleep` processes once all were up
    windows: list[Window] = field(default_factory=list)
    latency: Latency | None = None
    idle: Idle | None = None
    workers_alive_at_end: int = 0
    leftover_processes: int = 0  # job processes that outlived their workers (then killed)


def _running(fleet: Fleet, queue: str = FLEET_QUEUE) -> int:
    return fleet.queue_counts().get((queue, JobStatus.RUNNING.value), 0)


def _window(
    name: str,
    seconds: float,
    leases: int,
    xacts: int,
    bench_calls: int,
    workers_cpu: float,
    below_cpu: float,
    sampler: Sampler,
    running_at_end: int,
    sleeping_at_end: int,
) -> Window:
    per_lease = workers_cpu / seconds / max(leases, 1)
    backend = sampler.backend_cpu
    return Window(
        name=name,
        seconds=seconds,
        leases=leases,
        xacts=xacts,
        xacts_per_s=xacts / seconds,
        bench_calls=bench_calls,
        workers_cpu_s=workers_cpu,
        workers_us_per_s_per_lease=per_lease * 1e6,
        workers_core_pct_per_1000_leases=per_lease * 1000 * 100,
        below_workers_cpu_s=below_cpu,
        backends_cpu_s=backend,
        backends_us_per_s_per_lease=None
        if backend is None
        else backend / seconds / max(leases, 1) * 1e6,
        peak_connections=sampler.peak_connections,
        running_at_end=running_at_end,
        sleeping_at_end=sleeping_at_end,
    )


class _Measure:
    """One window's CPU and transaction readings, taken at its start and at its end."""

    def __init__(self, url: str, pids: Sequence[int]) -> None:
        self.url, self.pids = url, list(pids)
        self.sampler = Sampler(url)

    def __enter__(self) -> _Measure:
        self.below = _descendants(self.pids)
        self.cpu = sum(_cpu_seconds(pid) for pid in self.pids)
        self.xacts = _xacts(self.sampler.database)
        self.sampler.start()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.started
        self.xacts = _xacts(self.sampler.database) - self.xacts
        self.cpu = sum(_cpu_seconds(pid) for pid in self.pids) - self.cpu
        below = _descendants(self.pids)
        self.below_cpu = sum(cpu - self.below.get(key, 0.0) for key, cpu in below.items())
        self.sampler.stop()


def _probe(fleet: Fleet, until: float, samples: list[float]) -> int:
    """Enqueue `true` jobs into the latency queue until `until`; the store calls made."""
    calls = 0
    while time.monotonic() < until:
        time.sleep(random.uniform(0.25, 0.75))
        job = fleet.enqueue("shell", {"cmd": ["true"]}, queue=LATENCY_QUEUE)
        calls += 1
        while True:
            time.sleep(0.05)
            done = fleet.get_job(job.id)
            calls += 1
            if done.status in DONE:
                break
        if done.status is not JobStatus.SUCCEEDED:
            raise RuntimeError(f"latency job {job.id} ended {done.status}: {done.error}")
        run = fleet.runs(job.id)[0]
        calls += 1
        samples.append((run.started_at - job.created_at).total_seconds() * 1000.0)
    return calls


def _idle(cmd: list[str], seconds: float, settle: float, ttl: str, folder: Path) -> Idle:
    """One worker alone on a fresh database, nothing queued."""
    from benchmarks.peers.common import fresh_database

    with fresh_database("fleet_idle") as url:
        with agentfleet.open(url, application_name=BENCH_APP, pool_size=1) as fleet:
            proc, log = _start_worker(cmd, url, "idle-0", folder, "--ttl", ttl, "--grace", "1s")
            try:

                def up() -> bool:
                    if proc.poll() is not None:
                        raise RuntimeError(f"the idle worker exited:\n{_tail(log)}")
                    return bool(_registered(fleet, {"idle-0"}))

                _wait(up, "the idle worker to start")
            except BaseException:
                _stop([proc])
                raise
        try:  # this process's connection is closed: its counters are flushed
            time.sleep(settle)
            with _Measure(url, [proc.pid]) as m:
                time.sleep(seconds)
        finally:
            _stop([proc])
    backend = m.sampler.backend_cpu
    return Idle(
        seconds=m.seconds,
        xacts=m.xacts,
        xacts_per_s=m.xacts / m.seconds,
        worker_cpu_pct=m.cpu / m.seconds * 100,
        backend_cpu_pct=None if backend is None else backend / m.seconds * 100,
    )


def fleet_run(
    workers: int = 20,
    concurrency: int = 50,
    *,
    hold: float = 60.0,
    ttl: float = 30.0,
    idle: float = 20.0,
    settle: float = 11.0,
    ramp_timeout: float = 300.0,
    command: str | None = None,
) -> FleetResult:
    """W x C held leases on one PostgreSQL database (see the module docstring)."""
    import psycopg

    from benchmarks.peers.common import base_url

    cmd = worker_command(command)
    leases = workers * concurrency
    ttl_arg = f"{ttl:g}s"
    with psycopg.connect(base_url(), autocommit=True) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
    result = FleetResult(
        workers=workers,
        concurrency=concurrency,
        leases=leases,
        ttl_s=ttl,
        heartbeat_s=ttl / 3,
        ramp_s=0.0,
        server_max_connections=int(row[0]) if row else 0,
    )
    # Every sleep outlasts the ramp-up, the settling and the window; they are stopped after.
    sleep = str(math.ceil(max(120.0, ramp_timeout + settle + hold + 60)))
    with tempfile.TemporaryDirectory(prefix="agentfleet-fleet-scale-") as tmp:
        folder = Path(tmp)
        result.idle = _idle(cmd, idle, settle, ttl_arg, folder)
        with _database("postgres") as url:
            names = [f"fleet-{i:03d}" for i in range(workers)]
            options = ["--ttl", ttl_arg, "--grace", "1s", "--kill-grace", "1s"]
            procs: list[subprocess.Popen[bytes]] = []
            logs: list[Path] = []
            seen: set[tuple[int, int]] = set()
            try:
                for name in names:
                    proc, log = _start_worker(
                        cmd, url, name, folder, *options,
                        "--concurrency", str(concurrency), "--queues", FLEET_QUEUE,
                    )  # fmt: skip
                    procs.append(proc)
                    logs.append(log)
                fleet_pids = [proc.pid for proc in procs]

                def alive() -> None:
                    for proc, log in zip(procs, logs, strict=True):
                        if proc.poll() is not None:
                            raise RuntimeError(
                                f"worker {proc.args!r} exited ({proc.returncode}):\n{_tail(log)}"
                            )

                with agentfleet.open(url, application_name=BENCH_APP, pool_size=1) as fleet:

                    def all_up() -> bool:
                        alive()
                        return len(_registered(fleet, set(names))) == workers

                    _wait(all_up, "every worker to start", timeout=ramp_timeout)
                    job = agentfleet.NewJob("shell", {"cmd": ["sleep", sleep]}, queue=FLEET_QUEUE)
                    started = time.monotonic()
                    for first in range(0, leases, CHUNK):
                        fleet.enqueue_many([job] * min(CHUNK, leases - first))
                    deadline = started + ramp_timeout
                    while (running := _running(fleet)) < leases or (
                        sleeping := _sleeping(fleet_pids)
                    ) < leases:
                        alive()
                        if time.monotonic() > deadline:
                            raise RuntimeError(
                                f"after {ramp_timeout:g} s only {running} of {leases} jobs "
                                f"are running, and {_sleeping(fleet_pids)} of their processes"
                            )
                        if running >= leases and not result.claimed_s:
                            result.claimed_s = time.monotonic() - started
                        time.sleep(0.2)
                    result.ramp_s = time.monotonic() - started
                    result.claimed_s = result.claimed_s or result.ramp_s
                    result.sleeping_at_start = sleeping
                # This process's connection is closed (its counters flushed); let the
                # workers' counters of the ramp-up be flushed too, before the window.
                time.sleep(settle)
                seen |= set(_descendants(fleet_pids))
                half = hold / 2
                with _Measure(url, fleet_pids) as held:
                    time.sleep(half)
                held_sleeping = _sleeping(fleet_pids)
                seen |= set(_descendants(fleet_pids))
                with agentfleet.open(url, application_name=BENCH_APP, pool_size=1) as fleet:
                    running = _running(fleet)
                    result.windows.append(
                        _window(
                            "held",
                            held.seconds,
                            leases,
                            held.xacts,
                            0,
                            held.cpu,
                            held.below_cpu,
                            held.sampler,
                            running,
                            held_sleeping,
                        )
                    )
                    probe, probe_log = _start_worker(
                        cmd, url, "probe", folder, *options,
                        "--concurrency", "1", "--queues", LATENCY_QUEUE,
                    )  # fmt: skip
                    procs.append(probe)
                    logs.append(probe_log)

                    def probe_up() -> bool:
                        alive()
                        return bool(_registered(fleet, {"probe"}))

                    _wait(probe_up, "the probe worker to start")
                    time.sleep(0.5)  # let it go idle
                    samples: list[float] = []
                    with _Measure(url, fleet_pids) as probed:
                        calls = _probe(fleet, time.monotonic() + half, samples)
                    probed_sleeping = _sleeping(fleet_pids)
                    seen |= set(_descendants(fleet_pids))
                    result.windows.append(
                        _window(
                            "held + probe",
                            probed.seconds,
                            leases,
                            probed.xacts,
                            calls,
                            probed.cpu,
                            probed.below_cpu,
                            probed.sampler,
                            _running(fleet),
                            probed_sleeping,
                        )
                    )
                if samples:
                    result.latency = Latency(
                        jobs=len(samples),
                        p50_ms=percentile(samples, 50),
                        p95_ms=percentile(samples, 95),
                        max_ms=max(samples),
                    )
                result.workers_alive_at_end = sum(proc.poll() is None for proc in procs)
            finally:
                with contextlib.suppress(OSError):
                    seen |= set(_descendants([proc.pid for proc in procs]))
                _stop(procs)
                time.sleep(0.5)  # supervisors see their worker's socket close
                result.leftover_processes = _kill_leftovers(seen)
    return result


# --------------------------------------------------------------------------- agent overhead


WRAPPER = """#!/bin/sh
# The stand-in agent as `claude`, its start and exit stamped around it.
date +%s.%N > "$FLEET_SCALE_STAMPS/$AGENTFLEET_JOB_ID.start"
{python} -m agentfleet.fake_agent "$@"
code=$?
date +%s.%N > "$FLEET_SCALE_STAMPS/$AGENTFLEET_JOB_ID.end"
exit $code
"""

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@agentfleet.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@agentfleet.invalid",
}


@dataclass
class Overhead:
    mode: str  # "cwd" (the repository itself) or "worktree"
    jobs: int
    start_p50_ms: float  # claim to agent start
    start_p95_ms: float
    end_p50_ms: float  # agent exit to job end
    end_p95_ms: float
    agent_p50_ms: float  # the agent's own time, for scale
    start_samples_ms: list[float] = field(default_factory=list, repr=False)
    end_samples_ms: list[float] = field(default_factory=list, repr=False)


@dataclass
class OverheadResult:
    files: int
    folder: str | None = None  # where the repository was made (None: the temp folder)
    rows: list[Overhead] = field(default_factory=list)


def make_repo(root: Path, files: int) -> Path:
    """A git repository of `files` small text files in nested folders, in one commit."""
    repo = root / "repo"
    for i in range(files):
        path = repo / f"pkg{i // 1000:02d}" / f"mod{i // 100 % 10}" / f"file{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {i}\n" + "some text to make it a few lines long\n" * 3)
    (repo / "README.md").write_text("# bench\n")
    env = {**os.environ, **GIT_ENV}
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "commit.gpgsign=false", "commit", "-q", "-m", "initial"],
    ):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return repo


def _stamp(path: Path) -> float:
    return float(path.read_text().strip())


def agent_overhead(
    files: int = 10_000,
    jobs: int = 20,
    *,
    warmup: int = 1,
    modes: Sequence[str] = ("cwd", "worktree"),
    folder: Path | None = None,
    command: str | None = None,
) -> OverheadResult:
    """One SQLite worker, agent jobs one at a time (see the module docstring)."""
    cmd = worker_command(command)
    result = OverheadResult(files=files, folder=str(folder) if folder else None)
    with (
        _database("sqlite") as url,
        tempfile.TemporaryDirectory(prefix="agentfleet-agent-overhead-", dir=folder) as tmp,
    ):
        root = Path(tmp)
        repo = make_repo(root, files)
        bin_dir, stamps = root / "bin", root / "stamps"
        bin_dir.mkdir()
        stamps.mkdir()
        shim = bin_dir / "claude"
        shim.write_text(WRAPPER.format(python=shlex.quote(sys.executable)))
        shim.chmod(0o755)
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "FLEET_SCALE_STAMPS": str(stamps),
            "AGENTFLEET_FAKE_AGENT_SESSIONS": str(root / "sessions"),
            **GIT_ENV,
        }
        with agentfleet.open(url, application_name=BENCH_APP) as fleet:
            proc, log = _start_worker(cmd, url, "agent-0", root, "--grace", "1s", env=env)
            try:

                def up() -> bool:
                    if proc.poll() is not None:
                        raise RuntimeError(f"the worker exited ({proc.returncode}):\n{_tail(log)}")
                    return bool(_registered(fleet, {"agent-0"}))

                _wait(up, "the worker to start")
                for mode in modes:
                    starts: list[float] = []
                    ends: list[float] = []
                    agent: list[float] = []
                    for i in range(warmup + jobs):
                        payload: dict[str, Any] = {
                            "prompt": f"write notes/{mode}-{i}.txt: change {i}",
                            "cwd": str(repo),
                        }
                        if mode == "worktree":
                            payload["workspace"] = "worktree"
                        job = fleet.enqueue("claude", payload, timeout=600)

                        def finished(job_id: int = job.id) -> bool:
                            if proc.poll() is not None:
                                raise RuntimeError(f"the worker exited:\n{_tail(log)}")
                            return fleet.get_job(job_id).status in DONE

                        _wait(finished, f"job {job.id} to finish", timeout=600)
                        done = fleet.get_job(job.id)
                        if done.status is not JobStatus.SUCCEEDED:
                            raise RuntimeError(f"job {job.id} ended {done.status}: {done.error}")
                        run = fleet.runs(job.id)[-1]
                        if run.finished_at is None:
                            raise RuntimeError(f"job {job.id}'s run has no finished_at")
                        began = _stamp(stamps / f"{job.id}.start")
                        exited = _stamp(stamps / f"{job.id}.end")
                        if i < warmup:
                            continue
                        starts.append((began - run.started_at.timestamp()) * 1000.0)
                        ends.append((run.finished_at.timestamp() - exited) * 1000.0)
                        agent.append((exited - began) * 1000.0)
                    result.rows.append(
                        Overhead(
                            mode=mode,
                            jobs=jobs,
                            start_p50_ms=percentile(starts, 50),
                            start_p95_ms=percentile(starts, 95),
                            end_p50_ms=percentile(ends, 50),
                            end_p95_ms=percentile(ends, 95),
                            agent_p50_ms=percentile(agent, 50),
                            start_samples_ms=starts,
                            end_samples_ms=ends,
                        )
                    )
            finally:
                _stop([proc])
    return result


# --------------------------------------------------------------------------- printing


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_fleet(r: FleetResult) -> None:
    print(
        f"fleet: {r.workers} workers x {r.concurrency} = {r.leases} leases, ttl {r.ttl_s:g} s "
        f"(heartbeat every {r.heartbeat_s:g} s); every job running {r.claimed_s:.1f} s and "
        f"every job's process {r.ramp_s:.1f} s after the first enqueue; server "
        f"max_connections {r.server_max_connections}"
    )
    rows: list[tuple[str, list[str]]] = [
        ("window, s", [f"{w.seconds:.1f}" for w in r.windows]),
        ("jobs running at its end", [str(w.running_at_end) for w in r.windows]),
        ("their sleep processes then", [str(w.sleeping_at_end) for w in r.windows]),
        ("transactions/s", [f"{w.xacts_per_s:.1f}" for w in r.windows]),
        (
            "  of them this process's calls/s",
            [f"{w.bench_calls / w.seconds:.1f}" for w in r.windows],
        ),
        ("workers' CPU, s", [f"{w.workers_cpu_s:.2f}" for w in r.windows]),
        ("  per lease, us/s", [f"{w.workers_us_per_s_per_lease:.2f}" for w in r.windows]),
        (
            "  % of a core per 1,000 leases",
            [f"{w.workers_core_pct_per_1000_leases:.2f}%" for w in r.windows],
        ),
        ("supervisors + jobs' CPU, s", [f"{w.below_workers_cpu_s:.2f}" for w in r.windows]),
        ("PostgreSQL backends' CPU, s", [_fmt(w.backends_cpu_s, ".2f") for w in r.windows]),
        ("  per lease, us/s", [_fmt(w.backends_us_per_s_per_lease, ".2f") for w in r.windows]),
        ("peak connections", [str(w.peak_connections) for w in r.windows]),
    ]
    print(f"{'':<32}" + "".join(f"{w.name:>14}" for w in r.windows))
    for label, values in rows:
        print(f"{label:<32}" + "".join(f"{v:>14}" for v in values))
    if r.latency is not None:
        lat = r.latency
        print(
            f"claim latency meanwhile ({lat.jobs} jobs): p50 {lat.p50_ms:.2f} ms, "
            f"p95 {lat.p95_ms:.2f} ms, max {lat.max_ms:.2f} ms"
        )
    if r.idle is not None:
        i = r.idle
        print(
            f"one idle worker alone ({i.seconds:.1f} s): {i.xacts_per_s:.2f} xact/s "
            f"({i.xacts} transactions), worker CPU {i.worker_cpu_pct:.2f}%, "
            f"backend CPU {_fmt(i.backend_cpu_pct, '.2f')}%"
        )
    print(
        f"workers alive at the end: {r.workers_alive_at_end} of {r.workers + 1}; "
        f"job processes left after their workers stopped: {r.leftover_processes}"
    )


def print_overhead(r: OverheadResult) -> None:
    where = f" (made in {r.folder})" if r.folder else ""
    print(f"agent-overhead: {r.files} files in the repository{where}, one SQLite worker")
    print(
        f"{'mode':<9} {'jobs':>5} {'claim->agent p50':>17} {'p95':>8} "
        f"{'agent exit->end p50':>20} {'p95':>8} {'agent itself p50':>17}"
    )
    for row in r.rows:
        print(
            f"{row.mode:<9} {row.jobs:>5} {row.start_p50_ms:>14.1f} ms {row.start_p95_ms:>5.1f} ms"
            f" {row.end_p50_ms:>17.1f} ms {row.end_p95_ms:>5.1f} ms {row.agent_p50_ms:>14.1f} ms"
        )


# --------------------------------------------------------------------------- command line


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value

    return parse


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--command",
        default=None,
        help="the agentfleet command to start workers with (default: the console script "
        'beside this Python), e.g. "env PYTHONPATH=OLD/src python -m agentfleet.cli"',
    )
    common.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser = argparse.ArgumentParser(
        description="Real `agentfleet worker` processes at scale: what held leases cost, "
        "and what an agent job adds around its agent. Prints figures; asserts nothing.",
    )
    sub = parser.add_subparsers(dest="scenario", required=True)
    fleet = sub.add_parser(
        "fleet",
        parents=[common],
        help="W workers x C held leases on one PostgreSQL database",
        description="Hold W*C running leases of sleeping shell jobs on one fresh PostgreSQL "
        "database; print transactions/s, workers' and backends' CPU per lease, connections, "
        "and a new job's claim latency meanwhile; and one idle worker's transactions/s.",
    )
    fleet.add_argument(
        "--workers",
        type=_positive(int),
        default=20,
        help="worker processes (W) (default: %(default)s)",
    )
    fleet.add_argument(
        "--concurrency",
        type=_positive(int),
        default=50,
        help="jobs each worker runs at once (C) (default: %(default)s)",
    )
    fleet.add_argument(
        "--hold",
        type=_positive(float),
        default=60.0,
        help="seconds measured once every lease is running: the first half with nothing "
        "else, the second with the latency probe (default: %(default)s)",
    )
    fleet.add_argument(
        "--ttl",
        type=_positive(float),
        default=30.0,
        help="the workers' lease ttl in seconds; they heartbeat every ttl/3 (default: %(default)s)",
    )
    fleet.add_argument(
        "--idle",
        type=_positive(float),
        default=20.0,
        help="seconds over which one idle worker alone on its own database is measured "
        "(default: %(default)s)",
    )
    fleet.add_argument(
        "--settle",
        type=_non_negative,
        default=11.0,
        help="seconds waited before each measurement, so that PostgreSQL has flushed the "
        "transaction counters of what came before (it does within 10 s) (default: %(default)s)",
    )
    fleet.add_argument(
        "--ramp-timeout",
        type=_positive(float),
        default=300.0,
        help="seconds allowed for every worker to start and every lease to be running "
        "(default: %(default)s)",
    )
    agent = sub.add_parser(
        "agent-overhead",
        parents=[common],
        help="what an agent job adds around its agent, with and without a worktree",
        description="One SQLite worker runs stand-in agent jobs one at a time on a generated "
        "repository, first in the repository itself, then each in its own worktree; prints "
        "p50/p95 of claim to agent start and of agent exit to job end.",
    )
    agent.add_argument(
        "--files",
        type=_positive(int),
        default=10_000,
        help="files in the generated repository (default: %(default)s)",
    )
    agent.add_argument(
        "--jobs",
        type=_positive(int),
        default=20,
        help="measured jobs per mode (N) (default: %(default)s)",
    )
    agent.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="jobs run first in each mode, not measured (default: %(default)s)",
    )
    agent.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="the folder the repository (and so each worktree) is made in; default: the "
        "system's temporary folder. Making a worktree writes every file of the repository, "
        "so its cost follows what the file system charges for a new file",
    )
    agent.add_argument(
        "--modes",
        nargs="+",
        choices=["cwd", "worktree"],
        default=["cwd", "worktree"],
        help="cwd: the job runs in the repository; worktree: workspace: worktree",
    )
    args = parser.parse_args(argv)
    figures: dict[str, Any]
    if args.scenario == "fleet":
        run = fleet_run(
            args.workers,
            args.concurrency,
            hold=args.hold,
            ttl=args.ttl,
            idle=args.idle,
            settle=args.settle,
            ramp_timeout=args.ramp_timeout,
            command=args.command,
        )
        print_fleet(run)
        figures = asdict(run)
    else:
        result = agent_overhead(
            args.files,
            args.jobs,
            warmup=args.warmup,
            modes=args.modes,
            folder=args.dir,
            command=args.command,
        )
        print_overhead(result)
        figures = asdict(result)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
