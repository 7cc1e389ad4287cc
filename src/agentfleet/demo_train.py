"""The demo's second act: three agents on one repository at once, each in its own worktree
and branch, merged one at a time by the plan's merge train behind a test gate.

Two steps merge cleanly; the third conflicts with one of them, the plan stops, and a resume
(as a person would give it) reruns that step from the integration branch's newest head, so
it merges. After the `pre_pr` approval the train pushes the integration branch to a local
bare "origin" and opens a pull request with a stand-in `gh` that prints a (fake) URL.
Throwaway: a temporary folder holds the database, the repositories and the stand-ins.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.syntax import Syntax

import agentfleet
from agentfleet.demo_workers import demo_env, start_worker, stop_workers
from agentfleet.fleet import Fleet
from agentfleet.plans.model import PlanStatus
from agentfleet.workspaces.merge_job import integration_branch

DEADLINE = 90.0
PR_URL = "https://github.example/acme/shop/pull/1"
CLAUDE = """#!/bin/sh
exec "{python}" -m agentfleet.fake_agent "$@"
"""
GH = """#!/bin/sh
# A stand-in for GitHub's CLI: it opens no pull request, it prints where one would be.
echo "Creating pull request for $4 into $6 in acme/shop"
echo "{url}"
"""
PLAN = """\
name: checkout
mode: supervised
max_parallel: 3
merge:
  into: main
  test: python3 -m compileall -q src
pr:
  title: Checkout, in three agents' hands
  body: Made by the agentfleet demo.
jobs:
  - name: cart
    engine: claude
    prompt: "write src/cart.py: def count(items): return len(items)"
    workspace: worktree
    cwd: shop
    yolo: true
    env: {{AGENTFLEET_FAKE_AGENT_SLEEP: "0.3"}}
  - name: euro
    engine: claude
    prompt: "write src/settings.py: CURRENCY = 'EUR'"
    workspace: worktree
    cwd: shop
    yolo: true
    env: {{AGENTFLEET_FAKE_AGENT_SLEEP: "0.6"}}
  - name: dollar
    engine: claude
    prompt: "write src/settings.py: CURRENCY = 'USD'  # the shop sells in dollars"
    workspace: worktree
    cwd: shop
    yolo: true
    env: {{AGENTFLEET_FAKE_AGENT_SLEEP: "1.2"}}
