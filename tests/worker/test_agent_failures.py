"""Agent attempts that no retry can fix fail at once, with a one-line reason; the rest are
retried. Stand-in CLIs on PATH fail as the real ones do (their words, their exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agentfleet import Fleet, JobStatus
from agentfleet.engines import parse_engine_config
from tests.conftest import StoreEnv
from tests.worker.helpers import run_burst, write_shims

CLIS = ["claude", "codex", "gemini", "aider", "opencode"]
as_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the refusal happens as root only"
)


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def folder(tmp_path: Path, name: str, *, git: bool) -> Path:
    path = tmp_path / name
    path.mkdir()
    if git:
        subprocess.run(["git", "init", "-q"], cwd=path, check=True, timeout=60)
    return path


def enqueue(fleet: Fleet, engine: str, cwd: Path, env: dict[str, str], **payload: Any) -> int:
    body = {"prompt": "write out.txt: hi", "cwd": str(cwd), "env": env, **payload}
    return fleet.enqueue(engine, body, max_attempts=3).id


@pytest.mark.parametrize("engine", CLIS)
def test_not_logged_in_fails_at_once(sqlite_store: StoreEnv, tmp_path: Path, engine: str) -> None:
    fleet = sqlite_store.fleet
    log = tmp_path / "calls.jsonl"
    env = write_shims(tmp_path / "bin", CLIS, log)
    job_id = enqueue(
        fleet,
        engine,
        folder(tmp_path, "repo", git=True),
        {**env, "AGENTFLEET_FAKE_AGENT_FAIL": "auth"},
        yolo=True,
    )
    run_burst(fleet)
    job = fleet.get_job(job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1), job.error
    assert job.error is not None and "\n" not in job.error
    assert job.error.startswith(f"engine {engine!r} is not logged in"), job.error
    assert len(calls(log)) == 1
    assert not (tmp_path / "repo" / "out.txt").exists()


def test_aider_exits_0_when_not_logged_in_and_still_fails(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    env = write_shims(tmp_path / "bin", ["aider"], tmp_path / "calls.jsonl")
    job_id = enqueue(
        fleet,
        "aider",
        folder(tmp_path, "repo", git=True),
        {**env, "AGENTFLEET_FAKE_AGENT_FAIL": "auth"},
    )
    run_burst(fleet)
    (run,) = fleet.runs(job_id)
    assert run.exit_code == 0
    assert "The API provider is not able to authenticate you" in (run.stdout or "")
    assert fleet.get_job(job_id).status is JobStatus.FAILED


OLD_ARGV = """
[engines.old-claude]
argv = ["claude", "-p", "{yolo_flags}", "--", "{prompt}"]
yolo_flags = ["--dangerously-skip-permissions"]
output = "claude"

[engines.old-codex]
argv = ["codex", "exec", "{yolo_flags}", "--", "{prompt}"]
output = "codex"

[engines.old-gemini]
argv = ["gemini", "{yolo_flags}", "--prompt={prompt}"]
yolo_flags = ["--yolo"]
output = "gemini"

[engines.fixed-claude]
argv = ["claude", "-p", "{yolo_flags}", "--", "{prompt}"]
yolo_flags = ["--dangerously-skip-permissions"]
yolo_env = {IS_SANDBOX = "1"}
output = "claude"
"""


def test_what_the_old_commands_ran_into_fails_at_once(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    """The argv before the fix: codex outside a git repository, gemini in a folder it does
    not trust. Each fails on its first attempt with the CLI's own reason."""
    fleet = sqlite_store.fleet
    env = write_shims(tmp_path / "bin", CLIS, tmp_path / "calls.jsonl")
    plain = folder(tmp_path, "plain", git=False)
    env["GIT_CEILING_DIRECTORIES"] = str(tmp_path)
    jobs = {
        "old-codex": enqueue(fleet, "old-codex", plain, env),
        "old-gemini": enqueue(fleet, "old-gemini", plain, env, yolo=True),
    }
    run_burst(fleet, engines=parse_engine_config(OLD_ARGV))
    expected = {
        "old-codex": "refused to run outside a git repository",
        "old-gemini": "refused to run in a folder it does not trust",
    }
    for name, job_id in jobs.items():
        job = fleet.get_job(job_id)
        assert (job.status, job.attempts) == (JobStatus.FAILED, 1), (name, job.error)
        assert expected[name] in (job.error or ""), job.error
        assert "\n" not in (job.error or "")
    assert "(exit code 55)" in (fleet.get_job(jobs["old-gemini"]).error or "")


