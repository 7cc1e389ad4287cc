"""The stand-in agent speaks each CLI's machine-readable output: session id, usage, cost, a
final message, and the CLI's own error when it is not logged in. Read back with the same
readers that read the real CLIs (tests/fixtures/agents/ holds their recorded output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentfleet.agents.failures import diagnose
from agentfleet.agents.streams import read_output
from agentfleet.fake_agent import ENV_FAIL

SRC = str(Path(__file__).resolve().parents[2] / "src")
P = "write hello.txt: Hi!"
STREAM_ARGV = {
    "claude": ["-p", "--output-format", "stream-json", "--verbose", "--", P],
    "codex": ["exec", "--json", "--skip-git-repo-check", "--", P],
    "gemini": ["--skip-trust", "--output-format", "stream-json", f"--prompt={P}"],
    "opencode": ["run", "--format", "json", "--", P],
    "aider": ["--no-pretty", f"--message={P}"],
}
COSTS = {"claude", "opencode", "aider"}  # codex and gemini report no cost


def run(cwd: Path, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLEET_")}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, full.get("PYTHONPATH")]))
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "agentfleet.fake_agent", *argv],
        cwd=cwd,
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    return tmp_path


@pytest.mark.parametrize("cli", sorted(STREAM_ARGV))
def test_speaks_the_cli_and_reads_back(repo: Path, cli: str) -> None:
    done = run(repo, STREAM_ARGV[cli])
    assert done.returncode == 0, done.stderr
    assert (repo / "hello.txt").read_text() == "Hi!\n"
    if cli != "aider":
        events = [json.loads(line) for line in done.stdout.splitlines()]  # JSON lines only
        assert events
    assert "fake-agent: done" in done.stderr  # its own notes stay out of the CLI's stdout
    summary = read_output(cli, cli, done.stdout)
    assert summary.is_error is False and summary.error is None
    assert summary.text is not None and summary.text.startswith("Edited hello.txt and committed ")
    assert (summary.input_tokens or 0) > 1000 and (summary.output_tokens or 0) > 0
    assert (summary.cost_usd is not None and summary.cost_usd > 0) is (cli in COSTS)
    assert (summary.session_id is not None) is (cli != "aider")
    assert summary.turns is not None and summary.turns >= 1
    assert diagnose(cli, cli, done.returncode, done.stdout, done.stderr, summary) is None


@pytest.mark.parametrize("cli", sorted(STREAM_ARGV))
def test_not_logged_in_as_the_real_cli_says_it(repo: Path, cli: str) -> None:
    done = run(repo, STREAM_ARGV[cli], **{ENV_FAIL: "auth"})
    assert done.returncode == {"gemini": 41, "aider": 0}.get(cli, 1)
    assert not (repo / "hello.txt").exists()
    summary = read_output(cli, cli, done.stdout)
    assert summary.is_error is (cli != "gemini")  # gemini says so on stderr, by exit code 41
    failure = diagnose(cli, cli, done.returncode, done.stdout, done.stderr, summary)
    assert failure is not None and failure.permanent, failure
    assert failure.reason.startswith(f"engine {cli!r} is not logged in"), failure.reason


def test_without_a_stream_flag_it_speaks_plain_text(repo: Path) -> None:
    done = run(repo, ["-p", "--", P])
    assert done.stdout.splitlines()[0].startswith("fake-agent: starting")
    assert done.stdout.rstrip().endswith("fake-agent: done")


@pytest.mark.parametrize("cli", ["claude", "codex", "opencode"])
def test_a_forced_exit_is_an_error_event_too(repo: Path, cli: str) -> None:
    done = run(repo, STREAM_ARGV[cli], AGENTFLEET_FAKE_AGENT_EXIT="7")
    assert done.returncode == 7
    summary = read_output(cli, cli, done.stdout)
    assert summary.is_error and "failing on purpose" in (summary.error or "")
    failure = diagnose(cli, cli, 7, done.stdout, done.stderr, summary)
    assert failure is not None and not failure.permanent
    assert failure.reason.startswith("exit code 7: ")
    assert failure.reason.endswith("failing on purpose with exit code 7")
