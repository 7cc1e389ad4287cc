"""A retried agent job resumes its session where the CLI can, and says so when it cannot.

The stand-in CLIs keep their sessions per folder as the real ones do and fail a fresh
session on purpose (`AGENTFLEET_FAKE_AGENT_FAIL=fresh`), so the second attempt succeeds
only if it really resumed the first attempt's session.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentfleet import JobStatus
from agentfleet.store.rules import PREFER_HOST_GRACE
from agentfleet.worker import Worker
from tests.conftest import StoreEnv
from tests.worker.helpers import run_burst, write_shims

# How each CLI is told which session to continue.
RESUME_ARGS = {
    "claude": lambda session: ["--resume", session],
    "gemini": lambda session: ["--resume", session],
    "opencode": lambda session: ["--session", session],
    "codex": lambda session: ["resume", "--json"],  # `codex exec resume ... -- SESSION PROMPT`
}


def _env(tmp_path: Path, *clis: str) -> dict[str, str]:
    env = write_shims(tmp_path / "bin", list(clis), tmp_path / "calls.jsonl")
    env["AGENTFLEET_FAKE_AGENT_SESSIONS"] = str(tmp_path / "sessions")
    env["AGENTFLEET_FAKE_AGENT_FAIL"] = "fresh"
    return env


def _calls(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("engine", sorted(RESUME_ARGS))
def test_a_retry_resumes_the_first_attempts_session(
    sqlite_store: StoreEnv, tmp_path: Path, engine: str
) -> None:
    fleet = sqlite_store.fleet
    env = _env(tmp_path, engine)
    job = fleet.enqueue(
        engine, {"prompt": "write out.txt: hi", "cwd": str(tmp_path), "env": env}, max_attempts=2
    )
    run_burst(fleet, output_every=0.1)
    done = fleet.get_job(job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    first, second = fleet.runs(job.id)
    assert first.error is not None and "the model API timed out" in first.error
    session = first.agent["session_id"] if first.agent else None
    assert session
    assert second.agent is not None
    assert (second.agent["session_id"], second.agent["resumed_session"]) == (session, session)
    assert done.result["agent"]["resumed_session"] == session
    fresh, resumed = _calls(tmp_path)
    argv = resumed["argv"]
    assert isinstance(argv, list)
    expected = RESUME_ARGS[engine](session)
    assert any(argv[i : i + len(expected)] == expected for i in range(len(argv)))
    assert session in argv and session not in fresh["argv"]  # type: ignore[operator]
    prompt = str(resumed["prompt"])
    assert prompt.startswith("Your previous attempt at this task was stopped: ")
    assert "the model API timed out" in prompt and prompt.endswith("write out.txt: hi")


def test_a_retry_on_another_host_starts_afresh_and_says_why(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    env = _env(tmp_path, "claude")
    payload = {"prompt": "write out.txt: hi", "cwd": str(tmp_path), "env": env}
    job = fleet.enqueue("claude", payload, max_attempts=1)
    for host in ("host-a", "host-b"):
        worker = Worker(fleet, burst=True, poll_max=0.2, output_every=0.1)
        worker.host = host
        worker.run(handle_signals=False)
        assert fleet.get_job(job.id).status is JobStatus.FAILED
        if host == "host-a":
            fleet.retry_job(job.id)  # a person retries it; host-a has no slot free for it,
            sqlite_store.pass_time(PREFER_HOST_GRACE + 1)  # so a worker elsewhere takes it
    first, second = fleet.runs(job.id)
    assert (first.host, second.host) == ("host-a", "host-b")
    # A fresh session fails on purpose: the second attempt failed, for it did not resume.
    assert second.error is not None and "the model API timed out" in second.error
    assert second.agent is not None and "resumed_session" not in second.agent
    assert second.agent["fresh_because"] == "the previous session is on host-a, not on host-b"
    assert all("--resume" not in call["argv"] for call in _calls(tmp_path))  # type: ignore[operator]
