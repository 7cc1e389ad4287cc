"""``agentfleet demo``: a fleet of worker processes running fake agent jobs end to end.

Everything is throwaway: an embedded SQLite database, three small git repositories, and a
stand-in ``claude`` executable (a shim that execs :mod:`agentfleet.fake_agent`), so no
network and no API key are needed. Jobs on one repository share a named lock, so they never
edit it at the same time. Midway, the demo SIGKILLs the worker running the long job (and its
agent, as if the machine died); after the lease ttl another worker takes the job over, and a
late completion written with the dead worker's lease is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

import agentfleet
from agentfleet.agents.transcript import transcript_of
from agentfleet.agents.usage import Usage, short_usage
from agentfleet.demo_train import run_train_demo
from agentfleet.demo_workers import demo_env, start_worker, stop_workers
from agentfleet.errors import LeaseLost
from agentfleet.fleet import Fleet
from agentfleet.models import Event, Job, Lease, Run
from agentfleet.styles import status_text, transcript_entry

__all__ = ["run_demo"]

TTL = "2s"
DEADLINE = 60.0  # the demo gives up (and says so) if the fleet has not finished by then
REPOS = ("api", "web", "docs")
TASKS = {
    "api": [
        ("write src/orders.py: def total(items): return sum(i.price for i in items)", "2"),
        ("write src/health.py: def health(): return 'ok'", "0.3"),
        ("write CHANGELOG.md: - orders: totals are computed on the server", "0.3"),
    ],
    "web": [
        ("write src/cart.js: export const count = (items) => items.length;", "0.4"),
        ("write src/title.js: export const title = 'Shop';", "0.3"),
        ('write package.json: {"name": "web", "private": true}', "0.3"),
    ],
    "docs": [
        ("write index.md: # Shop docs", "0.3"),
        ("write orders.md: Orders are totalled on the server.", "0.4"),
        ("write faq.md: Q: Is there an API key? A: Not in the demo.", "0.3"),
    ],
}
SHIM = """#!/bin/sh
# The demo's stand-in for Claude Code: note which process runs which job, then become the
# fake agent (same pid, so the worker's process group is the agent's).
echo $$ > "$AGENTFLEET_DEMO_PIDS/$AGENTFLEET_JOB_ID-$AGENTFLEET_LEASE_EPOCH"
exec "{python}" -m agentfleet.fake_agent "$@"
"""


@dataclass
class _State:
    repo_of: dict[int, str] = field(default_factory=dict)
    victim: int | None = None
    killed: str | None = None
    stale: Lease | None = None
    refused: str | None = None
    after_event: int = 0
    notes: list[str] = field(default_factory=list)


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "demo",
        "GIT_AUTHOR_EMAIL": "demo@agentfleet.invalid",
        "GIT_COMMITTER_NAME": "demo",
        "GIT_COMMITTER_EMAIL": "demo@agentfleet.invalid",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


class _Demo:
    def __init__(self, console: Console, root: Path, workers: int) -> None:
        self.console = console
        self.root = root
        self.workers = workers
        self.url = f"sqlite:///{root / 'fleet.db'}"
        self.bin = root / "bin"
        self.pids = root / "pids"
        self.logs = root / "logs"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.state = _State()
        self.has_git = shutil.which("git") is not None

    # -- set-up ---------------------------------------------------------------------

    def setup(self, fleet: Fleet) -> None:
        for folder in (self.bin, self.pids, self.logs):
            folder.mkdir()
        shim = self.bin / "claude"
        shim.write_text(SHIM.format(python=sys.executable), encoding="utf-8")
        shim.chmod(0o755)
        for name in REPOS:
            repo = self.root / "repos" / name
            repo.mkdir(parents=True)
            (repo / "README.md").write_text(f"# {name}\n", encoding="utf-8")
            if self.has_git:
                _git(repo, "init", "-q")
                _git(repo, "add", "-A")
                _git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "initial")
        for index in range(len(TASKS["api"])):
            for name in REPOS:
                prompt, sleep = TASKS[name][index]
                long = name == "api" and index == 0
                env = {
                    "AGENTFLEET_FAKE_AGENT_SLEEP": sleep,
                    "AGENTFLEET_FAKE_AGENT_SESSIONS": str(self.root / "sessions"),
                }
                if name == "docs" and index == 1:
                    env["AGENTFLEET_FAKE_AGENT_FAIL"] = "fresh"  # its retry resumes the session
                job = fleet.enqueue(
                    "claude",
                    {
                        "prompt": prompt,
                        "cwd": str(self.root / "repos" / name),
                        "yolo": True,
                        "labels": ["demo", name],
                        "env": env,
                    },
                    lock=f"repo-{name}",
                    priority=10 if long else 0,
                    timeout=30,
                )
                self.state.repo_of[job.id] = name
                if long:
                    self.state.victim = job.id

    def start_workers(self) -> None:
        env = demo_env(self.bin, AGENTFLEET_DEMO_PIDS=str(self.pids))
        for n in range(1, self.workers + 1):
            name = f"worker-{n}"
            self.procs[name] = start_worker(
                self.url, name, self.logs / f"{name}.log", env,
                "--ttl", TTL, "--grace", "5s", "--kill-grace", "1s",
            )  # fmt: skip

    # -- the show ---------------------------------------------------------------------

    def board(self, jobs: list[Job]) -> Table:
        table = Table(title="the fleet at work", title_justify="left", header_style="bold")
        for column in ("job", "repo", "status", "worker", "attempt", "epoch"):
            table.add_column(column, no_wrap=True)
        for job in sorted(jobs, key=lambda j: j.id):
            worker = job.worker or "-"
            killed = self.state.killed
            if job.id == self.state.victim and killed and job.worker != killed:
                worker = f"{killed} (killed) -> {worker}"
            table.add_row(
                str(job.id),
                self.state.repo_of.get(job.id, "?"),
                status_text(job.status.value),
                worker,
                str(job.attempts),
                str(job.lease_epoch),
            )
        return table

    def say(self, live: Live, message: str) -> None:
        live.console.print(message, highlight=False)

    def narrate(self, live: Live, fleet: Fleet) -> None:
        for event in fleet.events(after_id=self.state.after_event, limit=500):
            self.state.after_event = event.id
            line = _event_line(event)
            if line:
                self.say(live, f"[dim]{event.at:%H:%M:%S.%f}"[:-3] + f"[/] {line}")

    def maybe_kill(self, live: Live, fleet: Fleet) -> None:
        victim = self.state.victim
        if victim is None or self.state.killed is not None:
            return
        job = fleet.get_job(victim)
        pid_file = self.pids / f"{victim}-{job.lease_epoch}"
        if job.status.value != "running" or job.worker not in self.procs or not pid_file.exists():
            return
        time.sleep(0.5)  # let the agent get going
        try:
            agent = int(pid_file.read_text().strip())
        except ValueError:
            return
        runs = fleet.runs(victim)
        current = runs[-1]
        assert job.worker is not None and job.lease_expires_at is not None
        self.state.stale = Lease(
            job_id=victim,
            epoch=job.lease_epoch,
            worker=job.worker,
            expires_at=job.lease_expires_at,
            attempt=current.attempt,
            run_id=current.id,
            ttl=2.0,
        )
        self.procs[job.worker].send_signal(signal.SIGKILL)
        if agent > 1 and agent != os.getpgrp():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(agent, signal.SIGKILL)
        self.state.killed = job.worker
        self.say(
            live,
            f"[bold red]SIGKILL[/] {job.worker} (and its agent, pid {agent}) in the middle of "
            f"job {victim}, as if its machine died. Its lease (epoch {job.lease_epoch}) "
            f"runs out {TTL} after its last heartbeat; then another worker takes the job.",
        )

    def maybe_late_write(self, live: Live, fleet: Fleet) -> None:
        stale = self.state.stale
        if stale is None or self.state.refused is not None:
            return
        job = fleet.get_job(stale.job_id)
        if job.lease_epoch <= stale.epoch:
            return
        try:
            fleet.complete(stale, result={"by": stale.worker, "late": True})
            self.state.refused = "accepted (this should never happen)"
        except LeaseLost as exc:
            self.state.refused = str(exc)
        self.say(
            live,
            f"{job.worker} took job {job.id} over at epoch {job.lease_epoch}. A late "
            f"completion written with {stale.worker}'s lease (epoch {stale.epoch}) is "
            f"[bold green]refused[/]: LeaseLost: {escape(self.state.refused)}",
        )

    def watch(self, fleet: Fleet) -> bool:
        try:
            return self._watch(fleet)
        finally:
            if not self.console.is_terminal:
                # Off a terminal the board is printed once, at the end, its last line left
                # open: end it, or what comes next is glued to its border.
                self.console.line()

    def _watch(self, fleet: Fleet) -> bool:
        started = time.monotonic()
        with Live(
            self.board(fleet.list_jobs()), console=self.console, refresh_per_second=8
        ) as live:
            while time.monotonic() - started < DEADLINE:
                self.narrate(live, fleet)
                self.maybe_kill(live, fleet)
                self.maybe_late_write(live, fleet)
                jobs = fleet.list_jobs()
                live.update(self.board(jobs))
                if all(job.is_terminal for job in jobs) and self.state.refused is not None:
                    self.narrate(live, fleet)
                    return True
                time.sleep(0.1)
        return False

    def stop_workers(self) -> None:
        stop_workers(self.procs.values())

    # -- the summary ------------------------------------------------------------------

    def summary(self, fleet: Fleet, took: float) -> None:
        self.console.line()
        table = Table(title="summary", title_justify="left", header_style="bold")
        columns = ("job", "repo", "status", "attempts", "runs (worker: outcome)", "took", "spent")
        for column in columns:
            table.add_column(column)
        ran: Counter[str] = Counter()
        for job in sorted(fleet.list_jobs(), key=lambda j: j.id):
            runs = fleet.runs(job.id)
            for run in runs:
                if run.status.value == "succeeded":
                    ran[run.worker] += 1
            took_s = sum(
                (r.finished_at - r.started_at).total_seconds() for r in runs if r.finished_at
            )
            table.add_row(
                str(job.id),
                self.state.repo_of.get(job.id, "?"),
                status_text(job.status.value),
                str(job.attempts),
                ", ".join(f"{r.worker}: {_run_outcome(r)}" for r in runs),
                f"{took_s:.1f}s",
                short_usage(Usage.of_runs(runs)),
            )
        self.console.print(table)
        who = Table(title="who ran what", title_justify="left", header_style="bold")
        who.add_column("worker")
        who.add_column("jobs completed", justify="right")
        who.add_column("state")
        for name in self.procs:
            state = "SIGKILLed mid-job" if name == self.state.killed else "stopped cleanly"
            who.add_row(name, str(ran.get(name, 0)), state)
        self.console.print(who)
        if self.has_git:
            commits = {
                name: len(_git(self.root / "repos" / name, "log", "--oneline").splitlines())
                for name in REPOS
            }
            listing = ", ".join(f"{n}: {c - 1} agent commit(s)" for n, c in commits.items())
            self.console.print(f"git repositories: {listing}", highlight=False)
        self.console.print(f"total time: {took:.1f}s", highlight=False)
        self.resumed_transcript(fleet)

    def resumed_transcript(self, fleet: Fleet) -> None:
        """The retried job's last run as `agentfleet logs` shows it: the resumed session."""
        for job in sorted(fleet.list_jobs(), key=lambda j: j.id):
            last = fleet.runs(job.id)[-1:]
            if last and last[0].agent and last[0].agent.get("resumed_session"):
                self.console.print(
                    f"\njob {job.id} failed once and its retry resumed the session; its "
                    "transcript, as `agentfleet logs` shows it:",
                    highlight=False,
                )
                for entry in transcript_of(last[0].stdout or ""):
                    self.console.print(transcript_entry(entry), soft_wrap=True)
                return


