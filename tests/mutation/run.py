"""Run the mutation tests: `python -m tests.mutation.run [--full] [--fresh] [--jobs N] [ID ...]`.

Runs `mutmut run` at the lowest CPU priority, then drops the test databases of mutants
stopped at their timeout, then prints the score (tests/mutation/report.py). mutmut keeps its
verdicts in mutants/ and, run again, tests only the mutants of functions that changed; a
run of the other mode (bounded or full) starts from scratch, since the two modes' verdicts
do not mix. The bounded run's verdicts are also recorded in tests/mutation/ledger/ (kept in
git), when the run ends or is stopped with Ctrl-C, and restored from there into a fresh
mutants/, so that a run on a new checkout goes on where the last one stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.mutation import cleanup, ledger, report

MUTANTS = Path("mutants")
MODE_FILE = MUTANTS / "mutation-mode"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every test on every store")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (2)")
    parser.add_argument(
        "--fresh", action="store_true", help="ignore the recorded verdicts: test every mutant"
    )
    parser.add_argument("mutants", nargs="*", help="only these mutant names (globs allowed)")
    args = parser.parse_args(argv)

    mode = "full" if args.full else "bounded"
    if MODE_FILE.exists() and MODE_FILE.read_text().strip() != mode:
        print(f"the last run was {MODE_FILE.read_text().strip()}; starting the {mode} run afresh")
        shutil.rmtree(MUTANTS)
    if args.fresh and MUTANTS.exists():
        shutil.rmtree(MUTANTS)
    MUTANTS.mkdir(exist_ok=True)
    MODE_FILE.write_text(mode + "\n")
    if mode == "bounded" and not args.fresh:
        restored = ledger.restore()
        if restored:
            print(f"restored {restored} verdicts from {ledger.LEDGER}; testing the rest")

    env = dict(os.environ)
    if args.full:
        env["AGENTFLEET_MUTATION_FULL"] = "1"
    mutmut = Path(sys.executable).with_name("mutmut")
    command = ["nice", "-n", "19", str(mutmut), "run", "--max-children", str(args.jobs)]
    started = time.monotonic()
    try:
        status = subprocess.call([*command, *args.mutants], env=env)
    except KeyboardInterrupt:  # stopped with Ctrl-C: the verdicts so far are kept
        status = 130
    finally:
        if mode == "bounded":
            print(f"recorded {ledger.record()} verdicts in {ledger.LEDGER}")
    minutes = (time.monotonic() - started) / 60
    cleanup.main()
    print(f"\nmutmut ran for {minutes:.1f} minutes ({mode} run, {args.jobs} at once)")
    report.main([])
    return status


if __name__ == "__main__":
    sys.exit(main())
