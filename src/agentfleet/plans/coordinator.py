"""Plan operations: submit, advance, approve, reject, resume, cancel, reconcile.

Every plan move is a conditional write naming the state it expects. Plan-level writes
touch only plan rows and job transitions only job rows, so a decision made from a stale
snapshot can never erase a sibling's completion. Decisions about one plan are taken
under that plan's lock (its row lock on PostgreSQL; SQLite's single write lock).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from agentfleet import validate
from agentfleet.agents.usage import Usage, budget_exceeded
from agentfleet.errors import InvalidArgument, InvalidTransition, LeaseLost
from agentfleet.models import JobStatus, Lease
from agentfleet.plans import loops, templating
from agentfleet.plans.decide import Decision, StepState, decide
from agentfleet.plans.model import (
    ALL_SUCCESS,
    APPROVAL_ENGINE,
    DEFAULT_MAX_REJECTIONS,
    LAND_ENGINE,
    ON_ERROR,
    PLAN_FIELDS,
    PRE_MERGE,
    PRE_PR,
    RESUMABLE_STATUSES,
    TERMINAL_PLAN_STATUSES,
    TRIGGER_RULES,
    CheckpointConflict,
    NotResumable,
    Plan,
    PlanConflict,
    PlanMode,
    PlanNotFound,
    PlanSpec,
    PlanStatus,
    PlanStep,
    Repair,
    check_plan_transition,
    parse_checkpoint,
    predecessors,
    topological_order,
    upstream,
    validate_dag,
)
from agentfleet.store import events, reads, steps
from agentfleet.store.base import Store
from agentfleet.store.dialect import Dialect, Tx, status_list, to_json
from agentfleet.workspaces import train_plan
from agentfleet.workspaces.train_plan import StepRow
from agentfleet.workspaces.train_run import last_report

# A step's write about its own plan holds only while its lease holds the step. FOR SHARE
# (PostgreSQL) makes it wait for a takeover in flight and judge the row it leaves.
_FENCE = """EXISTS (SELECT 1 FROM jobs f WHERE f.id = :l_job AND f.lease_epoch = :l_epoch
    AND f.status = 'running' AND f.plan_id = plans.id {for_share})"""

# A running plan that has gone quiet: no plan write and no job write since the stale
# cutoff. It is both what the reconciler fails as orphaned and what resume may restart.
STALE_RUNNING = """(
    plans.status = 'running' AND plans.updated_at < {now-:stale}
    AND NOT EXISTS (SELECT 1 FROM jobs a
                    WHERE a.plan_id = plans.id AND a.updated_at >= {now-:stale}))"""
# The one definition of "resumable": failed, paused, or stale. Finding and resuming use it.
RESUMABLE = f"(plans.status IN {status_list(RESUMABLE_STATUSES)} OR {STALE_RUNNING})"
# What can still move a plan on: a queued step (waiting for a worker, capacity or its
# lock), a step running under a live lease, or a waiting step whose dependencies are done.
CAN_PROGRESS = """EXISTS (
    SELECT 1 FROM jobs a WHERE a.plan_id = plans.id AND (
        a.status = 'queued'
        OR (a.status = 'running' AND a.lease_expires_at >= {now})
        OR (a.status = 'waiting' AND NOT EXISTS (
            SELECT 1 FROM plan_deps d JOIN jobs b ON b.id = d.depends_on
            WHERE d.job_id = a.id AND b.status <> 'succeeded'))))"""
# Orphaned: stale, and nothing can make progress. A quiet plan whose steps wait in a queue
# or behind a lock is healthy, however long the wait.
ORPHANED = f"({STALE_RUNNING} AND NOT {CAN_PROGRESS})"


class PlanCoordinator:
    def __init__(self, store: Store, *, stale_window: float) -> None:
        self.db = store.dialect
        self.stale_window = stale_window

    # -- reads ------------------------------------------------------------------------

    def _plan(self, tx: Tx, plan_id: int) -> Plan:
        rows = tx.q("SELECT * FROM plans WHERE id = :id", {"id": plan_id})
        if not rows:
            raise PlanNotFound(plan_id)
        steps = tx.q(
            "SELECT id, step, engine, status, attempts, result, error, payload FROM jobs "
            "WHERE plan_id = :id ORDER BY id",
            {"id": plan_id},
        )
        deps = tx.q(
            "SELECT d.job_id, j.step FROM plan_deps d JOIN jobs j ON j.id = d.depends_on "
            "WHERE d.plan_id = :id ORDER BY j.id",
            {"id": plan_id},
        )
        needs: dict[int, list[str]] = {}
        for dep in deps:
            needs.setdefault(dep["job_id"], []).append(dep["step"])
        return _plan_from_row(
            self.db,
            rows[0],
            tuple(
                PlanStep(
                    name=s["step"],
                    job_id=s["id"],
                    engine=s["engine"],
                    status=JobStatus(s["status"]),
                    depends_on=tuple(needs.get(s["id"], ())),
                    attempts=s["attempts"],
                    result=self.db.json_in(s["result"]),
                    error=s["error"],
                    **_condition_of(self.db.json_in(s["payload"]) or {}),
                    loop=_loop_of(self.db.json_in(s["payload"]) or {}),
                    limit=(self.db.json_in(s["payload"]) or {}).get("limit"),
                )
                for s in steps
            ),
        )

    def get(self, plan_id: int) -> Plan:
        with self.db.session() as tx:
            return self._plan(tx, plan_id)

    def list_plans(self, status: PlanStatus | None, limit: int, offset: int) -> list[Plan]:
        with self.db.session() as tx:
            where = "" if status is None else "WHERE status = :status"
            rows = tx.q(
                f"SELECT id FROM plans {where} ORDER BY id DESC LIMIT :limit OFFSET :offset",
                {"status": status.value if status else None, "limit": limit, "offset": offset},
            )
            return [self._plan(tx, r["id"]) for r in rows]

    def find_resumable(self) -> list[int]:
        with self.db.session() as tx:
            rows = tx.q(
                f"SELECT id FROM plans WHERE {RESUMABLE} ORDER BY id", {"stale": self.stale_window}
            )
        return [r["id"] for r in rows]

    def inputs(self, job_id: int) -> dict[str, dict[str, Any]]:
        """What a plan step's dependencies produced: status, result and last output."""
        with self.db.session() as tx:
            rows = tx.q(
                """
                SELECT j.step, j.status, j.result,
                       (SELECT r.stdout FROM runs r WHERE r.job_id = j.id
                        ORDER BY r.epoch DESC LIMIT 1) AS stdout
                FROM plan_deps d JOIN jobs j ON j.id = d.depends_on
                WHERE d.job_id = :id ORDER BY j.id
                """,
                {"id": job_id},
            )
        return {
            r["step"]: {
                "status": r["status"],
                "result": self.db.json_in(r["result"]),
                "stdout": r["stdout"],
            }
            for r in rows
        }

    # -- writes -----------------------------------------------------------------------

    def _event(
        self, tx: Tx, plan_id: int, kind: str, data: Mapping[str, Any], job_id: int | None = None
    ) -> None:
        events.record(tx, job_id, kind, plan_id=plan_id, data=data)

    def submit(self, spec: PlanSpec, conn: object | None = None) -> Plan:
        """Submit in one transaction: the store's own, or the caller's open one on `conn`."""
        _check(spec)
        with self.db.write(conn) as tx:
            return self._insert(tx, spec)

    def submit_in(self, tx: Tx, spec: PlanSpec) -> Plan:
        """Submit inside a transaction of the caller's (a schedule's slot and its plan are
        one write)."""
        _check(spec)
        return self._insert(tx, spec)

    def _insert(self, tx: Tx, spec: PlanSpec) -> Plan:
        plan_id = tx.q(
            """
            INSERT INTO plans (name, mode, max_parallel, status, metadata, budget_usd,
                               created_at, updated_at)
            VALUES (:name, :mode, :max_parallel, 'pending', {json:metadata}, :budget_usd,
                    {now}, {now})
            RETURNING id
            """,
            {
                "name": spec.name,
                "mode": spec.mode.value,
                "max_parallel": spec.max_parallel,
                "metadata": to_json(spec.metadata),
                "budget_usd": spec.budget_usd,
            },
        )[0]["id"]
        ids: dict[str, int] = {}
        bodies = loops.check(spec.steps)
        loop_of = {name: end for end, names in bodies.items() for name in names}
        by_name = {s.name: s for s in spec.steps}
        for step in topological_order(spec.steps):
            job = step.job
            if job.engine in train_plan.TRAIN_ENGINES:
                job = dataclasses.replace(job, lock=train_plan.train_lock(plan_id))
            payload = dict(job.payload)
            fields = templating.templated(payload)
            if fields:  # kept as written: rendered anew each time the step is queued
                payload[templating.TEMPLATES_KEY] = fields
            if step.when is not None:
                payload["when"] = step.when
            if step.trigger_rule != ALL_SUCCESS:
                payload["trigger_rule"] = step.trigger_rule
            if step.name in loop_of:
                end = loop_of[step.name]
                payload[loops.LOOP_KEY] = loops.marker(by_name[end], bodies[end])
            if job.engine == APPROVAL_ENGINE:
                payload.setdefault("on_reject", step.on_reject)
                payload.setdefault("max_rejections", step.max_rejections)
            ids[step.name] = steps.insert(tx, plan_id, step.name, job, payload)
            for dep in step.depends_on:
                tx.q(
                    "INSERT INTO plan_deps (plan_id, job_id, depends_on) "
                    "VALUES (:plan, :job, :dep)",
                    {"plan": plan_id, "job": ids[step.name], "dep": ids[dep]},
                )
        self._set_status(tx, plan_id, PlanStatus.RUNNING, expected={"status": "pending"})
        self._event(tx, plan_id, "plan_started", {"name": spec.name})
        self._advance(tx, plan_id)
        return self._plan(tx, plan_id)

    def _set_status(
        self,
        tx: Tx,
        plan_id: int,
        status: PlanStatus,
        *,
        expected: Mapping[str, Any],
        **fields: Any,
    ) -> bool:
        result = self._update(tx, plan_id, expected, {"status": status, **fields})
        return result is not None

    def _leave_checkpoint(self, tx: Tx, plan: Plan, status: PlanStatus, **fields: Any) -> None:
        """Move a plan on from the checkpoint it is paused at, guarded by that checkpoint:
        a racing approve, reject or cancel that got there first makes this a PlanConflict."""
        guard = {"status": "paused", "checkpoint": plan.checkpoint, "pauses": plan.pauses}
        if not self._set_status(tx, plan.id, status, expected=guard, checkpoint=None, **fields):
            raise PlanConflict(plan.id, guard, plan.status.value, plan.rev)

    def _update(
        self,
        tx: Tx,
        plan_id: int,
        expected: Mapping[str, Any],
        fields: Mapping[str, Any],
        lease: Lease | None = None,
    ) -> int | None:
        """The scoped, guarded plan write: only plan columns, only from allowed states, and,
        for a step's own write, only while its lease holds the step (one statement)."""
        sets = ["rev = rev + 1", "updated_at = {now}"]
        params: dict[str, Any] = {"id": plan_id}
        where = ["id = :id"]
        if lease is not None:
            where.append(_FENCE)
            params.update({"l_job": lease.job_id, "l_epoch": lease.epoch})
        for key, value in fields.items():
            if key not in PLAN_FIELDS:
                raise InvalidArgument(
                    f"{key!r} is not a plan-level field; allowed: {sorted(PLAN_FIELDS)}"
                )
            if key == "status":
                wanted = PlanStatus(value)
                where.append(f"status IN {status_list(predecessors(wanted))}")
                value = wanted.value
                if wanted is PlanStatus.COMPLETED and "completed_at" not in fields:
                    sets.append("completed_at = {now}")
                if wanted is PlanStatus.PAUSED:
                    sets.append("pauses = pauses + 1")  # each pause gets its own number
            if key == "budget_usd":  # raised (or lifted) to let a plan past it resume
                value = validate.optional_budget_usd(value, "budget_usd")
            if key in ("checkpoint_context", "metadata"):
                value = to_json(value)
            json_field = key in ("checkpoint_context", "metadata")
            sets.append(f"{key} = {{json:f_{key}}}" if json_field else f"{key} = :f_{key}")
            params[f"f_{key}"] = value
        for key, value in expected.items():
            if key not in ("status", "rev", "checkpoint", "pauses"):
                raise InvalidArgument(f"cannot guard on {key!r}; use status, rev or checkpoint")
            if key == "status" and isinstance(value, list | tuple | set | frozenset):
                where.append(f"status IN {status_list(value)}")
                continue
            where.append(f"{key} = :e_{key}")
            params[f"e_{key}"] = value.value if isinstance(value, PlanStatus) else value
        rows = tx.q(
            f"UPDATE plans SET {', '.join(sets)} WHERE {' AND '.join(where)} RETURNING rev",
            params,
        )
        return rows[0]["rev"] if rows else None

    def update_fields(
        self,
        plan_id: int,
        expected: Mapping[str, Any],
        fields: Mapping[str, Any],
        lease: Lease | None = None,
    ) -> Plan:
        if not fields:
            raise InvalidArgument("update_plan_fields needs at least one field to change")
        with self.db.tx() as tx:
            if self._update(tx, plan_id, expected, fields, lease) is None:
                if lease is not None:
                    self._check_fence(tx, plan_id, lease)
                current = tx.q("SELECT status, rev FROM plans WHERE id = :id", {"id": plan_id})
                if not current:
                    raise PlanNotFound(plan_id)
                status = PlanStatus(current[0]["status"])
                if "status" in fields:
                    check_plan_transition(status, PlanStatus(fields["status"]))
                raise PlanConflict(plan_id, expected, status.value, current[0]["rev"])
            if "status" in fields and PlanStatus(fields["status"]) in TERMINAL_PLAN_STATUSES:
                # A plan set to an end by hand ends its steps too: none is left waiting.
                ended = PlanStatus(fields["status"]).value
                steps.stop_unstarted(tx, plan_id, f"not run: the plan was set {ended}")
                steps.ask_running_to_stop(tx, plan_id)
            elif "status" in fields and fields["status"] != PlanStatus.RUNNING.value:
                steps.hold_queued(tx, plan_id)  # a stopped plan starts nothing
            self._event(tx, plan_id, "plan_updated", {"fields": sorted(fields)})
            return self._plan(tx, plan_id)

    def advance(self, plan_id: int) -> Decision | None:
        with self.db.tx() as tx:
            return self._advance(tx, plan_id)

    def _advance(self, tx: Tx, plan_id: int) -> Decision | None:
        """Move a running plan on: promote ready steps, stop at gates, finish or fail."""
        tx.lock_plan(plan_id)
        plan_row = tx.one(
            "SELECT mode, max_parallel, status, budget_usd FROM plans WHERE id = :id",
            {"id": plan_id},
        )
        if plan_row is None:
            return None
        if plan_row["status"] in (PlanStatus.CANCELLED.value, PlanStatus.ABANDONED.value):
            # A step handed back after the plan ended stays dead.
            steps.stop_unstarted(tx, plan_id, f"not run: the plan was {plan_row['status']}")
            return None
        if plan_row["status"] != PlanStatus.RUNNING.value:
            steps.hold_queued(tx, plan_id)  # e.g. a step a reaper handed back to the queue
            return None
        rows = self._step_rows(tx, plan_id)
        views = {r.name: templating.step_view(r.status, r.result, r.error) for r in rows}
        if self._iterate(tx, plan_id, rows, views):  # a loop went again: decide on its jobs
            rows = self._step_rows(tx, plan_id)
            views = {r.name: templating.step_view(r.status, r.result, r.error) for r in rows}
        states = [
            StepState(
                job_id=r.job_id,
                name=r.name,
                engine=r.engine,
                status=JobStatus(r.status),
                depends_on=r.depends_on,
                error=r.error,
                message=r.payload.get("message"),
                trigger_rule=r.payload.get("trigger_rule") or ALL_SUCCESS,
                when_holds=_when_holds(r, views),
            )
            for r in rows
        ]
        decision = self._with_train(
            tx, plan_id, decide(PlanMode(plan_row["mode"]), plan_row["max_parallel"], states), rows
        )
        if decision.skip:  # what they leave is decided again (a skip may skip the next)
            steps.skip(tx, plan_id, decision.skip)
            return self._advance(tx, plan_id)
        guard = {"status": PlanStatus.RUNNING.value}
        if decision.pause_at is not None:
            if self._set_status(
                tx,
                plan_id,
                PlanStatus.PAUSED,
                expected=guard,
                checkpoint=decision.pause_at,
                checkpoint_context=decision.context,
            ):
                steps.hold_queued(tx, plan_id)
                self._event(tx, plan_id, "plan_paused", decision.context or {})
        elif decision.fail:
            if self._set_status(
                tx, plan_id, PlanStatus.FAILED, expected=guard, checkpoint_context=decision.context
            ):
                # Nothing more of a failed plan runs until it is resumed, which restarts
                # these; left waiting, they would count as work to do for ever.
                steps.stop_unstarted(tx, plan_id, "not run: the plan failed")
                self._event(tx, plan_id, "plan_failed", decision.context or {})
        elif decision.complete:
            landed = _landed(rows)
            if self._set_status(tx, plan_id, PlanStatus.COMPLETED, expected=guard, **landed):
                self._event(tx, plan_id, "plan_completed", landed)
        elif decision.promote and (over := self._over_budget(tx, plan_id, plan_row)):
            # Past its budget a plan starts no further step: it fails, saying why.
            if self._set_status(
                tx, plan_id, PlanStatus.FAILED, expected=guard, checkpoint_context=over
            ):
                steps.stop_unstarted(tx, plan_id, f"not run: {over['error']}")
                self._event(tx, plan_id, "plan_failed", over)
        elif decision.promote:
            for job_id, payload in _promotion_payloads(rows, decision.promote).items():
                steps.prepare(tx, job_id, payload)
            steps.promote(tx, plan_id, decision.promote)
        return decision

    def _iterate(
        self,
        tx: Tx,
        plan_id: int,
        rows: Sequence[StepRow],
        views: Mapping[str, Mapping[str, Any]],
    ) -> bool:
        """Loops whose iteration ended: each goes again (its body's jobs renamed for their
        iteration, fresh ones in their place) or ends, once, with an event saying why."""
        went = False
        for verdict in loops.judge(rows, views):
            body = loops.members(rows, verdict.loop)
            end = next(r for r in body if r.name == verdict.loop)
            if not verdict.again:
                if not self._loop_ended_before(tx, end.job_id):
                    self._event(tx, plan_id, "loop_ended", {"loop": verdict.loop,
                                "iterations": verdict.iteration, "by": verdict.why},
                                job_id=end.job_id)  # fmt: skip
                continue
            iteration = verdict.iteration + 1
            fresh: dict[int, int] = {}
            for row in body:
                steps.retire(tx, plan_id, row.job_id,
                             loops.iteration_name(row.name, verdict.iteration))  # fmt: skip
                payload = loops.next_payload(row, views[verdict.loop], iteration)
                fresh[row.job_id] = steps.insert_like(tx, plan_id, row.job_id, row.name, payload)
            steps.rewire(tx, plan_id, fresh)
            self._event(tx, plan_id, "loop_iteration", {"loop": verdict.loop,
                        "iteration": iteration, "why": verdict.why})  # fmt: skip
            went = True
        return went

    def _loop_ended_before(self, tx: Tx, job_id: int) -> bool:
        return tx.one("SELECT 1 AS x FROM events WHERE job_id = :id AND kind = 'loop_ended'",
                      {"id": job_id}) is not None  # fmt: skip

    def _over_budget(
        self, tx: Tx, plan_id: int, plan_row: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Why the plan may start no more steps (its runs cost more than its budget)."""
        budget = plan_row["budget_usd"]
        if budget is None:
            return None
        spent = Usage.total(agent for _, _, agent in reads.run_agents(tx, self.db, plan_id=plan_id))
        reason = budget_exceeded(spent, budget, f"plan {plan_id}")
        return None if reason is None else {"kind": "budget", "error": reason}

    def _step_rows(self, tx: Tx, plan_id: int) -> list[StepRow]:
        found = tx.q(
            "SELECT id, step, engine, status, error, payload, result, finished_at FROM jobs "
            "WHERE plan_id = :id ORDER BY id",
            {"id": plan_id},
        )
        deps = tx.q("SELECT job_id, depends_on FROM plan_deps WHERE plan_id = :id", {"id": plan_id})
        needs: dict[int, list[int]] = {}
        for dep in deps:
            needs.setdefault(dep["job_id"], []).append(dep["depends_on"])
        return [
            StepRow(
                job_id=r["id"],
                name=r["step"],
                engine=r["engine"],
                status=r["status"],
                payload=self.db.json_in(r["payload"]) or {},
                result=self.db.json_in(r["result"]),
                depends_on=tuple(needs.get(r["id"], ())),
                finished_at=self.db.time_in(r["finished_at"]),
                error=r["error"],
            )
            for r in found
        ]

    def _with_train(
        self, tx: Tx, plan_id: int, decision: Decision, rows: Sequence[StepRow]
    ) -> Decision:
        """A decision with what the merge train adds to its context: the combined change at
        a landing gate; at a stop, what the merge or landing that stopped it reported."""
        if decision.context is None or not train_plan.has_train(rows):
            return decision
        context = dict(decision.context)
        if decision.pause_at in (PRE_PR, PRE_MERGE):
            context.update(train_plan.landing_context(rows, plan_id))
        elif decision.pause_at == ON_ERROR or decision.fail:
            row = next((r for r in rows if r.job_id == context.get("job_id")), None)
            if row is not None and row.engine in train_plan.TRAIN_ENGINES:
                stopped = train_plan.stop_context(row, self._last_report(tx, row.job_id))
                context.update(stopped or {})
        return dataclasses.replace(decision, context=context)

    def _last_report(self, tx: Tx, job_id: int) -> dict[str, Any] | None:
        row = tx.one(
            "SELECT stdout FROM runs WHERE job_id = :id ORDER BY id DESC LIMIT 1", {"id": job_id}
        )
        return None if row is None else last_report(row["stdout"])

    def _check_fence(self, tx: Tx, plan_id: int, lease: Lease) -> None:
        """Why a step's write about its plan found nothing: its lease no longer holds."""
        row = tx.one(
            "SELECT status, lease_epoch, plan_id FROM jobs WHERE id = :id", {"id": lease.job_id}
        )
        held = (
            row is not None
            and row["status"] == "running"
            and row["lease_epoch"] == lease.epoch
            and row["plan_id"] == plan_id
        )
        if not held:
            current = None if row is None else row["lease_epoch"]
            status = None if row is None else row["status"]
            raise LeaseLost(lease.job_id, lease.epoch, current_epoch=current, status=status)

    def _check_pending(self, plan: Plan, checkpoint: str | None) -> None:
        """An approve or reject names the pause it answers; another pause refuses it."""
        if checkpoint is None:
            return
        name, pause = parse_checkpoint(checkpoint)
        if plan.pending is None or plan.checkpoint != name or pause not in (None, plan.pauses):
            raise CheckpointConflict(plan.id, checkpoint, plan.pending, plan.status.value)

    def approve(self, plan_id: int, response: Any, checkpoint: str | None = None) -> Plan:
        with self.db.tx() as tx:
            tx.lock_plan(plan_id)
            plan = self._plan(tx, plan_id)
            self._check_pending(plan, checkpoint)
            if plan.status is not PlanStatus.PAUSED or plan.checkpoint is None:
                raise InvalidTransition(
                    f"plan {plan_id}",
                    plan.status.value,
                    "running",
                    f"plan {plan_id} is {plan.status.value}: it waits at no checkpoint, so "
                    "there is nothing to approve",
                )
            context = plan.checkpoint_context or {}
            if plan.checkpoint == ON_ERROR:
                raise InvalidTransition(
                    f"plan {plan_id}",
                    "on_error",
                    "running",
                    f"plan {plan_id} stopped on an error (job {context.get('job')!r} "
                    f"{context.get('kind')}), which approving cannot pass: fix the cause, "
                    f"then resume it (agentfleet plan resume {plan_id})",
                )
            if plan.checkpoint == PRE_PR and context.get("kind") != "approval":
                self._leave_checkpoint(tx, plan, PlanStatus.COMPLETED)
                self._event(tx, plan_id, "approved", {"checkpoint": PRE_PR, "response": response})
                self._event(tx, plan_id, "plan_completed", {})
                return self._plan(tx, plan_id)
            gate_id = context.get("job_id")
            if context.get("kind") == "approval" and gate_id is not None:
                state = self._gate_state(tx, gate_id)
                steps.pass_gate(tx, gate_id, {**state, "approved": True, "response": response})
            self._leave_checkpoint(tx, plan, PlanStatus.RUNNING, checkpoint_context=None)
            self._event(
                tx, plan_id, "approved", {"checkpoint": plan.checkpoint, "response": response}
            )
            self._advance(tx, plan_id)
            return self._plan(tx, plan_id)

    def reject(self, plan_id: int, feedback: str | None, checkpoint: str | None = None) -> Plan:
        with self.db.tx() as tx:
            tx.lock_plan(plan_id)
            plan = self._plan(tx, plan_id)
            self._check_pending(plan, checkpoint)
            context = plan.checkpoint_context or {}
            if plan.status is not PlanStatus.PAUSED or context.get("kind") != "approval":
                where = f"waits at {plan.checkpoint}" if plan.checkpoint else "waits at nothing"
                raise InvalidTransition(
                    f"plan {plan_id}",
                    plan.status.value,
                    "running",
                    f"plan {plan_id} is {plan.status.value} and {where}: only an approval "
                    "gate can be rejected",
                )
            gate_id = int(context["job_id"])
            gate = tx.q("SELECT payload FROM jobs WHERE id = :id", {"id": gate_id})[0]
            payload = self.db.json_in(gate["payload"]) or {}
            state = self._gate_state(tx, gate_id)
            rejections = int(state.get("rejections", 0)) + 1
            limit = int(payload.get("max_rejections", DEFAULT_MAX_REJECTIONS))  # 0: no rework
            target_name = payload.get("on_reject") or next(
                iter(plan.step(plan.checkpoint or "").depends_on), None
            )
            self._event(tx, plan_id, "rejected", {"gate": plan.checkpoint, "feedback": feedback})
            if not feedback or rejections > limit or target_name is None:
                reason = "rejected" if not feedback else "too many rejections"
                self._cancel(tx, plan_id, reason)
                return self._plan(tx, plan_id)
            target = plan.step(target_name)
            rows = tx.q("SELECT payload FROM jobs WHERE id = :id", {"id": target.job_id})
            target_payload = self.db.json_in(rows[0]["payload"]) or {}
            target_payload["feedback"] = [*target_payload.get("feedback", []), feedback]
            if isinstance(target_payload.get("prompt"), str):
                target_payload["prompt"] += (
                    f"\n\nReviewer feedback (round {rejections}): {feedback}"
                )
            steps.send_back(tx, target.job_id, target_payload)
            for step in _between(plan, target.name, plan.checkpoint or ""):
                steps.send_back(tx, step.job_id)  # reruns after the target, before the gate
            feedbacks = [*state.get("feedback", []), feedback]
            steps.record_gate_state(
                tx, gate_id, {**state, "rejections": rejections, "feedback": feedbacks}
            )
            self._leave_checkpoint(tx, plan, PlanStatus.RUNNING, checkpoint_context=None)
            self._advance(tx, plan_id)
            return self._plan(tx, plan_id)

    def resume(self, plan_id: int) -> Plan:
        """One conditional write decides; of racing resumers exactly one wins."""
        with self.db.tx() as tx:
            before = tx.one(
                "SELECT checkpoint_context, budget_usd FROM plans WHERE id = :id", {"id": plan_id}
            )
            context = (self.db.json_in(before["checkpoint_context"]) if before else None) or {}
            over = None if before is None else self._over_budget(tx, plan_id, before)
            if over is not None:  # resumed, it would fail again at its next step
                raise InvalidArgument(
                    f"plan {plan_id} cannot resume: {over['error']}; raise its budget first "
                    f"(agentfleet plan budget {plan_id} USD)"
                )
            won = tx.q(
                f"""
                UPDATE plans SET status = 'running', checkpoint = NULL, checkpoint_context = NULL,
                    rev = rev + 1, updated_at = {{now}}
                WHERE id = :id AND {RESUMABLE}
                RETURNING id
                """,
                {"id": plan_id, "stale": self.stale_window},
            )
            if not won:
                current = tx.q("SELECT status FROM plans WHERE id = :id", {"id": plan_id})
                if not current:
                    raise PlanNotFound(plan_id)
                raise NotResumable(plan_id, current[0]["status"])
            requeued = steps.restart_ended(tx, plan_id)
            reworked = self._rework_after_train_stop(tx, plan_id, context)
            self._event(tx, plan_id, "plan_resumed", {"requeued": requeued, **reworked})
            self._advance(tx, plan_id)
            return self._plan(tx, plan_id)

    def _rework_after_train_stop(
        self, tx: Tx, plan_id: int, context: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A plan resumed after a merge conflict or a failed test gate does that step
        again, from the integration branch's newest head and told what clashed."""
        redo = train_plan.rework(self._step_rows(tx, plan_id), context)
        if redo is None:
            return {}
        target, payload = redo
        steps.send_back(tx, target.job_id, payload)
        return {"reworked": target.name}

    def cancel(self, plan_id: int, reason: str = "cancelled") -> bool:
        with self.db.tx() as tx:
            return self._cancel(tx, plan_id, reason)

    def _cancel(self, tx: Tx, plan_id: int, reason: str) -> bool:
        """Idempotent: never touches a plan that has ended; says if it cancelled."""
        return self._end(tx, plan_id, PlanStatus.CANCELLED, reason)

    def abandon(self, plan_id: int) -> bool:
        """Give up a failed or paused plan for good; idempotent like cancel. A running plan
        is refused: it is cancelled instead, which asks its running steps to stop."""
        with self.db.tx() as tx:
            if self._end(tx, plan_id, PlanStatus.ABANDONED, "abandoned"):
                return True
            status = PlanStatus(self._status(tx, plan_id))
            if status in TERMINAL_PLAN_STATUSES:
                return False
            raise InvalidTransition(
                f"plan {plan_id}",
                status.value,
                PlanStatus.ABANDONED.value,
                f"plan {plan_id} is {status.value}: only a failed or paused plan can be "
                f"abandoned; to stop it, cancel it (agentfleet plan cancel {plan_id})",
            )

    def _end(self, tx: Tx, plan_id: int, status: PlanStatus, reason: str) -> bool:
        """The one guarded move to a terminal status by a person: the checkpoint is cleared,
        steps that have not started end, running ones are asked to stop."""
        won = tx.q(
            "UPDATE plans SET status = :status, checkpoint = NULL, rev = rev + 1, "
            f"updated_at = {{now}} WHERE id = :id AND status IN "
            f"{status_list(predecessors(status))} RETURNING id",
            {"id": plan_id, "status": status.value},
        )
        if not won:
            self._status(tx, plan_id)  # PlanNotFound when there is no such plan
            return False
        stopped = steps.stop_unstarted(tx, plan_id, f"not run: the plan was {status.value}")
        asked = steps.ask_running_to_stop(tx, plan_id)
        self._event(
            tx,
            plan_id,
            f"plan_{status.value}",
            {"reason": reason, "cancelled": stopped, "asked_to_stop": asked},
        )
        return True

    def _status(self, tx: Tx, plan_id: int) -> str:
        row = tx.one("SELECT status FROM plans WHERE id = :id", {"id": plan_id})
        if row is None:
            raise PlanNotFound(plan_id)
        return str(row["status"])

    def _gate_state(self, tx: Tx, gate_id: int) -> dict[str, Any]:
        row = tx.one("SELECT result FROM jobs WHERE id = :id", {"id": gate_id})
        value = self.db.json_in(row["result"]) if row else None
        return dict(value) if isinstance(value, dict) else {}

    # -- reconciler -------------------------------------------------------------------

    def reconcile_orphans(self) -> list[Repair]:
        """Running plans that are stale and can no longer move fail as `orphaned`."""
        repairs: list[Repair] = []
        with self.db.tx() as tx:
            stale = tx.q(
                f"""
                UPDATE plans SET status = 'failed', checkpoint_context = {{json:context}},
                    rev = rev + 1, updated_at = {{now}}
                WHERE {ORPHANED}
                RETURNING id
                """,
                {"stale": self.stale_window, "context": to_json({"kind": "orphaned"})},
            )
            for row in stale:
                steps.hold_queued(tx, row["id"])
                self._event(tx, row["id"], "repair", {"reason": "orphaned"})
                repairs.append(Repair("plan_failed", "orphaned", plan_id=row["id"]))
        return repairs

    def reconcile_plans(self) -> list[Repair]:
        """Repair plan drift; the caller holds the reconciler's single-flight name."""
        repairs: list[Repair] = []
        with self.db.session() as tx:
            running = [r["id"] for r in tx.q("SELECT id FROM plans WHERE status = 'running'")]
        for plan_id in running:
            with self.db.tx() as tx:
                decision = self._advance(tx, plan_id)
                if decision is None:
                    continue
                reason = _drift_reason(decision)
                if reason:
                    self._event(tx, plan_id, "repair", {"reason": reason})
                    repairs.append(Repair("plan_advanced", reason, plan_id=plan_id))
        return repairs


def _landed(rows: Sequence[StepRow]) -> dict[str, Any]:
    """The pull request a plan's landing step opened, for the plan's own `pr_url`. Only a
    completion that won its fenced write leaves a result, so this is fenced as well."""
    for row in rows:
        if (
            row.engine == LAND_ENGINE
            and isinstance(row.result, Mapping)
            and row.result.get("pr_url")
        ):
            return {"pr_url": str(row.result["pr_url"])}
    return {}


def _between(plan: Plan, target: str, gate: str) -> list[PlanStep]:
    """The steps on a path from `target` to `gate` (both excluded): the rework of a
    rejection reruns them after the target, so the gate pauses again only once they have."""
    graph = {s.name: s.depends_on for s in plan.jobs}
    before_gate = upstream(graph, gate)
    return [s for s in plan.jobs if s.name in before_gate and target in upstream(graph, s.name)]


def _drift_reason(decision: Decision) -> str | None:
    if decision.complete:
        return "all jobs done but plan still running"
    if decision.fail:
        return "a job failed for good but the plan was still running"
    if decision.pause_at is not None:
        return f"plan should have stopped at {decision.pause_at}"
    if decision.promote:
        return "ready jobs were not promoted"
    return None


def _plan_from_row(db: Dialect, row: Mapping[str, Any], plan_steps: tuple[PlanStep, ...]) -> Plan:
    return Plan(
        id=row["id"],
        name=row["name"],
        mode=PlanMode(row["mode"]),
        max_parallel=row["max_parallel"],
        status=PlanStatus(row["status"]),
        checkpoint=row["checkpoint"],
        checkpoint_context=db.json_in(row["checkpoint_context"]),
        completed_at=db.time_in(row["completed_at"]),
        pr_url=row["pr_url"],
        metadata=db.json_in(row["metadata"]) or {},
        rev=row["rev"],
        created_at=db.time_in(row["created_at"]),  # type: ignore[arg-type]
        updated_at=db.time_in(row["updated_at"]),  # type: ignore[arg-type]
        jobs=plan_steps,
        pauses=row["pauses"],
        budget_usd=row["budget_usd"],
    )


def _promotion_payloads(rows: Sequence[StepRow], promote: Sequence[int]) -> dict[int, Any]:
    """The payloads of steps about to be queued that change first: what the merge train
    gives them (a commit to merge, a branch to start from), then their templates rendered
    against the upstream steps as they ended."""
    payloads: dict[int, Any] = dict(train_plan.promotion_payloads(rows, promote))
    views = {r.name: templating.step_view(r.status, r.result, r.error) for r in rows}
    by_id = {r.job_id: r for r in rows}
    for job_id in promote:
        payload = payloads.get(job_id) or by_id[job_id].payload
        if templating.needs_rendering(payload):
            loop = payload.get(loops.LOOP_KEY)
            context = loops.context(loop) if isinstance(loop, Mapping) else None
            payloads[job_id] = templating.render(payload, views, context)
    return payloads


def _check(spec: PlanSpec) -> None:
    """What a plan must be before anything is written: a DAG whose templates name only the
    steps each step depends on."""
    validate_dag(spec.steps)
    validate.optional_budget_usd(spec.budget_usd, f"plan {spec.name!r}: budget_usd")
    graph = {s.name: s.depends_on for s in spec.steps}
    in_loop = {name for names in loops.check(spec.steps).values() for name in names}
    for step in spec.steps:
        before = upstream(graph, step.name)
        looped = step.name in in_loop
        templating.check(step.name, step.job.payload, before, set(graph), loop=looped)
        if step.when is not None:
            templating.check_condition(step.name, step.when, before, set(graph), loop=looped)
        if step.trigger_rule not in TRIGGER_RULES:
            raise InvalidArgument(
                f"step {step.name!r}: trigger_rule must be one of {', '.join(TRIGGER_RULES)}"
            )


def _when_holds(row: StepRow, views: Mapping[str, Mapping[str, Any]]) -> bool | None:
    """A waiting step's `when:` over its upstream steps as they are now (None: it has none)."""
    when = row.payload.get("when")
    if row.status != JobStatus.WAITING.value or not when:
        return None
    loop = row.payload.get(loops.LOOP_KEY)
    context = loops.context(loop) if isinstance(loop, Mapping) else None
    return templating.condition_holds(str(when), views, context)


def _loop_of(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a step's payload says of the loop it is in, for the views."""
    loop = payload.get(loops.LOOP_KEY)
    if not isinstance(loop, Mapping):
        return None
    keys = ("name", "iteration", "max_iterations", "until")
    return {key: loop.get(key) for key in keys}


def _condition_of(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a step's payload says about when it runs, for the views."""
    return {
        "when": payload.get("when"),
        "trigger_rule": payload.get("trigger_rule") or ALL_SUCCESS,
    }
