"""A burst worker that leaves with work still to start later (a retry's backoff, a delay)
says so, so that "drained" is not read as "all done"."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from agentfleet import Fleet
from tests.worker.helpers import run_burst


def test_a_burst_worker_names_the_jobs_left_to_start_later(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    fleet.enqueue("shell", {"cmd": "true"})
    with caplog.at_level(logging.INFO, logger="agentfleet.worker"):
        run_burst(fleet)
    assert "leaving (burst mode)" in caplog.text
    assert "to start later" not in caplog.text  # nothing left: nothing said
    caplog.clear()

    fleet.enqueue("shell", {"cmd": "true"}, run_at=timedelta(hours=2))
    fleet.enqueue("shell", {"cmd": "true"}, queue="other", run_at=timedelta(minutes=5))
    with caplog.at_level(logging.INFO, logger="agentfleet.worker"):
        run_burst(fleet, queues=["default"])
    assert "1 job(s) queued to start later, the first in 1h59m" in caplog.text or (
        "1 job(s) queued to start later, the first in 2h" in caplog.text
    ), caplog.text
