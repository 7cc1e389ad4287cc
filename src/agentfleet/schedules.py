"""Schedules: a job file or a plan file run at the slots of a cron expression.

    agentfleet schedule add nightly-triage --cron "0 3 * * *" --tz Europe/Paris triage.md

Every worker looks for due slots about once a second. Each slot fires exactly once across
the fleet: a worker takes it by moving the schedule's `next_at` on with a conditional write,
in the same transaction that enqueues the slot's job (or submits its plan), so a second
worker finds the slot gone, and a crash between the two leaves neither.

Missed slots (no worker ran while more than one slot passed) follow `catch_up`: `skip`
(default) runs none of them, `once` runs one as soon as a worker is back. `overlap: skip`
leaves a slot out while what the previous slot started is still going. The cron
expression's five fields are read by cronsim in the schedule's time zone (`tz`, default
UTC), so `0 3 * * *` is 03:00 there, summer and winter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from agentfleet import validate
from agentfleet.errors import InvalidArgument

CATCH_UP = ("skip", "once")
OVERLAP = ("allow", "skip")
KINDS = ("job", "plan")
ENDED = frozenset({"succeeded", "failed", "cancelled", "completed", "abandoned"})


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    name: str
    cron: str
    tz: str
    kind: str  # job | plan
    text: str  # the file as it was added: a worker on any machine can run it
    source: str | None  # where it was read from (relative paths in it are from there)
    engines: tuple[str, ...]  # the custom engines it may use, known when it was added
    paused: bool
    catch_up: str
    overlap: str
    next_at: datetime
    last_slot: datetime | None
    last_job_id: int | None
    last_plan_id: int | None
    last_outcome: str | None
    created_at: datetime
    updated_at: datetime

    def upcoming(self, count: int = 3) -> list[datetime]:
        """The next slots, the first being `next_at` (none while paused)."""
        if self.paused:
            return []
        later = islice(_slots(self.cron, self.tz, self.next_at), count - 1)
        return [self.next_at, *later]


@dataclass(frozen=True, slots=True)
class Fired:
    """What one slot did: started a job or a plan, or was left out (and why)."""

    schedule: str
    slot: datetime
    outcome: str
    job_id: int | None = None
    plan_id: int | None = None


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(validate.name(tz, "tz"))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"unknown time zone {tz!r} (e.g. UTC, Europe/Paris)") from None


def check_cron(cron: str, tz: str) -> None:
    try:
        CronSim(validate.name(cron, "cron"), datetime.now(zone(tz)))
    except CronSimError as exc:
        raise InvalidArgument(
            f"bad cron expression {cron!r}: {exc} (five fields: minute hour day month weekday, "
            "e.g. '0 3 * * *')"
        ) from None


def _slots(cron: str, tz: str, after: datetime) -> Any:
    """The slots strictly after `after`, as UTC datetimes."""
    for slot in CronSim(cron, after.astimezone(zone(tz))):
        yield slot.astimezone(UTC)


def next_slot(cron: str, tz: str, after: datetime) -> datetime:
    return next(_slots(cron, tz, after))  # type: ignore[no-any-return]


def plan_slot(schedule: Schedule, now: datetime) -> tuple[bool, datetime, str]:
    """For a due schedule: whether its slot runs, where `next_at` moves, and why."""
    later = next_slot(schedule.cron, schedule.tz, schedule.next_at)
    if later > now:
        return True, later, "fired"
    resume_at = next_slot(schedule.cron, schedule.tz, now)
    if schedule.catch_up == "once":
        return True, resume_at, "fired (caught up once for the slots missed)"
    return False, resume_at, "skipped: slots were missed while no worker ran (catch_up: skip)"


def from_row(row: Mapping[str, Any], time_in: Any, json_in: Any) -> Schedule:
    return Schedule(
        id=int(row["id"]),
        name=row["name"],
        cron=row["cron"],
        tz=row["tz"],
        kind=row["kind"],
        text=row["text"],
        source=row["source"],
        engines=tuple(json_in(row["engines"]) or ()),
        paused=bool(row["paused"]),
        catch_up=row["catch_up"],
        overlap=row["overlap"],
        next_at=time_in(row["next_at"]),
        last_slot=time_in(row["last_slot"]),
        last_job_id=row["last_job_id"],
        last_plan_id=row["last_plan_id"],
        last_outcome=row["last_outcome"],
        created_at=time_in(row["created_at"]),
        updated_at=time_in(row["updated_at"]),
    )


def choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InvalidArgument(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value
