"""A worker prunes past the fleet's retention setting, and says so in its log and in the
event stream that the metrics follow."""

from __future__ import annotations

import logging
import time

import pytest

from agentfleet import Fleet
from tests.worker.helpers import run_burst


def test_a_worker_prunes_past_the_retention(fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    ids = [fleet.enqueue("shell", {"cmd": "true"}).id for _ in range(3)]
    run_burst(fleet)
    assert {fleet.get_job(i).status.value for i in ids} == {"succeeded"}
    fleet.set_config("retention", "1s")
    time.sleep(1.2)  # the store's clock, real here
    with caplog.at_level(logging.INFO, logger="agentfleet.worker"):
        run_burst(fleet)
    assert fleet.list_jobs() == []
    assert "pruned 3 job(s) and 0 plan(s) past the retention" in caplog.text
    [event] = [e for e in fleet.events(limit=1000) if e.kind == "pruned"]
    assert event.data["jobs"] == 3 and event.job_id is None
