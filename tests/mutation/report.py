"""Print the mutation score from mutmut's verdicts in mutants/ (or, when there are none, from
those recorded in tests/mutation/ledger/): `make mutation-report`.

Per mutated file: mutants, killed, survived, timed out, not reached by any selected test
("no tests") and anything else mutmut recorded; then the score, killed / total, and the ids
of the survivors. `mutmut show ID` prints a survivor's change; `--diff` prints them all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.mutation import explained, ledger

MUTANTS = Path("mutants")
# mutmut's exit codes (mutmut/stats.py); anything else is "suspicious".
STATUS = {
    None: "not checked",
    0: "survived",
    1: "killed",
    3: "killed",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    36: "timeout",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    37: "caught by type check",
}
COLUMNS = ["killed", "survived", "timeout", "no tests"]


def verdicts() -> dict[str, dict[str, str]]:
    """{source file: {mutant id: status}} for every file mutmut mutated."""
    found: dict[str, dict[str, str]] = {}
    if not any(MUTANTS.glob("src/**/*.py.meta")):
        for source, codes in ledger.recorded_verdicts().items():
            found[source] = {key: STATUS.get(code, "suspicious") for key, code in codes.items()}
        return found
    for meta in sorted(MUTANTS.glob("src/**/*.py.meta")):
        try:
            data = json.loads(meta.read_text())
        except ValueError:  # mutmut is writing it right now: read it again
            data = json.loads(meta.read_text())
        codes = data.get("exit_code_by_key", {})
        if not codes:
            continue
        source = str(meta.relative_to(MUTANTS))[: -len(".meta")]
        found[source] = {key: STATUS.get(code, "suspicious") for key, code in codes.items()}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diff", action="store_true", help="print each survivor's change")
    parser.add_argument(
        "--unexplained",
        action="store_true",
        help="list only the survivors (and the mutants no test reaches) that "
        "tests/mutation/equivalent.md does not explain",
    )
    args = parser.parse_args(argv)
    found = verdicts()
    if not found:
        print("no mutation results yet: run `make mutation` first")
        return 1

    width = max(len(source) for source in found)
    print(f"{'file':{width}} {'mutants':>8} " + " ".join(f"{c:>9}" for c in COLUMNS) + "  other")
    total: Counter[str] = Counter()
    for source, by_id in found.items():
        counts = Counter(by_id.values())
        total.update(counts)
        other = sum(n for status, n in counts.items() if status not in COLUMNS)
        cells = " ".join(f"{counts[c]:>9}" for c in COLUMNS)
        print(f"{source:{width}} {len(by_id):>8} {cells}  {other}")
    mutants = sum(total.values())
    cells = " ".join(f"{total[c]:>9}" for c in COLUMNS)
    other = sum(n for status, n in total.items() if status not in COLUMNS)
    print(f"{'total':{width}} {mutants:>8} {cells}  {other}")
    if other:
        print("other: " + ", ".join(f"{s} {n}" for s, n in total.items() if s not in COLUMNS))

    killed = total["killed"]
    print(f"\nMutation score: {killed}/{mutants} killed ({100 * killed / mutants:.1f}%)")
    print(f"(timed out, also a detected mutant: {total['timeout']})")
    for status in ("survived", "no tests", "suspicious", "not checked"):
        ids = sorted(k for by_id in found.values() for k, s in by_id.items() if s == status)
        if args.unexplained:
            if status not in ("survived", "no tests"):
                continue
            ids = explained.unexplained(ids)
            status += ", not explained in equivalent.md"
        if not ids:
            continue
        print(f"\n{status} ({len(ids)}):")
        for mutant in ids:
            print(f"  {mutant}")
            if args.diff and status in ("survived", "no tests"):
                mutmut = Path(sys.executable).with_name("mutmut")
                subprocess.call([str(mutmut), "show", mutant])
    return 0


if __name__ == "__main__":
    sys.exit(main())
