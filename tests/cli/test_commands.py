"""Every command in-process: output, --json and the documented exit codes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import typer

import agentfleet
from agentfleet.cli import ExitCode, app
from tests.cli.conftest import Invoke


def test_help_documents_exit_codes_and_an_example_for_every_option() -> None:
    command = typer.main.get_command(app)
    assert "Exit codes" in (command.epilog or "")
    ctx = typer.Context(command)
    subcommands = command.list_commands(ctx)  # type: ignore[attr-defined]
    assert set(subcommands) >= {
        "init",
        "submit",
        "enqueue",
        "worker",
        "ls",
        "show",
        "logs",
        "cancel",
        "retry",
        "reap",
        "demo",
    }
    for name in subcommands:
        sub = command.get_command(ctx, name)  # type: ignore[attr-defined]
        assert "Example" in (sub.help or ""), name
        for param in sub.params:
            if param.name != "help" and param.param_type_name == "option":
                assert "e.g." in (param.help or ""), (name, param.name)
    for param in command.params:
        if param.name != "help":
            assert "e.g." in (getattr(param, "help", None) or ""), param.name


def test_exit_codes_are_the_documented_numbers() -> None:
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3, 4]


def test_init_enqueue_ls_show(run: Invoke) -> None:
    assert run("init").code == 0
    assert run("init", "--json").json()["schema_version"] >= 1
    shell = run(
        "enqueue",
        "--queue",
        "builds",
        "--priority",
        "5",
        "--lock",
        "repo",
        "--timeout",
        "90s",
        "--max-attempts",
        "4",
        "--label",
        "nightly",
        "--env",
        "A=1",
        "--cwd",
        "/tmp",
        "--json",
        "--",
        "echo",
        "hi",
    ).json()
    assert (shell["engine"], shell["queue"], shell["priority"], shell["lock"]) == (
        "shell",
        "builds",
        5,
        "repo",
    )
    assert (shell["timeout"], shell["max_attempts"], shell["labels"]) == (90.0, 4, ["nightly"])
    assert shell["payload"] == {
        "cmd": ["echo", "hi"],
        "cwd": "/tmp",
        "env": {"A": "***"},  # values are never shown, names are
        "labels": ["nightly"],
    }
    one = run("enqueue", "--json", "--", "echo hi | tr a-z A-Z").json()
    assert one["payload"] == {"cmd": "echo hi | tr a-z A-Z"}
    py = run(
        "enqueue", "--python", "os.path:join", "--args", '["a", "b"]', "--kwargs", "{}", "--json"
    ).json()
    assert (py["engine"], py["payload"]["args"]) == ("python", ["a", "b"])
    listed = run("ls", "--json").json()
    assert [j["id"] for j in listed] == [py["id"], one["id"], shell["id"]]
    assert [j["id"] for j in run("ls", "--label", "nightly", "--json").json()] == [shell["id"]]
    assert [j["id"] for j in run("ls", "-e", "python", "--json").json()] == [py["id"]]
    assert [j["id"] for j in run("ls", "-q", "builds", "-s", "queued", "--json").json()] == [
        shell["id"]
    ]
    assert len(run("ls", "-n", "1", "--json").json()) == 1
    table = run("ls")
    assert table.code == 0 and "echo hi | tr a-z A-Z" in table.out and "nightly" in table.out
    shown = run("show", str(shell["id"]), "--json").json()
    assert shown["job"]["id"] == shell["id"] and shown["runs"] == []
    assert shown["job"]["summary"] == "echo hi" and shown["job"]["labels"] == ["nightly"]
    assert [e["kind"] for e in shown["events"]] == ["enqueued"]
    assert "events" in run("show", str(shell["id"])).out


def test_worker_burst_then_logs_and_show(run: Invoke, tmp_path: Path) -> None:
    job = run("enqueue", "--json", "--", "echo out; echo err >&2; exit 0").json()
    failing = run("enqueue", "--max-attempts", "1", "--json", "--", "exit 7").json()
    worker = run("worker", "--burst", "--name", "cli-w", "--ttl", "5s", "--quiet")
    assert worker.code == 0, worker.err
    logs = run("logs", str(job["id"]))
    assert (logs.code, logs.out, logs.err) == (0, "out\n", "err\n")
    as_json = run("logs", str(job["id"]), "--json").json()
    assert as_json["run"]["number"] == 1 and as_json["run"]["stdout"] == "out\n"
    assert as_json["run"]["exit_code"] == 0 and as_json["run"]["worker"] == "cli-w"
    followed = run("logs", str(job["id"]), "--follow")
    assert (followed.code, followed.out) == (0, "out\n")
    shown = run("show", str(failing["id"]), "--json").json()
    assert shown["job"]["status"] == "failed" and shown["job"]["error"] == "exit code 7"
    assert [(r["number"], r["exit_code"]) for r in shown["runs"]] == [(1, 7)]
    assert shown["runs"][0]["duration"] >= 0
    assert run("logs", str(job["id"]), "--run", "2").code == ExitCode.NOT_FOUND
    assert run("logs", str(job["id"]), "--json", "--follow").code == ExitCode.BAD_INPUT
    workers = run("workers", "--json").json()
    assert [(w["name"], w["stopped_at"] is not None) for w in workers] == [("cli-w", True)]
    assert (workers[0]["state"], workers[0]["alive"]) == ("stopped", False)
    assert "stopped" in run("workers").out


def test_cancel_retry_reap_and_refusals(run: Invoke, db: str) -> None:
    job = run("enqueue", "--json", "--", "true").json()
    assert run("cancel", str(job["id"])).code == 0
    again = run("cancel", str(job["id"]), "--json")
    assert again.code == ExitCode.REFUSED
    assert again.json() == {
        "job": job["id"],
        "cancelled": False,
        "status": "cancelled",
        "cancel_requested": False,
    }
    assert (
        "nothing to cancel: job 1 has already ended (cancelled)"
        in run("cancel", str(job["id"])).err
    )
    retried = run("retry", str(job["id"]), "--json").json()
    assert retried["status"] == "queued"
    refused = run("retry", str(job["id"]))
    assert refused.code == ExitCode.REFUSED and "is queued: it has not run yet" in refused.err
    with agentfleet.open(db) as fleet:
        assert fleet.claim(job["id"], worker="gone", ttl=0.01) is not None
        import time

        time.sleep(0.05)
    assert run("reap", "--json").json() == [{"job": job["id"], "status": "queued"}]
    assert run("reap").out.strip() == "no expired leases"


@pytest.mark.parametrize(
    "args",
    [
        ["show", "999"],
        ["logs", "999"],
        ["cancel", "999"],
        ["retry", "999"],
    ],
)
def test_unknown_jobs_exit_3(run: Invoke, args: list[str]) -> None:
    result = run(*args)
    assert result.code == ExitCode.NOT_FOUND and "job 999 not found" in result.err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["enqueue"], "nothing to run"),
        (["enqueue", "--python", "m:f", "--", "echo"], "not both"),
        (["enqueue", "--timeout", "soon", "--", "true"], "--timeout: invalid duration"),
        (["enqueue", "--args", "[1]", "--", "true"], "apply to --python"),
        (["enqueue", "--python", "m:f", "--args", "{}"], "must be a JSON list"),
        (["enqueue", "--python", "m:f", "--kwargs", "nope"], "not valid JSON"),
        (["enqueue", "--env", "NOEQUALS", "--", "true"], "NAME=VALUE"),
        (["ls", "--status", "sleeping"], "unknown status"),
        (["worker", "--ttl", "0"], "must be greater than zero"),
        (["worker", "--queues", ","], "names no queue"),
        (["worker", "--import", "no_such_module_xyz"], "No module named"),
        (["ls", "--limit", "0"], ""),
        (["show", "abc"], ""),
    ],
)
def test_bad_input_exits_2(run: Invoke, args: list[str], fragment: str) -> None:
    result = run(*args)
    assert result.code == ExitCode.BAD_INPUT
    assert fragment in result.err


def test_store_unavailable_exits_4(run: Invoke, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    result = run("ls", db_url=f"sqlite:///{garbage}")
    assert result.code == ExitCode.STORE_UNAVAILABLE and "store unavailable" in result.err
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    assert run("init", db_url=f"sqlite:///{blocked}/sub/fleet.db").code == 4
    assert run("ls", db_url="nosuchscheme://x").code == ExitCode.BAD_INPUT
    sqlite3.connect(tmp_path / "ok.db").close()


def test_engines_lists_every_agent_with_and_without_yolo(run: Invoke, tmp_path: Path) -> None:
    rows = {row["engine"]: row for row in run("engines", "--json").json()}
    assert rows["claude"]["argv_yolo"] == [
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        "MODEL",
        "--dangerously-skip-permissions",
        "--",
        "PROMPT",
    ]
    assert rows["claude"]["env_yolo"] == {"IS_SANDBOX": "1"}
    assert rows["codex"]["env_yolo"] == {}
    config = tmp_path / "engines.toml"
    config.write_text('[engines.mine]\nargv = ["mine", "{prompt}"]\n')
    assert "mine" in {
        r["engine"] for r in run("engines", "--engines", str(config), "--json").json()
    }
    assert "claude" in run("engines").out


def test_a_delayed_job_says_when_it_runs(run: Invoke, db: str) -> None:
    """Only its start time explains why no worker takes a queued job: enqueue and show say it."""
    later = run("enqueue", "--delay", "2h", "--", "echo", "later")
    assert later.code == 0 and ", to run at " in later.out and "(in 2h)" in later.out
    job_id = int(later.out.split()[2].rstrip(","))
    shown = run("show", str(job_id))
    assert "runs at" in shown.out and "no worker takes it before" in shown.out
    now = run("enqueue", "--", "echo", "now")
    assert now.code == 0 and "to run at" not in now.out
    assert "runs at" not in run("show", str(job_id + 1)).out
