"""The CLI as users run it: real processes, a real worker, --json and exit codes."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

from tests.worker.helpers import (
    PATIENCE,
    child_env,
    cli,
    pid_alive,
    read_pid,
    spawn_worker,
    stop_process,
    wait_until,
)


def test_follow_cancel_and_exit_codes_through_real_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    env = child_env(AGENTFLEET_DB=url, COLUMNS="200")  # --db from the environment
    assert cli("init", env=env).returncode == 0
    ticking = cli(
        "enqueue", "--json", "--", "for i in 1 2 3; do echo tick $i; sleep 0.3; done", env=env
    )
    assert ticking.returncode == 0, ticking.stderr
    ticking_id = json.loads(ticking.stdout)["id"]
    pid_file = tmp_path / "sleeper.pid"
    sleeper_id = json.loads(
        cli("enqueue", "--json", "--", f"echo $$ > {pid_file}; exec sleep 60", env=env).stdout
    )["id"]
    worker = spawn_worker(
        url, "--concurrency", "2", "--ttl", "3s", "--name", "w1", log=tmp_path / "w1.log"
    )
    try:
        followed = cli("logs", str(ticking_id), "--follow", env=env)
        assert (followed.returncode, followed.stdout) == (0, "tick 1\ntick 2\ntick 3\n")
        pid = wait_until(lambda: read_pid(pid_file), "the sleeper to start")
        cancelled = cli("cancel", str(sleeper_id), env=env)
        assert cancelled.returncode == 0 and "asked it to stop" in cancelled.stdout

        def status() -> str:
            shown = cli("show", str(sleeper_id), "--json", env=env)
            return str(json.loads(shown.stdout)["job"]["status"])

        wait_until(lambda: status() == "cancelled", "the worker to stop the job")
        wait_until(lambda: not pid_alive(pid), "the job's process to be gone")
        again = cli("cancel", str(sleeper_id), "--json", env=env)
        assert again.returncode == 1 and json.loads(again.stdout)["cancelled"] is False
        listed = json.loads(cli("ls", "--json", env=env).stdout)
        assert {(j["id"], j["status"]) for j in listed} == {
            (ticking_id, "succeeded"),
            (sleeper_id, "cancelled"),
        }
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(PATIENCE) == 0
    finally:
        stop_process(worker)
    missing = cli("show", "999", env=env)
    assert missing.returncode == 3 and "job 999 not found" in missing.stderr
    assert cli("enqueue", env=env).returncode == 2
    assert cli("ls", "--status", "nope", env=env).returncode == 2
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 200)
    assert cli("--db", f"sqlite:///{garbage}", "ls", env=env).returncode == 4
    help_text = cli("--help", env=env)
    assert help_text.returncode == 0 and "Exit codes" in help_text.stdout


def test_demo_runs_end_to_end() -> None:
    env = child_env()
    env.pop("COLUMNS", None)  # piped, as a user pipes it to a file: nothing is hard-wrapped
    done = cli("demo", env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    lines = out.splitlines()
    assert "summary" in [line.strip() for line in lines]  # a heading of its own, not ┘summary
    assert re.search(
        r"^SIGKILL worker-\d .* as if its machine died\. .* takes the job\.$", out, re.M
    )
    assert max(map(len, lines)) < 400  # no rule or table padded out to the width
    assert "SIGKILL worker-" in out and "is refused" in out and "LeaseLost" in out
    assert "summary" in out and "who ran what" in out
    assert "expired" in out  # the killed worker's run
    assert "succeeded (resumed its session)" in out  # the docs job failed once, on purpose
    assert "$0.00" in out  # what the stand-in agents cost
    assert "its retry resumed the session; its transcript, as `agentfleet logs`" in out
    assert "▸ Write: " in out  # the resumed run's transcript: its tool call
    # act 2: three agents in worktrees of one repository, one conflict, one rerun, a PR
    assert "merging dollar conflicts in src/settings.py" in out
    assert out.count("dollar: succeeded on agentfleet/job-") == 2  # the rerun merged
    assert "completed; pull request: https://github.example/acme/shop/pull/1" in out
    assert "+def count(items): return len(items)" in out
    assert "+CURRENCY = 'USD'" in out
