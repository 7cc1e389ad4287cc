"""The command line reads well where it is read most: piped to a file or another program.

Most tests run the real program (`python -m agentfleet.cli`, what the console script
runs) with its output captured, so not a terminal, and no COLUMNS. The checks over every
command's help run in-process (one subprocess per command would take a minute): there too
the output is no terminal, and the help goes through the same classes.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

import agentfleet
from agentfleet.cli import app
from agentfleet.cli.app import AgentfleetGroup
from tests.cli.test_plans_cli import PLAN, _drain
from tests.worker.helpers import child_env, cli

# What Typer prints for a parameter it has no word for: Python's types and ranges.
PYTHON_PLACEHOLDERS = re.compile(
    r"<(bool|str|int|float|path|text|int range|float range|list\[[a-z]+\])>"
    r"|x[<>]=|list\[|\{[a-z_]+\}"
)


def piped(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The program as a script runs it: output captured, no COLUMNS, no terminal width."""
    environment = child_env(**env)
    for name in ("COLUMNS", "LINES", "TERMINAL_WIDTH", "FORCE_COLOR"):
        environment.pop(name, None)
    return cli(*args, env=environment, cwd=cwd)


def command_at(path: list[str]) -> Any:
    """The click command `agentfleet PATH...` runs."""
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.get_command(typer.Context(command), name)
    return command


def commands() -> Iterator[list[str]]:
    """Every command's path, the app's own (``[]``) first, then in the app's order."""
    root = typer.main.get_command(app)

    def walk(command: typer.core.TyperGroup, path: list[str]) -> Iterator[list[str]]:
        yield path
        if isinstance(command, typer.core.TyperGroup):
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, [*path, name])  # type: ignore[arg-type]

    yield from walk(root, [])  # type: ignore[arg-type]


