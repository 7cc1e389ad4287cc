"""A cut database connection surfaces as StoreUnavailable, an agentfleet error, and the
next call works again on a fresh connection."""

from __future__ import annotations

import os
import uuid

import pytest

import agentfleet
from agentfleet import AgentFleetError, LeaseLost, StoreUnavailable
from tests.worker.helpers import wait_until


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


def _wait_gone(admin_url: str, application: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        wait_until(
            lambda: (
                admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (application,),
                ).fetchone()
                == (0,)
            ),
            "the cut connections' server processes to end",
        )


@pytest.mark.postgres
def test_a_cut_listener_wakes_nobody_and_the_next_wait_listens_again(pg_url: str) -> None:
    """An idle worker's listening connection cut by the server: the waits that find the
    cut report that nothing came (and still hear their interrupt), and a later one listens
    on a new connection, so an enqueue from elsewhere wakes it again."""
    application = f"listen-{uuid.uuid4().hex[:8]}"
    with (
        agentfleet.open(f"{pg_url}?application_name={application}", pool_size=2) as fleet,
        agentfleet.open(pg_url) as elsewhere,
    ):
        assert fleet.wait_for_jobs(0.0) is False  # from now on a connection LISTENs
        assert _terminate(pg_url, application) >= 1
        _wait_gone(pg_url, application)
        read_end, write_end = os.pipe()
        try:
            os.write(write_end, b"x")  # already readable: each wait must end at once
            for _ in range(3):  # the driver reads the server's farewell, then the end
                assert fleet.wait_for_jobs(600.0, interrupt=read_end) is False
        finally:
            os.close(read_end)
            os.close(write_end)
        for _ in range(60):  # a wait that listens anew hears the enqueues after it
            elsewhere.enqueue("shell", {})
            if fleet.wait_for_jobs(1.0):
                break
        else:
            raise AssertionError("no wait heard an enqueue after the cut")
        fleet.close()
