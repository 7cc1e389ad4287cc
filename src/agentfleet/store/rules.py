"""The job rules as SQL: each transition's guard and outcome, written once for every store.

Every move a job row can make is declared here as a `Move` (the statuses it starts from and
those it may end in), and each is checked at import against `models.JOB_TRANSITIONS`, the
one state machine; a test checks that the moves together cover that table exactly. The
stores use the guards and CASE expressions below as the WHERE and SET clauses of their
conditional writes, rendered by their dialect (see `store.dialect` for the tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentfleet.models import TERMINAL_STATUSES, JobStatus, check_transition
from agentfleet.store.dialect import status_list

Q, R, S, F, C, W, K = (
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.WAITING,
    JobStatus.SKIPPED,
)


@dataclass(frozen=True)
class Move:
    """One kind of write to a job row: from which statuses, to which."""

    verb: str
    sources: frozenset[JobStatus]
    targets: frozenset[JobStatus]

    def __post_init__(self) -> None:
        for source in self.sources:
            for target in self.targets - {source}:
                check_transition(source, target)

    def guard(self, alias: str = "") -> str:
        """The WHERE condition on the row's current status."""
        column = f"{alias}.status" if alias else "status"
        if len(self.sources) == 1:
            return f"{column} = '{next(iter(self.sources)).value}'"
        return f"{column} IN {status_list(self.sources)}"


def _move(verb: str, sources: set[JobStatus], targets: set[JobStatus]) -> Move:
    return Move(verb, frozenset(sources), frozenset(targets))


# Jobs.
CLAIM = _move("claim", {Q}, {R})
TAKE_OVER = _move("take over an expired lease", {R}, {R})  # same status, a new epoch
RENEW = _move("renew", {R}, {R})
COMPLETE = _move("complete", {R}, {S})
FAIL = _move("fail", {R}, {Q, F, C})
RELEASE = _move("release", {R}, {Q, C})
EXPIRE = _move("expire", {R}, {Q, F, C})
CANCEL = _move("cancel", {W, Q}, {C})  # a waiting plan step too: its plan then stops
ASK_TO_STOP = _move("ask a running job to stop", {R}, {R})
RETRY = _move("retry", {F, C}, {Q})
PATCH = _move("patch fields", set(JobStatus), set())  # any status, status unchanged
# Plan steps (the plans layer makes these through store.steps only).
PROMOTE = _move("promote a ready step", {W}, {Q})
HOLD = _move("hold a queued step back", {Q}, {W})
STOP_UNSTARTED = _move("stop steps that have not started", {W, Q}, {C})
PASS_GATE = _move("pass an approval gate", {W}, {S})
SKIP = _move("skip a step its condition or trigger rule leaves out", {W}, {K})
REWORK = _move("send a step back for rework", {S, F, C, K}, {W})
RESTART = _move("restart ended steps on resume", {F, C}, {W})

MOVES = (
    CLAIM, TAKE_OVER, RENEW, COMPLETE, FAIL, RELEASE, EXPIRE, CANCEL, ASK_TO_STOP, RETRY,
    PATCH, PROMOTE, HOLD, STOP_UNSTARTED, PASS_GATE, SKIP, REWORK, RESTART,
)  # fmt: skip

LIVE = status_list({Q, R})
TERMINAL = status_list(TERMINAL_STATUSES)

# -- readiness ------------------------------------------------------------------------

# A queued job is ready when its time has come and its named lock is free.
LOCK_FREE = "NOT EXISTS (SELECT 1 FROM jobs r WHERE r.lock = j.lock AND r.status = 'running')"
# Among ready jobs sharing a lock only the first in claim order qualifies, so one batch
# never takes two jobs of one lock. `{queue_filter_e}` restricts the rivals like the batch.
FIRST_OF_LOCK = """NOT EXISTS (
    SELECT 1 FROM jobs e
    WHERE e.lock = j.lock AND e.status = 'queued' AND e.run_at <= {now}
      AND (e.priority > j.priority OR (e.priority = j.priority AND e.id < j.id))
      AND (e.plan_id IS NULL OR EXISTS (
          SELECT 1 FROM plans pe WHERE pe.id = e.plan_id AND pe.status = 'running'))
      {queue_filter_e})"""  # a rival that cannot start (its plan stopped) blocks nobody
# A plan's job starts only while its plan is running: the database says so, not the caller.
PLAN_RUNNING = """(j.plan_id IS NULL OR EXISTS (
    SELECT 1 FROM plans p WHERE p.id = j.plan_id AND p.status = 'running'))"""
# A plan's step is retried only while its plan runs; a stopped plan reruns its failed
# steps by being resumed, so a retried step never waits for ever in the queue.
RETRYABLE = f"{RETRY.guard('j')} AND {PLAN_RUNNING}"
# A job naming a fleet-wide limit starts only while fewer than the limit's max_running
# jobs of that name run (a limit that is not set lets none run). In a batch, the ready
# rivals ahead of it in claim order count too, so one batch never takes more than fit.
LIMIT_MAX = "coalesce((SELECT l.max_running FROM limits l WHERE l.name = j.limit_name), 0)"
LIMIT_RUNNING = """(SELECT count(*) FROM jobs lr
    WHERE lr.limit_name = j.limit_name AND lr.status = 'running')"""
LIMIT_AHEAD = """(SELECT count(*) FROM jobs la
    WHERE la.limit_name = j.limit_name AND la.status = 'queued' AND la.run_at <= {now}
      AND (la.priority > j.priority OR (la.priority = j.priority AND la.id < j.id))
      AND (la.plan_id IS NULL OR EXISTS (
          SELECT 1 FROM plans pl WHERE pl.id = la.plan_id AND pl.status = 'running'))
      {queue_filter_la})"""