@as_root
def test_claude_skipping_permissions_as_root_needs_is_sandbox(
    sqlite_store: StoreEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IS_SANDBOX", "yes")  # what some containers set: claude wants "1"
    fleet = sqlite_store.fleet
    log = tmp_path / "calls.jsonl"
    env = write_shims(tmp_path / "bin", ["claude"], log)
    repo = folder(tmp_path, "repo", git=True)
    refused = enqueue(fleet, "old-claude", repo, env, yolo=True)
    fixed = enqueue(fleet, "fixed-claude", repo, env, yolo=True)
    run_burst(fleet, engines=parse_engine_config(OLD_ARGV))
    job = fleet.get_job(refused)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert "refused --dangerously-skip-permissions as root" in (job.error or "")
    assert fleet.get_job(fixed).status is JobStatus.SUCCEEDED
    assert [c["env"].get("IS_SANDBOX") for c in calls(log)] == ["yes", "1"]


@pytest.mark.parametrize("yolo", [False, True], ids=["yolo-false", "yolo-true"])
def test_the_builtin_engines_run_where_the_old_ones_were_refused(
    sqlite_store: StoreEnv, tmp_path: Path, yolo: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a git repository, in a folder no CLI trusts, as whoever runs the tests (root
    on CI): every built-in engine's stand-in does the job."""
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    fleet = sqlite_store.fleet
    log = tmp_path / "calls.jsonl"
    env = write_shims(tmp_path / "bin", CLIS, log)
    env["GIT_CEILING_DIRECTORIES"] = str(tmp_path)
    jobs = {}
    for engine in CLIS:
        work = folder(tmp_path, engine, git=False)
        jobs[engine] = enqueue(fleet, engine, work, env, yolo=yolo)
    run_burst(fleet, concurrency=len(CLIS))
    for engine, job_id in jobs.items():
        job = fleet.get_job(job_id)
        assert job.status is JobStatus.SUCCEEDED, (engine, job.error)
        assert (tmp_path / engine / "out.txt").read_text() == "hi\n"
    seen = {c["persona"]: c for c in calls(log)}
    assert set(seen) == set(CLIS)
    assert seen["claude"]["env"].get("IS_SANDBOX") == ("1" if yolo else None)
    assert ("--skip-git-repo-check" in seen["codex"]["argv"]) is True
    assert ("--skip-trust" in seen["gemini"]["argv"]) is True


def test_a_failure_a_retry_may_fix_is_retried(sqlite_store: StoreEnv, tmp_path: Path) -> None:
    fleet = sqlite_store.fleet
    log = tmp_path / "calls.jsonl"
    env = write_shims(tmp_path / "bin", ["claude"], log)
    job_id = enqueue(
        fleet,
        "claude",
        folder(tmp_path, "repo", git=True),
        {**env, "AGENTFLEET_FAKE_AGENT_EXIT": "3"},
    )
    run_burst(fleet)
    job = fleet.get_job(job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 3)
    assert job.error == "exit code 3: failing on purpose with exit code 3"
    assert len(calls(log)) == 3


def test_an_agent_job_without_a_timeout_gets_the_default(
    sqlite_store: StoreEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agentfleet.engines

    monkeypatch.setattr(agentfleet.engines, "DEFAULT_AGENT_TIMEOUT", 0.5)
    fleet = sqlite_store.fleet
    env = write_shims(tmp_path / "bin", ["claude"], tmp_path / "calls.jsonl")
    repo = folder(tmp_path, "repo", git=True)
    slow = {**env, "AGENTFLEET_FAKE_AGENT_SLEEP": "30"}
    defaulted = fleet.enqueue(
        "claude", {"prompt": "x", "cwd": str(repo), "env": slow}, max_attempts=1
    )
    own = fleet.enqueue(
        "claude",
        {"prompt": "y", "cwd": str(repo), "env": {**env, "AGENTFLEET_FAKE_AGENT_SLEEP": "1"}},
        max_attempts=1,
        timeout=20,
    )
    shell = fleet.enqueue("shell", {"cmd": "sleep 1"}, max_attempts=1)
    run_burst(fleet, concurrency=3, kill_grace=0.5)
    assert (fleet.get_job(defaulted.id).status, fleet.get_job(defaulted.id).error) == (
        JobStatus.FAILED,
        "timeout",
    )
    assert fleet.get_job(own.id).status is JobStatus.SUCCEEDED  # its own timeout wins
    assert fleet.get_job(shell.id).status is JobStatus.SUCCEEDED  # no default for shell


def test_aider_waiting_for_a_browser_login_is_stopped_at_once(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    """With no model and no key aider offers a browser login and waits minutes for it:
    the run is stopped as soon as it says so, and fails for good."""
    import time

    fleet = sqlite_store.fleet
    env = write_shims(tmp_path / "bin", ["aider"], tmp_path / "calls.jsonl")
    job_id = enqueue(
        fleet,
        "aider",
        folder(tmp_path, "repo", git=True),
        {**env, "AGENTFLEET_FAKE_AGENT_FAIL": "no-model"},
    )
    started = time.monotonic()
    run_burst(fleet, kill_grace=1)
    assert time.monotonic() - started < 60  # not the five minutes it would wait
    job = fleet.get_job(job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.error == (
        "engine 'aider' is not logged in (or its API key is invalid) on this worker: "
        "No LLM model was specified and no API keys were provided."
    )
