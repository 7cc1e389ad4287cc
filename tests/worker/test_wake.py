"""An idle worker starts new work when it arrives, woken by the store, not by its polls.

The workers here poll once an hour: a job they start within the test's patience was
brought to them by the store's wake-up (SQLite's data_version, PostgreSQL's NOTIFY). The
measured figures are in benchmarks/worker_latency.py; nothing here is timed.
"""

from __future__ import annotations

from agentfleet import Fleet, JobStatus, PlanStatus, Worker
from tests.conftest import StoreEnv
from tests.plans.helpers import gate, plan, shell
from tests.worker.helpers import wait_until, worker_thread

NEVER = 3600.0  # poll_min = poll_max: after its first claim, the worker never polls again


def _idle(fleet: Fleet, worker: Worker) -> None:
    """Wait until the worker has made its first claim (nothing) and gone to wait: it
    publishes its presence right after that claim."""
    wait_until(lambda: worker.name in {w.name for w in fleet.list_workers()}, "the worker")


def test_an_idle_worker_starts_a_new_job_without_polling(store: StoreEnv) -> None:
    with worker_thread(store.open(), name="idle", poll_min=NEVER, poll_max=NEVER) as worker:
        _idle(store.fleet, worker)
        for n in range(3):  # each one after the worker went back to waiting
            job = store.fleet.enqueue("shell", {"cmd": f"echo {n}"})
            wait_until(
                lambda job_id=job.id: store.fleet.get_job(job_id).status is JobStatus.SUCCEEDED,
                f"job {job.id} to be woken up for and run",
            )
    assert worker.stats.succeeded == 3


def test_the_step_after_an_approval_starts_without_polling(store: StoreEnv) -> None:
    with worker_thread(store.open(), name="gated", poll_min=NEVER, poll_max=NEVER) as worker:
        _idle(store.fleet, worker)
        p = store.fleet.submit_plan(
            plan(shell("draft"), gate("review", "draft"), shell("ship", "review"))
        )
        wait_until(
            lambda: store.fleet.get_plan(p.id).checkpoint == "review", "the plan to reach review"
        )
        store.fleet.approve(p.id, response="go", checkpoint="review")
        wait_until(
            lambda: store.fleet.get_plan(p.id).status is PlanStatus.COMPLETED,
            "the step after the approval to run",
        )
    assert worker.stats.succeeded == 2
