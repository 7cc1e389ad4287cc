"""`agentfleet submit`: every bad file reported with path, field and reason; all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet.cli import ExitCode
from tests.cli.conftest import Invoke

GOOD_AGENT = """---
engine: claude
model: opus
yolo: true
lock: repo-api
timeout: 45m
priority: 3
labels: [nightly, api]
cwd: services/api
---
Make the flaky test in tests/test_orders.py deterministic.
"""
GOOD_SHELL = """---
engine: shell
queue: builds
max_attempts: 5
labels: [ci]
---
make test
"""
GOOD_PYTHON = """---
engine: python
func: reports.build:nightly
args: [1]
kwargs: {day: mon}
---
"""

MALFORMED = {
    "no-front-matter": ("Just a prompt.\n", None, "no front matter"),
    "unclosed": ("---\nengine: claude\nFix it.\n", None, "front matter is not closed"),
    "bad-yaml": ("---\nengine: [claude\n---\nx\n", None, "bad YAML"),
    "not-a-mapping": ("---\n- engine\n---\nx\n", None, "must be a mapping"),
    "no-engine": ("---\nqueue: q\n---\nx\n", "engine", "is required"),
    "unknown-engine": ("---\nengine: claud\n---\nx\n", "engine", "did you mean 'claude'"),
    "unknown-field": ("---\nengine: claude\nyollo: true\n---\nx\n", "yollo", "did you mean"),
    "wrong-type": ("---\nengine: claude\npriority: high\n---\nx\n", "priority", "integer"),
    "bad-duration": ("---\nengine: claude\ntimeout: soon\n---\nx\n", "timeout", "duration"),
    "empty-prompt": ("---\nengine: claude\n---\n\n", None, "the prompt is empty"),
    "wrong-engine-field": ("---\nengine: shell\nyolo: true\n---\nls\n", "yolo", "does not apply"),
    "python-no-func": ("---\nengine: python\n---\n", "func", "needs 'func"),
    "duplicate-key": ("---\nengine: claude\nengine: codex\n---\nx\n", None, "duplicate key"),
}


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_valid_files_are_enqueued_with_their_settings(run: Invoke, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    write(jobs, "a-agent.md", GOOD_AGENT)
    write(jobs, "nested/b-shell.md", GOOD_SHELL)
    python = write(tmp_path, "c-python.md", GOOD_PYTHON)
    result = run("submit", str(jobs), str(python), "--json")
    assert result.code == 0, result.err
    enqueued = result.json()["enqueued"]
    assert [(j["engine"], Path(j["source"]).name) for j in enqueued] == [
        ("claude", "a-agent.md"),
        ("shell", "b-shell.md"),
        ("python", "c-python.md"),
    ]
    agent, shell, python_job = enqueued
    assert agent["payload"] == {
        "prompt": "Make the flaky test in tests/test_orders.py deterministic.",
        "model": "opus",
        "yolo": True,
        "cwd": str(jobs / "services" / "api"),  # relative to the job file, stored absolute
        "env": {},
        "labels": ["nightly", "api"],
    }
    assert (agent["lock"], agent["timeout"], agent["priority"]) == ("repo-api", 2700.0, 3)
    assert (shell["queue"], shell["max_attempts"], shell["payload"]["cmd"]) == (
        "builds",
        5,
        "make test",
    )
    assert shell["labels"] == ["ci"]
    assert python_job["payload"]["kwargs"] == {"day": "mon"}
    assert [j["id"] for j in run("ls", "--label", "api", "--json").json()] == [agent["id"]]
    plain = run("submit", str(python))
    assert plain.code == 0 and "enqueued job 4 (python" in plain.out


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_one_bad_file_means_nothing_is_enqueued(run: Invoke, tmp_path: Path, kind: str) -> None:
    text, field, reason = MALFORMED[kind]
    write(tmp_path, "jobs/good.md", GOOD_AGENT)
    bad = write(tmp_path, f"jobs/{kind}.md", text)
    result = run("submit", str(tmp_path / "jobs"))
    assert result.code == ExitCode.BAD_INPUT
    assert "nothing was enqueued" in result.err
    assert str(bad) in result.err and reason in result.err
    if field:
        assert f"field {field!r}" in result.err
    assert run("ls", "--json").json() == []


def test_every_problem_in_every_file_is_reported(run: Invoke, tmp_path: Path) -> None:
    write(tmp_path, "ok.md", GOOD_SHELL)
    write(tmp_path, "two.md", "---\nengine: claude\npriority: x\nyolo: maybe\n---\nhi\n")
    write(tmp_path, "binary.md", b"\xff\xfe\x00junk")
    (tmp_path / "empty").mkdir()
    result = run(
        "submit",
        str(tmp_path / "ok.md"),
        str(tmp_path / "two.md"),
        str(tmp_path / "binary.md"),
        str(tmp_path / "empty"),
        str(tmp_path / "missing.md"),
        "--json",
    )
    assert result.code == ExitCode.BAD_INPUT
    problems = {(Path(p["path"]).name, p["field"]): p for p in result.json()["problems"]}
    assert set(problems) == {
        ("two.md", "priority"),
        ("two.md", "yolo"),
        ("binary.md", None),
        ("empty", None),
        ("missing.md", None),
    }
    assert problems[("two.md", "priority")]["line"] == 3
    assert "not UTF-8" in problems[("binary.md", None)]["reason"]
    assert "no *.md job files" in problems[("empty", None)]["reason"]
    assert "no such file" in problems[("missing.md", None)]["reason"]
    assert run("ls", "--json").json() == []


def test_check_only_and_custom_engines(run: Invoke, tmp_path: Path) -> None:
    job = write(tmp_path, "house.md", "---\nengine: house\n---\nDo the thing.\n")
    assert run("submit", str(job)).code == ExitCode.BAD_INPUT
    config = write(tmp_path, "engines.toml", '[engines.house]\nargv = ["house", "{prompt}"]\n')
    checked = run("submit", "--engines", str(config), "--check", str(job))
    assert checked.code == 0 and "nothing enqueued" in checked.out
    assert run("ls", "--json").json() == []
    assert run("submit", "--engines", str(config), str(job)).code == 0
    assert [j["engine"] for j in run("ls", "--json").json()] == ["house"]
