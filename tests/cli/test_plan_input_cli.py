"""Plan input through the command line: exit 2, one error, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Invoke
from tests.plans.test_plan_input import BAD_PLANS, IDS, _write


@pytest.mark.parametrize(("case", "content", "problem"), BAD_PLANS, ids=IDS)
def test_the_command_line_answers_exit_2(
    run: Invoke, tmp_path: Path, case: str, content: bytes | str, problem: str
) -> None:
    path = _write(tmp_path, content)
    refused = run("plan", "submit", str(path))
    assert refused.code == 2 and problem in refused.err and "Traceback" not in refused.err, case
    assert run("plan", "ls", "--json").json() == []


def test_aliases_are_refused_in_job_files_too(run: Invoke, tmp_path: Path) -> None:
    job = tmp_path / "job.md"
    job.write_text("---\nengine: shell\ncmd: &c echo hi\nlabels: [*c]\n---\n")
    refused = run("submit", str(job))
    assert refused.code == 2 and "aliases" in refused.err
    assert run("ls", "--json").json() == []


def test_custom_engines_are_known_to_plans_as_to_job_files(run: Invoke, tmp_path: Path) -> None:
    engines = tmp_path / "engines.toml"
    engines.write_text('[engines.mytool]\nargv = ["mytool", "{prompt}"]\n')
    plan = _write(tmp_path, "name: p\njobs:\n  - name: a\n    engine: mytool\n    prompt: do it\n")
    assert run("plan", "submit", str(plan)).code == 2  # unknown without the engine file
    done = run("plan", "submit", str(plan), "--engines", str(engines), "--json")
    assert done.code == 0, done.err
    assert done.json()["jobs"][0]["engine"] == "mytool"
