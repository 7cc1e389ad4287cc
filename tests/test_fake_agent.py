from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import agentfleet.fake_agent as fake_agent
from agentfleet.engines import AGENT_ENGINES, build_agent_command, resolve_executable
from agentfleet.fake_agent import ENV_EXIT, ENV_LOG, ENV_SLEEP, NOTES_FILE, main, parse_args

SRC = str(Path(fake_agent.__file__).resolve().parents[1])
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    if shutil.which("git"):
        git(path, "init", "-q")
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "agent-log.jsonl"


def run_agent(
    cwd: Path, *args: str, log: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLEET_FAKE_AGENT")}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, full.get("PYTHONPATH")]))
    if log is not None:
        full[ENV_LOG] = str(log)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agentfleet.fake_agent", *args],
        cwd=cwd,
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


@needs_git
def test_writes_file_commits_and_logs(repo: Path, log: Path) -> None:
    argv = ["-p", "--model", "opus", "--dangerously-skip-permissions", "--", "write hello.txt: Hi!"]
    done = run_agent(repo, *argv, log=log, env={"IS_SANDBOX": "1"})
    assert done.returncode == 0, done.stderr
    assert (repo / "hello.txt").read_text(encoding="utf-8") == "Hi!\n"
    assert git(repo, "log", "--format=%an <%ae>|%cn|%s") == (
        "agentfleet fake agent <fake-agent@agentfleet.invalid>|agentfleet fake agent|"
        "fake-agent: write hello.txt: Hi!"
    )
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "show", "--name-only", "--format=") == "hello.txt"
    (record,) = records(log)
    env = record.pop("env")
    assert record == {
        "argv": argv,
        "cwd": str(repo.resolve()),
        "prompt": "write hello.txt: Hi!",
        "model": "opus",
        "yolo": True,
        "persona": "claude",
    }
    assert isinstance(env, dict) and env["IS_SANDBOX"] == "1"
    assert "fake-agent: starting (model=opus, yolo=true)" in done.stdout
    assert "fake-agent: edited hello.txt" in done.stdout
    assert "fake-agent: committed " in done.stdout
    assert done.stdout.rstrip().endswith("fake-agent: done")


@needs_git
def test_several_writes_in_subdirectories(repo: Path) -> None:
    prompt = "Please:\nwrite docs/a.md: # Title\nthen write b.txt:  two  words  \n"
    done = run_agent(repo, "-p", prompt)
    assert done.returncode == 0, done.stderr
    assert (repo / "docs" / "a.md").read_text(encoding="utf-8") == "# Title\n"
    assert (repo / "b.txt").read_text(encoding="utf-8") == "two  words\n"
    assert git(repo, "log", "--format=%s") == "fake-agent: Please:"


@needs_git
def test_appends_notes_and_commits_each_time(repo: Path) -> None:
    assert run_agent(repo, "exec", "first note").returncode == 0
    assert run_agent(repo, "--message", "second note").returncode == 0
    notes = (repo / NOTES_FILE).read_text(encoding="utf-8")
    assert notes == "first note\nsecond note\n"
    assert git(repo, "log", "--format=%s").splitlines() == [
        "fake-agent: second note",
        "fake-agent: first note",
    ]


@needs_git
def test_nothing_to_commit_is_not_an_error(repo: Path) -> None:
    assert run_agent(repo, "-p", "write same.txt: x").returncode == 0
    again = run_agent(repo, "-p", "write same.txt: x")
    assert again.returncode == 0, again.stderr
    assert "nothing changed; not committing" in again.stdout
    assert len(git(repo, "log", "--format=%h").splitlines()) == 1


