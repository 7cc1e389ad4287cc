"""`agentfleet worker --log-format json`: every line the worker process writes is a JSON
log event named like the server's, from its start to its stop."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import agentfleet
from agentfleet import JobStatus
from agentfleet.logs import EVENT_NAME
from tests.worker.helpers import PATIENCE, child_env, cli, spawn_worker, stop_process, wait_until


def _events(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        assert line.strip(), "an empty line in the log"
        event = json.loads(line)  # every line, stdout and stderr alike, is one JSON object
        assert isinstance(event, dict) and EVENT_NAME.match(event["event"]), line
        events.append(event)
    return events


def test_every_worker_log_line_is_a_named_json_event(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with agentfleet.open(url) as fleet:
        ok = fleet.enqueue("shell", {"cmd": "echo fine"})
        bad = fleet.enqueue("shell", {"cmd": "exit 3"}, max_attempts=1)
        log = tmp_path / "worker.log"  # the worker's stdout and stderr, both
        worker = spawn_worker(url, "--name", "json-w", "--log-format", "json", log=log)
        try:
            wait_until(
                lambda: (
                    {fleet.get_job(ok.id).status, fleet.get_job(bad.id).status}
                    == {JobStatus.SUCCEEDED, JobStatus.FAILED}
                ),
                "both jobs to finish",
            )
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(PATIENCE) == 0
        finally:
            stop_process(worker)
    events = _events(log.read_text())
    names = [e["event"] for e in events]
    for name in (
        "worker.start_completed",
        "job.claim_completed",
        "job.run_succeeded",
        "job.run_failed",
        "worker.stop_requested",
        "worker.stop_completed",
    ):
        assert name in names, names
    assert names[0] == "worker.start_completed" and names[-1] == "worker.stop_completed"
    assert all(e["worker"] == "json-w" for e in events if e["logger"] == "agentfleet.worker")
    claims = {e["job"]: e for e in events if e["event"] == "job.claim_completed"}
    assert set(claims) == {ok.id, bad.id} and claims[ok.id]["epoch"] == 1
    failed = next(e for e in events if e["event"] == "job.run_failed")
    assert failed["job"] == bad.id and failed["error"] == "exit code 3"
    stopped = events[-1]
    assert (stopped["succeeded"], stopped["failed"]) == (1, 1)


def test_a_worker_that_cannot_start_says_why_in_json(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database's folder should be")
    done = cli(
        "--db",
        f"sqlite:///{blocker / 'fleet.db'}",
        "worker",
        "--log-format",
        "json",
        env=child_env(),
    )
    assert done.returncode == 4, done.stderr
    assert done.stdout == ""
    (event,) = _events(done.stderr)
    assert event["event"] == "cli.command_failed" and event["exit_code"] == 4
    assert "store unavailable" in event["message"]
