"""What agents spent, on the command line: `show`, `plan show`, and `plan budget` to let a
plan stopped by its budget go on."""

from __future__ import annotations

import re

import agentfleet
from agentfleet.models import RunOutput
from tests.cli.conftest import Invoke


def _spend(db: str, costs: dict[str, float]) -> None:
    with agentfleet.open(db) as fleet:
        while leases := fleet.claim_next(worker="w", limit=10):
            for lease in leases:
                step = lease.job.step if lease.job else ""
                agent = {"engine": "claude", "cost_usd": costs.get(step or "", 0.0),
                         "input_tokens": 1000, "output_tokens": 10}  # fmt: skip
                fleet.complete(lease, result={}, output=RunOutput(exit_code=0, agent=agent))


PLAN = """name: spend
budget_usd: 1
jobs:
  - name: a
    engine: shell
    cmd: "true"
  - name: b
    engine: shell
    cmd: "true"
    depends_on: [a]
"""


def test_a_plan_stopped_by_its_budget_goes_on_once_it_is_raised(
    run: Invoke, db: str, tmp_path: object
) -> None:
    path = f"{tmp_path}/plan.yaml"
    with open(path, "w") as handle:
        handle.write(PLAN)
    assert run("plan", "submit", path).code == 0
    _spend(db, {"a": 1.5})
    shown = run("plan", "show", "1")
    assert "failed: budget exceeded: plan 1 cost $1.5000, over its $1" in shown.out
    assert "spent: $1.5000 · 1,000 in / 10 out tokens over its $1 budget" in shown.out
    refused = run("plan", "resume", "1")
    assert refused.code != 0
    assert "cannot resume: budget exceeded" in refused.err
    assert "agentfleet plan budget 1 USD" in refused.err
    bad = run("plan", "budget", "1", "lots")
    assert bad.code == 2 and "budget must be a number of US dollars" in bad.err
    raised = run("plan", "budget", "1", "5")
    assert raised.code == 0 and "of a $5 budget" in raised.out
    assert run("plan", "resume", "1").code == 0
    _spend(db, {"b": 0.5})
    assert "completed" in run("plan", "show", "1").out
    job = run("show", "1")
    assert "spent: $1.5000 · 1,000 in / 10 out tokens" in job.out
    assert "$1.5000" in job.out.split("runs")[1]  # the runs table's SPENT column


def test_show_says_which_timeouts_hold(run: Invoke, tmp_path: object) -> None:
    jobs = {
        "agent.md": "---\nengine: claude\n---\nfix it\n",
        "quiet.md": "---\nengine: claude\ntimeout: 30m\nidle_timeout: off\n---\nfix it\n",
        "shell.md": "---\nengine: shell\nidle_timeout: 5m\n---\ntrue\n",
    }
    for name, text in jobs.items():
        with open(f"{tmp_path}/{name}", "w") as handle:
            handle.write(text)
        assert run("submit", f"{tmp_path}/{name}").code == 0
    field = re.compile(r"^(?:idle timeout|timeout)\s+(.*?)\s*$")
    lines = {
        n: [m[1] for line in run("show", str(n)).out.splitlines() if (m := field.match(line))]
        for n in (1, 2, 3)
    }
    assert lines == {
        1: ["2h (the agents' default)", "15m (the agents' default)"],
        2: ["30m", "off"],
        3: ["-", "5m"],
    }