ALL = [pytest.param(path, id=" ".join(path) or "agentfleet") for path in commands()]


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("COLUMNS", "LINES", "TERMINAL_WIDTH", "FORCE_COLOR", "AGENTFLEET_DB"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def help_of(runner: CliRunner, path: list[str], flag: str = "--help") -> str:
    done = runner.invoke(app, [*path, flag], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.stdout


# -- --version, -V and -h ------------------------------------------------------------


def test_version_and_short_options_through_the_program() -> None:
    expected = f"agentfleet {metadata.version('agentfleet')}\n"
    for flag in ("--version", "-V"):
        done = piped(flag)
        assert (done.returncode, done.stdout, done.stderr) == (0, expected, "")
    for path in ([], ["ls"], ["plan", "show"], ["limits", "set"]):
        short, long = piped(*path, "-h"), piped(*path, "--help")
        assert short.returncode == long.returncode == 0, short.stderr
        assert short.stdout == long.stdout and "Usage: agentfleet" in short.stdout


@pytest.mark.parametrize("path", ALL)
def test_every_command_takes_h_for_help(in_process: CliRunner, path: list[str]) -> None:
    assert help_of(in_process, path, "-h") == help_of(in_process, path)


# -- nothing lost to rich markup -----------------------------------------------------


def _help_texts() -> Iterator[tuple[str, str]]:
    for path in commands():
        command = command_at(path)
        where = " ".join(path) or "agentfleet"
        yield where, command.help or ""
        yield where, command.epilog or ""
        for param in command.params:
            yield f"{where} {param.name}", getattr(param, "help", None) or ""


def test_no_help_text_is_swallowed_as_rich_markup() -> None:
    """Typer reads help as rich markup: `[engines.NAME]` unescaped would be a style tag and
    vanish. Every help text must show all of its characters."""
    for where, text in _help_texts():
        assert Text.from_markup(text).plain == text.replace("\\[", "["), where


@pytest.mark.parametrize("path", [["submit"], ["worker"], ["engines"], ["serve"]])
def test_the_engines_option_shows_its_tables(path: list[str]) -> None:
    done = piped(*path, "--help")
    assert done.returncode == 0 and "custom [engines.NAME] tables" in done.stdout


# -- serve's example token is one serve accepts ----------------------------------------


def test_the_token_in_serve_help_is_accepted_by_serve() -> None:
    server = pytest.importorskip("agentfleet.web.server")
    [token_help] = [p.help for p in command_at(["serve"]).params if p.name == "token"]
    example = re.search(r"e\.g\. --token (\S+)", token_help)
    assert example is not None, token_help
    token = example.group(1)
    assert server.resolve_token(token, "127.0.0.1") == (token, False)
    assert f"at least {server.MIN_TOKEN_LENGTH} characters" in token_help
    done = piped("serve", "--help")
    words = " ".join(done.stdout.replace("│", " ").split())  # the box's lines as one text
    assert done.returncode == 0 and f"e.g. --token {token}" in words


# -- piped output is not hard-wrapped --------------------------------------------------


def test_a_long_hint_piped_stays_on_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    submitted = piped("--db", url, "plan", "submit", str(plan_file), "--json")
    assert submitted.returncode == 0, submitted.stderr
    plan_id = json.loads(submitted.stdout)["id"]
    _drain(url)
    shown = piped("--db", url, "plan", "show", str(plan_id))
    assert shown.returncode == 0, shown.stderr
    hint = (
        f"  agentfleet plan approve {plan_id} --at review#1 [--response TEXT]   or   "
        f"agentfleet plan reject {plan_id} --at review#1 --feedback TEXT"
    )
    assert hint in shown.stdout.splitlines()


def test_tables_piped_show_whole_values_and_no_padding(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    command = "echo " + " ".join(f"word{n}" for n in range(40))  # about 250 characters
    enqueued = piped("--db", url, "enqueue", "--json", "--", command)
    job = json.loads(enqueued.stdout)["id"]
    listed = piped("--db", url, "ls")
    # `ls` shows a command's first 60 characters: all of them, not what 80 columns leave
    assert listed.returncode == 0 and command[:59] + "…" in listed.stdout
    shown = piped("--db", url, "show", str(job))
    assert any(json.dumps(command) in line for line in shown.stdout.splitlines())
    for done in (listed, shown, piped("--db", url, "engines"), piped("--db", url, "workers")):
        assert max(map(len, done.stdout.splitlines())) < 400  # nothing padded to the width


@pytest.mark.parametrize("path", [[], ["enqueue"], ["worker"], ["plan", "approve"], ["prune"]])
def test_help_piped_cuts_no_flag(path: list[str]) -> None:
    done = piped(*path, "--help")
    assert done.returncode == 0
    known = _every_option_name()
    for flag in re.findall(r"(?<![\w-])--?[a-z][\w-]*", done.stdout):
        assert flag in known, (flag, path)


def _every_option_name() -> set[str]:
    names = {"-h", "--help"}
    for path in commands():
        names.update(opt for param in command_at(path).params for opt in param.opts)
    return names | {"-c", "-x", "-n"}  # in examples: sh -c, pytest -x, tail -n


# -- workflow order and readable placeholders --------------------------------------


def test_commands_are_listed_in_workflow_order() -> None:
    done = piped("--help")
    assert done.returncode == 0
    panel = done.stdout.split("Commands")[1]
    listed = re.findall(r"^│ ([a-z]+) ", panel, flags=re.MULTILINE)
    assert listed == list(AgentfleetGroup.order)
    assert listed[:6] == ["init", "submit", "enqueue", "ls", "show", "logs"]


def test_every_command_has_a_place_in_the_order() -> None:
    root = typer.main.get_command(app)
    registered = set(root.commands)  # type: ignore[attr-defined]
    assert registered == set(AgentfleetGroup.order)


@pytest.mark.parametrize("path", ALL)
def test_no_help_shows_python_placeholders(in_process: CliRunner, path: list[str]) -> None:
    text = help_of(in_process, path)
    assert not PYTHON_PLACEHOLDERS.search(text), PYTHON_PLACEHOLDERS.search(text)


@pytest.mark.parametrize(
    "path", [["submit"], ["enqueue"], ["worker"], ["demo"], ["schedule", "add"]]
)
def test_placeholders_through_the_program(path: list[str]) -> None:
    done = piped(*path, "--help")
    assert done.returncode == 0
    assert not PYTHON_PLACEHOLDERS.search(done.stdout), PYTHON_PLACEHOLDERS.search(done.stdout)


def test_placeholders_are_words() -> None:
    enqueue = piped("enqueue", "--help").stdout
    assert "Usage: agentfleet enqueue [OPTIONS] [COMMAND...]" in enqueue
    for option, word in (
        ("--timeout", "DURATION"),
        ("--max-attempts", "N"),
        ("--env", "NAME=VALUE"),
    ):
        assert re.search(rf"{option} +(-\w +)?{word} ", enqueue), (option, word)
    assert "Usage: agentfleet submit [OPTIONS] PATH..." in piped("submit", "--help").stdout
    assert "Usage: agentfleet show [OPTIONS] JOB" in piped("show", "--help").stdout


# -- an option of agentfleet itself after the command ------------------------------


def test_db_after_the_command_says_where_it_goes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert piped("--db", url, "init").returncode == 0
    misplaced = piped("ls", "--db", url, "-n", "5")
    assert misplaced.returncode == 2 and misplaced.stdout == ""
    fixed = f"agentfleet --db {url} ls -n 5"
    assert misplaced.stderr == (
        f"error: --db is an option of agentfleet itself: put it before the command: {fixed}\n"
    )
    assert piped(*fixed.split()[1:]).returncode == 0  # what it says to type works
    nested = piped("plan", "show", "3", f"--db={url}")
    assert nested.returncode == 2
    assert f"put it before the command: agentfleet --db={url} plan show 3" in nested.stderr
    unknown = piped("ls", "--no-such-option")
    assert unknown.returncode == 2 and "No such option: --no-such-option" in unknown.stderr


# -- ids read as ids; a dedupe-key repeat says so ------------------------------------


def test_workers_show_running_jobs_as_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with agentfleet.open(url) as fleet:
        fleet.worker_seen("w1", host="box", pid=4242, queues=["default"], concurrency=2)
        jobs = [fleet.enqueue("shell", {"cmd": "true"}).id for _ in range(2)]
        for job in jobs:
            assert fleet.claim(job, worker="w1", ttl=600) is not None
    done = piped("--db", url, "workers")
    assert done.returncode == 0, done.stderr
    [row] = [line for line in done.stdout.splitlines() if line.split()[:1] == ["w1"]]
    assert f"#{jobs[0]}, #{jobs[1]}" in row
    as_json = json.loads(piped("--db", url, "workers", "--json").stdout)
    assert sorted(as_json[0]["running"]) == jobs  # JSON keeps the numbers


def test_a_dedupe_key_repeat_says_it_enqueued_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    first = piped("--db", url, "enqueue", "--dedupe-key", "nightly", "--", "true")
    assert first.returncode == 0 and first.stdout.startswith("enqueued job ")
    job = int(first.stdout.split()[2])
    again = piped("--db", url, "enqueue", "--dedupe-key", "nightly", "--", "true")
    assert (again.returncode, again.stdout) == (
        0,
        f"job #{job} already holds dedupe key nightly (status queued): not enqueued again\n",
    )
    as_json = piped("--db", url, "enqueue", "--dedupe-key", "nightly", "--json", "--", "true")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["id"] == job
    assert "already holds dedupe key nightly" in as_json.stderr
    other = piped("--db", url, "enqueue", "--dedupe-key", "weekly", "--", "true")
    assert other.stdout.startswith("enqueued job ") and "already" not in other.stdout
    listed = json.loads(piped("--db", url, "ls", "--json").stdout)
    assert len(listed) == 2
