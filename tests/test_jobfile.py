from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet.engines import BUILTIN_ENGINES
from agentfleet.errors import InvalidArgument
from agentfleet.jobfile import (
    JobFileErrors,
    JobFileProblem,
    JobSpec,
    collect_job_files,
    load_job_file,
    load_job_files,
    parse_job_text,
)


def job(front: str, body: str = "Fix the flaky test.") -> str:
    return f"---\n{front.strip()}\n---\n{body}"


def problems(text: str, **kwargs: object) -> list[JobFileProblem]:
    with pytest.raises(JobFileErrors) as info:
        parse_job_text(text, "job.md", **kwargs)  # type: ignore[arg-type]
    assert all(p.path == "job.md" for p in info.value.problems)
    return list(info.value.problems)


def only(text: str) -> JobFileProblem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# -- happy paths ---------------------------------------------------------------------------


def test_agent_job_with_every_field() -> None:
    text = job(
        """
engine: claude
cwd: repo
yolo: true
lock: repo-main
timeout: 1h30m
queue: agents
priority: 5
max_attempts: 2
model: opus
env: {TOKEN: abc, PORT: 8080}
labels: [refactor, nightly]
""",
        "\n\n- Rename `foo` to `bar`.\n- Keep tests green.\n\n",
    )
    spec = parse_job_text(text, "jobs/a.md")
    assert spec == JobSpec(
        engine="claude",
        payload={
            "prompt": "- Rename `foo` to `bar`.\n- Keep tests green.",
            "model": "opus",
            "yolo": True,
            "cwd": "repo",
            "env": {"TOKEN": "abc", "PORT": "8080"},
            "labels": ["refactor", "nightly"],
        },
        queue="agents",
        priority=5,
        lock="repo-main",
        max_attempts=2,
        timeout=5400.0,
        labels=("refactor", "nightly"),
        source="jobs/a.md",
    )


def test_defaults_and_omitted_none_values() -> None:
    spec = parse_job_text(job("engine: codex"))
    assert spec.queue == "default"
    assert spec.priority == 0
    assert spec.max_attempts == 3
    assert spec.timeout is None
    assert spec.lock is None
    assert spec.labels == ()
    assert spec.source is None
    assert spec.payload == {"prompt": "Fix the flaky test.", "yolo": False, "env": {}, "labels": []}


def test_numeric_timeout_is_seconds_and_negative_priority_allowed() -> None:
    spec = parse_job_text(job("engine: gemini\ntimeout: 90\npriority: -3"))
    assert spec.timeout == 90.0
    assert spec.priority == -3


def test_yaml_yes_is_a_boolean() -> None:
    assert parse_job_text(job("engine: aider\nyolo: yes")).payload["yolo"] is True


def test_shell_with_cmd_string_and_list() -> None:
    spec = parse_job_text(job("engine: shell\ncmd: make test\ncwd: app", ""))
    assert spec.payload == {"cmd": "make test", "cwd": "app", "env": {}}
    spec = parse_job_text(job("engine: shell\ncmd: [pytest, -q]\nenv: {CI: '1'}", "notes"))
    assert spec.payload == {"cmd": ["pytest", "-q"], "env": {"CI": "1"}}


def test_shell_body_is_the_command_when_no_cmd() -> None:
    spec = parse_job_text(job("engine: shell", "\nset -e\nmake build\n"))
    assert spec.payload == {"cmd": "set -e\nmake build", "env": {}}


def test_python_job() -> None:
    spec = parse_job_text(
        job(
            "engine: python\nfunc: myapp.tasks:reindex\nargs: [1, two]\nkwargs: {full: true}",
            "The body documents the job and is not used.",
        )
    )
    assert spec.payload == {
        "func": "myapp.tasks:reindex",
        "args": [1, "two"],
        "kwargs": {"full": True},
    }
    bare = parse_job_text(job("engine: python\nfunc: m:f", ""))
    assert bare.payload == {"func": "m:f", "args": [], "kwargs": {}}


