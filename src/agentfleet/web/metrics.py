"""Prometheus metrics for a server that watches the database.

The server holds no jobs itself, so it measures the fleet from what the database records:

* **Gauges are read at scrape time**: jobs per (queue, status) from ``fleet.queue_counts()``,
  workers per state and each worker's heartbeat age from ``fleet.list_workers()`` judged on
  the store's clock (``fleet.now()``).
* **Counters and histograms are derived from the event log**: each scrape reads the events
  appended since the last one (``fleet.events(after_id=...)``) and counts claims, completions,
  failures, retries, lease losses, cancels and releases; it measures queue latency (enqueue,
  or a retry coming due, to the claim) and run duration (claim to the write that ended the
  run, per outcome). Counters start at zero when the server starts and count what happens
  from then on, the usual Prometheus reset semantics; any number of servers can scrape one
  database without coordination.
* PostgreSQL hands out event ids from a sequence, so a transaction that commits later can
  hold a smaller id. :class:`EventTail` therefore keeps its cursor below the oldest id it has
  not yet seen and re-reads past it (ignoring ids already counted) until the gap fills or
  ``gap_timeout`` passes (the id of a rolled-back transaction never appears).
* Plan moves (started, paused at a checkpoint, approved, rejected, resumed, completed, failed,
  cancelled, repaired) are counted by kind; a plan step's queue latency starts when its
  dependencies are done (its ``promoted`` event), not when the plan was submitted.
* HTTP requests are counted per method, route template and status.

Workers do not need to expose anything: every figure comes from the shared database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agentfleet.fleet import Fleet
from agentfleet.models import Event, JobStatus
from agentfleet.serialize import WORKER_WINDOW, worker_view

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600)
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
# Event kinds that end a run, and the outcome label each gives it.
RUN_ENDINGS = {
    "succeeded": "succeeded",
    "failed": "failed",
    "retry_scheduled": "failed",
    "cancelled": "cancelled",
    "released": "released",
    "lease_expired": "expired",
}

PLAN_EVENTS = frozenset(
    {
        "plan_started",
        "plan_paused",
        "plan_failed",
        "plan_completed",
        "plan_cancelled",
        "plan_resumed",
        "approved",
        "rejected",
        "repair",
    }
)


class EventTail:
    """Reads an append-only event log once, tolerating ids that commit out of order."""

    def __init__(
        self,
        fetch: Callable[[int, int], list[Event]],
        *,
        page: int = 1000,
        gap_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        start_after: int = 0,
    ) -> None:
        self._fetch = fetch
        self._page = page
        self._gap_timeout = gap_timeout
        self._clock = clock
        self.cursor = start_after  # every id <= cursor was handled (or given up on)
        self._seen: set[int] = set()  # ids > cursor already handled
        self._gaps: dict[int, float] = {}  # missing id > cursor -> when first noticed

    def poll(self, max_pages: int = 20) -> list[Event]:
        """New events in id order, each returned once."""
        new: list[Event] = []
        after = self.cursor
        highest = self.cursor
        for _ in range(max_pages):
            batch = self._fetch(after, self._page)
            for ev in batch:
                if ev.id > self.cursor and ev.id not in self._seen:
                    self._seen.add(ev.id)
                    new.append(ev)
                highest = max(highest, ev.id)
            if len(batch) < self._page:
                break
            after = batch[-1].id
        now = self._clock()
        if self._seen:
            for missing in range(self.cursor + 1, highest):
                if missing not in self._seen:
                    self._gaps.setdefault(missing, now)
        while True:
            following = self.cursor + 1
            if following in self._seen:
                self._seen.discard(following)
                self._gaps.pop(following, None)
            elif following in self._gaps and now - self._gaps[following] >= self._gap_timeout:
                del self._gaps[following]
            else:
                break
            self.cursor = following
        return new

    @property
    def pending_gaps(self) -> int:
        return len(self._gaps)


@dataclass
class _Open:
    claimed_at: datetime


class FleetMetrics:
    """The metrics registry of one server; call :meth:`scrape_text` for /metrics."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        worker_window: float = WORKER_WINDOW,
        start_after: int | None = None,
        gap_timeout: float = 30.0,
    ) -> None:
        self.fleet = fleet
        self.worker_window = worker_window
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        first = self._last_event_id() if start_after is None else start_after
        self.tail = EventTail(
            lambda after, limit: fleet.events(after_id=after, limit=limit),
            gap_timeout=gap_timeout,
            start_after=first,
        )
        r = self.registry
        self.claims = Counter("agentfleet_claims", "Jobs claimed by a worker", registry=r)
        self.completions = Counter(
            "agentfleet_completions", "Runs that ended with the job succeeded", registry=r
        )
        self.failures = Counter(
            "agentfleet_failures", "Jobs that failed for good (attempts spent)", registry=r
        )
        self.retries = Counter(
            "agentfleet_retries",
            "Jobs queued again: automatic (a failed attempt with attempts left) or manual",
            ["kind"],
            registry=r,
        )
        self.lease_losses = Counter(
            "agentfleet_lease_losses", "Leases that expired before their run ended", registry=r
        )
        self.cancellations = Counter(
            "agentfleet_cancellations", "Cancels asked for (queued or running jobs)", registry=r
        )
        self.releases = Counter(
            "agentfleet_releases", "Jobs handed back by a stopping worker", registry=r
        )
        self.enqueued = Counter("agentfleet_enqueued", "Jobs enqueued", registry=r)
        self.pruned = Counter(
            "agentfleet_pruned",
            "Finished jobs and ended plans deleted by retention",
            ["kind"],
            registry=r,
        )
        self.plan_events = Counter(
            "agentfleet_plan_events",
            "Plan moves: started, paused at a checkpoint, approved, rejected, resumed, ...",
            ["kind"],
            registry=r,
        )
        self.queue_latency = Histogram(
            "agentfleet_queue_latency_seconds",
            "From enqueue (or a retry coming due) to the claim; includes any run_at delay",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.run_duration = Histogram(
            "agentfleet_run_duration_seconds",
            "From the claim to the write that ended the run, by outcome",
            ["outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.events_seen = Counter(
            "agentfleet_events_read", "Events read from the database by this server", registry=r
        )
        self.http_requests = Counter(
            "agentfleet_http_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "agentfleet_http_request_duration_seconds",
            "HTTP request handling time",
            ["method", "route"],
            registry=r,
        )
        r.register(_ScrapeTimeGauges(self))
        self._ready_at: dict[int, datetime] = {}
        self._open_runs: dict[tuple[int, int], _Open] = {}

    def _last_event_id(self) -> int:
        # Count from "now on": skip history without holding it all in memory at once.
        last = 0
        while True:
            batch = self.fleet.events(after_id=last, limit=10_000)
            if not batch:
                return last
            last = batch[-1].id

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def update(self) -> None:
        """Fold the events appended since the last call into the counters."""
        with self._lock:
            self._apply(self.tail.poll())

    def _apply(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.events_seen.inc()
            kind = ev.kind
            if kind in PLAN_EVENTS:
                self.plan_events.labels(kind).inc()
            if kind == "pruned":  # retention: what a prune deleted, by kind
                for what in ("jobs", "plans"):
                    self.pruned.labels(what).inc(int(ev.data.get(what, 0) or 0))
            job = ev.job_id
            if job is None:
                continue
            if kind == "enqueued":
                self.enqueued.inc()
                self._ready_at[job] = ev.at
            elif kind == "promoted":  # a plan step whose dependencies are done
                self._ready_at[job] = ev.at
            elif kind == "retried":
                self.retries.labels("manual").inc()
                self._ready_at[job] = ev.at
            elif kind == "claimed":
                self.claims.inc()
                ready = self._ready_at.pop(job, None)
                if ready is not None:
                    self.queue_latency.observe(max(0.0, (ev.at - ready).total_seconds()))
                if ev.epoch is not None:
                    self._open_runs[(job, ev.epoch)] = _Open(ev.at)
            elif kind == "cancelled" and ev.epoch is None:  # a queued job, cancelled at once
                self.cancellations.inc()
                self._ready_at.pop(job, None)
            elif kind == "cancel_requested":  # a running job; its run ends "cancelled" later
                self.cancellations.inc()
            if kind in RUN_ENDINGS and ev.epoch is not None:
                self._end_run(ev, RUN_ENDINGS[kind])

    def _end_run(self, ev: Event, outcome: str) -> None:
        assert ev.job_id is not None and ev.epoch is not None
        kind = ev.kind
        if kind == "succeeded":
            self.completions.inc()
        elif kind == "failed":
            self.failures.inc()
        elif kind == "retry_scheduled":
            self.retries.labels("automatic").inc()
            delay = ev.data.get("retry_in")
            seconds = float(delay) if isinstance(delay, int | float) else 0.0
            self._ready_at[ev.job_id] = ev.at + timedelta(seconds=seconds)
        elif kind == "lease_expired":
            self.lease_losses.inc()
            after = ev.data.get("now")  # set by the reaper: where the job went
            if after == "failed":
                self.failures.inc()
            elif after in (None, "queued"):
                self._ready_at[ev.job_id] = ev.at
        elif kind == "released":
            self.releases.inc()
            self._ready_at[ev.job_id] = ev.at
        opened = self._open_runs.pop((ev.job_id, ev.epoch), None)
        if opened is not None:
            seconds = max(0.0, (ev.at - opened.claimed_at).total_seconds())
            self.run_duration.labels(outcome).observe(seconds)

    def scrape_text(self) -> bytes:
        from prometheus_client import generate_latest

        self.update()
        return generate_latest(self.registry)


class _ScrapeTimeGauges(Collector):
    """Gauges read from the database at each scrape."""

    def __init__(self, metrics: FleetMetrics) -> None:
        self.m = metrics

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        fleet = self.m.fleet
        jobs = GaugeMetricFamily(
            "agentfleet_jobs", "Jobs per queue and status", labels=["queue", "status"]
        )
        counts = fleet.queue_counts()
        queues = sorted({q for q, _ in counts})
        for queue in queues:
            for status in JobStatus:
                jobs.add_metric([queue, status.value], counts.get((queue, status.value), 0))
        yield jobs

        now = fleet.now()
        workers = GaugeMetricFamily("agentfleet_workers", "Workers by state", labels=["state"])
        age = GaugeMetricFamily(
            "agentfleet_worker_heartbeat_age_seconds",
            "Seconds since each worker that has not stopped last sent a heartbeat",
            labels=["worker"],
        )
        held = GaugeMetricFamily(
            "agentfleet_worker_running_jobs",
            "Jobs each worker that has not stopped holds",
            labels=["worker"],
        )
        states = {"alive": 0, "stale": 0, "stopped": 0}
        for w in fleet.list_workers():
            view = worker_view(w, now, self.m.worker_window)
            states[view.state] += 1
            if view.state != "stopped":
                age.add_metric([w.name], view.seconds_since_seen)
                held.add_metric([w.name], len(w.running))
        for state, n in states.items():
            workers.add_metric([state], n)
        yield workers
        yield age
        yield held
        gaps = GaugeMetricFamily(
            "agentfleet_event_gaps",
            "Event ids not yet seen below the newest one read (commits still in flight)",
        )
        gaps.add_metric([], self.m.tail.pending_gaps)
        yield gaps
