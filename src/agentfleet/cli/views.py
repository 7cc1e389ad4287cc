"""Rich renderings of jobs, runs, events and workers for the command line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from rich.table import Table
from rich.text import Text

from agentfleet.agents.usage import Usage, short_usage
from agentfleet.agents.watch import idle_timeout_of
from agentfleet.durations import format_duration
from agentfleet.engines import (
    DEFAULT_AGENT_TIMEOUT,
    NON_AGENT_ENGINES,
    EngineConfig,
    engine_table,
)
from agentfleet.models import Event, Job, Run, WorkerInfo
from agentfleet.serialize import job_labels, job_summary, shown_payload, worker_view
from agentfleet.styles import STATUS_STYLE, WORKER_STYLE, status_text, transcript_entry
from agentfleet.workspaces.review import workspace_result

__all__ = [
    "ago",
    "engines_table",
    "events_table",
    "job_fields",
    "jobs_table",
    "runs_table",
    "transcript_entry",
    "workers_table",
]


def _cells(*values: str | Text) -> list[Text]:
    """Table cells as plain text: job data must never be read as rich markup."""
    return [value if isinstance(value, Text) else Text(value) for value in values]


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "in " + format_duration(round(-seconds))
    return format_duration(round(seconds)) + " ago" if seconds >= 1 else "just now"


def waits_until(job: Job, now: datetime) -> str | None:
    """When a queued job may start, if that is later than now (a --delay, a retry's
    backoff): workers leave it alone until then, and a user should see why."""
    if job.status.value != "queued" or job.run_at <= now:
        return None
    # Stamped as `created` and `updated` are, with the date only when it is not today's.
    at = job.run_at
    when = f"{at:%H:%M:%S}" if at.date() == now.date() else f"{at:%Y-%m-%d %H:%M:%S}"
    return f"{when} ({ago(at, now)})"


def _duration(start: datetime, end: datetime | None, now: datetime) -> str:
    return format_duration(max(0.0, round(((end or now) - start).total_seconds(), 1)))


def jobs_table(jobs: Sequence[Job], now: datetime, *, fit: bool = True) -> Table:
    """With `fit` (on a terminal), fixed columns keep their natural width and WHAT takes (and
    is cut to) what is left; without, every column is as wide as what it shows."""
    table = Table(box=None, header_style="bold", pad_edge=False, expand=fit)
    for column in ("ID", "STATUS", "ENGINE", "QUEUE", "PRI", "TRIES", "WORKER", "UPDATED"):
        table.add_column(column, no_wrap=True, justify="right" if column == "ID" else "left")
    table.add_column("WHAT", overflow="ellipsis", no_wrap=True, ratio=1, min_width=12)
    for job in jobs:
        cancelling = job.cancel_requested and job.status.value == "running"
        status = job.status.value + (" (cancelling)" if cancelling else "")
        labels = job_labels(job)
        what = job_summary(job) + (f"  [{', '.join(labels)}]" if labels else "")
        table.add_row(
            *_cells(
                str(job.id),
                Text(status, style=STATUS_STYLE.get(job.status.value, "")),
                job.engine,
                job.queue,
                str(job.priority),
                f"{job.attempts}/{job.max_attempts}",
                job.worker or "-",
                ago(job.updated_at, now),
                what,
            )
        )
    return table


def _timeout(job: Job) -> str:
    if job.timeout:
        return format_duration(job.timeout)
    is_agent = job.engine not in NON_AGENT_ENGINES
    return f"{format_duration(DEFAULT_AGENT_TIMEOUT)} (the agents' default)" if is_agent else "-"


def _idle_timeout(job: Job) -> str:
    is_agent = job.engine not in NON_AGENT_ENGINES
    seconds = idle_timeout_of(job.payload, is_agent)
    if seconds is None:
        return "off" if is_agent or "idle_timeout" in job.payload else "-"
    default = "idle_timeout" not in job.payload
    return format_duration(seconds) + (" (the agents' default)" if default else "")


def _limit(job: Job) -> list[tuple[str, str | Text]]:
    name = job.payload.get("limit")
    if not isinstance(name, str):
        return []
    return [("limit", f"{name} (its use: agentfleet limits ls)")]


def job_fields(job: Job, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("job", str(job.id)),
        ("status", status_text(job.status.value)),
        ("engine", job.engine),
        ("queue", job.queue),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("lease epoch", str(job.lease_epoch)),
        ("worker", job.worker or "-"),
        ("lock", job.lock or "-"),
        *_limit(job),
        ("timeout", _timeout(job)),
        ("idle timeout", _idle_timeout(job)),
        ("created", f"{job.created_at:%Y-%m-%d %H:%M:%S} ({ago(job.created_at, now)})"),
        ("updated", f"{job.updated_at:%Y-%m-%d %H:%M:%S} ({ago(job.updated_at, now)})"),
    ]
    if (waits := waits_until(job, now)) is not None:
        rows.append(("runs at", f"{waits}; no worker takes it before"))
    if job.lease_expires_at is not None:
        rows.append(("lease expires", ago(job.lease_expires_at, now)))
    if job.cancel_requested and job.status.value == "running":
        rows.append(("cancel", "requested; the worker stops it at its next heartbeat"))
    if job.error:
        rows.append(("error", Text(job.error, style="red")))
    change = workspace_result(job)
    if change is not None:
        files = change.get("files_changed") or []
        rows.append(("branch", f"{change['branch']} ({change['base_commit'][:10]}.."
                     f"{change['head_commit'][:10]})"))  # fmt: skip
        rows.append(
            ("change", f"{len(files)} files, +{change.get('insertions', 0)} "
             f"-{change.get('deletions', 0)}; see: agentfleet diff {job.id}")
        )  # fmt: skip
    if job.result is not None:
        rows.append(("result", json.dumps(job.result)))
    rows.append(("payload", json.dumps(shown_payload(job.payload), ensure_ascii=False)))
    for key, value in rows:
        grid.add_row(key, value if isinstance(value, Text) else Text(value))
    return grid


def _run_status(run: Run) -> Text:
    """The run's status, marked when it continued the session of the attempt before."""
    text = status_text(run.status.value)
    if run.agent and run.agent.get("resumed_session"):
        text.append(" (resumed)", "dim")
    return text


