"""A fleet's schedules: added from a job or plan file, listed, paused, resumed, removed, and
fired by workers (see :mod:`agentfleet.schedules` for the rules)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agentfleet import validate
from agentfleet.engines import BUILTIN_ENGINES
from agentfleet.errors import InvalidArgument
from agentfleet.jobfile import parse_job_text
from agentfleet.models import NewJob
from agentfleet.plans.model import PlanSpec
from agentfleet.plans.planfile import new_job_of, parse_plan, parse_plan_text
from agentfleet.schedules import (
    CATCH_UP,
    ENDED,
    OVERLAP,
    Fired,
    Schedule,
    check_cron,
    choice,
    from_row,
    next_slot,
    plan_slot,
)
from agentfleet.store import schedules as rows
from agentfleet.store.dialect import Row, Tx

if TYPE_CHECKING:
    from agentfleet.fleet import Fleet

log = logging.getLogger("agentfleet.schedules")


class ScheduleNotFound(InvalidArgument, LookupError):
    """No schedule has that name."""


def kind_of(path: Path) -> str:
    return "plan" if path.suffix in (".yaml", ".yml", ".json") else "job"


class Schedules:
    """The schedules of one fleet."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.dialect = fleet.store.dialect

    def _schedule(self, row: Row) -> Schedule:
        return from_row(row, self.dialect.time_in, self.dialect.json_in)

    def add(
        self,
        name: str,
        cron: str,
        file: str | Path,
        *,
        tz: str = "UTC",
        catch_up: str = "skip",
        overlap: str = "allow",
        engines: Iterable[str] = (),
    ) -> Schedule:
        """Read and check the file now (a bad one is refused here, not at 03:00), and keep
        its text, so a worker on any machine can run it."""
        validate.name(name, "name")
        check_cron(cron, tz)
        choice(catch_up, CATCH_UP, "catch_up")
        choice(overlap, OVERLAP, "overlap")
        path = Path(file).absolute()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"cannot read {path}: {exc}") from None
        kind = kind_of(path)
        custom = sorted(set(engines) - BUILTIN_ENGINES)
        self._build(kind, text, str(path), custom)  # checked now; built anew at each slot
        now = self.dialect.now()
        with self.dialect.tx() as tx:
            row = rows.add(
                tx, name=name, cron=cron, tz=tz, kind=kind, text=text, source=str(path),
                engines=json.dumps(custom), catch_up=catch_up, overlap=overlap,
                next_at=next_slot(cron, tz, now),
            )  # fmt: skip
        if row is None:
            raise InvalidArgument(f"a schedule named {name!r} exists: remove it first")
        return self._schedule(row)

    def all(self) -> list[Schedule]:
        with self.dialect.session() as tx:
            return [self._schedule(r) for r in rows.all_rows(tx)]

    def get(self, name: str) -> Schedule:
        with self.dialect.session() as tx:
            row = rows.by_name(tx, name)
        if row is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        return self._schedule(row)

    def pause(self, name: str) -> Schedule:
        with self.dialect.tx() as tx:
            row = rows.set_paused(tx, name, True)
        if row is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        return self._schedule(row)

    def resume(self, name: str) -> Schedule:
        """Run again from the first slot after now: the slots slept through stay missed."""
        current = self.get(name)
        next_at = next_slot(current.cron, current.tz, self.dialect.now())
        with self.dialect.tx() as tx:
            row = rows.set_paused(tx, name, False, next_at)
        if row is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        return self._schedule(row)

    def remove(self, name: str) -> None:
        with self.dialect.tx() as tx:
            if not rows.remove(tx, name):
                raise ScheduleNotFound(f"no schedule named {name!r}")

    # -- firing ---------------------------------------------------------------------

    def fire_due(self, now: datetime | None = None) -> list[Fired]:
        """Start the work of every due slot this call wins; `now` defaults to the store's
        clock. Safe to call from every worker at once: each slot fires once."""
        at = now or self.dialect.now()
        with self.dialect.session() as tx:
            due = [self._schedule(r) for r in rows.due(tx, at)]
        return [fired for s in due if (fired := self._fire(s, at)) is not None]

    def _fire(self, schedule: Schedule, now: datetime) -> Fired | None:
        runs, next_at, outcome = plan_slot(schedule, now)
        work: NewJob | PlanSpec | None = None
        if runs:
            try:
                work = self._build(schedule.kind, schedule.text, schedule.source,
                                   list(schedule.engines))  # fmt: skip
            except (InvalidArgument, OSError) as exc:
                runs, outcome = False, f"not run: {exc}"
        with self.dialect.tx() as tx:
            if runs and schedule.overlap == "skip":
                status = rows.last_status(tx, schedule.last_job_id, schedule.last_plan_id)
                if status is not None and status not in ENDED:
                    runs, outcome = False, f"skipped: the previous run is still {status}"
            if not rows.advance(tx, schedule.id, schedule.next_at, next_at, outcome):
                return None  # another worker took this slot
            job_id = plan_id = None
            if runs and isinstance(work, NewJob):
                job_id = self.fleet.store.enqueue_in(tx, work).id
                outcome = f"started job {job_id}"
            elif runs and isinstance(work, PlanSpec):
                plan_id = self.fleet.plans.submit_in(tx, work).id
                outcome = f"started plan {plan_id}"
            if job_id is not None or plan_id is not None:
                rows.fired(tx, schedule.id, job_id, plan_id, outcome)
        log.debug("schedule %s, slot %s: %s", schedule.name, schedule.next_at, outcome)
        return Fired(schedule.name, schedule.next_at, outcome, job_id, plan_id)

    def _build(
        self, kind: str, text: str, source: str | None, engines: list[str]
    ) -> NewJob | PlanSpec:
        """The slot's work from the file's text, checked as `submit` checks it: a job (a
        worktree job branches from its repository's HEAD now), or a plan."""
        known = frozenset(engines) | BUILTIN_ENGINES
        folder = Path(source).parent if source else Path.cwd()
        if kind == "plan":
            return parse_plan(parse_plan_text(text, source or "<plan>"), folder,
                              source or "<plan>", known)  # fmt: skip
        job = new_job_of(parse_job_text(text, source, known, base_dir=folder))
        return self.fleet.new_job(
            job.engine, job.payload, queue=job.queue, priority=job.priority, lock=job.lock,
            max_attempts=job.max_attempts, timeout=job.timeout,
        )  # fmt: skip


__all__ = ["ScheduleNotFound", "Schedules", "Tx"]
