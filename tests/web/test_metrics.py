"""/metrics: gauges read at scrape time, counters derived from the event log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentfleet import JobCancelled, RunOutput
from agentfleet.models import Event
from agentfleet.web.metrics import EventTail
from tests.conftest import StoreEnv
from tests.web.conftest import Web, make_web


def scrape(web: Web) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = web.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_follow_what_happens_after_the_server_starts(mem_env: StoreEnv) -> None:
    fleet = mem_env.fleet
    fleet.enqueue("shell", {"cmd": "before"})  # history before start is not counted
    web = make_web(mem_env)
    clock = mem_env.clock
    assert clock is not None

    ok = fleet.enqueue("shell", {"cmd": "ok"}, queue="fast").id
    bad = fleet.enqueue("shell", {"cmd": "bad"}, max_attempts=2).id
    lost = fleet.enqueue("shell", {"cmd": "lost"}, max_attempts=1).id
    stop = fleet.enqueue("shell", {"cmd": "stop"}).id
    queued_cancel = fleet.enqueue("shell", {"cmd": "never"}).id

    clock.advance(2)
    lease = fleet.claim(ok, worker="w1", ttl=60)
    assert lease is not None
    clock.advance(3)
    fleet.complete(lease, output=RunOutput(exit_code=0))

    for _ in range(2):
        lease = fleet.claim(bad, worker="w1", ttl=60)
        assert lease is not None
        fleet.fail(lease, "boom", delay=0)

    lease = fleet.claim(lost, worker="w2", ttl=5)
    assert lease is not None
    clock.advance(10)
    fleet.reap_expired()

    lease = fleet.claim(stop, worker="w3", ttl=60)
    assert lease is not None
    fleet.cancel_job(stop)
    try:
        fleet.renew(lease)
    except JobCancelled:
        fleet.fail(lease, "cancelled", retry=False)
    fleet.cancel_job(queued_cancel)
    fleet.retry_job(bad)

    fleet.worker_seen("w1", host="h", pid=1, queues=["default"], concurrency=2)

    s = scrape(web)
    assert value(s, "agentfleet_enqueued_total") == 5
    assert value(s, "agentfleet_claims_total") == 5
    assert value(s, "agentfleet_completions_total") == 1
    assert value(s, "agentfleet_failures_total") == 2  # bad (attempts spent), lost (reaped)
    assert value(s, "agentfleet_retries_total", kind="automatic") == 1
    assert value(s, "agentfleet_retries_total", kind="manual") == 1
    assert value(s, "agentfleet_lease_losses_total") == 1
    assert value(s, "agentfleet_cancellations_total") == 2
    assert value(s, "agentfleet_queue_latency_seconds_count") == 5
    assert value(s, "agentfleet_run_duration_seconds_count", outcome="succeeded") == 1
    assert value(s, "agentfleet_run_duration_seconds_sum", outcome="succeeded") >= 3
    assert value(s, "agentfleet_run_duration_seconds_count", outcome="failed") == 2
    assert value(s, "agentfleet_run_duration_seconds_count", outcome="expired") == 1
    assert value(s, "agentfleet_run_duration_seconds_count", outcome="cancelled") == 1
    # gauges: every status of every queue, read at scrape time
    assert value(s, "agentfleet_jobs", queue="fast", status="succeeded") == 1
    assert value(s, "agentfleet_jobs", queue="default", status="queued") == 2
    assert ("agentfleet_jobs", (("queue", "fast"), ("status", "running"))) in s
    assert value(s, "agentfleet_workers", state="alive") == 1
    assert ("agentfleet_worker_heartbeat_age_seconds", (("worker", "w1"),)) in s

    again = scrape(web)  # a second scrape counts nothing twice
    assert value(again, "agentfleet_claims_total") == 5
    assert (
        value(again, "agentfleet_http_requests_total", method="GET", route="/metrics", status="200")
        >= 1
    )


def test_stale_workers_are_told_apart(mem_env: StoreEnv) -> None:
    web = make_web(mem_env, worker_window=10.0)
    mem_env.fleet.worker_seen("old", host="h", pid=1, queues=[], concurrency=1)
    assert mem_env.clock is not None
    mem_env.clock.advance(30)
    s = scrape(web)
    assert value(s, "agentfleet_workers", state="stale") == 1
    assert value(s, "agentfleet_worker_heartbeat_age_seconds", worker="old") >= 30


def ev(id_: int) -> Event:
    return Event(id_, 1, "enqueued", datetime(2030, 1, 1, tzinfo=UTC), None, None, {})


class Log:
    """An event log whose ids can commit out of order, like a PostgreSQL sequence."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def commit(self, *ids: int) -> None:
        self.events += [ev(i) for i in ids]
        self.events.sort(key=lambda e: e.id)

    def fetch(self, after: int, limit: int) -> list[Event]:
        return [e for e in self.events if e.id > after][:limit]


