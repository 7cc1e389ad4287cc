"""pytest hooks for the mutation run (`make mutation`), loaded by tests/conftest.py only
when mutmut runs the tests (it sets MUTANT_UNDER_TEST); the normal suite never sees them.

- The run must test mutmut's copy of the code: mutmut copies src/ to mutants/src/ and runs
  the tests from mutants/. If `agentfleet` were imported from the editable install instead,
  no mutant could ever be killed, so that is refused up front.
- Hypothesis is made deterministic (a fixed seed, no example database), so one mutant gets
  the same verdict on every run.
- Bounded run (the default): a mutant outside the PostgreSQL code runs the memory and SQLite
  variants of its tests only (the PostgreSQL variants of the shared plan code take the most
  time per test, since a lease there expires on the server's real clock); a mutant in the
  PostgreSQL code runs its PostgreSQL tests; the Hypothesis state machines run 25 examples.
  AGENTFLEET_MUTATION_FULL=1 runs every selected test on every store, as the suite has them.
- The tests a mutant runs go fastest first (durations from mutmut's own clean run), so
  that a killed mutant, with -x, stops as early as it can.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

MUTANT_ENV = "MUTANT_UNDER_TEST"
# Mutants of these functions exercise PostgreSQL: the store, its schema, its plan dialect.
_POSTGRES_CODE = re.compile(r"^agentfleet\.store\.postgres|Postgres")

# The bounded run (the default) gives the Hypothesis state machines fewer examples; the full
# run (AGENTFLEET_MUTATION_FULL=1, `make mutation-full`) keeps every test as the suite has it.
FULL = os.environ.get("AGENTFLEET_MUTATION_FULL") == "1"
if not FULL:
    os.environ.setdefault("AGENTFLEET_STATEFUL_EXAMPLES", "25")

# Test databases of the mutation run get their own prefix: a mutant stopped at its timeout
# leaves its database behind, and `make mutation` drops those (and only those) afterwards.
os.environ.setdefault("AGENTFLEET_TEST_DB_PREFIX", "agentfleet_mutation")

settings.register_profile("mutation", derandomize=True, database=None)
settings.load_profile("mutation")


def _current_mutant() -> str | None:
    name = os.environ.get(MUTANT_ENV, "")
    return name if "__mutmut_" in name else None


def _backend(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "env" in callspec.params:
        return str(callspec.params["env"])
    return None


def _durations() -> dict[str, float]:
    try:
        stats = json.loads(Path("mutmut-stats.json").read_text())
    except (OSError, ValueError):
        return {}
    durations: dict[str, Any] = stats.get("duration_by_test", {})
    return {str(k): float(v) for k, v in durations.items()}


def pytest_configure(config: pytest.Config) -> None:
    import agentfleet

    here = Path.cwd().resolve()
    code = Path(agentfleet.__file__).resolve()
    if not code.is_relative_to(here):
        raise pytest.UsageError(
            f"mutation run: agentfleet is imported from {code.parent}, not from mutmut's "
            f"copy under {here}; every mutant would survive"
        )


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    mutant = _current_mutant()
    if mutant is None:
        return
    if not FULL and not _POSTGRES_CODE.search(mutant):
        keep = [item for item in items if _backend(item) != "postgres"]
        if keep and len(keep) < len(items):
            dropped = [item for item in items if _backend(item) == "postgres"]
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
    durations = _durations()
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
