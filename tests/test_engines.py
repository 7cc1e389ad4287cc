from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentfleet.engines import (
    AGENT_ENGINES,
    BUILTIN_ENGINES,
    DEFAULT_AGENT_TIMEOUT,
    AgentCommand,
    EngineConfig,
    ExecutableNotFound,
    build_agent_command,
    default_timeout,
    engine_table,
    load_engine_config,
    parse_engine_config,
    resolve_executable,
)
from agentfleet.errors import InvalidArgument

PROMPT = "Fix the flaky test."

AIDER = ["aider", "--no-pretty", "--no-check-update", "--no-show-release-notes", "--no-analytics"]
CLAUDE = ["claude", "-p", "--output-format", "stream-json", "--verbose"]
CODEX = ["codex", "exec", "--json", "--skip-git-repo-check"]
GEMINI = ["gemini", "--skip-trust", "--output-format", "stream-json"]
OPENCODE = ["opencode", "run", "--format", "json"]
EXPECTED: dict[str, tuple[list[str], list[str]]] = {
    "claude": (
        [*CLAUDE, "--model", "M", "--", PROMPT],
        [*CLAUDE, "--model", "M", "--dangerously-skip-permissions", "--", PROMPT],
    ),
    "codex": (
        [*CODEX, "--model", "M", "--", PROMPT],
        [*CODEX, "--model", "M", "--dangerously-bypass-approvals-and-sandbox", "--", PROMPT],
    ),
    "gemini": (
        [*GEMINI, "--model", "M", f"--prompt={PROMPT}"],
        [*GEMINI, "--model", "M", "--yolo", f"--prompt={PROMPT}"],
    ),
    "aider": (
        [*AIDER, "--model", "M", "--no-suggest-shell-commands", f"--message={PROMPT}"],
        [*AIDER, "--model", "M", "--suggest-shell-commands", f"--message={PROMPT}"],
    ),
    "opencode": (
        [*OPENCODE, "--model", "M", "--", PROMPT],
        [*OPENCODE, "--model", "M", "--auto", "--", PROMPT],
    ),
    "devin": (
        ["devin", "--model", "M", "-p", "--", PROMPT],
        ["devin", "--model", "M", "--permission-mode", "bypass", "-p", "--", PROMPT],
    ),
}
# What each engine sets in the environment of a yolo job (none without yolo).
EXPECTED_YOLO_ENV: dict[str, dict[str, str]] = {"claude": {"IS_SANDBOX": "1"}}


def payload(**extra: Any) -> dict[str, Any]:
    return {"prompt": PROMPT, **extra}


@pytest.mark.parametrize("engine", sorted(EXPECTED))
@pytest.mark.parametrize("yolo", [False, True])
def test_builtin_argv_with_model(engine: str, yolo: bool) -> None:
    command = build_agent_command(engine, payload(model="M", yolo=yolo))
    assert command.argv == EXPECTED[engine][int(yolo)]


@pytest.mark.parametrize("engine", sorted(EXPECTED))
def test_no_model_drops_the_model_flag(engine: str) -> None:
    argv = build_agent_command(engine, payload()).argv
    assert "--model" not in argv
    assert argv == [a for a in EXPECTED[engine][0] if a not in ("--model", "M")]


def test_yolo_flags_only_when_yolo() -> None:
    dangerous = {
        "--dangerously-skip-permissions",
        "--dangerously-bypass-approvals-and-sandbox",
        "--yolo",
        "--yes-always",
        "--suggest-shell-commands",
        "--auto",
        "bypass",
    }
    for engine in EXPECTED:
        assert not dangerous & set(build_agent_command(engine, payload()).argv)
        assert not dangerous & set(build_agent_command(engine, payload(yolo=False)).argv)


@pytest.mark.parametrize("engine", sorted(EXPECTED))
def test_yolo_env_only_when_yolo(engine: str) -> None:
    assert build_agent_command(engine, payload()).env == {}
    assert build_agent_command(engine, payload(yolo=True)).env == EXPECTED_YOLO_ENV.get(engine, {})


def test_the_jobs_env_wins_over_the_engines() -> None:
    command = build_agent_command("claude", payload(yolo=True, env={"IS_SANDBOX": "0", "A": "1"}))
    assert command.env == {"IS_SANDBOX": "0", "A": "1"}
    assert build_agent_command("claude", payload(yolo=True, env={"A": "1"})).env == {
        "IS_SANDBOX": "1",
        "A": "1",
    }