def test_outside_git_edits_without_committing(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    done = run_agent(plain, "run", "jot this down", env={"GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert (plain / NOTES_FILE).read_text(encoding="utf-8") == "jot this down\n"
    assert "not committing" in done.stdout


def test_forced_exit_code_fails_before_editing(repo: Path, log: Path) -> None:
    done = run_agent(repo, "-p", "write x.txt: y", log=log, env={ENV_EXIT: "3"})
    assert done.returncode == 3
    assert not (repo / "x.txt").exists()
    assert "failing on purpose with exit code 3" in done.stdout
    assert records(log)[0]["argv"] == ["-p", "write x.txt: y"]


def test_forced_exit_zero_behaves_normally(repo: Path) -> None:
    assert run_agent(repo, "-p", "hello", env={ENV_EXIT: "0"}).returncode == 0
    assert (repo / NOTES_FILE).exists()


def test_sleep_between_steps(repo: Path) -> None:
    started = time.monotonic()
    done = run_agent(repo, "-p", "slow", env={ENV_SLEEP: "150ms"})
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    ("env", "fragment"),
    [({ENV_SLEEP: "soon"}, "invalid duration"), ({ENV_EXIT: "boom"}, "must be an integer")],
)
def test_bad_knobs_are_usage_errors(repo: Path, env: dict[str, str], fragment: str) -> None:
    done = run_agent(repo, "-p", "x", env=env)
    assert done.returncode == 2
    assert fragment in done.stdout
    assert not (repo / NOTES_FILE).exists()


def test_no_prompt_is_a_usage_error(repo: Path) -> None:
    done = run_agent(repo, "--model", "m")
    assert done.returncode == 2
    assert "no prompt given" in done.stdout


def test_refuses_to_write_outside_the_working_directory(repo: Path) -> None:
    done = run_agent(repo, "-p", "write ../escape.txt: nope")
    assert done.returncode == 1
    assert "outside the working directory" in done.stdout
    assert not (repo.parent / "escape.txt").exists()


# -- argument parsing ----------------------------------------------------------------------


@pytest.mark.parametrize("engine", sorted(AGENT_ENGINES))
@pytest.mark.parametrize("yolo", [False, True])
def test_understands_every_builtin_engine(engine: str, yolo: bool) -> None:
    prompt = "- write a.txt: b\n--not-a-flag"
    argv = build_agent_command(engine, {"prompt": prompt, "model": "m1", "yolo": yolo}).argv
    inv = parse_args(argv[1:])
    assert (inv.prompt, inv.model, inv.yolo) == (prompt, "m1", yolo)


@pytest.mark.parametrize(
    ("argv", "prompt", "model", "yolo"),
    [
        (["-p", "hi"], "hi", None, False),
        (["-p", "--model", "x", "hi", "there"], "hi there", "x", False),
        (["--print", "--", "-dash"], "-dash", None, False),
        (["exec", "-m", "o3", "fix", "it"], "fix it", "o3", False),
        (["run", "--model=a/b", "go"], "go", "a/b", False),
        (["--message", "msg", "--suggest-shell-commands"], "msg", None, True),
        (["--message", "msg", "--no-suggest-shell-commands"], "msg", None, False),
        (["--approval-mode=yolo", "--prompt=p"], "p", None, True),
        (["--permission-mode", "normal", "-p", "--", "x"], "x", None, False),
        (["--unknown", "-p", "x"], "x", None, False),
        (["exec"], None, None, False),
        ([], None, None, False),
    ],
)
def test_parse_args(argv: list[str], prompt: str | None, model: str | None, yolo: bool) -> None:
    inv = parse_args(argv)
    assert (inv.prompt, inv.model, inv.yolo) == (prompt, model, yolo)


def test_parse_args_keeps_unknown_flags_aside() -> None:
    assert parse_args(["--verbose", "-p", "x"]).ignored == ["--verbose"]


def test_main_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for name in (ENV_LOG, ENV_SLEEP, ENV_EXIT):
        monkeypatch.delenv(name, raising=False)
    assert main(["-p", "write out.txt: in-process"]) == 0
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "in-process\n"


# -- as a stand-in for a real agent CLI ----------------------------------------------------


@needs_git
@pytest.mark.skipif(sys.platform == "win32", reason="uses an executable script on PATH")
def test_stands_in_for_claude_on_path(tmp_path: Path, repo: Path, log: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "claude"
    shim.write_text(
        f'#!/bin/sh\nPYTHONPATH="{SRC}" exec "{sys.executable}" -m agentfleet.fake_agent "$@"\n',
        encoding="utf-8",
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    payload = {
        "prompt": "write result.md: done by claude",
        "yolo": True,
        "cwd": str(repo),
        "env": {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", ENV_LOG: str(log)},
    }
    command = build_agent_command("claude", payload)
    program = resolve_executable(command.argv, command.full_env(), engine="claude")
    done = subprocess.run(
        [program, *command.argv[1:]],
        cwd=command.cwd,
        env=command.full_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (repo / "result.md").read_text(encoding="utf-8") == "done by claude\n"
    assert records(log)[0]["argv"] == command.argv[1:]
    assert git(repo, "log", "--format=%s") == "fake-agent: write result.md: done by claude"


# -- as each real CLI: refusals and output formats ------------------------------------------

as_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the refusal happens as root only"
)


@as_root
def test_refuses_to_skip_permissions_as_root_like_claude(repo: Path) -> None:
    argv = ["-p", "--dangerously-skip-permissions", "--", "write a.txt: b"]
    refused = run_agent(repo, *argv)
    assert refused.returncode == 1
    assert "--dangerously-skip-permissions cannot be used with root/sudo" in refused.stderr
    assert not (repo / "a.txt").exists()
    assert run_agent(repo, *argv, env={"IS_SANDBOX": "1"}).returncode == 0


def test_refuses_to_run_outside_git_like_codex(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    outside = {"GIT_CEILING_DIRECTORIES": str(tmp_path)}
    refused = run_agent(plain, "exec", "--", "write a.txt: b", env=outside)
    assert refused.returncode == 1
    assert "Not inside a trusted directory and --skip-git-repo-check" in refused.stderr
    done = run_agent(plain, "exec", "--skip-git-repo-check", "--", "write a.txt: b", env=outside)
    assert done.returncode == 0, done.stderr


def test_refuses_an_untrusted_folder_like_gemini(repo: Path) -> None:
    refused = run_agent(repo, "--yolo", "--prompt=write a.txt: b")
    assert refused.returncode == 55
    assert "not running in a trusted directory" in refused.stderr
    assert run_agent(repo, "--skip-trust", "--yolo", "--prompt=write a.txt: b").returncode == 0
    trusted = run_agent(
        repo, "--yolo", "--prompt=write c.txt: d", env={"GEMINI_CLI_TRUST_WORKSPACE": "true"}
    )
    assert trusted.returncode == 0


def test_plays_the_cli_it_is_told_to(repo: Path, log: Path) -> None:
    assert run_agent(repo, "go", "x", log=log, env={fake_agent.ENV_AS: "codex"}).returncode == 0
    assert records(log)[0]["persona"] == "codex"
    bad = run_agent(repo, "go", "x", env={fake_agent.ENV_AS: "cobol"})
    assert bad.returncode == 2 and "must be one of" in bad.stdout
