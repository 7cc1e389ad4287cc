"""`agentfleet limits ...` and `limit:` in a job file, as a person uses them."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentfleet import JobStatus
from agentfleet.cli import app
from tests.conftest import StoreEnv, make_env
from tests.worker.helpers import run_burst


def _cli(url: str, *args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(app, ["--db", url, *args], catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path) -> StoreEnv:
    made = make_env("sqlite", tmp_path / "db", request)
    request.addfinalizer(made.close)
    return made


def test_set_ls_rm_and_a_job_file_naming_a_limit(env: StoreEnv, tmp_path: Path) -> None:
    url = env.url
    job = tmp_path / "review.md"
    job.write_text("---\nengine: shell\nlimit: claude-api\n---\ntrue\n")
    code, _, err = _cli(url, "submit", str(job))
    assert code == 2 and "limit 'claude-api' is not set" in err
    assert "agentfleet limits set claude-api N" in err
    assert env.fleet.list_jobs() == []  # nothing was written

    code, out, err = _cli(url, "limits", "set", "claude-api", "1")
    assert code == 0 and "at most 1 running at once" in out, err
    for _ in range(3):
        assert _cli(url, "submit", str(job))[0] == 0
    (queued,) = [j for j in env.fleet.list_jobs() if j.id == 1]
    assert queued.payload["limit"] == "claude-api"
    code, out, _ = _cli(url, "show", "1")
    assert code == 0 and "claude-api (its use: agentfleet limits ls)" in out
    code, out, _ = _cli(url, "limits", "ls", "--json")
    assert json.loads(out) == [{"name": "claude-api", "max_running": 1, "running": 0, "queued": 3,
                                "rate": None, "started": 0}]  # fmt: skip
    worker = run_burst(env.fleet, concurrency=3)
    assert worker.stats.succeeded == 3
    assert {j.status for j in env.fleet.list_jobs()} == {JobStatus.SUCCEEDED}
    runs = sorted((r.started_at, r.finished_at) for j in env.fleet.list_jobs()
                  for r in env.fleet.runs(j.id))  # fmt: skip
    assert all(prev[1] <= nxt[0] for prev, nxt in pairwise(runs))  # one at a time

    code, out, _ = _cli(url, "limits", "ls")
    assert "claude-api" in out
    assert _cli(url, "limits", "rm", "claude-api")[0] == 0
    code, _, err = _cli(url, "limits", "rm", "claude-api")
    assert code == 3 and "no limit named 'claude-api'" in err
    assert _cli(url, "limits", "ls")[1].strip() == "no limits"


def test_bad_limits_get_clear_errors(env: StoreEnv, tmp_path: Path) -> None:
    code, _, err = _cli(env.url, "limits", "set", "api", "-1")
    assert code == 2 and "put -- before a negative number" in err
    assert "agentfleet limits set api -- -1" in err
    code, _, err = _cli(env.url, "limits", "set", "api", "--", "-1")
    assert code == 2 and "max_running must be at least 0" in err
    job = tmp_path / "bad.md"
    job.write_text("---\nengine: shell\nlimit: [a, b]\n---\ntrue\n")
    code, _, err = _cli(env.url, "submit", str(job))
    assert code == 2 and "limit" in err


def test_a_rate_from_the_command_line(env: StoreEnv) -> None:
    code, out, err = _cli(env.url, "limits", "set", "gh-api", "5", "--rate", "10/min")
    assert code == 0 and "at most 5 running at once, at most 10/min started" in out, err
    for _ in range(12):
        env.fleet.enqueue("shell", {"cmd": "true"}, limit="gh-api")
    worker = run_burst(env.fleet, concurrency=4)
    assert worker.stats.succeeded == 10  # the other two wait for the window to move on
    code, out, _ = _cli(env.url, "limits", "ls", "--json")
    assert json.loads(out) == [{"name": "gh-api", "max_running": 5, "running": 0, "queued": 2,
                                "rate": "10/min", "started": 10}]  # fmt: skip
    table = _cli(env.url, "limits", "ls")[1]
    assert "10/min" in table and "started in window" in table
    code, _, err = _cli(env.url, "limits", "set", "gh-api", "5", "--rate", "10 a minute")
    assert code == 2 and "write COUNT/UNIT, e.g. 10/min" in err
