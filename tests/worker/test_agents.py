"""Agent engines run by the worker: fake claude, codex and gemini get the exact argv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentfleet import JobStatus
from agentfleet.engines import parse_engine_config
from tests.conftest import StoreEnv
from tests.worker.helpers import run_burst, write_shims

PROMPT = "- fix the flaky test"  # starts with a dash: must stay an operand
CLAUDE = ["-p", "--output-format", "stream-json", "--verbose"]
CODEX = ["exec", "--json", "--skip-git-repo-check"]
GEMINI = ["--skip-trust", "--output-format", "stream-json"]
EXPECTED = {
    ("claude", False): [*CLAUDE, "--model", "m1", "--", PROMPT],
    ("claude", True): [*CLAUDE, "--model", "m1", "--dangerously-skip-permissions", "--", PROMPT],
    ("codex", False): [*CODEX, "--model", "m1", "--", PROMPT],
    ("codex", True): [
        *CODEX,
        "--model",
        "m1",
        "--dangerously-bypass-approvals-and-sandbox",
        "--",
        PROMPT,
    ],
    ("gemini", False): [*GEMINI, "--model", "m1", f"--prompt={PROMPT}"],
    ("gemini", True): [*GEMINI, "--model", "m1", "--yolo", f"--prompt={PROMPT}"],
    ("house", False): ["go", PROMPT],
    ("house", True): ["go", "--yolo", PROMPT],
}
CUSTOM = """
[engines.house]
argv = ["house-agent", "go", "{yolo_flags}", "{prompt}"]
yolo_flags = ["--yolo"]
"""


@pytest.mark.parametrize("yolo", [False, True], ids=["yolo-false", "yolo-true"])
def test_agents_receive_exactly_the_expected_argv(
    sqlite_store: StoreEnv, tmp_path: Path, yolo: bool
) -> None:
    fleet = sqlite_store.fleet
    log = tmp_path / "calls.jsonl"
    env = write_shims(tmp_path / "bin", ["claude", "codex", "gemini", "house-agent"], log)
    workdir = tmp_path / "work"
    workdir.mkdir()
    jobs = {
        engine: fleet.enqueue(
            engine,
            {
                "prompt": PROMPT,
                "yolo": yolo,
                "model": None if engine == "house" else "m1",
                "cwd": str(workdir),
                "env": env,
            },
        )
        for engine in ("claude", "codex", "gemini", "house")
    }
    run_burst(fleet, concurrency=4, engines=parse_engine_config(CUSTOM))
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(c["argv"] for c in calls) == sorted(EXPECTED[(engine, yolo)] for engine in jobs)
    assert {c["cwd"] for c in calls} == {str(workdir)}
    assert {c["yolo"] for c in calls} == {yolo}
    for engine, job in jobs.items():
        done = fleet.get_job(job.id)
        assert done.status is JobStatus.SUCCEEDED, (engine, done.error)
        seen = (tmp_path / "bin" / f"env.{job.id}").read_text().split()
        assert seen == [str(job.id), "1", "1"]  # no AGENTFLEET_DB: jobs get no credentials
        run = fleet.runs(job.id)[0]
        # the stand-ins of claude, codex and gemini speak their stream; the house agent text
        assert "fake-agent: done" in ((run.stderr if engine != "house" else run.stdout) or "")


STREAMING = ["claude", "codex", "gemini", "opencode"]


def test_the_result_sums_up_what_the_agent_said(sqlite_store: StoreEnv, tmp_path: Path) -> None:
    """Each built-in CLI's stand-in speaks its stream (aider its text); the worker reads it
    as it arrives, keeps it raw as the run's stdout, and sums it up in the result."""
    import subprocess

    fleet = sqlite_store.fleet
    clis = [*STREAMING, "aider"]
    env = write_shims(tmp_path / "bin", clis, tmp_path / "calls.jsonl")
    jobs = {}
    for engine in clis:
        repo = tmp_path / engine
        repo.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True, timeout=60)
        payload = {"prompt": "write out.txt: hi", "cwd": str(repo), "env": env, "yolo": True}
        jobs[engine] = fleet.enqueue(engine, payload).id
    run_burst(fleet, concurrency=len(clis))
    for engine, job_id in jobs.items():
        job = fleet.get_job(job_id)
        assert job.status is JobStatus.SUCCEEDED, (engine, job.error)
        agent = job.result["agent"]
        assert job.result["exit_code"] == 0
        assert agent["engine"] == engine and agent["is_error"] is False
        assert agent["text"].startswith("Edited out.txt and committed "), agent
        assert agent["input_tokens"] > 1000 and agent["output_tokens"] > 0 and agent["turns"] >= 1
        assert (agent["session_id"] is None) is (engine == "aider")
        assert (agent["cost_usd"] is None) is (engine in ("codex", "gemini"))
        stdout = fleet.runs(job_id)[0].stdout or ""
        if engine in STREAMING:
            events = [json.loads(line) for line in stdout.splitlines()]
            assert len(events) >= 3  # the raw stream, every line an event
        else:
            assert "Tokens: " in stdout


def test_an_error_the_agent_reported_fails_the_attempt_even_at_exit_0(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    log = tmp_path / "calls.jsonl"
    env = write_shims(tmp_path / "bin", ["claude"], log)
    # A wrapper that hides claude's exit code: only its stream tells.
    wrapper = tmp_path / "bin" / "claude-wrapper"
    wrapper.write_text('#!/bin/sh\nclaude "$@"\nexit 0\n')
    wrapper.chmod(0o755)
    config = parse_engine_config(
        '[engines.wrapped]\nargv = ["claude-wrapper", "-p", "--output-format", "stream-json",'
        ' "--verbose", "--", "{prompt}"]\noutput = "claude"\n'
    )
    job = fleet.enqueue(
        "wrapped",
        {"prompt": "x", "cwd": str(tmp_path), "env": {**env, "AGENTFLEET_FAKE_AGENT_EXIT": "4"}},
        max_attempts=2,
    )
    run_burst(fleet, engines=config)
    done = fleet.get_job(job.id)
    assert (done.status, done.attempts) == (JobStatus.FAILED, 2)  # retried: it may pass
    assert done.error == (
        "engine 'wrapped' reported an error although it exited 0: "
        "failing on purpose with exit code 4"
    )
