"""The mutation run's verdicts, kept in git so that a run can go on where the last stopped.

A whole bounded run takes longer than one working session on a small machine, and mutmut
keeps its verdicts in mutants/, which git ignores. So the verdicts are recorded here: per
mutated file, each mutant's exit code and the hash of each function's source. A run first
restores them into mutants/; mutmut then keeps a verdict while its function's source is
unchanged and tests again only the mutants it has no verdict for. A verdict stays right
as tests are added (a killed mutant stays killed); after tests are removed or weakened,
start afresh (`python -m tests.mutation.run --fresh`).
"""

from __future__ import annotations

import json
from pathlib import Path

MUTANTS = Path("mutants")
LEDGER = Path(__file__).with_name("ledger")


def _ledger_file(source: str) -> Path:
    """`src/agentfleet/store/sql.py` -> ledger/store.sql.json."""
    dotted = source.removeprefix("src/agentfleet/").removesuffix(".py").replace("/", ".")
    return LEDGER / f"{dotted}.json"


def _source_of(ledger_file: Path) -> str:
    return "src/agentfleet/" + ledger_file.stem.replace(".", "/") + ".py"


def restore() -> int:
    """Seed mutants/ with the recorded verdicts, where it has none of its own yet; how many
    verdicts were restored."""
    restored = 0
    for entry in sorted(LEDGER.glob("*.json")):
        meta = MUTANTS / (_source_of(entry) + ".meta")
        if meta.exists():
            continue
        recorded = json.loads(entry.read_text())
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(
            json.dumps(
                {
                    "exit_code_by_key": recorded["exit_code_by_key"],
                    "hash_by_function_name": recorded["hash_by_function_name"],
                    "type_check_error_by_key": {},
                    "durations_by_key": {},
                    "estimated_durations_by_key": {},
                }
            )
        )
        restored += sum(code is not None for code in recorded["exit_code_by_key"].values())
    return restored


def record() -> int:
    """Write mutants/'s verdicts into the ledger, one file per mutated source file (files
    no longer mutated are dropped); how many verdicts were recorded."""
    LEDGER.mkdir(exist_ok=True)
    kept: set[Path] = set()
    recorded = 0
    for meta in sorted(MUTANTS.glob("src/**/*.py.meta")):
        data = json.loads(meta.read_text())
        codes = data.get("exit_code_by_key", {})
        if not codes:
            continue
        source = str(meta.relative_to(MUTANTS))[: -len(".meta")]
        entry = _ledger_file(source)
        entry.write_text(
            json.dumps(
                {
                    "exit_code_by_key": dict(sorted(codes.items())),
                    "hash_by_function_name": dict(sorted(data["hash_by_function_name"].items())),
                },
                indent=0,
            )
            + "\n"
        )
        kept.add(entry)
        recorded += sum(code is not None for code in codes.values())
    for stale in set(LEDGER.glob("*.json")) - kept:
        stale.unlink()
    return recorded


def recorded_verdicts() -> dict[str, dict[str, int | None]]:
    """{source file: {mutant id: exit code}} as the ledger holds them."""
    return {
        _source_of(entry): json.loads(entry.read_text())["exit_code_by_key"]
        for entry in sorted(LEDGER.glob("*.json"))
    }
