"""A cut database connection surfaces as StoreUnavailable, an agentfleet error, and the
next call works again on a fresh connection."""

from __future__ import annotations

import uuid

import pytest

import agentfleet
from agentfleet import AgentFleetError, LeaseLost, StoreUnavailable


def _terminate(admin_url: str, application: str) -> int:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application,),
        ).fetchall()
    return len(rows)


@pytest.mark.postgres
def test_a_terminated_connection_is_store_unavailable_then_recovers(pg_url: str) -> None:
    application = f"cut-{uuid.uuid4().hex[:8]}"
    with agentfleet.open(f"{pg_url}?application_name={application}", pool_size=1) as fleet:
        job = fleet.enqueue("shell", {})
        lease = fleet.claim(job.id, worker="w", ttl=60)
        assert lease is not None
        assert _terminate(pg_url, application) >= 1
        with pytest.raises(StoreUnavailable, match="may or may not have been committed") as cut:
            fleet.complete(lease, result="first try")
        assert isinstance(cut.value, AgentFleetError)
        # The pool replaces the broken connection: the retry is judged by the fence.
        fleet.complete(lease, result="retried")
        assert fleet.get_job(job.id).result == "retried"
        with pytest.raises(LeaseLost):
            fleet.complete(lease, result="third")