def test_approval_job() -> None:
    gate = parse_job_text(job("engine: approval", "Ship it?"), in_plan=True)
    assert gate.payload == {"message": "Ship it?"}
    assert parse_job_text(job("engine: approval", ""), in_plan=True).payload == {}


def test_an_approval_job_file_alone_is_refused_naming_why() -> None:
    with pytest.raises(JobFileErrors, match="only exists inside a plan"):
        parse_job_text(job("engine: approval", "Ship it?"))


def test_custom_engine() -> None:
    spec = parse_job_text(
        job("engine: mytool\nmodel: x"), known_engines=BUILTIN_ENGINES | {"mytool"}
    )
    assert spec.engine == "mytool"
    assert spec.payload["model"] == "x"


def test_bom_crlf_and_dot_terminator() -> None:
    text = "\ufeff---\r\nengine: claude\r\n...\r\nDo it.\r\n"
    assert parse_job_text(text).payload["prompt"] == "Do it."


def test_spec_is_frozen() -> None:
    spec = parse_job_text(job("engine: claude"))
    with pytest.raises(AttributeError):
        spec.queue = "other"  # type: ignore[misc]


# -- problems ------------------------------------------------------------------------------


def test_no_front_matter() -> None:
    problem = only("Just a prompt, no settings.")
    assert problem.field is None
    assert "no front matter" in problem.reason
    assert problem.line == 1


def test_unclosed_front_matter() -> None:
    assert "not closed" in only("---\nengine: claude\n").reason


def test_bad_yaml_reports_the_file_line() -> None:
    problem = only("---\nengine: claude\npriority: [1, 2\n---\nx")
    assert problem.field is None
    assert "bad YAML" in problem.reason
    assert problem.line is not None and problem.line >= 3
    assert f"job.md:{problem.line}: bad YAML" in str(problem)


def test_duplicate_keys_are_rejected() -> None:
    problem = only(job("engine: claude\nmodel: a\nmodel: b"))
    assert "duplicate key 'model'" in problem.reason
    assert problem.line == 4


@pytest.mark.parametrize("front", ["- engine\n- claude", "just text", "42"])
def test_front_matter_not_a_mapping(front: str) -> None:
    assert "must be a mapping" in only(job(front)).reason


def test_empty_front_matter_needs_engine() -> None:
    problem = only("---\n---\nprompt")
    assert (problem.field, problem.reason) == ("engine", "is required")


@pytest.mark.parametrize(
    ("front", "field", "fragment"),
    [
        ("priority: high", "priority", "must be an integer, got a string ('high')"),
        ("priority: true", "priority", "must be an integer"),
        ("priority: 1.5", "priority", "must be an integer"),
        ("yolo: maybe", "yolo", "must be true or false, got a string ('maybe')"),
        ("yolo: 1", "yolo", "must be true or false"),
        ("env: [A, B]", "env", "must be a mapping"),
        ("env: {A: [1]}", "env", "A must be a string"),
        ("env: {A: true}", "env", "A must be a string"),
        ("labels: nightly", "labels", "must be a list of non-empty strings"),
        ("labels: [1, 2]", "labels", "must be a list of non-empty strings"),
        ("max_attempts: 0", "max_attempts", "must be at least 1"),
        ("max_attempts: many", "max_attempts", "must be an integer"),
        ("timeout: soon", "timeout", "invalid duration 'soon'"),
        ("timeout: -5m", "timeout", "must not be negative"),
        ("timeout: 0", "timeout", "greater than zero"),
        ("queue: ''", "queue", "non-empty string"),
        ("queue: 7", "queue", "non-empty string"),
        ("model: [a]", "model", "non-empty string"),
        ("lock: {a: 1}", "lock", "non-empty string"),
    ],
)
def test_wrong_types(front: str, field: str, fragment: str) -> None:
    problem = only(job(f"engine: claude\n{front}"))
    assert problem.field == field
    assert fragment in problem.reason
    assert problem.line == 3


