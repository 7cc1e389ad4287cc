"""`agentfleet schedule ...` as a person uses it, a real worker firing a due slot, and the
HTTP API and the dashboard listing schedules with their next runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentfleet import JobStatus
from agentfleet.cli import app
from tests.conftest import StoreEnv, make_env
from tests.web.conftest import make_web
from tests.worker.helpers import run_burst


def _cli(url: str, *args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(app, ["--db", url, *args], catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path) -> StoreEnv:
    made = make_env("sqlite", tmp_path / "db", request)
    request.addfinalizer(made.close)
    return made


def _job_file(tmp_path: Path) -> Path:
    path = tmp_path / "triage.md"
    path.write_text(f"---\nengine: shell\n---\necho triaged > {tmp_path / 'out.txt'}\n")
    return path


def test_add_ls_pause_resume_rm(env: StoreEnv, tmp_path: Path) -> None:
    url, job = env.url, _job_file(tmp_path)
    code, out, err = _cli(url, "schedule", "add", "nightly", str(job), "--cron", "0 3 * * *",
                          "--tz", "Europe/Paris")  # fmt: skip
    assert code == 0, err
    assert "schedule nightly added (job" in out and "T03:00+01:00" not in out  # shown in UTC
    code, out, _ = _cli(url, "schedule", "ls", "--json")
    [listed] = json.loads(out)
    assert listed["cron"] == "0 3 * * *" and listed["tz"] == "Europe/Paris"
    assert len(listed["next_runs"]) == 3 and listed["next_runs"][0].endswith("T02:00:00+00:00")
    code, out, _ = _cli(url, "schedule", "pause", "nightly")
    assert code == 0 and "paused" in out
    code, out, _ = _cli(url, "schedule", "ls")
    assert "nightly" in out and "paused" in out
    code, out, _ = _cli(url, "schedule", "resume", "nightly")
    assert code == 0 and "resumed; next:" in out
    code, out, _ = _cli(url, "schedule", "rm", "nightly")
    assert code == 0 and _cli(url, "schedule", "ls")[1].strip() == "no schedules"


def test_bad_input_and_unknown_names_get_clear_errors(env: StoreEnv, tmp_path: Path) -> None:
    url, job = env.url, _job_file(tmp_path)
    code, _, err = _cli(url, "schedule", "add", "x", str(job), "--cron", "every day")
    assert code == 2 and "bad cron expression 'every day'" in err
    code, _, err = _cli(url, "schedule", "pause", "nope")
    assert code == 3 and "no schedule named 'nope'" in err


def test_a_worker_fires_a_due_slot_and_runs_its_job(env: StoreEnv, tmp_path: Path) -> None:
    made = env.fleet.add_schedule("triage", "* * * * *", _job_file(tmp_path))
    run_burst(env.fleet)  # not due yet: nothing fires
    assert env.fleet.list_jobs() == []
    env.move_past(made.next_at)  # the store's clock passes the slot
    run_burst(env.fleet)
    [job] = env.fleet.list_jobs()
    assert job.status is JobStatus.SUCCEEDED
    assert (tmp_path / "out.txt").read_text() == "triaged\n"
    assert env.fleet.schedules.get("triage").last_outcome == f"started job {job.id}"


def test_the_api_and_the_dashboard_list_schedules(env: StoreEnv, tmp_path: Path) -> None:
    env.fleet.add_schedule("triage", "*/10 * * * *", _job_file(tmp_path))
    web = make_web(env)
    body = web.client.get("/api/schedules").json()
    [listed] = body["schedules"]
    assert listed["name"] == "triage" and len(listed["next_runs"]) == 3
    page = web.client.get("/schedules").text
    assert "triage" in page and "*/10 * * * *" in page and "not run yet" in page
