"""Plan input is checked like job input: one error naming the file, the field and the
reason, nothing written, and the same answer from the Python API on every store, from
the command line (exit 2) and over HTTP (422)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet import Fleet, InvalidArgument

SHELL_JOB = "  - name: a\n    engine: shell\n    cmd: echo a\n"
NESTED = "[" * 5000 + "]" * 5000
BAD_PLANS: list[tuple[str, bytes | str, str]] = [
    (
        "duplicate dependency",
        "name: p\njobs:\n" + SHELL_JOB + "  - name: b\n    engine: shell\n    cmd: x\n"
        "    depends_on: [a, a]\n",
        "job 'b': 'depends_on' lists 'a' twice",
    ),
    (
        "a !!binary value",
        "name: p\nmetadata:\n  due: !!binary aGVsbG8=\njobs:\n" + SHELL_JOB,
        "binary",
    ),
    ("nesting 5,000 deep", f"name: p\nmetadata:\n  deep: {NESTED}\njobs:\n" + SHELL_JOB, "deep"),
    (
        "max_parallel past 32 bits",
        "name: p\nmax_parallel: " + str(2**70) + "\njobs:\n" + SHELL_JOB,
        "'max_parallel'",
    ),
    ("not UTF-8", b"name: caf\xe9\njobs:\n" + SHELL_JOB.encode(), "UTF-8"),
    ("a NUL in the plan's name", 'name: "a\\0b"\njobs:\n' + SHELL_JOB, "'name'"),
    (
        "a NUL in a step's name",
        'name: p\njobs:\n  - name: "a\\0b"\n    engine: shell\n    cmd: x\n',
        "'name'",
    ),
    (
        "a 100,000-character name",
        "name: " + "n" * 100_000 + "\njobs:\n" + SHELL_JOB,
        "longer than",
    ),
    (
        "integer metadata keys",
        "name: p\nmetadata:\n  1: one\njobs:\n" + SHELL_JOB,
        "keys must be strings",
    ),
    (
        "nested aliases",
        "name: p\nmetadata:\n  a: &a [x, x]\n  b: [*a, *a]\njobs:\n" + SHELL_JOB,
        "aliases",
    ),
    (
        "an on_reject that is not upstream of its gate",
        "name: p\njobs:\n" + SHELL_JOB + "  - name: gate\n    engine: approval\n    message: ok?\n"
        "    on_reject: later\n    depends_on: [a]\n  - name: later\n    engine: shell\n"
        "    cmd: x\n    depends_on: [gate]\n",
        "not upstream of it",
    ),
]
IDS = [case[0] for case in BAD_PLANS]


def _write(tmp_path: Path, content: bytes | str) -> Path:
    path = tmp_path / "plan.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(("case", "content", "problem"), BAD_PLANS, ids=IDS)
def test_a_bad_plan_file_is_one_error_and_nothing_written(
    fleet: Fleet, tmp_path: Path, case: str, content: bytes | str, problem: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(InvalidArgument) as refused:
        fleet.submit_plan(path)
    assert str(path) in str(refused.value) and problem in str(refused.value), case
    assert fleet.list_plans() == [] and fleet.list_jobs() == []


def test_a_yaml_date_is_kept_as_the_text_it_was_written_as(fleet: Fleet, tmp_path: Path) -> None:
    path = _write(tmp_path, "name: p\nmetadata:\n  due: 2026-12-01\njobs:\n" + SHELL_JOB)
    assert fleet.submit_plan(path).metadata == {"due": "2026-12-01"}