def test_aider_never_answers_no_to_everything() -> None:
    """--yes-always makes aider answer "n" to running shell commands (they need an explicit
    yes), so yolo would run fewer commands than no yolo: neither mode uses it."""
    for yolo in (False, True):
        assert "--yes-always" not in build_agent_command("aider", payload(yolo=yolo)).argv


def test_every_agent_engine_has_a_default_timeout(config: EngineConfig) -> None:
    for engine in [*EXPECTED, "mytool"]:
        assert default_timeout(engine, config) == DEFAULT_AGENT_TIMEOUT == 7200
    for engine in ("shell", "python", "approval", "merge", "nosuch"):
        assert default_timeout(engine, config) is None


def test_every_builtin_is_tested_and_known() -> None:
    assert set(EXPECTED) == set(AGENT_ENGINES)
    assert frozenset(AGENT_ENGINES) | {"python", "shell", "approval"} == BUILTIN_ENGINES


def test_prompt_starting_with_a_dash_stays_an_operand() -> None:
    prompt = "- rename foo\n- keep {braces} and 100% of tests"
    assert build_agent_command("claude", {"prompt": prompt}).argv[-2:] == ["--", prompt]
    assert build_agent_command("gemini", {"prompt": prompt}).argv[-1] == f"--prompt={prompt}"


def test_cwd_and_env_are_carried_over() -> None:
    command = build_agent_command("claude", payload(cwd="/srv/repo", env={"A": "1"}))
    assert command.cwd == "/srv/repo"
    assert command.env == {"A": "1"}
    assert "/srv/repo" not in command.argv


def test_full_env_overlays_the_job_env() -> None:
    command = AgentCommand(["x"], None, {"A": "job", "B": "2"})
    assert command.full_env({"A": "base", "C": "3"}) == {"A": "job", "B": "2", "C": "3"}
    assert command.full_env()["B"] == "2"


