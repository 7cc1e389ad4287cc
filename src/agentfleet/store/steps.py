"""The writes a plan makes to its steps' job rows: the only way the plans layer changes jobs.

Each runs inside the plan coordinator's transaction (it holds the plan's lock), is guarded
by the status its `rules.Move` starts from, and bumps `rev`, so an If-Match write made from
a snapshot taken before the plan moved the step answers `conflict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentfleet.models import NewJob
from agentfleet.store import events, rules
from agentfleet.store.dialect import Tx, to_json

_TOUCH = "updated_at = {now}, rev = rev + 1"


def insert(tx: Tx, plan_id: int, step: str, job: NewJob, payload: Mapping[str, Any]) -> int:
    """A new step, waiting for its dependencies and its plan."""
    row = tx.one(
        """
        INSERT INTO jobs (queue, engine, payload, status, priority, lock, max_attempts,
            timeout, run_at, plan_id, step, created_at, updated_at, limit_name)
        VALUES (:queue, :engine, {json:payload}, 'waiting', :priority, :lock, :max_attempts,
            :timeout, {now}, :plan, :step, {now}, {now}, :limit_name)
        RETURNING id
        """,
        {
            "queue": job.queue,
            "engine": job.engine,
            "payload": to_json(dict(payload)),
            "priority": job.priority,
            "lock": job.lock,
            "max_attempts": job.max_attempts,
            "timeout": job.timeout,
            "plan": plan_id,
            "step": step,
            "limit_name": rules.limit_of(dict(payload)),
        },
    )
    assert row is not None
    job_id = int(row["id"])
    events.record(tx, job_id, "enqueued", plan_id=plan_id, data={"step": step})
    return job_id


def promote(tx: Tx, plan_id: int, job_ids: Sequence[int]) -> list[int]:
    """Ready steps go to the queue; returns those promoted and wakes workers."""
    if not job_ids:
        return []
    rows = tx.q(
        f"UPDATE jobs SET status = 'queued', run_at = {{now}}, {_TOUCH} "
        f"WHERE plan_id = :plan AND id {{any:ids}} AND {rules.PROMOTE.guard()} "
        "RETURNING id, step, queue",
        {"plan": plan_id, "ids": [int(i) for i in job_ids]},
    )
    for row in sorted(rows, key=lambda r: r["id"]):
        events.record(tx, row["id"], "promoted", plan_id=plan_id, data={"step": row["step"]})
    for queue in sorted({row["queue"] for row in rows}):
        tx.notify(queue)
    return sorted(row["id"] for row in rows)


def skip(tx: Tx, plan_id: int, items: Sequence[tuple[int, str]]) -> list[int]:
    """Waiting steps their condition or trigger rule leaves out end `skipped`, with why."""
    skipped = []
    for job_id, why in items:
        rows = tx.q(
            f"UPDATE jobs SET status = 'skipped', error = :why, finished_at = {{now}}, "
            f"{_TOUCH} WHERE id = :id AND plan_id = :plan AND {rules.SKIP.guard()} "
            "RETURNING id, step",
            {"id": job_id, "plan": plan_id, "why": why},
        )
        for row in rows:
            events.record(tx, row["id"], "skipped", plan_id=plan_id,
                          data={"step": row["step"], "why": why})  # fmt: skip
            skipped.append(row["id"])
    return skipped


def prepare(tx: Tx, job_id: int, payload: Mapping[str, Any]) -> bool:
    """A step about to be queued gets what it learned from the steps before it (e.g. the
    commit to merge); only while it still waits, so a queued or running step keeps its own."""
    rows = tx.q(
        f"UPDATE jobs SET payload = {{json:payload}}, {_TOUCH} "
        f"WHERE id = :id AND {rules.PROMOTE.guard()} RETURNING id",
        {"id": job_id, "payload": to_json(dict(payload))},
    )
    return bool(rows)


def hold_queued(tx: Tx, plan_id: int) -> list[int]:
    """A plan that stops starting work holds its queued steps back."""
    rows = tx.q(
        f"UPDATE jobs SET status = 'waiting', {_TOUCH} "
        f"WHERE plan_id = :plan AND {rules.HOLD.guard()} RETURNING id",
        {"plan": plan_id},
    )
    return sorted(row["id"] for row in rows)


def stop_unstarted(tx: Tx, plan_id: int, reason: str) -> list[int]:
    """Steps that have not started end cancelled, saying why (their plan starts nothing
    more); a resume of the plan restarts them."""
    rows = tx.q(
        f"UPDATE jobs SET status = 'cancelled', finished_at = {{now}}, error = :reason, {_TOUCH} "
        f"WHERE plan_id = :plan AND {rules.STOP_UNSTARTED.guard()} RETURNING id",
        {"plan": plan_id, "reason": reason},
    )
    return sorted(row["id"] for row in rows)


def ask_running_to_stop(tx: Tx, plan_id: int) -> list[int]:
    """Running steps are asked to stop; their workers see it on the next heartbeat."""
    rows = tx.q(
        f"UPDATE jobs SET cancel_requested = TRUE, {_TOUCH} "
        f"WHERE plan_id = :plan AND {rules.ASK_TO_STOP.guard()} AND NOT cancel_requested "
        "RETURNING id",
        {"plan": plan_id},
    )
    return sorted(row["id"] for row in rows)


def pass_gate(tx: Tx, gate_id: int, result: Any) -> bool:
    """An approval gate's step succeeds with the approver's response."""
    rows = tx.q(
        f"UPDATE jobs SET status = 'succeeded', result = {{json:result}}, "
        f"finished_at = {{now}}, {_TOUCH} WHERE id = :id AND {rules.PASS_GATE.guard()} "
        "RETURNING id",
        {"id": gate_id, "result": to_json(result)},
    )
    return bool(rows)


def record_gate_state(tx: Tx, gate_id: int, result: Any) -> None:
    """A waiting gate keeps its rejections and feedback in its result."""
    tx.q(
        f"UPDATE jobs SET result = {{json:result}}, {_TOUCH} WHERE id = :id",
        {"id": gate_id, "result": to_json(result)},
    )


def send_back(tx: Tx, job_id: int, payload: Mapping[str, Any] | None = None) -> bool:
    """A finished step goes back to waiting, with fresh attempts (and a new payload, when
    given: the feedback of a rejection)."""
    new_payload = "" if payload is None else "payload = {json:payload}, "
    rows = tx.q(
        "UPDATE jobs SET status = 'waiting', attempts = 0, error = NULL, result = NULL, "
        f"finished_at = NULL, cancel_requested = FALSE, {new_payload}{_TOUCH} "
        f"WHERE id = :id AND {rules.REWORK.guard()} RETURNING id",
        {"id": job_id, "payload": None if payload is None else to_json(dict(payload))},
    )
    return bool(rows)


def restart_ended(tx: Tx, plan_id: int) -> list[int]:
    """On resume, failed and cancelled steps wait to run again with fresh attempts."""
    rows = tx.q(
        "UPDATE jobs SET status = 'waiting', attempts = 0, error = NULL, finished_at = NULL, "
        f"cancel_requested = FALSE, {_TOUCH} "
        f"WHERE plan_id = :plan AND {rules.RESTART.guard()} RETURNING id",
        {"plan": plan_id},
    )
    return sorted(row["id"] for row in rows)


def retire(tx: Tx, plan_id: int, job_id: int, name: str) -> None:
    """An ended iteration of a loop's step keeps its runs and result under a name of its
    own (`NAME (iteration n)`), so the next iteration's job can take the step's name."""
    tx.q(
        f"UPDATE jobs SET step = :name, {_TOUCH} WHERE id = :id AND plan_id = :plan "
        "AND status IN ('succeeded', 'skipped') RETURNING id",
        {"id": job_id, "plan": plan_id, "name": name},
    )


def insert_like(tx: Tx, plan_id: int, job_id: int, step: str, payload: Mapping[str, Any]) -> int:
    """A loop's next iteration of a step: a new waiting job with the settings of the job
    `job_id` (queue, engine, lock, limit, attempts, timeout) and the payload given."""
    row = tx.one(
        """
        INSERT INTO jobs (queue, engine, payload, status, priority, lock, max_attempts,
            timeout, run_at, plan_id, step, created_at, updated_at, limit_name)
        SELECT queue, engine, {json:payload}, 'waiting', priority, lock, max_attempts,
            timeout, {now}, plan_id, :step, {now}, {now}, limit_name
        FROM jobs WHERE id = :id AND plan_id = :plan
        RETURNING id
        """,
        {"id": job_id, "plan": plan_id, "step": step, "payload": to_json(dict(payload))},
    )
    assert row is not None
    new_id = int(row["id"])
    events.record(tx, new_id, "enqueued", plan_id=plan_id,
                  data={"step": step, "iteration_of": job_id})  # fmt: skip
    return new_id


def rewire(tx: Tx, plan_id: int, fresh: Mapping[int, int]) -> None:
    """Give a loop's new jobs (old id -> new id) the dependencies of the ones they follow,
    among themselves where the old ones depended on each other, and move the steps after
    the loop onto the new ones. The old jobs keep their own edges, for the record."""
    old = sorted(fresh)
    deps = tx.q(
        "SELECT job_id, depends_on FROM plan_deps WHERE plan_id = :plan AND job_id {any:ids}",
        {"plan": plan_id, "ids": old},
    )
    for o in old:
        tx.q(
            "UPDATE plan_deps SET depends_on = :new WHERE plan_id = :plan AND depends_on = :old "
            "AND NOT (job_id {any:ids})",
            {"plan": plan_id, "old": o, "new": fresh[o], "ids": old},
        )
    for dep in deps:
        tx.q(
            "INSERT INTO plan_deps (plan_id, job_id, depends_on) VALUES (:plan, :job, :dep)",
            {
                "plan": plan_id,
                "job": fresh[dep["job_id"]],
                "dep": fresh.get(dep["depends_on"], dep["depends_on"]),
            },
        )
