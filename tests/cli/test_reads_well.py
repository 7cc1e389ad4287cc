"""The command line reads well where it is read most: piped to a file or another program.

Most tests run the real program (`python -m agentfleet.cli`, what the console script
runs) with its output captured, so not a terminal, and no COLUMNS. The checks over every
command's help run in-process (one subprocess per command would take a minute): there too
the output is no terminal, and the help goes through the same classes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli.test_plans_cli import PLAN, _drain
from tests.worker.helpers import child_env, cli


def piped(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The program as a script runs it: output captured, no COLUMNS, no terminal width."""
    environment = child_env(**env)
    for name in ("COLUMNS", "LINES", "TERMINAL_WIDTH", "FORCE_COLOR"):
        environment.pop(name, None)
    return cli(*args, env=environment, cwd=cwd)


# -- piped output is not hard-wrapped --------------------------------------------------


def test_a_long_hint_piped_stays_on_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    submitted = piped("--db", url, "plan", "submit", str(plan_file), "--json")
    assert submitted.returncode == 0, submitted.stderr
    plan_id = json.loads(submitted.stdout)["id"]
    _drain(url)
    shown = piped("--db", url, "plan", "show", str(plan_id))
    assert shown.returncode == 0, shown.stderr
    hint = (
        f"  agentfleet plan approve {plan_id} --at review#1 [--response TEXT]   or   "
        f"agentfleet plan reject {plan_id} --at review#1 --feedback TEXT"
    )
    assert hint in shown.stdout.splitlines()


def test_tables_piped_show_whole_values_and_no_padding(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    command = "echo " + " ".join(f"word{n}" for n in range(40))  # about 250 characters
    enqueued = piped("--db", url, "enqueue", "--json", "--", command)
    job = json.loads(enqueued.stdout)["id"]
    listed = piped("--db", url, "ls")
    # `ls` shows a command's first 60 characters: all of them, not what 80 columns leave
    assert listed.returncode == 0 and command[:59] + "…" in listed.stdout
    shown = piped("--db", url, "show", str(job))
    assert any(json.dumps(command) in line for line in shown.stdout.splitlines())
    for done in (listed, shown, piped("--db", url, "engines"), piped("--db", url, "workers")):
        assert max(map(len, done.stdout.splitlines())) < 400  # nothing padded to the width


# -- an option of agentfleet itself after the command ------------------------------


def test_db_after_the_command_says_where_it_goes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert piped("--db", url, "init").returncode == 0
    misplaced = piped("ls", "--db", url, "-n", "5")
    assert misplaced.returncode == 2 and misplaced.stdout == ""
    fixed = f"agentfleet --db {url} ls -n 5"
    assert misplaced.stderr == (
        f"error: --db is an option of agentfleet itself: put it before the command: {fixed}\n"
    )
    assert piped(*fixed.split()[1:]).returncode == 0  # what it says to type works
    nested = piped("plan", "show", "3", f"--db={url}")
    assert nested.returncode == 2
    assert f"put it before the command: agentfleet --db={url} plan show 3" in nested.stderr
    unknown = piped("ls", "--no-such-option")
    assert unknown.returncode == 2 and "No such option: --no-such-option" in unknown.stderr