@pytest.mark.parametrize(
    ("engine", "body", "fragment"),
    [
        ("claude", {}, "has no prompt"),
        ("claude", {"prompt": "   "}, "has no prompt"),
        ("claude", {"prompt": 3}, "'prompt' must be a string"),
        ("claude", payload(yolo="yes"), "'yolo' must be true or false"),
        ("claude", payload(model=["x"]), "'model' must be a string"),
        ("claude", payload(env={"A": 1}), "'env' must map strings to strings"),
        ("claude", payload(env=["A"]), "'env' must map strings to strings"),
        ("shell", payload(), "'shell' is not an agent engine"),
        ("python", payload(), "'python' is not an agent engine"),
        ("cluade", payload(), "unknown agent engine 'cluade' (did you mean 'claude'?)"),
    ],
)
def test_bad_payloads(engine: str, body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        build_agent_command(engine, body)
    assert fragment in str(info.value)


def test_engine_table_matches_the_templates() -> None:
    table = engine_table(prompt=PROMPT, model="M")
    assert [row.name for row in table] == sorted(EXPECTED)
    for row in table:
        assert (row.argv, row.argv_yolo) == EXPECTED[row.name]
        assert row.env_yolo == EXPECTED_YOLO_ENV.get(row.name, {})


def test_engine_table_commands_name_the_variables() -> None:
    rows = {row.name: row for row in engine_table()}
    assert rows["claude"].command(yolo=True) == (
        "IS_SANDBOX=1 claude -p --output-format stream-json --verbose --model MODEL "
        "--dangerously-skip-permissions -- PROMPT"
    )
    assert rows["claude"].command(yolo=False) == (
        "claude -p --output-format stream-json --verbose --model MODEL -- PROMPT"
    )


# -- custom engines ------------------------------------------------------------------------

CUSTOM = """
[worker]
ignored = true

[engines.mytool]
argv = ["mytool", "--prompt", "{prompt}", ["--model", "{model}"], "--dir={cwd}", "{yolo_flags}",
        "--literal={{x}}"]
yolo_flags = ["--force"]
description = "My tool."

[engines.plain]
argv = ["plain", "{prompt}", "{model}"]
yolo_flags = ["--force", "--really"]

[engines.claude]
argv = ["claude-wrapper", "{prompt}"]
"""


@pytest.fixture
def config() -> EngineConfig:
    return parse_engine_config(CUSTOM, "engines.toml")


def test_custom_engine_full(config: EngineConfig) -> None:
    command = build_agent_command("mytool", payload(model="big", cwd="w", yolo=True), config)
    assert command.argv == [
        "mytool",
        "--prompt",
        PROMPT,
        "--model",
        "big",
        "--dir=w",
        "--force",
        "--literal={x}",
    ]
    assert command.cwd == "w"


def test_custom_engine_drops_items_without_values(config: EngineConfig) -> None:
    command = build_agent_command("mytool", payload(), config)
    assert command.argv == ["mytool", "--prompt", PROMPT, "--literal={x}"]


def test_yolo_flags_are_appended_without_a_marker(config: EngineConfig) -> None:
    assert build_agent_command("plain", payload(yolo=True), config).argv == [
        "plain",
        PROMPT,
        "--force",
        "--really",
    ]
    assert build_agent_command("plain", payload(model="m"), config).argv == ["plain", PROMPT, "m"]


def test_custom_entry_overrides_builtin(config: EngineConfig) -> None:
    assert build_agent_command("claude", payload(), config).argv == ["claude-wrapper", PROMPT]
    assert build_agent_command("codex", payload(), config).argv[0] == "codex"


def test_config_names_and_table(config: EngineConfig) -> None:
    assert config.source == "engines.toml"
    assert {"mytool", "plain", "claude", "shell"} <= config.engine_names()
    assert "worker" not in config.engine_names()
    names = [row[0] for row in engine_table(config)]
    assert names == sorted(set(EXPECTED) | {"mytool", "plain"})
    row = {r.name: r for r in engine_table(config)}["plain"]
    assert (row.argv, row.argv_yolo, row.env_yolo) == (
        ["plain", "PROMPT", "MODEL"],
        ["plain", "PROMPT", "MODEL", "--force", "--really"],
        {},
    )


CUSTOM_FULL = """
[engines.sandboxed]
argv = ["sandboxed", "{yolo_flags}", "--", "{prompt}"]
yolo_flags = ["--bypass"]
no_yolo_flags = ["--ask", "never"]
yolo_env = {IS_SANDBOX = "1", TOOL_MODE = "unattended"}
output = "claude"
"""


def test_custom_engine_with_no_yolo_flags_yolo_env_and_output() -> None:
    config = parse_engine_config(CUSTOM_FULL, "engines.toml")
    plain = build_agent_command("sandboxed", payload(env={"A": "1"}), config)
    assert plain.argv == ["sandboxed", "--ask", "never", "--", PROMPT]
    assert plain.env == {"A": "1"}
    assert plain.output == "claude"
    yolo = build_agent_command("sandboxed", payload(yolo=True, env={"TOOL_MODE": "job"}), config)
    assert yolo.argv == ["sandboxed", "--bypass", "--", PROMPT]
    assert yolo.env == {"IS_SANDBOX": "1", "TOOL_MODE": "job"}  # the job's own env wins
    row = {r.name: r for r in engine_table(config)}["sandboxed"]
    assert row.command(yolo=True) == (
        "IS_SANDBOX=1 TOOL_MODE=unattended sandboxed --bypass -- PROMPT"
    )


def test_a_custom_engine_reads_plain_text_by_default(config: EngineConfig) -> None:
    assert build_agent_command("mytool", payload(), config).output == "text"
    assert build_agent_command("claude", payload(), config).output == "text"  # the override
    assert build_agent_command("claude", payload()).output == "claude"


def test_unknown_custom_engine_lists_custom_names(config: EngineConfig) -> None:
    with pytest.raises(InvalidArgument) as info:
        build_agent_command("mytol", payload(), config)
    assert "did you mean 'mytool'?" in str(info.value)
    assert "mytool, opencode, plain" in str(info.value)


def test_load_engine_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "engines.toml"
    path.write_text(CUSTOM, encoding="utf-8")
    assert set(load_engine_config(path).engines) == {"mytool", "plain", "claude"}
    assert load_engine_config(path).source == str(path)


def test_empty_config_is_fine() -> None:
    assert parse_engine_config("").engines == {}


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[engines.x\nargv = 1", "malformed TOML"),
        ("engines = 3", "'engines' must be a table"),
        ("[engines]\nx = 3", "engines.x must be a table"),
        ("[engines.x]\nyolo_flags = []", "engines.x needs an argv array"),
        ("[engines.x]\nargv = []", "argv must be a non-empty array"),
        ("[engines.x]\nargv = 'x {prompt}'", "argv must be a non-empty array"),
        ('[engines.x]\nargv = ["x", "{prompt}"]\nyolo_flag = ["-y"]', "did you mean 'yolo_flags'"),
        ('[engines.x]\nargv = ["x", "{prmpt}"]', "unknown placeholder {prmpt}"),
        ('[engines.x]\nargv = ["x", "{prompt!r}"]', "unknown placeholder"),
        ('[engines.x]\nargv = ["x", "{prompt"]', "unbalanced braces"),
        ('[engines.x]\nargv = ["x", "--model", "{model}"]', "never uses {prompt}"),
        ('[engines.x]\nargv = ["{model}", "{prompt}"]', "argv[0] must be the program name"),
        ('[engines.x]\nargv = [["x"], "{prompt}"]', "argv[0] must be the program name"),
        ('[engines.x]\nargv = ["x", [], "{prompt}"]', "empty group"),
        ('[engines.x]\nargv = ["x", 3, "{prompt}"]', "argv[1] must be a string"),
        ('[engines.x]\nargv = ["x", ["-m", 3], "{prompt}"]', "argv[1][1] must be a string"),
        ('[engines.x]\nargv = ["x", ["{yolo_flags}"], "{prompt}"]', "must be an item of its own"),
        (
            '[engines.x]\nargv = ["x", "{yolo_flags}", "{yolo_flags}", "{prompt}"]',
            "more than once",
        ),
        ('[engines.x]\nargv = ["x", "{prompt}"]\nyolo_flags = "-y"', "yolo_flags must be an array"),
        ('[engines.x]\nargv = ["x", "{prompt}"]\nyolo_flags = [""]', "yolo_flags must be an array"),
        ('[engines.x]\nargv = ["x", "{prompt}"]\ndescription = 1', "description must be a string"),
        ('[engines.x]\nargv = ["x", "{prompt}"]\nno_yolo_flags = [1]', "no_yolo_flags must be an"),
        ('[engines.x]\nargv = ["x", "{prompt}"]\nyolo_env = ["A=1"]', "yolo_env must be a table"),
        (
            '[engines.x]\nargv = ["x", "{prompt}"]\nyolo_env = {A = 1}',
            "yolo_env.A must be a string",
        ),
        (
            '[engines.x]\nargv = ["x", "{prompt}"]\nyolo_env = {"A-B" = "1"}',
            "'A-B' is not a valid environment variable name",
        ),
        ('[engines.x]\nargv = ["x", "{prompt}"]\noutput = "claud"', "did you mean 'claude'"),
        ('[engines.x]\nargv = ["x", "{prompt}"]\nyolo_envs = {}', "did you mean 'yolo_env'"),
        ('[engines.Bad]\nargv = ["x", "{prompt}"]', "engine names are lowercase"),
        ('[engines.shell]\nargv = ["x", "{prompt}"]', "built-in non-agent engine"),
    ],
)
def test_bad_configs(toml: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_engine_config(toml, "engines.toml")
    assert fragment in str(info.value)
    assert str(info.value).startswith("engines.toml")


def test_load_engine_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="cannot read engine config"):
        load_engine_config(tmp_path / "nope.toml")


