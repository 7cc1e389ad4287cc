"""The mutation ledger: verdicts recorded from mutants/ come back, in the form mutmut reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.mutation import explained, ledger, report


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ledger, "LEDGER", tmp_path / "ledger")
    return tmp_path


def _meta(path: str, codes: dict[str, int | None], hashes: dict[str, str]) -> None:
    meta = Path("mutants") / (path + ".meta")
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(
        json.dumps(
            {
                "exit_code_by_key": codes,
                "hash_by_function_name": hashes,
                "type_check_error_by_key": {},
                "durations_by_key": {"x": 1.5},
                "estimated_durations_by_key": {"x": 2.0},
            }
        )
    )


def test_verdicts_recorded_come_back_into_a_fresh_mutants_folder(workdir: Path) -> None:
    codes = {"agentfleet.store.sql.x_a__mutmut_1": 1, "agentfleet.store.sql.x_a__mutmut_2": None}
    _meta("src/agentfleet/store/sql.py", codes, {"x_a": "abc"})
    _meta("src/agentfleet/plans/model.py", {"agentfleet.plans.model.x_b__mutmut_1": 0}, {})
    _meta("src/agentfleet/store/__init__.py", {}, {})  # nothing mutated: nothing recorded

    assert ledger.record() == 2
    assert sorted(p.name for p in ledger.LEDGER.iterdir()) == ["plans.model.json", "store.sql.json"]

    for meta in Path("mutants").rglob("*.meta"):
        meta.unlink()
    assert ledger.restore() == 2
    restored = json.loads(Path("mutants/src/agentfleet/store/sql.py.meta").read_text())
    assert restored["exit_code_by_key"] == codes
    assert restored["hash_by_function_name"] == {"x_a": "abc"}
    # mutmut's loader pops exactly these keys and refuses any other
    assert set(restored) == {
        "exit_code_by_key",
        "hash_by_function_name",
        "type_check_error_by_key",
        "durations_by_key",
        "estimated_durations_by_key",
    }


def test_restore_keeps_a_verdict_mutants_already_has(workdir: Path) -> None:
    _meta("src/agentfleet/store/sql.py", {"agentfleet.store.sql.x_a__mutmut_1": 0}, {})
    ledger.record()
    _meta("src/agentfleet/store/sql.py", {"agentfleet.store.sql.x_a__mutmut_1": 1}, {})
    assert ledger.restore() == 0
    meta = json.loads(Path("mutants/src/agentfleet/store/sql.py.meta").read_text())
    assert meta["exit_code_by_key"] == {"agentfleet.store.sql.x_a__mutmut_1": 1}


def test_a_file_no_longer_mutated_leaves_the_ledger(workdir: Path) -> None:
    _meta("src/agentfleet/store/old.py", {"agentfleet.store.old.x__mutmut_1": 1}, {})
    ledger.record()
    Path("mutants/src/agentfleet/store/old.py.meta").unlink()
    _meta("src/agentfleet/store/new.py", {"agentfleet.store.new.x__mutmut_1": 1}, {})
    ledger.record()
    assert [p.name for p in ledger.LEDGER.iterdir()] == ["store.new.json"]


def test_the_report_reads_the_ledger_when_mutants_is_empty(workdir: Path) -> None:
    _meta("src/agentfleet/store/sql.py", {"agentfleet.store.sql.x_a__mutmut_1": 0}, {})
    ledger.record()
    Path("mutants/src/agentfleet/store/sql.py.meta").unlink()
    assert report.verdicts() == {
        "src/agentfleet/store/sql.py": {"agentfleet.store.sql.x_a__mutmut_1": "survived"}
    }


def test_mutmut_reads_a_restored_verdict(workdir: Path) -> None:
    """The restored file is one mutmut's own loader accepts (where mutmut is installed)."""
    data_module = pytest.importorskip("mutmut.mutation.data")
    _meta("src/agentfleet/store/sql.py", {"agentfleet.store.sql.x_a__mutmut_1": 1}, {"x_a": "h"})
    ledger.record()
    Path("mutants/src/agentfleet/store/sql.py.meta").unlink()
    ledger.restore()
    data = data_module.SourceFileMutationData(path="src/agentfleet/store/sql.py")
    data.load()
    assert data.exit_code_by_key == {"agentfleet.store.sql.x_a__mutmut_1": 1}
    assert data.hash_by_function_name == {"x_a": "h"}


def test_the_equivalent_list_explains_the_survivors_it_names_and_no_others() -> None:
    text = "\n".join(
        [
            "- `xǁSqlStoreǁfail__mutmut_22`, `_25` to `_27`, `store.sql.x_pause__mutmut_7`.",
            "- `store.sqlite_watch.*`, and `xǁSqliteStoreǁ_watch__mutmut_*`: a doorbell.",
            "- `_9` on a line of its own names nothing: it follows no mutant of a function.",
        ]
    )
    survivors = [
        "agentfleet.store.sql.xǁSqlStoreǁfail__mutmut_22",
        "agentfleet.store.sql.xǁSqlStoreǁfail__mutmut_23",  # between 22 and 25: not named
        "agentfleet.store.sql.xǁSqlStoreǁfail__mutmut_26",
        "agentfleet.store.sql.xǁSqlStoreǁfail__mutmut_28",
        "agentfleet.store.sql.x_pause__mutmut_7",
        "agentfleet.store.sql.x_pause__mutmut_70",  # another number, not a prefix of it
        "agentfleet.store.sqlite_watch.x_ring__mutmut_3",
        "agentfleet.store.sqlite.xǁSqliteStoreǁ_watch__mutmut_12",
        "agentfleet.store.sql.xǁSqlStoreǁ_watch__mutmut_12",  # another class
        "agentfleet.store.sql.xǁSqlStoreǁfail__mutmut_9",
    ]
    assert explained.unexplained(survivors, text) == [
        "agentfleet.store.sql.xǁSqlStoreǁfail__mutmut_23",
        "agentfleet.store.sql.xǁSqlStoreǁfail__mutmut_28",
        "agentfleet.store.sql.x_pause__mutmut_70",
        "agentfleet.store.sql.xǁSqlStoreǁ_watch__mutmut_12",
        "agentfleet.store.sql.xǁSqlStoreǁfail__mutmut_9",
    ]
