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
EXPECTED = {
    ("claude", False): ["-p", "--model", "m1", "--", PROMPT],
    ("claude", True): ["-p", "--model", "m1", "--dangerously-skip-permissions", "--", PROMPT],
    ("codex", False): ["exec", "--skip-git-repo-check", "--model", "m1", "--", PROMPT],
    ("codex", True): [
        "exec",
        "--skip-git-repo-check",
        "--model",
        "m1",
        "--dangerously-bypass-approvals-and-sandbox",
        "--",
        PROMPT,
    ],
    ("gemini", False): ["--skip-trust", "--model", "m1", f"--prompt={PROMPT}"],
    ("gemini", True): ["--skip-trust", "--model", "m1", "--yolo", f"--prompt={PROMPT}"],
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
        assert "fake-agent: done" in (fleet.runs(job.id)[0].stdout or "")