@pytest.mark.parametrize(
    ("front", "field", "fragment"),
    [
        ("queue: '" + "q" * 300 + "'", "queue", "longer than 200 characters"),
        ('lock: "a\\nb"', "lock", "single line"),
        ("priority: 99999999999999999999999", "priority", "out of range"),
        ("timeout: 9999d", "timeout", "unreasonably long"),
    ],
)
def test_store_limits_are_checked_up_front(front: str, field: str, fragment: str) -> None:
    problem = only(job(f"engine: claude\n{front}"))
    assert problem.field == field
    assert fragment in problem.reason


def test_zero_priority_is_kept() -> None:
    assert parse_job_text(job("engine: claude\npriority: 0")).priority == 0


def test_unknown_field_with_hint() -> None:
    found = problems(job("engin: claude"))
    reasons = {p.field: p.reason for p in found}
    assert reasons["engin"] == "unknown field 'engin' (did you mean 'engine'?)"
    assert reasons["engine"] == "is required"


def test_unknown_field_without_close_match_lists_fields() -> None:
    problem = only(job("engine: claude\nzzzzqqq: 1"))
    assert "unknown field 'zzzzqqq'; known fields: engine, queue" in problem.reason


def test_unknown_engine_with_hint_and_list() -> None:
    problem = only(job("engine: cluade"))
    assert problem.field == "engine"
    assert "unknown engine 'cluade' (did you mean 'claude'?)" in problem.reason
    assert "known engines: aider, approval, claude, codex, devin, gemini, opencode" in (
        problem.reason
    )


def test_unknown_engine_lists_custom_engines() -> None:
    problem = only_with_known(job("engine: mytoool"), BUILTIN_ENGINES | {"mytool"})
    assert "(did you mean 'mytool'?)" in problem.reason
    assert "mytool" in problem.reason.split("known engines:")[1]


def only_with_known(text: str, known: frozenset[str]) -> JobFileProblem:
    with pytest.raises(JobFileErrors) as info:
        parse_job_text(text, "job.md", known_engines=known)
    (problem,) = info.value.problems
    return problem


def test_empty_prompt_for_agent_engine() -> None:
    problem = only(job("engine: claude", "\n  \n"))
    assert problem.field is None
    assert "prompt is empty" in problem.reason


def test_shell_without_cmd_or_body() -> None:
    problem = only(job("engine: shell", ""))
    assert problem.field == "cmd"
    assert "needs a 'cmd' field" in problem.reason


@pytest.mark.parametrize("cmd", ["''", "[]", "{a: 1}", "[1, 2]"])
def test_shell_bad_cmd(cmd: str) -> None:
    problem = only(job(f"engine: shell\ncmd: {cmd}", ""))
    assert problem.field == "cmd"
    assert "string or a non-empty list" in problem.reason


def test_python_needs_func_in_the_right_shape() -> None:
    assert only(job("engine: python", "")).field == "func"
    problem = only(job("engine: python\nfunc: not a function", ""))
    assert "package.module:function" in problem.reason
    found = problems(job("engine: python\nfunc: m:f\nargs: 3\nkwargs: [1]", ""))
    assert {p.field for p in found} == {"args", "kwargs"}


@pytest.mark.parametrize(
    ("front", "field", "owner"),
    [
        ("engine: claude\ncmd: ls", "cmd", "engine 'shell'"),
        ("engine: claude\nfunc: m:f", "func", "engine 'python'"),
        ("engine: shell\ncmd: ls\nyolo: true", "yolo", "agent engines"),
        ("engine: shell\ncmd: ls\nmodel: x", "model", "agent engines"),
        ("engine: python\nfunc: m:f\nenv: {A: b}", "env", "agent engines and 'shell'"),
        ("engine: approval\ncwd: x", "cwd", "agent engines and 'shell'"),
    ],
)
def test_fields_that_do_not_apply(front: str, field: str, owner: str) -> None:
    with pytest.raises(JobFileErrors) as info:
        parse_job_text(job(front), "job.md", in_plan=True)  # an approval gate is a plan's step
    (problem,) = info.value.problems
    assert problem.field == field
    assert "does not apply to engine" in problem.reason
    assert owner in problem.reason


