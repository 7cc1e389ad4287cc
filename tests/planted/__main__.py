"""Plant each deliberate bug in a throwaway copy of the repository and run its tests there.

    python -m tests.planted                      # every bug, its named tests
    python -m tests.planted --bug retry-requeues-succeeded --bug job-stdin-inherited
    python -m tests.planted --suite              # each bug against the whole safety net
    python -m tests.planted --list               # the bugs, in words

For every bug: copy the working tree to a temporary directory (the checkout itself is never
written), apply the bug's edits there (each `old` text must occur exactly once), and run
pytest in the copy with PYTHONPATH pointing at the copy's src/ and tests. A bug is caught
on a store when at least one test of that store fails; it survived when none did. Before
the bugs, the same tests run once on an unpatched copy: a test that fails without the bug
proves nothing (skip that with --no-baseline).

The exit status is 0 only when every bug was caught on every store it lives in.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.planted.bugs import BUGS, STORES

ROOT = Path(__file__).resolve().parents[2]
SUITE = ("tests/contract", "tests/plans", "tests/concurrency")
SKIP_IN_COPY = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".agentfleet",
    "test-artifacts",
    "*.db",
    "*.db-wal",
    "*.db-shm",
)


class PatchDoesNotApply(Exception):
    pass


@dataclass
class Outcome:
    """What one pytest run said, test by test."""

    failed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    passed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    problem: str | None = None


def edits(bug: dict[str, Any]) -> list[dict[str, str]]:
    return [{"path": bug["path"], "old": bug["old"], "new": bug["new"]}, *bug.get("also", [])]


def stores_of(bug: dict[str, Any]) -> tuple[str, ...]:
    return tuple(bug.get("stores", STORES))


def copy_tree(into: Path) -> Path:
    repo = into / "repo"
    shutil.copytree(ROOT, repo, ignore=SKIP_IN_COPY, symlinks=True)
    return repo


def plant(repo: Path, bug: dict[str, Any]) -> None:
    for edit in edits(bug):
        path = repo / edit["path"]
        text = path.read_text(encoding="utf-8")
        found = text.count(edit["old"])
        if found != 1:
            raise PatchDoesNotApply(
                f"{bug['name']}: the text to replace occurs {found} times in {edit['path']} "
                f"(expected once); re-target the patch at the current code:\n{edit['old']}"
            )
        path.write_text(text.replace(edit["old"], edit["new"]), encoding="utf-8")


def node_ids(tests: Iterable[str], stores: Sequence[str]) -> list[str]:
    out: list[str] = []
    for test in tests:
        if "{store}" in test:
            out += [test.format(store=s) for s in stores if s != "any"]
        else:
            out.append(test)
    return list(dict.fromkeys(out))


def store_of(name: str) -> str:
    """The store a test ran on, from its parametrisation id or else its class name
    (TestMemoryModel); "any" when neither names one."""
    params = re.search(r"\[(.*)\]$", name)
    if params:
        for part in re.split(r"[-_]", params.group(1)):
            if part in STORES:
                return part
    for part in name.split("[")[0].split("::")[1:-1]:
        for store in STORES:
            if store in part.lower():
                return store
    return "any"


def run_pytest(repo: Path, targets: Sequence[str], report: Path) -> Outcome:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(repo / "src"), str(repo)])
    check = subprocess.run(
        [sys.executable, "-c", "import agentfleet, tests; print(agentfleet.__file__)"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if not check.stdout.strip().startswith(str(repo)):
        return Outcome(problem=f"the copy's agentfleet is not the one imported: {check}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *targets,
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if not report.exists():
        tail = (done.stdout + done.stderr)[-2000:]
        return Outcome(problem=f"pytest wrote no report (exit {done.returncode}):\n{tail}")
    outcome = Outcome()
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = _node_id(repo, case.get("classname", ""), case.get("name", ""))
        store = store_of(test_id)
        if case.find("failure") is not None or case.find("error") is not None:
            outcome.failed[store].append(test_id)
        elif case.find("skipped") is not None:
            outcome.skipped[store].append(test_id)
        else:
            outcome.passed[store].append(test_id)
    if done.returncode not in (0, 1):  # 1: some test failed; anything else: no verdict
        tail = (done.stdout + done.stderr)[-2000:]
        outcome.problem = f"pytest exited {done.returncode}:\n{tail}"
    return outcome


def _node_id(repo: Path, classname: str, name: str) -> str:
    """A pytest node id from a JUnit test case: the longest dotted prefix of its classname
    that names a module file, then any classes."""
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        module = "/".join(parts[:cut])
        if (repo / f"{module}.py").is_file():
            return "::".join([f"{module}.py", *parts[cut:], name])
    return f"{classname}::{name}"


def describe(bug: dict[str, Any]) -> str:
    where = ", ".join(dict.fromkeys(e["path"] for e in edits(bug)))
    return f"{bug['name']} ({where}; stores: {', '.join(stores_of(bug))})\n    {bug['intent']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.planted", description=__doc__)
    parser.add_argument("--bug", action="append", default=[], help="only this bug (repeatable)")
    parser.add_argument(
        "--suite", action="store_true", help=f"run {', '.join(SUITE)} (and each bug's tests)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the unpatched run")
    parser.add_argument("--list", action="store_true", help="describe the bugs and stop")
    parser.add_argument("--keep", action="store_true", help="keep the copies (printed)")
    args = parser.parse_args(argv)

    known = {bug["name"]: bug for bug in BUGS}
    unknown = [name for name in args.bug if name not in known]
    if unknown:
        parser.error(f"unknown bug(s) {unknown}; known: {', '.join(known)}")
    bugs = [known[name] for name in args.bug] if args.bug else BUGS
    if args.list:
        for bug in bugs:
            print(describe(bug))
        return 0

    def targets(bug: dict[str, Any]) -> list[str]:
        named = node_ids(bug["tests"], stores_of(bug))
        if not args.suite:
            return named
        return [*SUITE, *(t for t in named if not t.startswith(SUITE))]

    scratch = Path(tempfile.mkdtemp(prefix="agentfleet-planted-"))
    problems: list[str] = []
    survived: list[str] = []
    try:
        if not args.no_baseline:
            every = list(dict.fromkeys(t for bug in bugs for t in targets(bug)))
            print(f"baseline: {len(every)} targets on an unpatched copy ...", flush=True)
            base = scratch / "baseline"
            base.mkdir()
            outcome = run_pytest(copy_tree(base), every, base / "report.xml")
            broken = sorted(t for tests in outcome.failed.values() for t in tests)
            if outcome.problem or broken:
                print(f"baseline FAILED: {outcome.problem or ''}")
                for test in broken:
                    print(f"    fails without any bug: {test}")
                return 2
            print("baseline: every test passes without a bug\n", flush=True)
        for number, bug in enumerate(bugs, 1):
            work = scratch / f"planted-{number}"
            work.mkdir()
            repo = copy_tree(work)
            print(f"[{number}/{len(bugs)}] {describe(bug)}", flush=True)
            try:
                plant(repo, bug)
            except PatchDoesNotApply as exc:
                problems.append(str(exc))
                print(f"    PATCH DOES NOT APPLY: {exc}\n", flush=True)
                continue
            outcome = run_pytest(repo, targets(bug), work / "report.xml")
            if outcome.problem:
                problems.append(f"{bug['name']}: {outcome.problem}")
                print(f"    NO VERDICT: {outcome.problem}", flush=True)
            named = set(node_ids(bug["tests"], stores_of(bug)))
            for store in stores_of(bug):
                caught = sorted(outcome.failed.get(store, []))
                if store == "any":  # a bug no store sees: any failing test counts
                    caught = sorted(t for tests in outcome.failed.values() for t in tests)
                ran = caught or outcome.passed.get(store) or outcome.skipped.get(store)
                if caught:
                    print(f"    {store:9} caught by {len(caught)}:")
                    for test in caught:
                        print(f"        {test}")
                else:
                    survived.append(f"{bug['name']} on {store}")
                    print(f"    {store:9} SURVIVED" + ("" if ran else " (no test ran)"))
            missed = sorted(
                t
                for store, tests in outcome.passed.items()
                for t in tests
                if t in named or t.split("[")[0] in named
            )
            for test in missed:
                print(f"    (named but passed: {test})")
            print(flush=True)
    finally:
        if args.keep:
            print(f"copies kept under {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print("summary:")
    for bug in bugs:
        lost = [s for s in survived if s.startswith(f"{bug['name']} on ")]
        print(f"    {bug['name']:36} {'SURVIVED ' + ', '.join(lost) if lost else 'caught'}")
    for problem in problems:
        print(f"problem: {problem.splitlines()[0]}")
    return 1 if survived or problems else 0


if __name__ == "__main__":
    sys.exit(main())