def test_event_tail_waits_for_ids_that_commit_late() -> None:
    log, now = Log(), [0.0]
    tail = EventTail(log.fetch, page=2, gap_timeout=5.0, clock=lambda: now[0])
    log.commit(1, 2, 4, 5)  # 3 is still in flight
    assert [e.id for e in tail.poll()] == [1, 2, 4, 5]
    assert tail.cursor == 2 and tail.pending_gaps == 1
    log.commit(3)
    assert [e.id for e in tail.poll()] == [3]  # late, yet counted, and 4, 5 not twice
    assert tail.cursor == 5 and tail.pending_gaps == 0

    log.commit(7, 8)  # 6 rolled back: it never appears
    assert [e.id for e in tail.poll()] == [7, 8]
    assert tail.cursor == 5
    now[0] += 6
    assert tail.poll() == []
    assert tail.cursor == 8 and tail.pending_gaps == 0


def test_event_tail_pages_through_a_backlog() -> None:
    log = Log()
    log.commit(*range(1, 26))
    tail = EventTail(log.fetch, page=4)
    assert [e.id for e in tail.poll(max_pages=3)] == list(range(1, 13))
    assert [e.id for e in tail.poll(max_pages=10)] == list(range(13, 26))
    assert tail.cursor == 25


def test_queue_latency_starts_when_a_retry_comes_due(mem_env: StoreEnv) -> None:
    web = make_web(mem_env)
    fleet, clock = mem_env.fleet, mem_env.clock
    assert clock is not None
    job = fleet.enqueue("shell", {"cmd": "x"}).id
    lease = fleet.claim(job, worker="w")
    assert lease is not None
    fleet.fail(lease, "boom", delay=100)
    clock.advance(101)
    assert fleet.claim(job, worker="w") is not None
    s = scrape(web)
    assert value(s, "agentfleet_queue_latency_seconds_count") == 2
    # Each wait runs from when the job became ready to its claim, on the store's clock: the
    # second from when the retry came due (not from the failure, 100 s earlier).
    at = {e.kind: e.at for e in fleet.events(job) if e.kind != "claimed"}
    claims = [e.at for e in fleet.events(job) if e.kind == "claimed"]
    due = at["retry_scheduled"] + timedelta(seconds=100)
    waits = [(claims[0] - at["enqueued"]).total_seconds(), (claims[1] - due).total_seconds()]
    assert value(s, "agentfleet_queue_latency_seconds_sum") == pytest.approx(sum(waits), abs=1e-3)


def test_pruned_jobs_and_plans_are_counted(mem_env: StoreEnv) -> None:
    fleet = mem_env.fleet
    web = make_web(mem_env)
    clock = mem_env.clock
    assert clock is not None
    for _ in range(4):
        fleet.enqueue("shell", {"cmd": "true"})
    for lease in fleet.claim_next(worker="w", limit=4):
        fleet.complete(lease)
    clock.advance(120)
    assert fleet.prune("1m").jobs == 4
    samples = scrape(web)
    assert value(samples, "agentfleet_pruned_total", kind="jobs") == 4
    assert value(samples, "agentfleet_pruned_total", kind="plans") == 0