def test_every_problem_in_one_file_is_reported_in_line_order() -> None:
    text = job(
        """
engin: claude
priority: high
yolo: maybe
env: [a]
labels: x
timeout: soon
""",
        "",
    )
    found = problems(text)
    assert [p.field for p in found] == [
        "engine",
        "engin",
        "priority",
        "yolo",
        "env",
        "labels",
        "timeout",
    ]
    assert [p.line for p in found] == [None, 2, 3, 4, 5, 6, 7]


def test_type_errors_are_reported_even_with_an_unknown_engine() -> None:
    found = problems(job("engine: nope\nyolo: maybe"))
    assert {p.field for p in found} == {"engine", "yolo"}


def test_errors_are_invalid_arguments_and_summarise() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_job_text(job("engine: claude\npriority: x\nyolo: 2"), "a.md")
    message = str(info.value)
    assert message.startswith("2 problems in 1 job file:")
    assert "a.md:3: field 'priority'" in message
    assert "a.md:4: field 'yolo'" in message


def test_single_problem_message_is_one_line() -> None:
    with pytest.raises(JobFileErrors) as info:
        parse_job_text(job("engine: claude\npriority: x"), "a.md")
    assert str(info.value) == "a.md:3: field 'priority': must be an integer, got a string ('x')"


# -- files and directories -----------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_load_job_file(tmp_path: Path) -> None:
    path = write(tmp_path / "a.md", job("engine: claude"))
    spec = load_job_file(path)
    assert spec.source == str(path)


def test_load_job_file_missing_and_binary(tmp_path: Path) -> None:
    with pytest.raises(JobFileErrors, match="cannot be read"):
        load_job_file(tmp_path / "missing.md")
    binary = tmp_path / "b.md"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(JobFileErrors, match="not UTF-8"):
        load_job_file(binary)


def test_collect_expands_directories_recursively_and_sorted(tmp_path: Path) -> None:
    write(tmp_path / "jobs" / "b.md", "x")
    write(tmp_path / "jobs" / "a.md", "x")
    write(tmp_path / "jobs" / "sub" / "c.md", "x")
    write(tmp_path / "jobs" / "notes.txt", "x")
    extra = write(tmp_path / "extra.markdown", "x")
    found = collect_job_files([tmp_path / "jobs", extra, tmp_path / "jobs" / "a.md"])
    assert found == [
        tmp_path / "jobs" / "a.md",
        tmp_path / "jobs" / "b.md",
        tmp_path / "jobs" / "sub" / "c.md",
        extra,
    ]


def test_collect_reports_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(JobFileErrors) as info:
        collect_job_files([tmp_path / "nope.md", tmp_path / "empty"])
    reasons = [p.reason for p in info.value.problems]
    assert reasons == ["no such file or directory", "directory has no *.md job files"]


def test_load_job_files_all_good(tmp_path: Path) -> None:
    write(tmp_path / "1.md", job("engine: claude\npriority: 1"))
    write(tmp_path / "2.md", job("engine: shell\ncmd: ls"))
    specs = load_job_files([tmp_path])
    assert [s.engine for s in specs] == ["claude", "shell"]
    assert [s.source for s in specs] == [str(tmp_path / "1.md"), str(tmp_path / "2.md")]