# A limit with a rate also lets at most rate_count of its jobs start in any rate_seconds
# (the starts are rows of limit_starts, stamped by the store's clock); rivals ahead count.
LIMIT_RATE_OK = """NOT EXISTS (SELECT 1 FROM limits lq WHERE lq.name = j.limit_name
    AND lq.rate_count IS NOT NULL AND (SELECT count(*) FROM limit_starts ls
        WHERE ls.name = lq.name AND ls.at > {ago:lq.rate_seconds}){ahead} >= lq.rate_count)"""
LIMIT_FREE = f"({LIMIT_RUNNING} < {LIMIT_MAX} AND {LIMIT_RATE_OK.replace('{ahead}', '')})"
LIMIT_FREE_BATCH = (
    f"({LIMIT_RUNNING} + {LIMIT_AHEAD} < {LIMIT_MAX} "
    f"AND {LIMIT_RATE_OK.replace('{ahead}', ' + ' + LIMIT_AHEAD)})"
)
# Whether any queued job names a limit (PostgreSQL then claims those under its lock).
LIMITED_WAITING = "EXISTS (SELECT 1 FROM jobs WHERE limit_name IS NOT NULL AND status = 'queued')"
READY_ONE = (
    f"{CLAIM.guard('j')} AND j.run_at <= {{now}} AND (j.lock IS NULL OR {LOCK_FREE}) "
    f"AND (j.limit_name IS NULL OR {LIMIT_FREE}) AND {PLAN_RUNNING}"
)
READY_BATCH = (
    f"{CLAIM.guard('j')} AND j.run_at <= {{now}} "
    f"AND (j.lock IS NULL OR ({LOCK_FREE} AND {FIRST_OF_LOCK})) "
    f"AND (j.limit_name IS NULL OR {LIMIT_FREE_BATCH}) AND {PLAN_RUNNING}"
)


def limit_of(payload: Any) -> str | None:
    """The fleet-wide limit a job names (its payload's `limit`), if any."""
    value = payload.get("limit") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


# A retried job waits this long (seconds) after its run_at for the host of its failed
# attempt, where its agent's session is, before any host may take it.
PREFER_HOST_GRACE = 30.0
PREFERRED_HOST = "(j.prefer_host IS NULL OR j.prefer_host = :host OR j.run_at <= {now-:grace})"
# An expired lease may be taken over directly, if attempts remain and nobody cancelled it.
EXPIRED = f"""{TAKE_OVER.guard("j")} AND j.lease_expires_at < {{now}}
    AND j.attempts < j.max_attempts AND NOT j.cancel_requested"""


@dataclass(frozen=True, slots=True)
class Claim:
    """What a batch claims: up to `limit` ready jobs of these queues and engines (None:
    any), leased to `worker` for `ttl` seconds, by a worker on `host` (a retry prefers
    the host of its failed attempt)."""

    worker: str
    queues: Sequence[str] | None
    limit: int
    ttl: float
    engines: Sequence[str] | None = None
    host: str | None = None

    def ready(self, limited: bool | None = None) -> tuple[str, dict[str, Any]]:
        """The readiness condition on `j` for this claim, and its parameters; `limited`
        keeps only jobs that name a limit (True) or only those that do not (False)."""
        params: dict[str, Any] = {
            "worker": self.worker,
            "ttl": self.ttl,
            "limit": self.limit,
            "host": self.host,
            "grace": PREFER_HOST_GRACE,
        }
        on_j, on_rivals, on_limit_rivals = f" AND {PREFERRED_HOST}", "", ""
        for column, values in (("queue", self.queues), ("engine", self.engines)):
            if values is not None:
                params[column] = list(values)
                on_j += f" AND j.{column} {{any:{column}}}"
                on_rivals += f" AND e.{column} {{any:{column}}}"
                on_limit_rivals += f" AND la.{column} {{any:{column}}}"
        if limited is not None:
            on_j += " AND j.limit_name IS NOT NULL" if limited else " AND j.limit_name IS NULL"
        ready = READY_BATCH.replace("{queue_filter_e}", on_rivals)
        return ready.replace("{queue_filter_la}", on_limit_rivals) + on_j, params


# What every claim sets: a new epoch and attempt, the lease, the new rev.
CLAIM_SET = """status = 'running', lease_epoch = lease_epoch + 1, attempts = attempts + 1,
    worker = :worker, lease_expires_at = {now+:ttl}, rev = rev + 1, updated_at = {now},
    prefer_host = NULL"""

# Fields a running job's lease stands on: update_if_match leaves them alone until it ends.
FIXED_WHILE_RUNNING = frozenset({"lock", "queue", "max_attempts"})

# -- outcomes -------------------------------------------------------------------------


def after_attempt(retry: str) -> str:
    """The status an attempt ends in when it did not succeed: cancelled if a cancel was
    asked for, queued again if `retry` (a SQL condition) holds and attempts remain, else
    failed. Fail, expiry and release all decide with this one expression."""
    return (
        "CASE WHEN cancel_requested THEN 'cancelled' "
        f"WHEN ({retry}) AND attempts < max_attempts THEN 'queued' ELSE 'failed' END"
    )


def finished_at(next_status: str) -> str:
    """`finished_at` for a row moving to `next_status`: stamped when that is terminal."""
    return f"CASE WHEN ({next_status}) IN {TERMINAL} THEN {{now}} ELSE NULL END"


AFTER_FAIL = after_attempt(":retry")
AFTER_EXPIRY = after_attempt("1 = 1")
# A release gives the attempt back, so the retry test always passes.
AFTER_RELEASE = "CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END"

# The run a closing attempt leaves behind, by the job's new status.
RUN_AFTER_FAIL = "CASE WHEN :status = 'cancelled' THEN 'cancelled' ELSE 'failed' END"
