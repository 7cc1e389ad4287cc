"""The planted-bug runner's own plumbing (the bugs themselves run with python -m tests.planted)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from tests.planted.__main__ import ROOT, PatchDoesNotApply, node_ids, plant, store_of
from tests.planted.bugs import BUGS, STORES


def test_store_of_reads_the_parametrisation_or_the_class() -> None:
    assert store_of("tests/a.py::test_x[postgres-complete]") == "postgres"
    assert store_of("tests/a.py::test_x[memory]") == "memory"
    assert store_of("tests/s.py::TestSqliteModel::runTest") == "sqlite"
    assert store_of("tests/a.py::test_x") == "any"


def test_node_ids_fill_in_each_store() -> None:
    ids = node_ids(["t.py::a[{store}-fail]", "t.py::b", "t.py::b"], STORES)
    filled = ["t.py::a[memory-fail]", "t.py::a[sqlite-fail]", "t.py::a[postgres-fail]"]
    assert ids == [*filled, "t.py::b"]


def test_a_patch_applies_once_or_not_at_all(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x = 1\ny = 1\n")
    plant(tmp_path, {"name": "b", "path": "m.py", "old": "x = 1\n", "new": "x = 2\n"})
    assert (tmp_path / "m.py").read_text() == "x = 2\ny = 1\n"
    with pytest.raises(PatchDoesNotApply, match="occurs 0 times"):
        plant(tmp_path, {"name": "b", "path": "m.py", "old": "x = 1\n", "new": "x = 3\n"})
    with pytest.raises(PatchDoesNotApply, match="occurs 2 times"):
        plant(tmp_path, {"name": "b", "path": "m.py", "old": " = ", "new": " == "})


@pytest.mark.parametrize("bug", BUGS, ids=[bug["name"] for bug in BUGS])
def test_every_bug_is_described_and_names_tests_that_exist(bug: dict[str, object]) -> None:
    assert {"name", "intent", "path", "old", "new", "tests"} <= set(bug)
    assert bug["old"] != bug["new"] and bug["tests"]
    for test in bug["tests"]:  # type: ignore[attr-defined]
        path, _, name = test.partition("::")
        module = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        functions = {n.name for n in module.body if isinstance(n, ast.FunctionDef)}
        assert name.split("[")[0] in functions, f"{bug['name']}: no test {test}"


@pytest.mark.parametrize("bug", BUGS, ids=[bug["name"] for bug in BUGS])
def test_every_bug_still_applies_to_the_code_as_it_is(bug: dict[str, Any]) -> None:
    """A patch whose text has moved away plants nothing: the runner would report it as
    not applying, so the proof it stands for would be gone without anyone noticing."""
    for edit in [bug, *bug.get("also", [])]:
        text = (ROOT / edit["path"]).read_text(encoding="utf-8")
        assert text.count(edit["old"]) == 1, f"{bug['name']}: {edit['path']}"
