"""The fault-run controller: starts worker OS processes, injects faults, drains, checks.

One run is one scenario on one backend:

``kill``        SIGKILL random workers (a fresh worker replaces each).
``pause``       SIGSTOP a lease holder for longer than the ttl, wait until another worker
                takes its job over, then SIGCONT: the woken worker's writes must be refused.
``terminate``   pg_terminate_backend on workers' connections, preferring busy ones (a
                statement, and so its commit, in progress). PostgreSQL only.
``write-kill``  workers that do nothing but write (large ledger values) are SIGKILLed at
                random moments; afterwards ``PRAGMA integrity_check`` must say ok. SQLite only.
``restart``     restart the PostgreSQL server mid-run. Opt-in (it disturbs everyone using
                the server): the run must be given the command that restarts it.
``server-restart``  kill `agentfleet serve` (SIGKILL or SIGTERM, at random) and start it again
                on the same port after a short gap. Needs remote workers.
``cut``         the remote workers reach the server through a TCP proxy in the controller,
                which now and then cuts every open connection (mid-request, when a request
                is in flight) or drops the next answer a server sends (the request was
                served, the worker never hears of it). Needs remote workers.
``all``         every fault that applies to the backend (and to remote workers, when the run
                has any) at once.

A run may mix direct workers (``workers``, on the database) and remote workers
(``remote_workers``, over HTTP: tests/faults/worker_proc.py's remote mode). With remote
workers the controller starts `agentfleet serve` on the same database (a free loopback
port, an admin token), makes each remote worker a worker token named as the worker, and
puts the proxy between them and the server; the kill and pause faults pick among all
workers alike. The direct workers also do the housekeeping (the server's claims reap
expired leases anyway).

Each job's work is a real child process (tests/faults/job_child.py, started through
agentfleet's runner, so tied to its worker's life and lease) that records when it runs;
some jobs outlive a ttl, so a dead worker's job would still be running when it is taken
over if nothing killed it. Write-heavy workers only sleep: they are there for the store.

Meanwhile the controller keeps the queue topped up (some jobs share a named lock) and
now and then cancels a job or retries a failed one. When the time is up it stops injecting,
lets the workers drain the queue, stops them, and checks the merged history against the
final database (see tests/faults/history.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import agentfleet
from agentfleet import AgentFleetError, JobStatus
from tests.faults.history import (
    FinalState,
    HistoryWriter,
    Report,
    check,
    load_history,
    load_spans,
)
from tests.faults.worker_proc import AMBIGUOUS
from tests.remote.proxy import Proxy

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("kill", "pause", "terminate", "write-kill", "restart", "server-restart", "cut", "all")
ONLY_ON = {"terminate": "postgres", "write-kill": "sqlite", "restart": "postgres"}
REMOTE_ONLY = frozenset({"server-restart", "cut"})  # faults of the HTTP path
ADMIN_TOKEN = "faults-admin-token-0123456789"
LOCKS = ("repo-a", "repo-b", "repo-c")
_T = TypeVar("_T")


@dataclass
class RunConfig:
    backend: str  # sqlite | postgres
    scenario: str
    duration: float
    out: Path
    workers: int = 4
    ttl: float = 1.0
    seed: int = 0
    pg_admin_url: str | None = None
    pg_restart_cmd: str | None = None
    kill_every: tuple[float, float] = (1.0, 3.0)
    pause_gap: tuple[float, float] = (0.1, 0.5)
    terminate_every: tuple[float, float] = (0.2, 0.8)
    chores_every: tuple[float, float] = (1.0, 3.0)
    pausers: int = 1
    remote_workers: int = 0  # workers over HTTP, beside the `workers` direct ones
    server_restart_every: tuple[float, float] = (2.0, 4.0)
    server_down: tuple[float, float] = (0.1, 1.0)  # the gap before it is started again
    cut_every: tuple[float, float] = (0.3, 1.0)
    long_jobs: float = 0.2  # the share of jobs whose process runs longer than the ttl
    backlog: int = 12
    drain_timeout: float = 90.0
    keep: bool = False
    # Fault counts the run must reach: it goes on injecting past `duration` until they are
    # reached, however slow the machine, up to `max_duration` (a hang guard, not a target).
    require: dict[str, int] = field(default_factory=dict)
    max_duration: float = 180.0


@dataclass
class RunResult:
    backend: str
    scenario: str
    seconds: float
    faults: Counter[str]
    report: Report
    integrity: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.report.ok and self.integrity in (None, "ok")

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "scenario": self.scenario,
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
            "faults": dict(self.faults),
            "integrity_check": self.integrity,
            "notes": self.notes,
            **self.report.as_dict(),
        }

    def describe(self) -> str:
        lines = [
            f"{self.backend}/{self.scenario}: {'PASS' if self.ok else 'FAIL'} "
            f"in {self.seconds:.1f}s, faults {dict(self.faults)}",
            self.report.describe(),
        ]
        if self.integrity is not None:
            lines.append(f"integrity_check: {self.integrity}")
        lines.extend(self.notes)
        return "\n".join(lines)


def applies(scenario: str, backend: str, remote_workers: int = 0) -> bool:
    if scenario in REMOTE_ONLY and not remote_workers:
        return False
    return ONLY_ON.get(scenario, backend) == backend


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    write_heavy: bool
    remote: bool = False
    paused: bool = False
    log: Any = None

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


class Controller:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.faults: Counter[str] = Counter()
        self.notes: list[str] = []
        self.procs: dict[str, Proc] = {}
        self.procs_lock = threading.Lock()
        self.spawned = 0
        self.stop_faults = threading.Event()
        config.out.mkdir(parents=True, exist_ok=True)
        self.history_dir = config.out / "history"
        self.history_dir.mkdir(exist_ok=True)
        for stale in self.history_dir.glob("*.jsonl"):  # a previous run's, same names
            stale.unlink()
        self.spans = (config.out / "spans.log").resolve()
        self.spans.unlink(missing_ok=True)
        self.log_dir = config.out / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.db_name: str | None = None
        self.url = self._make_database()
        self.fleet = self._retry(lambda: agentfleet.open(self.url, reap_interval=-1))
        self.history = HistoryWriter(self.history_dir / "ctl.jsonl", "ctl")
        self.server: subprocess.Popen[bytes] | None = None
        self.server_port = 0
        self.proxy: Proxy | None = None
        if config.remote_workers:
            self._start_server()

    # -- set-up ------------------------------------------------------------------------

    def _make_database(self) -> str:
        if self.config.backend == "sqlite":
            path = (self.config.out / "fleet.db").resolve()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return f"sqlite:///{path}"
        from tests import pg

        if self.config.pg_admin_url:
            pg.ADMIN_URL = self.config.pg_admin_url
        url = pg.create_database("agentfleet_faults")
        self.db_name = url.rsplit("/", 1)[-1]
        return url

    def _drop_database(self) -> None:
        if self.config.backend == "postgres" and not self.config.keep:
            from tests import pg

            try:
                pg.drop_database(self.url)
            except Exception as exc:
                self.notes.append(f"could not drop the test database: {exc}")

    def _worker_url(self, name: str) -> str:
        if self.config.backend == "postgres":
            return f"{self.url}?application_name=faults-{name}"
        return self.url

    # -- the server, for remote workers -----------------------------------------------

    def _start_server(self) -> None:
        """`agentfleet serve` on the run's database, behind the controller's proxy. Started
        again on the same port after a restart; should that port have been taken in the
        gap (an outgoing connection may get it as its own), on another one, to which the
        proxy then sends new connections (as a balancer would)."""
        from tests.web.live import free_port

        if not self.server_port:
            self.server_port = free_port()
        for attempt in range(5):
            if self._serve_once():
                if self.proxy is None:
                    self.proxy = Proxy(self.server_port)
                else:
                    self.proxy.switch(self.server_port)
                return
            self.notes.append("agentfleet serve could not start on its port; moved it")
            self.server_port = free_port()
            time.sleep(0.2 * attempt)
        raise RuntimeError("agentfleet serve did not start; see logs/server.log")

    def _serve_once(self) -> bool:
        """Start the server on `server_port`; whether it answers (False: it exited)."""
        url = self.url
        if self.config.backend == "postgres":
            url = f"{url}?application_name=faults-server"
        workdir = self.config.out / "server"
        workdir.mkdir(exist_ok=True)
        log = (self.log_dir / "server.log").open("ab")
        env = {**os.environ, "PYTHONPATH": _pythonpath(), "AGENTFLEET_TOKEN": ADMIN_TOKEN,
               "AGENTFLEET_DB": url}  # fmt: skip
        self.server = server = subprocess.Popen(
            [sys.executable, "-m", "agentfleet.cli", "serve", "--host", "127.0.0.1",
             "--port", str(self.server_port)],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        health = f"http://127.0.0.1:{self.server_port}/healthz"
        while time.monotonic() < deadline:
            if server.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(health, timeout=1.0) as answer:
                    if answer.status == 200:
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise RuntimeError("agentfleet serve did not answer within 60s")

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    def restart_api_server(self) -> None:
        """Kill `agentfleet serve` mid-run and start it again on the same port."""
        server = self.server
        assert server is not None
        how = self.rng.choice((signal.SIGKILL, signal.SIGTERM))
        index = self.history.invoke("fault", kind="server-restart", signal=how.name)
        server.send_signal(how)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.notes.append("agentfleet serve outlived SIGTERM by 15s; killed")
            server.kill()
            server.wait()
        time.sleep(self.rng.uniform(*self.config.server_down))
        self._start_server()
        self.history.complete(index, "ok")
        self.faults["server_restart"] += 1
        self.faults[f"server_restart_{how.name.lower()}"] += 1

    def cut_connections(self) -> None:
        """Cut every open connection of the remote workers, or drop the next answer."""
        assert self.proxy is not None
        if self.rng.random() < 0.3:
            self.proxy.cut_next_answer()
            self.history.note("fault", kind="cut-answer")
            self.faults["answer_cut"] += 1
            return
        cut = self.proxy.switch(self.server_port)
        self.history.note("fault", kind="cut", connections=cut)
        self.faults["cut"] += 1
        self.faults["connections_cut"] += cut

    def _worker_token(self, name: str) -> str:
        _, token = self._retry(lambda: self.fleet.create_token(name, "worker"))
        return token

    # -- workers -----------------------------------------------------------------------

    def spawn(self, write_heavy: bool = False, remote: bool = False) -> Proc:
        self.spawned += 1
        name = f"w{self.spawned}"
        heavy = not remote and (write_heavy or self.config.scenario == "write-kill")
        where: dict[str, Any] = {"url": self._worker_url(name)}
        if remote:
            assert self.proxy is not None
            where = {"server": self.proxy.url, "token": self._worker_token(name)}
        config = {
            **where,
            "name": name,
            "history": str(self.history_dir / f"{name}.jsonl"),
            "ttl": self.config.ttl,
            "seed": self.rng.randrange(2**32),
            "work": (0.0, 0.01) if heavy else (0.05, 0.3),
            "fail_rate": 0.0 if heavy else 0.05,
            "limit": 1 if heavy else 2,
            "ledger_bytes": 256 * 1024 if heavy else 0,
            "spans": None if heavy else str(self.spans),
            "long_jobs": self.config.long_jobs,
        }
        log = (self.log_dir / f"{name}.log").open("wb")
        popen = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.worker_proc", json.dumps(config)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": _pythonpath()},
        )
        proc = Proc(name, popen, heavy, remote=remote, log=log)
        with self.procs_lock:
            self.procs[name] = proc
        return proc

    def _retry(self, fn: Callable[[], _T], attempts: int = 120) -> _T:
        """The controller's own calls ride out cut connections and restarts."""
        for attempt in range(attempts):
            try:
                return fn()
            except (AgentFleetError, *AMBIGUOUS) as exc:
                if isinstance(exc, agentfleet.InvalidArgument) or attempt == attempts - 1:
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    # -- the queue ---------------------------------------------------------------------

    def top_up(self) -> None:
        counts = self._retry(self.fleet.queue_counts)
        queued = sum(n for (_, status), n in counts.items() if status == "queued")
        if queued >= self.config.backlog:
            return
        batch = [
            self.fleet.new_job(
                "shell",
                {"n": self.rng.randrange(10**9)},
                priority=self.rng.choice((0, 0, 0, 1, 2)),
                lock=self.rng.choice((*LOCKS, None, None, None, None)),
                max_attempts=25,
            )
            for _ in range(self.config.backlog)
        ]
        index = self.history.invoke("enqueue", count=len(batch))
        try:
            jobs = self.fleet.enqueue_many(batch)
        except (AgentFleetError, *AMBIGUOUS) as exc:
            self.history.complete(index, "unknown", error=f"{type(exc).__name__}: {exc}")
            return
        self.history.complete(index, "ok", [j.id for j in jobs])

    def chores(self) -> None:
        """Cancel a live job or retry a failed one, as an operator would."""
        if self.rng.random() < 0.5:
            status = self.rng.choice((JobStatus.QUEUED, JobStatus.RUNNING))
            f, call = "cancel", self.fleet.cancel_job
        else:
            status = self.rng.choice((JobStatus.FAILED, JobStatus.CANCELLED))
            f, call = "retry", self.fleet.retry_job  # type: ignore[assignment]
        try:
            jobs = self.fleet.list_jobs(status=status, limit=50)
        except (AgentFleetError, *AMBIGUOUS):
            return
        if not jobs:
            return
        job = self.rng.choice(jobs)
        index = self.history.invoke(f, job=job.id)
        try:
            result = call(job.id)
        except agentfleet.InvalidTransition as exc:
            self.history.complete(index, "fail", error=str(exc))
        except (AgentFleetError, *AMBIGUOUS) as exc:
            self.history.complete(index, "unknown", error=f"{type(exc).__name__}: {exc}")
        else:
            self.history.complete(index, "ok", result if isinstance(result, bool) else True)
        self.faults[f] += 1

    # -- faults ------------------------------------------------------------------------

    def _victims(self) -> list[Proc]:
        with self.procs_lock:
            return [p for p in self.procs.values() if p.alive and not p.paused]

    def kill_one(self) -> None:
        victims = self._victims()
        if not victims:
            return
        victim = self.rng.choice(victims)
        victim.popen.send_signal(signal.SIGKILL)
        victim.popen.wait()
        self.history.note(
            "fault",
            kind="kill",
            target=victim.name,
            write_heavy=victim.write_heavy,
            remote=victim.remote,
        )
        self.faults["sigkill"] += 1
        if victim.remote:
            self.faults["sigkill_remote"] += 1
        self.spawn(write_heavy=victim.write_heavy, remote=victim.remote)

    def terminate_one(self, admin: Any) -> None:
        rows = admin.execute(
            "SELECT pid, state, left(query, 40) AS query FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE 'faults-w%%' AND pid <> "
            "pg_backend_pid()",
            (self.db_name,),
        ).fetchall()
        if not rows:
            return
        busy = [r for r in rows if r[1] in ("active", "idle in transaction")]
        pid, state, query = self.rng.choice(busy if busy and self.rng.random() < 0.8 else rows)
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        self.history.note("fault", kind="terminate", state=state, query=query)
        self.faults["pg_terminate_backend"] += 1
        if state == "active":
            self.faults["pg_terminate_backend_active"] += 1

    def restart_server(self) -> None:
        command = self.config.pg_restart_cmd
        assert command
        index = self.history.invoke("fault", kind="restart")
        started = time.monotonic()
        done = subprocess.run(shlex.split(command), capture_output=True, timeout=120)
        self.history.complete(index, "ok" if done.returncode == 0 else "fail")
        if done.returncode != 0:
            self.notes.append(f"restart command failed: {done.stderr.decode()[-300:]}")
            return
        self.faults["pg_restart"] += 1
        self.notes.append(f"PostgreSQL restarted in {time.monotonic() - started:.1f}s")

    def pause_trials(self) -> None:
        """SIGSTOP a lease holder past its ttl until its job is taken over, then SIGCONT."""
        ttl = self.config.ttl
        with self.procs_lock:
            rng = random.Random(self.rng.randrange(2**32))
        while not self.stop_faults.is_set():
            time.sleep(rng.uniform(*self.config.pause_gap))
            try:
                running = self.fleet.list_jobs(status=JobStatus.RUNNING, limit=200)
            except (AgentFleetError, *AMBIGUOUS):
                continue
            with self.procs_lock:
                holders = [
                    (job, self.procs[job.worker])
                    for job in running
                    if job.worker in self.procs
                    and self.procs[job.worker].alive
                    and not self.procs[job.worker].write_heavy
                ]
                if not holders:
                    continue
                job, proc = rng.choice(holders)
                proc.paused = True
            try:
                self._one_pause(job.id, job.lease_epoch, proc, ttl)
            except (AgentFleetError, *AMBIGUOUS) as exc:  # the server may be restarting
                self.notes.append(f"a pause trial was abandoned: {type(exc).__name__}")
            finally:
                proc.paused = False

    def _one_pause(self, job_id: int, epoch: int, proc: Proc, ttl: float) -> None:
        stop_t = time.time()
        proc.popen.send_signal(signal.SIGSTOP)
        try:
            held = self._retry(lambda: self.fleet.get_job(job_id), attempts=20)
            if not (
                held.status is JobStatus.RUNNING
                and held.lease_epoch == epoch
                and held.worker == proc.name
            ):
                return  # it finished that job before the signal landed: no trial
            time.sleep(ttl * 1.5)
            deadline = time.monotonic() + ttl * 8 + 5
            now = held
            locked = 0
            while time.monotonic() < deadline and not self.stop_faults.is_set():
                now = self._retry(lambda: self.fleet.get_job(job_id), attempts=20)
                if now.lease_epoch > epoch and now.worker != proc.name:
                    break
                locked = locked + 1 if self._sqlite_write_lock_held() else 0
                if locked >= 3:
                    # Stopped inside a write transaction: it holds SQLite's one write lock,
                    # so nobody can take over until it runs again. No trial.
                    self.faults["sigstop_holding_write_lock"] += 1
                    return
                time.sleep(0.05)
            replaced = now.lease_epoch > epoch and now.worker != proc.name
        finally:
            cont_t = time.time()
            proc.popen.send_signal(signal.SIGCONT)
        self.faults["sigstop_trials"] += 1
        if replaced:
            self.faults["sigstop_replaced"] += 1
            if proc.remote:
                self.faults["sigstop_replaced_remote"] += 1
        self.history.note(
            "pause",
            target=proc.name,
            remote=proc.remote,
            job=job_id,
            epoch=epoch,
            replaced=replaced,
            successor_epoch=now.lease_epoch,
            stop_t=stop_t,
            cont_t=cont_t,
        )

    def _sqlite_write_lock_held(self) -> bool:
        if self.config.backend != "sqlite":
            return False
        conn = sqlite3.connect(self.url[len("sqlite:///") :], timeout=0.5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            conn.close()

    # -- the run -----------------------------------------------------------------------

    def run(self) -> RunResult:
        config = self.config
        scenario = config.scenario
        everything = scenario == "all"
        kills = scenario in ("kill", "write-kill") or everything
        pauses = scenario == "pause" or everything
        terminates = config.backend == "postgres" and (scenario == "terminate" or everything)
        restart = config.backend == "postgres" and (scenario == "restart" or everything)
        remote = config.remote_workers > 0
        server_restarts = remote and (scenario == "server-restart" or everything)
        cuts = remote and (scenario == "cut" or everything)
        if restart and not config.pg_restart_cmd:
            restart = False
            self.notes.append(
                "PostgreSQL restart skipped: not allowed in this run (give --pg-restart-cmd "
                "to opt in; it disturbs everyone using the server)"
            )
        started = time.monotonic()
        self.top_up()
        for index in range(config.workers):
            # In the mixed run on SQLite one worker is write-heavy, for kills mid-write; not
            # beside remote workers, whose paused jobs it would finish before they woke.
            heavy = everything and config.backend == "sqlite" and not config.remote_workers
            self.spawn(write_heavy=heavy and index == 0)
        for _ in range(config.remote_workers):
            self.spawn(remote=True)
        self._wait_until_working()
        pausers = [
            threading.Thread(target=self.pause_trials, daemon=True)
            for _ in range(config.pausers if pauses else 0)
        ]
        for pauser in pausers:
            pauser.start()
        admin = None
        if terminates:
            import psycopg

            admin = psycopg.connect(self.url, autocommit=True)
        now = time.monotonic
        end = now() + config.duration
        give_up = now() + max(config.duration, config.max_duration)
        next_kill = now() + self.rng.uniform(*self._kill_every())
        next_term = now() + self.rng.uniform(*config.terminate_every)
        next_chore = now() + self.rng.uniform(*config.chores_every)
        restart_at = now() + config.duration / 2 if restart else float("inf")
        never = float("inf")
        next_server = now() + self.rng.uniform(*config.server_restart_every)
        next_server = next_server if server_restarts else never
        next_cut = now() + self.rng.uniform(*config.cut_every) if cuts else never
        try:
            while now() < end or (self.short_of() and now() < give_up):
                self.top_up()
                if kills and now() >= next_kill:
                    self.kill_one()
                    next_kill = now() + self.rng.uniform(*self._kill_every())
                if admin is not None and now() >= next_term:
                    try:
                        self.terminate_one(admin)
                    except Exception as exc:  # the server may be restarting
                        self.notes.append(f"terminate skipped: {type(exc).__name__}")
                        admin = self._reconnect(admin)
                    next_term = now() + self.rng.uniform(*config.terminate_every)
                if now() >= next_chore:
                    self.chores()
                    next_chore = now() + self.rng.uniform(*config.chores_every)
                if now() >= restart_at:
                    restart_at = float("inf")
                    self.restart_server()
                    admin = self._reconnect(admin) if admin is not None else None
                if now() >= next_server:
                    self.restart_api_server()
                    next_server = now() + self.rng.uniform(*config.server_restart_every)
                if now() >= next_cut:
                    self.cut_connections()
                    next_cut = now() + self.rng.uniform(*config.cut_every)
                time.sleep(0.05)
        finally:
            self.stop_faults.set()
            for pauser in pausers:
                pauser.join(timeout=config.ttl * 12 + 30)
            if admin is not None:
                admin.close()
        if self.short_of():
            self.notes.append(
                f"gave up after {config.max_duration:g}s short of {self.short_of()} "
                f"(required {config.require})"
            )
        faulted = time.monotonic()
        drained = self._drain()
        self.notes.append(f"drained in {time.monotonic() - faulted:.1f}s")
        self._stop_workers()
        fault_seconds = time.monotonic() - started
        result = self._check(fault_seconds)
        if not drained:
            result.notes.append("the queue did not drain before the timeout")
        return result

    def short_of(self) -> dict[str, int]:
        """The required fault counts not reached yet, and how many are still missing."""
        return {
            kind: wanted - self.faults[kind]
            for kind, wanted in self.config.require.items()
            if self.faults[kind] < wanted
        }

    def _wait_until_working(self, timeout: float = 60.0) -> None:
        """Start the clock once the workers have started (on a busy machine that takes a
        while), so that a short run still spends its time under fire."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.procs_lock:
                procs = list(self.procs.values())
            if all(
                (self.log_dir / f"{p.name}.log").stat().st_size > 0 or not p.alive for p in procs
            ):
                counts = self._retry(self.fleet.queue_counts)
                if any(n for (_, status), n in counts.items() if status != "queued"):
                    return
            time.sleep(0.05)

    def _kill_every(self) -> tuple[float, float]:
        if self.config.scenario == "write-kill":
            return (0.2, 0.6)
        return self.config.kill_every

    def _reconnect(self, admin: Any) -> Any:
        import psycopg

        with contextlib.suppress(Exception):
            admin.close()
        for _ in range(120):
            try:
                return psycopg.connect(self.url, autocommit=True)
            except psycopg.Error:
                time.sleep(0.5)
        return None

    def _drain(self) -> bool:
        """Let the workers finish every job (replacing any that died), within a timeout."""
        deadline = time.monotonic() + self.config.drain_timeout
        while time.monotonic() < deadline:
            with self.procs_lock:
                alive = [p for p in self.procs.values() if p.alive]
            for _ in range(self.config.workers - sum(not p.remote for p in alive)):
                self.spawn()
            for _ in range(self.config.remote_workers - sum(p.remote for p in alive)):
                self.spawn(remote=True)
            try:
                counts = self.fleet.queue_counts()
            except (AgentFleetError, *AMBIGUOUS):
                time.sleep(0.2)
                continue
            if not any(n for (_, s), n in counts.items() if s in ("queued", "running")):
                return True
            time.sleep(0.1)
        return False

    def _stop_workers(self) -> None:
        with self.procs_lock:
            procs = list(self.procs.values())
        for proc in procs:
            if proc.alive:
                proc.popen.send_signal(signal.SIGCONT)
                proc.popen.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.notes.append(f"{proc.name} ignored SIGTERM; killed")
                proc.popen.kill()
                proc.popen.wait()
            if proc.log is not None:
                proc.log.close()
        self._stop_server()
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None

    def _check(self, seconds: float) -> RunResult:
        self.history.close()
        state = self._retry(lambda: FinalState.from_fleet(self.fleet))
        state.spans = load_spans(self.spans)
        ops = load_history(self.history_dir)
        report = check(ops, state)
        with self.procs_lock:
            remote = {p.name for p in self.procs.values() if p.remote}
        if remote:  # how much of the work the remote workers did
            for op in ops:
                if (
                    op.process in remote
                    and op.type == "ok"
                    and op.f in ("complete", "fenced_write")
                ):
                    report.stats[f"remote.{op.f}.ok"] += 1
        in_write = _kills_during_writes(ops)
        if in_write:
            self.faults["sigkill_with_write_in_flight"] = in_write
        integrity = None
        self.fleet.close()
        if self.config.backend == "sqlite":
            conn = sqlite3.connect(self.url[len("sqlite:///") :])
            integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
            conn.close()
        if report.ok and integrity in (None, "ok"):
            self._drop_database()
        elif self.config.backend == "postgres":
            self.notes.append(f"kept the database for a post-mortem: {self.db_name}")
        notes = [f"{n} (x{k})" if k > 1 else n for n, k in Counter(self.notes).items()]
        return RunResult(
            self.config.backend,
            self.config.scenario,
            seconds,
            self.faults,
            report,
            integrity,
            notes,
        )


def _kills_during_writes(ops: list[Any]) -> int:
    """Killed processes that died with a write call open (invoked, never answered)."""
    killed = {
        op.args.get("target") for op in ops if op.f == "fault" and op.args.get("kind") == "kill"
    }
    writes = {"claim_next", "renew", "complete", "fail", "fenced_write", "lease_token"}
    open_writes = {op.process for op in ops if op.done_t is None and op.f in writes}
    return len(killed & open_writes)


def _pythonpath() -> str:
    """The tests' root first, then whatever the caller set (a planted copy's src/), so the
    workers run the code under test rather than whatever is installed."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def run_scenario(config: RunConfig) -> RunResult:
    if not applies(config.scenario, config.backend, config.remote_workers):
        raise ValueError(
            f"scenario {config.scenario!r} does not apply to {config.backend}"
            + (" without remote workers" if config.scenario in REMOTE_ONLY else "")
        )
    controller = Controller(config)
    try:
        return controller.run()
    finally:
        controller._stop_workers()
