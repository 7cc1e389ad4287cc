"""Retention: finished jobs and plans older than a cutoff go, with what hangs off them.

A job goes with its runs (and their output), events and ledger rows; a plan with its steps,
their edges and the plan's own events. Only what has ended goes: a job in one of the
statuses asked for (all finished ones by default) that finished before the cutoff, never a
step of a plan on its own (a failed or paused plan may be resumed, and its steps are its
memory), and a plan only once it is completed, cancelled or abandoned and every one of its
steps has ended. Each batch is its own short transaction, and on PostgreSQL skips rows
another transaction holds, so workers never wait behind a prune. It lives in the store
because it deletes job rows; which plan statuses have ended is the plans layer's to say.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from agentfleet.models import TERMINAL_STATUSES
from agentfleet.store.dialect import Dialect, Tx, status_list

DEFAULT_BATCH = 500
PRUNE_EVERY = 600.0  # seconds between automatic prunes (the retention setting), fleet-wide
PRUNED_AT = "retention.last_pass"  # the settings row whose stamp is the last automatic prune
_ENDED = status_list(TERMINAL_STATUSES)

_JOBS = """
    FROM jobs WHERE plan_id IS NULL AND status {any:statuses}
        AND finished_at IS NOT NULL AND finished_at < {now-:age}"""
_PLANS = f"""
    FROM plans WHERE status {{any:plan_statuses}}
        AND coalesce(completed_at, updated_at) < {{now-:age}}
        AND NOT EXISTS (SELECT 1 FROM jobs s WHERE s.plan_id = plans.id
                        AND s.status NOT IN {_ENDED})"""


@dataclass
class Pruned:
    """What a prune deleted (or, in a dry run, would delete)."""

    jobs: int = 0
    plans: int = 0
    plan_steps: int = 0
    runs: int = 0
    events: int = 0
    dry_run: bool = False
    batches: list[int] = field(default_factory=list)  # jobs and plans per batch

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "jobs": self.jobs,
            "plans": self.plans,
            "plan_steps": self.plan_steps,
            "runs": self.runs,
            "events": self.events,
            "dry_run": self.dry_run,
        }


def prune(
    dialect: Dialect,
    older_than: float,
    statuses: Collection[str],
    *,
    dry_run: bool = False,
    batch: int = DEFAULT_BATCH,
    plans: bool = True,
    ended_plan_statuses: Collection[str] = (),
) -> Pruned:
    """Delete finished jobs and plans that ended more than `older_than` seconds ago.

    `ended_plan_statuses` are the plan statuses a plan may be pruned in (the plans layer's
    terminal ones); with none given no plan is pruned.
    """
    plans = plans and bool(ended_plan_statuses)
    params = {"age": older_than, "statuses": sorted(statuses), "batch": batch,
              "plan_statuses": sorted(ended_plan_statuses)}  # fmt: skip
    done = Pruned(dry_run=dry_run)
    if dry_run:  # the same rows the passes below would delete, counted
        of_jobs = f"job_id IN (SELECT id {_JOBS})"
        of_plans = f"job_id IN (SELECT id FROM jobs WHERE plan_id IN (SELECT id {_PLANS}))"
        runs = f"{of_jobs} OR {of_plans}" if plans else of_jobs
        events = f"{runs} OR plan_id IN (SELECT id {_PLANS})" if plans else runs
        with dialect.session() as tx:
            done.jobs = _count(tx, f"SELECT count(*) AS n {_JOBS}", params)
            done.runs = _count(tx, f"SELECT count(*) AS n FROM runs WHERE {runs}", params)
            done.events = _count(tx, f"SELECT count(*) AS n FROM events WHERE {events}", params)
            if plans:
                done.plans = _count(tx, f"SELECT count(*) AS n {_PLANS}", params)
                done.plan_steps = _count(
                    tx, f"SELECT count(*) AS n FROM jobs WHERE plan_id IN (SELECT id {_PLANS})",
                    params,
                )  # fmt: skip
        return done
    while True:
        with dialect.tx() as tx:
            ids = [r["id"] for r in tx.q(f"SELECT id {_JOBS} ORDER BY id LIMIT :batch "
                                         "{skip_locked}", params)]  # fmt: skip
            if not ids:
                break
            done.runs += _delete_job_parts(tx, ids, done)
            gone = tx.q("DELETE FROM jobs WHERE id {any:ids} AND status {any:statuses} "
                        "RETURNING id", {**params, "ids": ids})  # fmt: skip
            done.jobs += len(gone)
            done.batches.append(len(gone))
    while plans:
        with dialect.tx() as tx:
            plan_ids = [r["id"] for r in tx.q(f"SELECT id {_PLANS} ORDER BY id LIMIT :batch "
                                              "{skip_locked}", params)]  # fmt: skip
            if not plan_ids:
                break
            steps = [r["id"] for r in tx.q("SELECT id FROM jobs WHERE plan_id {any:plans}",
                                           {"plans": plan_ids})]  # fmt: skip
            tx.q("DELETE FROM plan_deps WHERE plan_id {any:plans}", {"plans": plan_ids})
            if steps:
                done.runs += _delete_job_parts(tx, steps, done)
                tx.q("DELETE FROM jobs WHERE id {any:ids}", {"ids": steps})
            done.events += len(tx.q("DELETE FROM events WHERE plan_id {any:plans} RETURNING id",
                                    {"plans": plan_ids}))  # fmt: skip
            gone = tx.q("DELETE FROM plans WHERE id {any:plans} RETURNING id", {"plans": plan_ids})
            done.plans += len(gone)
            done.plan_steps += len(steps)
            done.batches.append(len(gone))
    return done


def _delete_job_parts(tx: Tx, ids: Sequence[int], done: Pruned) -> int:
    """Delete the runs, events and ledger rows of these jobs; returns the runs deleted."""
    done.events += len(tx.q("DELETE FROM events WHERE job_id {any:ids} RETURNING id",
                            {"ids": list(ids)}))  # fmt: skip
    tx.q("DELETE FROM ledger WHERE job_id {any:ids}", {"ids": list(ids)})
    return len(tx.q("DELETE FROM runs WHERE job_id {any:ids} RETURNING id", {"ids": list(ids)}))


def _count(tx: Tx, sql: str, params: dict[str, object]) -> int:
    row = tx.one(sql, params)
    return 0 if row is None else int(row["n"])