"""


def _git(repo: Path, *args: str) -> str:
    who = ["-c", "user.name=demo", "-c", "user.email=demo@agentfleet.invalid"]
    done = subprocess.run(
        ["git", *who, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout


class TrainDemo:
    def __init__(self, console: Console, root: Path) -> None:
        self.console = console
        self.root = root
        self.repo = root / "shop"
        self.bin = root / "bin"
        self.url = f"sqlite:///{root / 'train.db'}"
        self.workers: list[subprocess.Popen[bytes]] = []

    def setup(self) -> Path:
        self.bin.mkdir(parents=True, exist_ok=True)
        for name, text in (("claude", CLAUDE.format(python=sys.executable)),
                           ("gh", GH.format(url=PR_URL))):  # fmt: skip
            (self.bin / name).write_text(text, encoding="utf-8")
            (self.bin / name).chmod(0o755)
        (self.repo / "src").mkdir(parents=True)
        (self.repo / "src" / "settings.py").write_text("CURRENCY = 'GBP'\n", encoding="utf-8")
        (self.repo / "README.md").write_text("# shop\n", encoding="utf-8")
        _git(self.repo, "init", "--quiet", "--initial-branch=main")
        _git(self.repo, "add", "--all")
        _git(self.repo, "commit", "--quiet", "-m", "the shop")
        _git(self.root, "init", "--quiet", "--bare", "origin.git")
        _git(self.repo, "remote", "add", "origin", str(self.root / "origin.git"))
        plan = self.root / "checkout.yaml"
        plan.write_text(PLAN.format(), encoding="utf-8")
        return plan

    def start_workers(self, count: int) -> None:
        env = demo_env(self.bin)
        for n in range(1, count + 1):
            log = self.root / f"train-worker-{n}.log"
            options = ("--concurrency", "2", "--grace", "5s")
            self.workers.append(start_worker(self.url, f"train-{n}", log, env, *options))

    def stop_workers(self) -> None:
        stop_workers(self.workers)

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, emoji=False)

    def run(self, fleet: Fleet, plan_file: Path) -> bool:
        plan = fleet.submit_plan(plan_file)
        steps = ", ".join(s.name for s in plan.jobs)
        self.say(f"plan {plan.id} submitted; its steps: {steps}")
        seen: set[tuple[str, str]] = set()
        resumed = approved = False
        started = time.monotonic()
        while time.monotonic() - started < DEADLINE:
            plan = fleet.get_plan(plan.id)
            for step in plan.jobs:
                key = (step.name, step.status.value)
                if key not in seen and step.status.value in ("running", "succeeded", "failed"):
                    seen.add(key)
                    job = fleet.get_job(step.job_id)
                    self.say(f"  {step.name}: {step.status.value}{self._detail(job.result)}")
            context = plan.checkpoint_context or {}
            if plan.status is PlanStatus.PAUSED and plan.checkpoint == "on_error" and not resumed:
                self.say(f"[bold yellow]the train stopped[/]: {context.get('message')}")
                self.say(f"  a person resumes it: agentfleet plan resume {plan.id}")
                fleet.resume(plan.id)
                resumed = True
                seen = {
                    k
                    for k in seen
                    if k[0] not in (context.get("job"), f"merge:{context.get('job')}")
                }
            elif plan.status is PlanStatus.PAUSED and plan.checkpoint == "pre_pr" and not approved:
                stat = context.get("diffstat") or {}
                self.say(
                    f"[bold magenta]pre_pr[/]: every step merged; "
                    f"{len(stat.get('files_changed', []))} files, +{stat.get('insertions')} "
                    f"-{stat.get('deletions')}; a person approves: "
                    f"agentfleet plan approve {plan.id} --at {plan.pending}"
                )
                fleet.approve(plan.id, checkpoint=plan.pending)
                approved = True
            elif plan.status is PlanStatus.COMPLETED:
                self.finale(plan.id, plan.pr_url, str(context.get("base_commit") or ""))
                return True
            elif plan.status in (PlanStatus.FAILED, PlanStatus.CANCELLED):
                self.say(f"[red]the plan {plan.status.value}[/]: {context}")
                return False
            time.sleep(0.1)
        self.say(f"[red]the plan did not finish within {DEADLINE:.0f}s[/]")
        return False

    @staticmethod
    def _detail(result: object) -> str:
        if not isinstance(result, dict):
            return ""
        if "files_changed" in result and "branch" in result:
            return f" on {result['branch']} ({', '.join(result['files_changed'])})"
        if "integration_head" in result:
            return f" -> integration at {str(result['integration_head'])[:10]}"
        return ""

    def finale(self, plan_id: int, pr_url: str | None, _: str) -> None:
        branch = integration_branch(plan_id)
        base = _git(self.repo, "rev-parse", "main").strip()
        self.say(f"[bold green]plan {plan_id} completed[/]; pull request: {pr_url}")
        self.say(f"the final diff ({branch} against main, which the plan left alone):")
        patch = _git(self.repo, "diff", "--no-color", base, branch)
        self.console.print(Syntax(patch, "diff", theme="ansi_dark"))
        pushed = _git(self.root / "origin.git", "rev-parse", branch).strip()
        self.say(f"origin has {branch} at {pushed[:10]}; `gh pr create` was given it")


def run_train_demo(console: Console, root: Path) -> bool:
    """The merge train act, in `root` (the caller removes it)."""
    console.print(  # across the terminal; elsewhere (a file, a pipe) 80 columns
        Rule("[bold]act 2: three agents on one repository, one merge train"),
        width=None if console.is_terminal else 80,
    )
    demo = TrainDemo(console, root)
    plan_file = demo.setup()
    console.print(
        f"repository shop (main), a bare origin, stand-ins for claude and gh in {demo.bin}",
        highlight=False,
    )
    try:
        with agentfleet.open(demo.url) as fleet:
            demo.start_workers(2)
            return demo.run(fleet, plan_file)
    finally:
        demo.stop_workers()