# -- executables ---------------------------------------------------------------------------


def make_executable(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_resolve_executable_uses_the_jobs_path(tmp_path: Path) -> None:
    tool = make_executable(tmp_path / "claude", "#!/bin/sh\nexit 0\n")
    assert resolve_executable(["claude", "-p"], {"PATH": str(tmp_path)}) == str(tool)


def test_resolve_executable_missing(tmp_path: Path) -> None:
    with pytest.raises(ExecutableNotFound) as info:
        resolve_executable(["claude", "-p"], {"PATH": str(tmp_path)}, engine="claude")
    assert "engine 'claude' needs the 'claude' executable on PATH" in str(info.value)
    assert isinstance(info.value, InvalidArgument)


def test_resolve_executable_explicit_path(tmp_path: Path) -> None:
    with pytest.raises(ExecutableNotFound, match="missing or not executable"):
        resolve_executable([str(tmp_path / "nope")], {})
    with pytest.raises(InvalidArgument, match="empty command"):
        resolve_executable([], {})


def test_resolve_executable_falls_back_to_our_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    found = resolve_executable([os.path.basename(sys.executable)], {})
    assert os.path.samefile(found, sys.executable)


ARGV_DUMPER = """#!{python}
import json, os, sys
with open(os.environ["ARGV_LOG"], "a", encoding="utf-8") as handle:
    handle.write(json.dumps({{"tool": os.path.basename(sys.argv[0]), "argv": sys.argv[1:],
                            "cwd": os.getcwd(), "env": dict(os.environ)}}) + "\\n")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="uses executable scripts on PATH")
@pytest.mark.parametrize("yolo", [False, True])
def test_real_processes_receive_the_exact_argv_and_env(tmp_path: Path, yolo: bool) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "argv.jsonl"
    for tool in EXPECTED:
        make_executable(bin_dir / tool, ARGV_DUMPER.format(python=sys.executable))
    prompt = "- a Markdown list\nwith 'quotes', $HOME and {braces}"
    env = {"PATH": str(bin_dir), "ARGV_LOG": str(log)}
    for tool in EXPECTED:
        command = build_agent_command(
            tool, {"prompt": prompt, "model": "M", "yolo": yolo, "cwd": str(work), "env": env}
        )
        program = resolve_executable(command.argv, command.full_env(), engine=tool)
        assert program == str(bin_dir / tool)
        done = subprocess.run(
            [program, *command.argv[1:]],
            cwd=command.cwd,
            env=command.full_env({"HOME": str(tmp_path)}),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    records = {r["tool"]: r for r in map(json.loads, log.read_text(encoding="utf-8").splitlines())}
    assert set(records) == set(EXPECTED)
    for tool, record in records.items():
        expected = [arg.replace(PROMPT, prompt) for arg in EXPECTED[tool][int(yolo)]]
        assert record["argv"] == expected[1:], tool
        assert Path(record["cwd"]) == work
        extra = {k: v for k, v in record["env"].items() if k not in ("HOME", "PWD", "SHLVL", "_")}
        extra = {k: v for k, v in extra.items() if k not in env and not k.startswith("LC_")}
        assert extra == (EXPECTED_YOLO_ENV.get(tool, {}) if yolo else {}), tool


def test_a_prompt_over_the_argument_limit_fails_at_once_not_at_exec() -> None:
    from agentfleet.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="131,071 bytes"):
        build_agent_command("claude", {"prompt": "z" * 200_000})


def test_the_readme_shows_the_exact_commands() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| `") and " | `" in line]
    table = {}
    for line in rows:
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0] in AGENT_ENGINES:
            table[cells[0]] = (cells[1], cells[2])
    expected = {
        row.name: (row.command(yolo=False), row.command(yolo=True)) for row in engine_table()
    }
    assert table == expected


RESUMED = {
    "claude": ["claude", "-p", "--output-format", "stream-json", "--verbose", "--resume", "S1",
               "--model", "m1", "--dangerously-skip-permissions", "--", "go on"],
    "codex": ["codex", "exec", "resume", "--json", "--skip-git-repo-check", "--model", "m1",
              "--dangerously-bypass-approvals-and-sandbox", "--", "S1", "go on"],
    "gemini": ["gemini", "--skip-trust", "--output-format", "stream-json", "--resume", "S1",
               "--model", "m1", "--yolo", "--prompt=go on"],
    "opencode": ["opencode", "run", "--format", "json", "--session", "S1", "--model", "m1",
                 "--auto", "--", "go on"],
}  # fmt: skip


@pytest.mark.parametrize("engine", sorted(RESUMED))
def test_a_resumed_run_continues_its_session(engine: str) -> None:
    payload = {"prompt": "the task", "model": "m1", "yolo": True}
    command = build_agent_command(engine, payload, session="S1", resume_prompt="go on")
    assert command.argv == RESUMED[engine]
    plain = build_agent_command(engine, {"prompt": "the task"}, session="S1")
    assert "S1" in plain.argv and "--model" not in plain.argv
    assert not any(flag in plain.argv for flag in AGENT_ENGINES[engine].yolo_flags)
    assert plain.argv[-1].endswith("the task")  # without a resume prompt, the job's own


def test_engines_that_cannot_resume_say_so() -> None:
    assert {n for n, s in AGENT_ENGINES.items() if s.resume_argv is None} == {"aider", "devin"}
    with pytest.raises(InvalidArgument, match="cannot resume a session"):
        build_agent_command("aider", {"prompt": "x"}, session="S1")


def test_a_custom_engine_may_resume() -> None:
    config = parse_engine_config(
        '[engines.house]\nargv = ["house", "--", "{prompt}"]\n'
        'resume_argv = ["house", "--resume", "{session}", "--", "{prompt}"]\n'
    )
    assert build_agent_command("house", {"prompt": "x"}, config, session="S").argv == [
        "house", "--resume", "S", "--", "x",
    ]  # fmt: skip
    with pytest.raises(InvalidArgument, match=r"resume_argv never uses \{session\}"):
        parse_engine_config(
            '[engines.house]\nargv = ["house", "{prompt}"]\nresume_argv = ["house", "{prompt}"]\n'
        )