def _run_outcome(run: Run) -> str:
    """A run's status, and whether it resumed the session of the attempt before."""
    resumed = run.agent is not None and run.agent.get("resumed_session")
    return f"{run.status.value} (resumed its session)" if resumed else run.status.value


def _event_line(event: Event) -> str | None:
    job, who, epoch = event.job_id, event.worker, event.epoch
    if event.kind == "claimed":
        return f"job {job} claimed by {who} (attempt {event.data.get('attempt')}, epoch {epoch})"
    if event.kind == "succeeded":
        return f"job {job} [green]succeeded[/] on {who}"
    if event.kind in ("failed", "retry_scheduled"):
        return f"job {job} [red]{event.kind}[/] on {who}: {escape(str(event.data.get('error')))}"
    if event.kind == "lease_expired":
        return f"job {job}: [yellow]lease expired[/] (epoch {epoch}, {who or 'its worker'} is gone)"
    if event.kind == "released":
        return f"job {job} handed back by {who}"
    return None


ACTS = ("fleet", "train")


def run_demo(
    console: Console, *, workers: int = 3, keep: bool = False, acts: tuple[str, ...] = ACTS
) -> None:
    """Run the demo's acts; it cleans up after itself unless ``keep``."""
    root = Path(tempfile.mkdtemp(prefix="agentfleet-demo-"))
    try:
        if "fleet" in acts:
            keep = not _fleet_act(console, root, workers) or keep
        if "train" in acts:
            if shutil.which("git") is None:
                console.print("[yellow]act 2 needs git; skipped[/]")
            elif not run_train_demo(console, root / "train"):
                keep = True
    finally:
        if keep:
            console.print(f"kept the demo directory: {root}", highlight=False)
        else:
            shutil.rmtree(root, ignore_errors=True)


def _fleet_act(console: Console, root: Path, workers: int) -> bool:
    """Act 1: workers on three repositories, one SIGKILLed mid-job; whether it finished."""
    demo = _Demo(console, root, workers)
    started = time.monotonic()
    finished = False
    console.print(  # across the terminal; elsewhere (a file, a pipe) 80 columns
        Rule("[bold]act 1: a fleet of workers, one of them dies"),
        width=None if console.is_terminal else 80,
    )
    try:
        with agentfleet.open(demo.url) as fleet:
            demo.setup(fleet)
            console.print(
                Group(
                    f"database   {demo.url}",
                    f"agent      a fake `claude` on PATH ({demo.bin / 'claude'})",
                    f"repos      {', '.join(REPOS)} (jobs on one repo share a lock)",
                    f"workers    {workers} processes, lease ttl {TTL}, heartbeat every ttl/3",
                ),
                highlight=False,
            )
            demo.start_workers()
            finished = demo.watch(fleet)
            demo.stop_workers()
            if not finished:
                console.print(
                    f"[red]the fleet did not finish within {DEADLINE:.0f}s[/]; worker logs "
                    f"are in {demo.logs}"
                )
            demo.summary(fleet, time.monotonic() - started)
    finally:
        for proc in demo.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return finished
