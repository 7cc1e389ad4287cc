"""The benchmark runner's agentfleet side, bounded: it runs and its figures are coherent.

Speed is never asserted here; `python -m benchmarks.run` measures it.
"""

from __future__ import annotations

import pytest
from benchmarks import agentfleet_bench


def test_sqlite_drain_smoke() -> None:
    rows = agentfleet_bench.sqlite(400, workers=2, batch=50)
    drain = next(r for r in rows if r.scenario == "drain_sqlite")
    assert drain.jobs == 400 and drain.jobs_per_s > 0 and drain.workers == 2


def test_postgres_drain_smoke(pg_url: str) -> None:
    pytest.importorskip("psycopg")
    rows = agentfleet_bench.drain(400, workers=2, batch=50)
    drain = next(r for r in rows if r.scenario == "drain")
    assert drain.jobs == 400 and "leases+epochs+runs+events" in drain.notes


def test_whatif_variants_still_match_the_batch_statement() -> None:
    """The what-if drains edit the store's statement by text: if it changes, they must too."""
    pytest.importorskip("psycopg")
    from benchmarks import whatif

    from agentfleet.store import postgres

    parts = {part for variant in whatif.VARIANTS.values() for part in variant}
    statement = postgres._COMPLETE_BATCH + postgres._CLAIM_BATCH
    assert parts and all(part in statement for part in parts)