def runs_table(runs: Sequence[Run], now: datetime) -> Table:
    table = Table(title="runs", title_justify="left", box=None, header_style="bold")
    for column in ("#", "ATTEMPT", "EPOCH", "WORKER", "STATUS", "STARTED", "TOOK", "EXIT"):
        table.add_column(column, no_wrap=True)
    table.add_column("SPENT", no_wrap=True)
    table.add_column("ERROR", overflow="fold")
    for number, run in enumerate(runs, start=1):
        table.add_row(
            *_cells(
                str(number),
                str(run.attempt),
                str(run.epoch),
                run.worker,
                _run_status(run),
                f"{run.started_at:%H:%M:%S}",
                _duration(run.started_at, run.finished_at, now),
                "-" if run.exit_code is None else str(run.exit_code),
                short_usage(Usage.of_agent(run.agent)) if run.agent else "-",
                run.error or "",
            )
        )
    return table


def events_table(events: Sequence[Event]) -> Table:
    table = Table(title="events", title_justify="left", box=None, header_style="bold")
    for column in ("AT", "EVENT", "EPOCH", "WORKER"):
        table.add_column(column, no_wrap=True)
    table.add_column("DETAIL", overflow="fold")
    for event in events:
        table.add_row(
            *_cells(
                f"{event.at:%H:%M:%S.%f}"[:-3],
                event.kind,
                "-" if event.epoch is None else str(event.epoch),
                event.worker or "-",
                json.dumps(event.data) if event.data else "",
            )
        )
    return table


def workers_table(workers: Sequence[WorkerInfo], now: datetime) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "HOST", "PID", "QUEUES", "SLOTS", "RUNNING", "SEEN", "STATE"):
        table.add_column(column, no_wrap=True)
    for worker in workers:
        state = worker_view(worker, now).state
        table.add_row(
            *_cells(
                worker.name,
                worker.host,
                str(worker.pid),
                ",".join(worker.queues),
                str(worker.concurrency),
                ", ".join(f"#{j}" for j in worker.running) or "-",
                ago(worker.last_seen, now),
                status_text(state, WORKER_STYLE),
            )
        )
    return table


def engines_table(config: EngineConfig) -> Table:
    table = Table(box=None, header_style="bold", show_lines=False)
    table.add_column("ENGINE", no_wrap=True)
    table.add_column("yolo: false", overflow="fold")
    table.add_column("yolo: true", overflow="fold")
    for row in engine_table(config):
        table.add_row(row.name, row.command(yolo=False), row.command(yolo=True))
    return table