def test_load_job_files_reports_every_problem_in_every_file(tmp_path: Path) -> None:
    write(tmp_path / "a_good.md", job("engine: claude"))
    write(tmp_path / "b_bad.md", job("engine: claude\npriority: high\nyolo: maybe"))
    write(tmp_path / "c_nofront.md", "hello")
    write(tmp_path / "d_engine.md", job("engine: codx"))
    with pytest.raises(JobFileErrors) as info:
        load_job_files([tmp_path, tmp_path / "missing.md"])
    found = [(Path(p.path or "").name, p.field) for p in info.value.problems]
    assert found == [
        ("missing.md", None),
        ("b_bad.md", "priority"),
        ("b_bad.md", "yolo"),
        ("c_nofront.md", None),
        ("d_engine.md", "engine"),
    ]
    message = str(info.value)
    assert message.startswith("5 problems in 4 job files:")
    assert "did you mean 'codex'?" in message


def test_load_job_files_custom_engines(tmp_path: Path) -> None:
    write(tmp_path / "a.md", job("engine: mytool"))
    with pytest.raises(JobFileErrors):
        load_job_files([tmp_path])
    (spec,) = load_job_files([tmp_path], known_engines=BUILTIN_ENGINES | {"mytool"})
    assert spec.engine == "mytool"


def test_a_prompt_over_the_argument_limit_is_refused_at_submit_naming_the_limit() -> None:
    problem = only(job("engine: claude", "x" * 140_000))
    assert problem.field == "prompt" and "131,071 bytes" in problem.reason


def test_a_prompt_just_under_the_limit_is_accepted() -> None:
    assert len(parse_job_text(job("engine: claude", "y" * 131_000)).payload["prompt"]) == 131_000


def test_a_relative_cwd_is_resolved_against_the_job_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project" / "jobs"
    folder.mkdir(parents=True)
    path = folder / "fix.md"
    path.write_text(job("engine: shell\ncmd: make\ncwd: ../services/api"))
    spec = load_job_file(path)
    assert spec.payload["cwd"] == str(tmp_path / "project" / "services" / "api")
    absolute = folder / "abs.md"
    absolute.write_text(job("engine: shell\ncmd: make\ncwd: /srv/app"))
    assert load_job_file(absolute).payload["cwd"] == "/srv/app"


def test_a_plan_steps_relative_cwd_is_resolved_against_the_plan_files_folder(
    tmp_path: Path,
) -> None:
    from agentfleet.plans.planfile import load_plan_file

    plan = tmp_path / "plans" / "release.yaml"
    plan.parent.mkdir()
    plan.write_text("name: r\njobs:\n  - name: a\n    engine: shell\n    cmd: make\n    cwd: app\n")
    [step] = load_plan_file(plan).steps
    assert step.job.payload["cwd"] == str(tmp_path / "plans" / "app")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("idle_timeout", "0", "write 'off' for none"),
        ("idle_timeout", "banana", "idle_timeout"),
        ("budget_usd", "-1", "more than 0"),
        ("budget_usd", "true", "not true"),
        ("budget_usd", "five", "number of US dollars"),
    ],
)
def test_agent_limits_are_checked(field: str, value: str, reason: str) -> None:
    text = f"---\nengine: claude\n{field}: {value}\n---\nfix it\n"
    with pytest.raises(JobFileErrors) as refused:
        parse_job_text(text, source="job.md")
    assert reason in str(refused.value) and field in str(refused.value)


def test_agent_limits_reach_the_payload() -> None:
    spec = parse_job_text("---\nengine: claude\nidle_timeout: 10m\nbudget_usd: 2.5\n---\nfix\n")
    assert (spec.payload["idle_timeout"], spec.payload["budget_usd"]) == (600.0, 2.5)
    off = parse_job_text("---\nengine: claude\nidle_timeout: off\n---\nfix\n")
    assert off.payload["idle_timeout"] == 0.0
    with pytest.raises(JobFileErrors, match="budget_usd"):
        parse_job_text("---\nengine: shell\nbudget_usd: 1\n---\ntrue\n")
