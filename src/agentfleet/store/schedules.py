"""The writes and reads of schedules, each inside a transaction of the caller's.

A schedule's slot is taken by one conditional write: `advance` moves `next_at` on only if
it still holds the slot the caller saw, so of the workers that find a slot due exactly one
moves it, and only that one enqueues the slot's work (in the same transaction).
"""

from __future__ import annotations

from datetime import datetime

from agentfleet.store.dialect import Row, Tx

COLUMNS = (
    "id, name, cron, tz, kind, text, source, engines, paused, catch_up, overlap, next_at, "
    "last_slot, last_job_id, last_plan_id, last_outcome, created_at, updated_at"
)


def add(
    tx: Tx,
    *,
    name: str,
    cron: str,
    tz: str,
    kind: str,
    text: str,
    source: str | None,
    engines: str,
    catch_up: str,
    overlap: str,
    next_at: datetime,
) -> Row | None:
    """The new schedule's row; None when the name is taken."""
    return tx.one(
        f"""
        INSERT INTO schedules (name, cron, tz, kind, text, source, engines, paused, catch_up,
            overlap, next_at, created_at, updated_at)
        VALUES (:name, :cron, :tz, :kind, :text, :source, :engines, 0, :catch_up, :overlap,
            :next_at, {{now}}, {{now}})
        ON CONFLICT (name) DO NOTHING
        RETURNING {COLUMNS}
        """,
        {
            "name": name,
            "cron": cron,
            "tz": tz,
            "kind": kind,
            "text": text,
            "source": source,
            "engines": engines,
            "catch_up": catch_up,
            "overlap": overlap,
            "next_at": next_at,
        },
    )


def all_rows(tx: Tx) -> list[Row]:
    return tx.q(f"SELECT {COLUMNS} FROM schedules ORDER BY name")


def by_name(tx: Tx, name: str) -> Row | None:
    return tx.one(f"SELECT {COLUMNS} FROM schedules WHERE name = :name", {"name": name})


def due(tx: Tx, at: datetime) -> list[Row]:
    """The schedules whose next slot is at or before `at` (`:now` is the store's own)."""
    return tx.q(
        f"SELECT {COLUMNS} FROM schedules WHERE paused = 0 AND next_at <= :at ORDER BY next_at",
        {"at": at},
    )


def set_paused(tx: Tx, name: str, paused: bool, next_at: datetime | None = None) -> Row | None:
    """Pause, or resume from `next_at` (the first slot after now: a resumed schedule does
    not run the slots it slept through)."""
    return tx.one(
        f"""
        UPDATE schedules SET paused = :paused, next_at = coalesce(:next_at, next_at),
            updated_at = {{now}}
        WHERE name = :name
        RETURNING {COLUMNS}
        """,
        {"name": name, "paused": 1 if paused else 0, "next_at": next_at},
    )


def remove(tx: Tx, name: str) -> bool:
    return bool(tx.q("DELETE FROM schedules WHERE name = :name RETURNING id", {"name": name}))


def advance(tx: Tx, schedule_id: int, slot: datetime, next_at: datetime, outcome: str) -> bool:
    """Take the slot: move `next_at` from `slot` on, only if no one else has."""
    return bool(
        tx.q(
            """
            UPDATE schedules SET next_at = :next_at, last_slot = :slot,
                last_outcome = :outcome, updated_at = {now}
            WHERE id = :id AND next_at = :slot AND paused = 0
            RETURNING id
            """,
            {"id": schedule_id, "slot": slot, "next_at": next_at, "outcome": outcome},
        )
    )


def fired(tx: Tx, schedule_id: int, job_id: int | None, plan_id: int | None, outcome: str) -> None:
    """Remember what the slot started (for `overlap: skip` and for people)."""
    tx.q(
        "UPDATE schedules SET last_job_id = :job, last_plan_id = :plan, last_outcome = :outcome "
        "WHERE id = :id RETURNING id",
        {"id": schedule_id, "job": job_id, "plan": plan_id, "outcome": outcome},
    )


def last_status(tx: Tx, job_id: int | None, plan_id: int | None) -> str | None:
    """The status of what the previous slot started: its plan's, or its job's."""
    if plan_id is not None:
        row = tx.one("SELECT status FROM plans WHERE id = :id", {"id": plan_id})
    elif job_id is not None:
        row = tx.one("SELECT status FROM jobs WHERE id = :id", {"id": job_id})
    else:
        return None
    return None if row is None else str(row["status"])


__all__ = [
    "COLUMNS", "add", "advance", "all_rows", "by_name", "due", "fired", "last_status", "remove",
    "set_paused",
]  # fmt: skip
