"""Fleet: the operations every surface (Python, CLI, HTTP) calls.

It validates arguments, applies policy (retry backoff) and delegates each state change to
one atomic store primitive. It never reads, checks and then writes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, overload

from agentfleet import validate
from agentfleet.agents.usage import Usage
from agentfleet.connect import open_store
from agentfleet.durations import parse_age
from agentfleet.engines import BUILTIN_ENGINES
from agentfleet.errors import InvalidArgument, LeaseLost
from agentfleet.models import (
    TERMINAL_STATUSES,
    Event,
    Job,
    JobStatus,
    Lease,
    LedgerEntry,
    MatchResult,
    NewJob,
    Run,
    RunOutput,
    WorkerInfo,
)
from agentfleet.plans.coordinator import PlanCoordinator
from agentfleet.plans.model import (
    APPROVAL_ENGINE,
    DEFAULT_STALE_WINDOW,
    TERMINAL_PLAN_STATUSES,
    Plan,
    PlanSpec,
    PlanStatus,
    Repair,
    parse_checkpoint,
)
from agentfleet.plans.planfile import load_plan_file, parse_plan
from agentfleet.retry import RetryPolicy
from agentfleet.schedules import Fired, Schedule
from agentfleet.scheduling import Schedules
from agentfleet.store import events, retention
from agentfleet.store.base import Store
from agentfleet.store.lease_tokens import LeaseTokens
from agentfleet.store.limits import Limit, Limits, parse_rate
from agentfleet.store.rules import limit_of
from agentfleet.store.settings import Settings
from agentfleet.store.tokens import TokenInfo, Tokens
from agentfleet.tasks import REGISTRY, TaskRegistry
from agentfleet.workspaces import housekeeping
from agentfleet.workspaces.housekeeping import Leftover
from agentfleet.workspaces.review import JobChange, change_of
from agentfleet.workspaces.submit import with_workspace
from agentfleet.workspaces.train import locate_steps

DEFAULT_TTL = 30.0
F = TypeVar("F", bound=Callable[..., Any])


class Fleet:
    """A handle on one agentfleet database."""

    def __init__(
        self,
        store: Store,
        *,
        retry_policy: RetryPolicy | None = None,
        reap_interval: float = 1.0,
        stale_window: float = DEFAULT_STALE_WINDOW,
        tasks: TaskRegistry | None = None,
    ) -> None:
        self.store = store
        self.plans = PlanCoordinator(
            store,
            stale_window=validate.positive_seconds(stale_window, "stale_window"),
        )
        self.retry_policy = retry_policy or RetryPolicy()
        self.reap_interval = reap_interval
        self.tasks = REGISTRY if tasks is None else tasks
        self._last_reap = float("-inf")
        self._schedules: Schedules | None = None
        self._lease_tokens: LeaseTokens | None = None

    @property
    def url(self) -> str:
        return self.store.url

    def on(self, store: Store) -> Fleet:
        """This fleet's verbs over `store`, another handle on the same database (the asyncio
        API runs the plan verbs this way on its async connections)."""
        other = copy.copy(self)
        other.store = store
        other.plans = PlanCoordinator(store, stale_window=self.plans.stale_window)
        other._schedules = None
        other._lease_tokens = None
        return other

    # -- context manager --------------------------------------------------------------

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    def now(self) -> datetime:
        return self.store.now()

    # -- enqueue ----------------------------------------------------------------------

    def new_job(
        self,
        engine: str,
        payload: Mapping[str, Any] | None = None,
        *,
        queue: str = "default",
        priority: int = 0,
        lock: str | None = None,
        max_attempts: int = 3,
        timeout: float | None = None,
        run_at: datetime | timedelta | None = None,
        dedupe_key: str | None = None,
        limit: str | None = None,
    ) -> NewJob:
        """Validate one job request without writing it. `limit` names a fleet-wide limit
        (see `set_limit`); it is kept in the payload as ``limit``."""
        if engine == APPROVAL_ENGINE:
            raise InvalidArgument(
                "an approval job only exists as a gate inside a plan (it would wait in the "
                "queue for ever); put it in a plan file with depends_on"
            )
        checked_payload = validate.json_document({} if payload is None else payload, "payload")
        if limit is not None:
            checked_payload = {**checked_payload, "limit": limit}
        if "limit" in checked_payload:
            validate.name(checked_payload["limit"], "limit")
        validate.prompt(checked_payload.get("prompt"), "payload 'prompt'")
        validate.payload_limits(checked_payload)
        checked_payload = with_workspace(checked_payload)
        return NewJob(
            engine=validate.name(engine, "engine"),
            payload=checked_payload,
            queue=validate.name(queue, "queue"),
            priority=validate.int32(priority, "priority"),
            lock=validate.optional_name(lock, "lock"),
            max_attempts=validate.int32(max_attempts, "max_attempts", minimum=1),
            timeout=validate.optional_positive_seconds(timeout, "timeout"),
            run_at=validate.run_at(run_at, self.store.now),
            dedupe_key=validate.optional_name(dedupe_key, "dedupe_key"),
        )

    def enqueue(
        self,
        engine: str,
        payload: Mapping[str, Any] | None = None,
        *,
        queue: str = "default",
        priority: int = 0,
        lock: str | None = None,
        max_attempts: int = 3,
        timeout: float | None = None,
        run_at: datetime | timedelta | None = None,
        dedupe_key: str | None = None,
        limit: str | None = None,
        conn: object | None = None,
    ) -> Job:
        """Add a job; a live job with the same dedupe_key is returned instead of a new one.
        A job naming a `limit` that is not set is refused.

        `conn` is a connection of the caller's own to the fleet's database (psycopg on
        PostgreSQL, sqlite3 on SQLite) with a transaction open: the job is written in that
        transaction, so it exists if and only if the caller commits, and workers are woken
        when it commits. See README, "Enqueue in your own transaction"."""
        new = self.new_job(
            engine,
            payload,
            queue=queue,
            priority=priority,
            lock=lock,
            max_attempts=max_attempts,
            timeout=timeout,
            run_at=run_at,
            dedupe_key=dedupe_key,
            limit=limit,
        )
        self._check_limits([new])
        return self.store.enqueue([new], conn)[0]

    def _check_limits(self, jobs: Sequence[NewJob]) -> None:
        named = limits_named(jobs)
        if named:
            refuse_unset_limits(named, self.limit_store.names())

    # -- fleet-wide limits --------------------------------------------------------------

    @property
    def limit_store(self) -> Limits:
        return Limits(self.store.dialect)

    def set_limit(self, name: str, max_running: int, *, rate: str | None = None) -> None:
        """At most `max_running` jobs naming `name` run at once, across every worker, and
        with a `rate` (`"10/min"`, `"100/h"`, `"5/30s"`) at most that many start in any
        such window, by the store's clock. Setting a limit again replaces both."""
        self.limit_store.put(
            validate.name(name, "limit"),
            validate.int32(max_running, "max_running", minimum=0),
            None if rate is None else parse_rate(rate),
        )

    def remove_limit(self, name: str) -> bool:
        """Remove a limit; jobs naming it then wait until it is set again."""
        return self.limit_store.remove(validate.name(name, "limit"))

    def limits(self) -> list[Limit]:
        """Every limit, with its jobs running and queued."""
        return self.limit_store.all()

    def enqueue_many(self, jobs: Iterable[NewJob], *, conn: object | None = None) -> list[Job]:
        """Add all jobs in one transaction, or none: the caller's on `conn`, as `enqueue`."""
        checked = self.checked_jobs(jobs)
        self._check_limits(checked)
        if not checked and conn is None:
            return []
        return self.store.enqueue(checked, conn)  # a conn is judged even with no jobs

    def checked_jobs(self, jobs: Iterable[NewJob]) -> list[NewJob]:
        """NewJob values checked as `new_job` checks them (one can be built by hand), all
        before any write; what `enqueue_many` writes."""
        batch = list(jobs)
        for job in batch:
            if not isinstance(job, NewJob):
                raise InvalidArgument("enqueue_many takes NewJob values (see Fleet.new_job)")
        return [
            self.new_job(
                job.engine,
                job.payload,
                queue=job.queue,
                priority=job.priority,
                lock=job.lock,
                max_attempts=job.max_attempts,
                timeout=job.timeout,
                run_at=job.run_at,
                dedupe_key=job.dedupe_key,
            )
            for job in batch
        ]

    # -- python tasks -----------------------------------------------------------------

    @overload
    def task(self, fn: F) -> F: ...

    @overload
    def task(self, *, name: str | None = None) -> Callable[[F], F]: ...

    def task(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Register a function as a python task: ``@fleet.task`` or ``@fleet.task(name=...)``.

        The default name is ``module:qualname``; enqueue it with
        ``fleet.enqueue("python", {"func": name, "args": [...], "kwargs": {...}})``.
        """

        def register(target: Callable[..., Any]) -> Callable[..., Any]:
            return self.tasks.register(target, name)

        return register if fn is None else register(fn)

    # -- leases -----------------------------------------------------------------------

    def claim(self, job_id: int, *, worker: str, ttl: float = DEFAULT_TTL) -> Lease | None:
        """Claim one chosen job: a Lease, or None when it is held or not claimable."""
        return self.store.claim(
            validate.integer(job_id, "job_id"),
            validate.name(worker, "worker"),
            validate.positive_seconds(ttl, "ttl"),
        )

    def claim_next(
        self,
        *,
        worker: str,
        queues: Sequence[str] | None = None,
        limit: int = 1,
        ttl: float = DEFAULT_TTL,
        engines: Sequence[str] | None = None,
        host: str | None = None,
    ) -> list[Lease]:
        """Claim up to `limit` ready jobs: highest priority first, then oldest.

        `queues` and `engines` restrict what is claimed (None: any); a worker lists the
        engines it can run, so it never takes a job it would only have to hand back. A job
        retried after a failed attempt waits up to 30 s past its time for a claim from that
        attempt's `host` (where its agent's session is), then any host may take it.
        """
        claim = _claim_args(worker, queues, limit, ttl, engines)
        self._maybe_reap()
        return self.store.claim_next(*claim, host=validate.optional_name(host, "host"))

    def complete_many(self, done: Sequence[tuple[Lease, Any]]) -> list[int]:
        """Complete many jobs in one transaction, each fenced by its own epoch.

        Returns the ids completed; a lease that lost its job is left out (and changes nothing).
        """
        checked = self._checked_batch(done)
        completed, plans = self.store.complete_many(checked) if checked else ([], [])
        self._advance_plans(plans)
        return completed

    def complete_and_claim(
        self,
        done: Sequence[tuple[Lease, Any]],
        *,
        worker: str,
        queues: Sequence[str] | None = None,
        limit: int = 1,
        ttl: float = DEFAULT_TTL,
        engines: Sequence[str] | None = None,
        host: str | None = None,
    ) -> tuple[list[int], list[Lease]]:
        """Finish a batch and claim the next in one transaction: the fast path for short jobs.

        Returns (ids completed, new leases).
        """
        checked = self._checked_batch(done)
        claim = _claim_args(worker, queues, limit, ttl, engines)
        self._maybe_reap()
        completed, plans, leases = self.store.complete_and_claim(
            checked, *claim, host=validate.optional_name(host, "host")
        )
        self._advance_plans(plans)
        return completed, leases

    def _checked_batch(self, done: Sequence[tuple[Lease, Any]]) -> list[tuple[Lease, Any]]:
        checked: list[tuple[Lease, Any]] = []
        for item in done:
            if not isinstance(item, tuple) or len(item) != 2:
                raise InvalidArgument("each completion must be a (lease, result) pair")
            lease, result = item
            _check_lease(lease)
            checked.append((lease, validate.json_value(result, "result")))
        return checked

    def _advance_plans(self, plan_ids: Iterable[int]) -> None:
        for plan_id in plan_ids:
            self.plans.advance(plan_id)

    def renew(self, lease: Lease, *, ttl: float | None = None) -> Lease:
        """Extend a lease; raises LeaseLost when fenced, JobCancelled when asked to stop."""
        _check_lease(lease)
        seconds = lease.ttl if ttl is None else validate.positive_seconds(ttl, "ttl")
        return self.store.renew(lease, seconds)

    def renew_many(
        self, leases: Sequence[Lease], *, ttl: float | None = None
    ) -> list[Lease | LeaseLost]:
        """Extend many leases in one statement (a worker's heartbeat), in the order given:
        each renewed lease, or the LeaseLost (JobCancelled when a cancel is asked) that its
        own renew would raise. `ttl` defaults to each lease's own ttl."""
        for lease in leases:
            _check_lease(lease)
        if ttl is not None:
            ttl = validate.positive_seconds(ttl, "ttl")
        groups: dict[float, list[Lease]] = {}
        for lease in leases:
            groups.setdefault(lease.ttl if ttl is None else ttl, []).append(lease)
        answers: dict[int, Lease | LeaseLost] = {}
        for seconds, group in groups.items():
            for lease, answer in zip(group, self.store.renew_many(group, seconds), strict=True):
                answers[lease.job_id] = answer
        return [answers[lease.job_id] for lease in leases]

    def complete(
        self, lease: Lease, result: Any = None, *, output: RunOutput | None = None
    ) -> None:
        """Finish the job successfully; raises LeaseLost when fenced."""
        _check_lease(lease)
        self.store.complete(lease, validate.json_value(result, "result"), _output(output))
        self._plan_moved(lease)

    def fail(
        self,
        lease: Lease,
        error: str = "failed",
        *,
        retry: bool = True,
        delay: float | None = None,
        output: RunOutput | None = None,
    ) -> JobStatus:
        """Close the attempt as failed; retried with backoff until max_attempts.

        Returns the job's new status: queued (a retry is scheduled), failed or cancelled.
        """
        _check_lease(lease)
        error = validate.text(error, "error")
        if not isinstance(retry, bool):
            raise InvalidArgument(f"retry must be True or False, not {retry!r}")
        retry_delay: float | None = None
        if retry:
            retry_delay = (
                self.retry_policy.delay(lease.attempt)
                if delay is None
                else validate.non_negative_seconds(delay, "delay")
            )
        status = self.store.fail(lease, error, retry_delay, _output(output))
        self._plan_moved(lease)
        return status

    def release(self, lease: Lease, *, reason: str = "worker stopping") -> JobStatus:
        """Hand an unfinished job back to the queue at once, giving back its attempt."""
        _check_lease(lease)
        status = self.store.release(lease, validate.text(reason, "reason"))
        self._plan_moved(lease)
        return status

    def record_output(self, lease: Lease, output: RunOutput) -> None:
        """Store a running attempt's output so far (for `logs --follow`); fenced."""
        _check_lease(lease)
        checked = _output(output)
        if checked is None:
            raise InvalidArgument("output must be a RunOutput")
        self.store.record_output(lease, checked)

    def record_process(self, lease: Lease, *, host: str, pgid: int) -> None:
        """Note where the attempt's processes run (its host and process group); fenced.

        A worker that later takes the job over on the same host reads it from the run to
        make sure those processes are gone before it starts the job again."""
        _check_lease(lease)
        self.store.record_process(
            lease, validate.name(host, "host"), validate.integer(pgid, "pgid", minimum=2)
        )

    def fenced_write(self, lease: Lease, key: str, value: Any) -> LedgerEntry:
        """Write `value` under `key` in the job's ledger, only while `lease` holds the job.

        The check and the write are one statement: a worker whose lease was taken over (it
        paused, its lease expired, another worker claimed the job) gets LeaseLost and
        writes nothing. Writing a key again under the same lease replaces its value.
        """
        _check_lease(lease)
        return self.store.fenced_write(
            lease, validate.name(key, "key"), validate.json_value(value, "value")
        )

    def ledger(self, job_id: int) -> list[LedgerEntry]:
        """Everything the job wrote with fenced_write, by key then epoch."""
        return self.store.ledger(validate.integer(job_id, "job_id"))

    # -- workers ----------------------------------------------------------------------

    def worker_seen(
        self, name: str, *, host: str, pid: int, queues: Sequence[str], concurrency: int
    ) -> None:
        """Register or refresh a worker's presence (its heartbeat)."""
        if isinstance(queues, str) or not isinstance(queues, Sequence):
            raise InvalidArgument("queues must be a list of queue names")
        self.store.worker_seen(
            validate.name(name, "worker"),
            validate.name(host, "host"),
            validate.int32(pid, "pid", minimum=0),
            [validate.name(q, "queue") for q in queues],
            validate.int32(concurrency, "concurrency", minimum=1),
        )

    def worker_stopped(self, name: str) -> None:
        self.store.worker_stopped(validate.name(name, "worker"))

    def list_workers(self) -> list[WorkerInfo]:
        return self.store.list_workers()

    def wait_for_jobs(self, timeout: float, *, interrupt: int | None = None) -> bool:
        """Block until work may be ready (True: PostgreSQL NOTIFY, SQLite's data_version),
        or False once the timeout passes or the file descriptor `interrupt` (a pipe a
        signal handler writes to, say) becomes readable. A change since the previous call
        wakes at once. With ``pool_size=1`` on PostgreSQL the wait holds the one connection:
        wait in the thread that makes the queries."""
        if interrupt is not None and (
            isinstance(interrupt, bool) or not isinstance(interrupt, int) or interrupt < 0
        ):
            raise InvalidArgument("interrupt must be a file descriptor (an int >= 0) or None")
        return self.store.wait_for_jobs(
            validate.non_negative_seconds(timeout, "timeout"), interrupt
        )

    # -- lifecycle --------------------------------------------------------------------

    def cancel_job(self, job_id: int) -> bool:
        """Cancel a queued job, or ask a running one's worker to stop it.

        Idempotent: returns False when there was nothing (more) to cancel.
        """
        cancelled = self.store.cancel_job(validate.integer(job_id, "job_id"))
        if cancelled:
            self._advance_plan_of(job_id)
        return cancelled

    def retry_job(self, job_id: int) -> Job:
        """Put a failed or cancelled job back in the queue with fresh attempts."""
        return self.store.retry_job(validate.integer(job_id, "job_id"))

    def prune(
        self,
        older_than: str | float,
        *,
        statuses: Iterable[str | JobStatus] | None = None,
        dry_run: bool = False,
        batch: int = retention.DEFAULT_BATCH,
        plans: bool = True,
    ) -> retention.Pruned:
        """Delete finished jobs (of `statuses`, default every finished status) and ended
        plans that finished more than `older_than` ago (`"30d"`, `"12h"`, or seconds),
        with their runs, output, events and ledger rows, in batches of `batch` (each its
        own transaction). A step of a plan goes only with its plan. `dry_run` counts."""
        age = parse_age(older_than, "older_than")  # refuses zero, negatives, "30" alone
        wanted = {JobStatus(s) if not isinstance(s, JobStatus) else s
                  for s in (statuses if statuses is not None else TERMINAL_STATUSES)
                  if _job_status(s)}  # fmt: skip
        unfinished = sorted(s.value for s in wanted - TERMINAL_STATUSES)
        finished = ", ".join(sorted(s.value for s in TERMINAL_STATUSES))
        if not wanted:
            raise InvalidArgument(f"prune needs at least one status; choose from {finished}")
        if unfinished:
            raise InvalidArgument(
                f"prune deletes only finished jobs: {', '.join(unfinished)} "
                f"{'is not one' if len(unfinished) == 1 else 'are not'}; choose from {finished}"
            )
        done = retention.prune(
            self.store.dialect,
            age,
            [s.value for s in wanted],
            dry_run=bool(dry_run),
            batch=validate.int32(batch, "batch", minimum=1),
            plans=bool(plans),
            ended_plan_statuses=[s.value for s in TERMINAL_PLAN_STATUSES],
        )
        if not dry_run and (done.jobs or done.plans):
            with self.store.dialect.tx() as tx:  # the stream says what went, and why
                events.record(tx, None, "pruned",
                              data={**done.as_dict(), "older_than_s": age})  # fmt: skip
        return done

    # -- fleet-wide settings --------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return Settings(self.store.dialect)

    def set_config(self, name: str, value: str) -> None:
        """Set a fleet-wide setting (see CONFIG_NAMES), stored in the database."""
        checked = _config_value(name, value)
        self.settings.put(name, checked)

    def config(self) -> dict[str, str]:
        """Every fleet-wide setting that is set."""
        return {k: v for k, v in self.settings.all().items() if k in CONFIG_NAMES}

    def unset_config(self, name: str) -> bool:
        """Remove a setting (its default applies again); whether it was set."""
        if name not in CONFIG_NAMES:
            _config_value(name, "")  # refused, naming the known settings
        return self.settings.remove(name)

    def prune_if_due(self, every: float = retention.PRUNE_EVERY) -> retention.Pruned | None:
        """Prune past the `retention` setting, at most once per `every` seconds across the
        fleet and one pass at a time; None when retention is not set or it was not due."""
        age = self.settings.get("retention")
        if age is None or self.settings.stamped_within(retention.PRUNED_AT, every):
            return None  # two reads: the usual answer costs no write
        with self.store.single_flight("prune") as mine:
            if not mine or not self.settings.touch_if_older(retention.PRUNED_AT, every):
                return None
            return self.prune(age)

    # -- API tokens -------------------------------------------------------------------

    @property
    def token_store(self) -> Tokens:
        return Tokens(self.store.dialect)

    def create_token(self, name: str, role: str) -> tuple[TokenInfo, str]:
        """A new API token of `role` (worker, read, operate or admin) named `name`: its
        record, and its text, which is shown this once (only a hash of it is stored)."""
        return self.token_store.create(name, role)

    def tokens(self) -> list[TokenInfo]:
        """Every token, live and revoked, oldest first (never their secrets)."""
        return self.token_store.all()

    def revoke_token(self, name_or_id: str) -> bool:
        """Revoke the live token of this name or id: its next request is refused. Whether
        there was one to revoke."""
        key = validate.name(name_or_id, "the token's name or id")
        return self.token_store.revoke(key) is not None

    # -- lease tokens: a running job's own key to the fleet ----------------------------

    @property
    def lease_tokens(self) -> LeaseTokens:
        if self._lease_tokens is None or self._lease_tokens.dialect is not self.store.dialect:
            self._lease_tokens = LeaseTokens(self.store.dialect)
        return self._lease_tokens

    def lease_token(self, lease: Lease) -> str:
        """A token for the job of `lease` to reach the fleet through the HTTP API, valid
        while the lease is current (LeaseLost when it is not, already)."""
        _check_lease(lease)
        return self.lease_tokens.mint(lease.job_id, lease.epoch)

    def lease_of_token(self, token: str) -> Lease | None:
        """The current lease a lease token speaks for; None when the token is malformed,
        forged, or its lease was taken over, expired or ended."""
        holder = self.lease_tokens.verify(token)
        if holder is None:
            return None
        job = self.store.get_job(holder.job_id)
        runs = [r for r in self.store.runs(holder.job_id) if r.epoch == holder.epoch]
        if job.lease_expires_at is None or not runs:
            return None
        return Lease(
            job_id=job.id,
            epoch=holder.epoch,
            worker=job.worker or "",
            expires_at=job.lease_expires_at,
            attempt=job.attempts,
            run_id=runs[-1].id,
            ttl=max(0.0, (job.lease_expires_at - self.now()).total_seconds()),
            job=job,
        )

    def reap_expired(self) -> list[tuple[int, JobStatus]]:
        """Send jobs whose lease expired back to the queue (or to failed when spent)."""
        self._last_reap = time.monotonic()
        reaped = self.store.reap_expired()
        for job_id, _ in reaped:
            self._advance_plan_of(job_id)
        return reaped

    def _plan_moved(self, lease: Lease) -> None:
        """A plan step changed state: let its plan move on (promote, pause, finish)."""
        plan_id = lease.job.plan_id if lease.job is not None else None
        if plan_id is None and lease.job is None:
            self._advance_plan_of(lease.job_id)
        elif plan_id is not None:
            self.plans.advance(plan_id)

    def _advance_plan_of(self, job_id: int) -> None:
        plan_id = self.store.get_job(job_id).plan_id
        if plan_id is not None:
            self.plans.advance(plan_id)

    def _maybe_reap(self) -> None:
        # The local clock only throttles how often we ask; expiry itself is the store's call.
        if self.reap_interval >= 0 and time.monotonic() - self._last_reap >= self.reap_interval:
            self.reap_expired()

    # -- reads ------------------------------------------------------------------------

    def get_job(self, job_id: int) -> Job:
        return self.store.get_job(validate.integer(job_id, "job_id"))

    def list_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        queue: str | None = None,
        engine: str | None = None,
        label: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        """Newest first."""
        return self.store.list_jobs(
            **job_filters(
                status=status, queue=queue, engine=engine, label=label, limit=limit, offset=offset
            )
        )

    # -- schedules ------------------------------------------------------------------

    @property
    def schedules(self) -> Schedules:
        """This fleet's schedules: add, list, get, pause, resume, remove, fire_due."""
        if self._schedules is None:
            self._schedules = Schedules(self)
        return self._schedules

    def add_schedule(
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
        """Run a job file or a plan file at each slot of `cron` (five fields, in `tz`)."""
        return self.schedules.add(
            name, cron, file, tz=tz, catch_up=catch_up, overlap=overlap, engines=engines
        )

    def fire_schedules(self, now: datetime | None = None) -> list[Fired]:
        """Start the work of the due slots this call wins (workers call it every second)."""
        return self.schedules.fire_due(now)

    def job_change(self, job_id: int) -> JobChange:
        """A worktree job's change against its base: branch, commits, files and diff."""
        return change_of(self.get_job(job_id))

    def workspaces(self, folder: str | Path = ".") -> list[Leftover]:
        """The worktrees of the repository `folder` lies in, on this host, and their jobs."""
        return housekeeping.worktrees(housekeeping.repository_of(Path(folder)), self.get_job)

    def clean_workspaces(
        self, folder: str | Path = ".", *, failed_too: bool = False
    ) -> list[Leftover]:
        """Remove this host's worktrees of finished attempts (failed ones only if asked)."""
        repo = housekeeping.repository_of(Path(folder))
        return housekeeping.clean(repo, self.get_job, failed_too=failed_too)

    def queue_counts(self) -> dict[tuple[str, str], int]:
        return self.store.count_jobs()

    def runs(self, job_id: int) -> list[Run]:
        return self.store.runs(validate.integer(job_id, "job_id"))

    def usage(
        self,
        *,
        job_id: int | None = None,
        plan_id: int | None = None,
        except_run: int | None = None,
    ) -> Usage:
        """What the agents of one job's runs (or of all of a plan's runs) reported spending;
        ``except_run`` leaves one run out (a running one counting its own figures)."""
        if (job_id is None) == (plan_id is None):
            raise InvalidArgument("usage needs exactly one of job_id and plan_id")
        if job_id is not None:
            validate.integer(job_id, "job_id")
        if plan_id is not None:
            validate.integer(plan_id, "plan_id")
        agents = self.store.run_agents(job_id=job_id, plan_id=plan_id)
        return Usage.total(agent for run, _, agent in agents if run != except_run)

    def plan_usage(self, plan_id: int) -> dict[int, Usage]:
        """What each of a plan's jobs spent, by job id (jobs that reported nothing left out)."""
        found: dict[int, Usage] = {}
        for _, job, agent in self.store.run_agents(plan_id=validate.integer(plan_id, "plan_id")):
            found[job] = found.get(job, Usage()) + Usage.of_agent(agent)
        return found

    def events(
        self, job_id: int | None = None, *, after_id: int = 0, limit: int = 1000
    ) -> list[Event]:
        return self.store.events(*event_filters(job_id, after_id=after_id, limit=limit))

    def update_if_match(
        self, collection: str, doc_id: int, expected_rev: int, patch: Mapping[str, Any]
    ) -> MatchResult:
        """Write `patch` only if the document's rev is still `expected_rev` (If-Match)."""
        validate.integer(doc_id, "id")
        validate.integer(expected_rev, "expected_rev")
        if not isinstance(patch, Mapping):
            raise InvalidArgument("patch must be a mapping of field to value")
        if not all(isinstance(key, str) for key in patch):
            raise InvalidArgument("patch fields must be named by strings")
        checked: dict[str, Any] = dict(patch)
        if "payload" in checked:
            validate.payload_limits(validate.json_document(checked["payload"], "payload"))
        if "priority" in checked:
            validate.int32(checked["priority"], "priority")
        if "max_attempts" in checked:
            validate.int32(checked["max_attempts"], "max_attempts", minimum=1)
        if "queue" in checked:
            validate.name(checked["queue"], "queue")
        if "lock" in checked:
            validate.optional_name(checked["lock"], "lock")
        if "timeout" in checked:
            validate.optional_positive_seconds(checked["timeout"], "timeout")
        if "run_at" in checked:
            checked["run_at"] = validate.run_at(checked["run_at"], self.store.now)
        return self.store.update_if_match(collection, doc_id, expected_rev, checked)

    # -- plans ------------------------------------------------------------------------

    def submit_plan(
        self,
        plan: PlanSpec | Mapping[str, Any] | str | Path,
        *,
        engines: Iterable[str] | None = None,
        conn: object | None = None,
    ) -> Plan:
        """Create a plan and all its jobs in one transaction, and start it.

        `engines` names every engine its steps may use (default: the built-in ones; pass
        the custom engines a worker runs too, as the command line's --engines does). With
        `conn` the transaction is the caller's, as for `enqueue`: the plan exists, and its
        first steps are queued, if and only if the caller commits.
        """
        return self.submit_spec(self.plan_spec(plan, engines=engines), conn=conn)

    def plan_spec(
        self,
        plan: PlanSpec | Mapping[str, Any] | str | Path,
        *,
        engines: Iterable[str] | None = None,
    ) -> PlanSpec:
        """A plan as `submit_plan` takes it, checked and ready to write: a file read and
        parsed, a mapping parsed, and each worktree step's repository and base commit
        located (git)."""
        known = BUILTIN_ENGINES if engines is None else frozenset(engines) | BUILTIN_ENGINES
        if isinstance(plan, str | Path):
            return load_plan_file(plan, known)
        if isinstance(plan, PlanSpec):
            return locate_steps(plan)  # worktree steps branch from one recorded commit
        if isinstance(plan, Mapping):
            return parse_plan(dict(plan), Path.cwd(), known_engines=known)
        raise InvalidArgument("submit_plan takes a PlanSpec, a mapping or a plan file path")

    def submit_spec(self, spec: PlanSpec, *, conn: object | None = None) -> Plan:
        """Write a plan that `plan_spec` made, and start it."""
        self._check_limits([step.job for step in spec.steps])
        return self.plans.submit(spec, conn)

    def get_plan(self, plan_id: int) -> Plan:
        return self.plans.get(validate.integer(plan_id, "plan_id"))

    def list_plans(
        self, *, status: PlanStatus | str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Plan]:
        checked = None
        if status is not None:
            try:
                checked = PlanStatus(status)
            except ValueError:
                choices = ", ".join(s.value for s in PlanStatus)
                raise InvalidArgument(
                    f"unknown plan status {status!r}; expected one of {choices}"
                ) from None
        return self.plans.list_plans(
            checked, validate.limit(limit), validate.integer(offset, "offset", minimum=0)
        )

    def approve(self, plan_id: int, response: Any = None, *, checkpoint: str | None = None) -> Plan:
        """Pass the checkpoint the plan waits at; the response is kept for dependents.

        `checkpoint` names the pause the caller saw (`plan.pending`, e.g. "review#2", or
        just "review"): if the plan waits elsewhere by now, nothing changes and
        CheckpointConflict says where it waits.
        """
        return self.plans.approve(
            validate.integer(plan_id, "plan_id"),
            validate.json_value(response, "response"),
            _checkpoint(checkpoint),
        )

    def reject(
        self, plan_id: int, feedback: str | None = None, *, checkpoint: str | None = None
    ) -> Plan:
        """With feedback: send the gate's job back for rework; without: cancel the plan.
        `checkpoint` guards it as for `approve`."""
        if feedback is not None and not isinstance(feedback, str):
            raise InvalidArgument("feedback must be text")
        return self.plans.reject(
            validate.integer(plan_id, "plan_id"), feedback or None, _checkpoint(checkpoint)
        )

    def resume(self, plan_id: int) -> Plan:
        """Resume a failed, paused or stale plan; raises NotResumable(status) otherwise."""
        return self.plans.resume(validate.integer(plan_id, "plan_id"))

    def cancel_plan(self, plan_id: int) -> bool:
        """Idempotent: returns whether anything was cancelled."""
        return self.plans.cancel(validate.integer(plan_id, "plan_id"))

    def abandon_plan(self, plan_id: int) -> bool:
        """Give up a failed or paused plan for good: terminal, never resumable, its waiting
        and queued steps ended. Idempotent (False once it has ended); a running plan raises
        InvalidTransition pointing to cancel."""
        return self.plans.abandon(validate.integer(plan_id, "plan_id"))

    def update_plan_fields(
        self,
        plan_id: int,
        *,
        expected: Mapping[str, Any] | None = None,
        lease: Lease | None = None,
        **fields: Any,
    ) -> Plan:
        """Change only plan-level fields, guarded by the expected status, rev or checkpoint.

        A step writing about its own plan (its `pr_url`, `metadata`, ...) names its `lease`:
        the write is then fenced like every lease write, and raises LeaseLost once another
        attempt has taken the step over.
        """
        if lease is not None:
            _check_lease(lease)
        return self.plans.update_fields(
            validate.integer(plan_id, "plan_id"),
            _plan_guard(expected or {}),
            _plan_fields(fields),
            lease,
        )

    def find_resumable_plans(self) -> list[int]:
        return self.plans.find_resumable()

    def plan_inputs(self, job_id: int) -> dict[str, dict[str, Any]]:
        """What a plan step's dependencies produced (status, result, last output)."""
        return self.plans.inputs(validate.integer(job_id, "job_id"))

    def reconcile(self) -> list[Repair] | None:
        """One repair pass; None when another pass holds the lock somewhere in the fleet."""
        with self.store.single_flight("reconcile") as mine:
            if not mine:
                return None
            # Expired leases first: a dead worker's step goes back to the queue, and its
            # plan, which can move again, is not orphaned.
            repairs = [
                Repair("lease_expired", f"lease expired; job now {status.value}", job_id=job_id)
                for job_id, status in self.reap_expired()
            ]
            repairs += self.plans.reconcile_orphans()
            return repairs + self.plans.reconcile_plans()


def _plan_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Plan-level values checked alike for every store."""
    checked: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "status":
            checked[key] = _plan_status(value, "status")
        elif key in ("checkpoint", "pr_url"):
            checked[key] = validate.optional_name(value, key)
        elif key == "checkpoint_context":
            checked[key] = None if value is None else validate.json_document(value, key)
        elif key == "metadata":
            checked[key] = validate.json_document(value, key)
        elif key == "completed_at":
            if value is not None and not (isinstance(value, datetime) and value.tzinfo):
                raise InvalidArgument("completed_at must be a timezone-aware datetime or None")
            checked[key] = value
        else:
            checked[key] = value  # the coordinator names what is not a plan field
    return checked


def _plan_guard(expected: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(expected, Mapping):
        raise InvalidArgument("expected must be a mapping of field to value")
    checked: dict[str, Any] = {}
    for key, value in expected.items():
        if key == "status" and isinstance(value, list | tuple | set | frozenset):
            checked[key] = [_plan_status(v, "expected status") for v in value]
        elif key == "status":
            checked[key] = _plan_status(value, "expected status")
        elif key in ("rev", "pauses"):
            checked[key] = validate.integer(value, f"expected {key}")
        elif key == "checkpoint":
            checked[key] = validate.optional_name(value, "expected checkpoint")
        else:
            raise InvalidArgument(f"cannot guard on {key!r}; use status, rev or checkpoint")
    return checked


def _plan_status(value: object, what: str) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return PlanStatus(value).value
    except ValueError:
        choices = ", ".join(s.value for s in PlanStatus)
        raise InvalidArgument(f"{what} {value!r} is not a plan status; one of {choices}") from None


def _checkpoint(checkpoint: str | None) -> str | None:
    if checkpoint is None:
        return None
    text = validate.name(checkpoint, "checkpoint")
    parse_checkpoint(text)
    return text


def _names(values: Sequence[str] | None, what: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise InvalidArgument(f"{what}s must be a list of {what} names, not one string")
    if not isinstance(values, Sequence):
        raise InvalidArgument(
            f"{what}s must be a list of {what} names, not {type(values).__name__}"
        )
    checked = [validate.name(v, what) for v in values]
    if not checked:
        raise InvalidArgument(f"{what}s must name at least one {what} (or be None for all)")
    return checked


def _claim_args(
    worker: str,
    queues: Sequence[str] | None,
    limit: int,
    ttl: float,
    engines: Sequence[str] | None,
) -> tuple[str, list[str] | None, int, float, list[str] | None]:
    """A claim's arguments checked, in the order the store's claim primitives take them."""
    checked_worker = validate.name(worker, "worker")
    checked_queues = _names(queues, "queue")
    checked_engines = _names(engines, "engine")
    return (
        checked_worker,
        checked_queues,
        validate.limit(limit),
        validate.positive_seconds(ttl, "ttl"),
        checked_engines,
    )


_SOUND_WORKER_NAMES: set[str] = set()  # checked once each: a batch repeats one name
_BIGGEST_ID = 2**62


def _check_lease(lease: object) -> None:
    """A Lease as claim made it: the fields its writes are fenced by must be sound."""
    if not isinstance(lease, Lease):
        raise InvalidArgument(f"expected a Lease, not {type(lease).__name__}")
    job_id, epoch, worker, ttl = lease.job_id, lease.epoch, lease.worker, lease.ttl
    if (  # the shape every store's leases have: checked inline, as batches repeat it
        type(job_id) is int
        and type(epoch) is int
        and type(ttl) is float
        and -_BIGGEST_ID <= job_id <= _BIGGEST_ID
        and -_BIGGEST_ID <= epoch <= _BIGGEST_ID
        and 0.0 < ttl <= validate.MAX_SECONDS
        and worker in _SOUND_WORKER_NAMES
    ):
        return
    validate.integer(job_id, "lease.job_id")
    validate.integer(epoch, "lease.epoch")
    validate.name(worker, "lease.worker")
    validate.positive_seconds(ttl, "lease.ttl")
    if type(worker) is str:
        if len(_SOUND_WORKER_NAMES) > 4096:
            _SOUND_WORKER_NAMES.clear()
        _SOUND_WORKER_NAMES.add(worker)


def _output(output: object) -> RunOutput | None:
    if output is None:
        return None
    if not isinstance(output, RunOutput):
        raise InvalidArgument(f"output must be a RunOutput, not {type(output).__name__}")
    return RunOutput(
        exit_code=validate.optional_int32(output.exit_code, "output.exit_code"),
        stdout=validate.optional_text(output.stdout, "output.stdout"),
        stderr=validate.optional_text(output.stderr, "output.stderr"),
        agent=None
        if output.agent is None
        else validate.json_document(output.agent, "output.agent"),
    )


def open(url: str | None = None, **options: Any) -> Fleet:
    """Open a fleet: "sqlite:///path.db" (default ./.agentfleet/fleet.db), "memory://",
    or "postgresql://...". Options: clock (memory/SQLite), pool_size (PostgreSQL: the most
    connections the handle's queries use, default 4; ``?pool_size=N`` in the URL wins; with
    1, that connection also LISTENs), application_name (PostgreSQL, unless the URL names
    one; default "agentfleet"), retry_policy, reap_interval, stale_window (plans), tasks (a
    TaskRegistry; default the process-wide one)."""
    fleet_options = {
        k: options.pop(k)
        for k in ("retry_policy", "reap_interval", "stale_window", "tasks")
        if k in options
    }
    return Fleet(open_store(url, **options), **fleet_options)


def limits_named(jobs: Iterable[NewJob]) -> set[str]:
    """The fleet-wide limits these jobs name."""
    return {name for job in jobs if (name := limit_of(job.payload)) is not None}


def refuse_unset_limits(named: set[str], known: set[str]) -> None:
    """Refuse jobs naming a limit that is not set (`known` are the ones set)."""
    missing = sorted(named - known)
    if missing:
        raise InvalidArgument(
            f"limit {missing[0]!r} is not set: set it first with "
            f"`agentfleet limits set {missing[0]} N` (or Fleet.set_limit)"
        )


def job_filters(
    *,
    status: JobStatus | str | None = None,
    queue: str | None = None,
    engine: str | None = None,
    label: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """`list_jobs`'s filters, checked: the store's arguments."""
    checked_status = None
    if status is not None:
        try:
            checked_status = JobStatus(status)
        except (ValueError, TypeError):
            choices = ", ".join(s.value for s in JobStatus)
            raise InvalidArgument(f"unknown status {status!r}; expected one of {choices}") from None
    return {
        "status": checked_status,
        "queue": validate.optional_name(queue, "queue"),
        "engine": validate.optional_name(engine, "engine"),
        "label": validate.optional_name(label, "label"),
        "limit": validate.limit(limit),
        "offset": validate.integer(offset, "offset", minimum=0),
    }


def event_filters(
    job_id: int | None = None, *, after_id: int = 0, limit: int = 1000
) -> tuple[int | None, int, int]:
    """`events`' filters, checked: the store's arguments (job id, after id, limit)."""
    if job_id is not None:
        validate.integer(job_id, "job_id")
    return job_id, validate.integer(after_id, "after_id"), validate.limit(limit)


def _job_status(value: str | JobStatus) -> bool:
    """Whether `value` names a job status; an unknown one is refused, naming it and the
    statuses prune takes."""
    try:
        JobStatus(value)
    except ValueError:
        finished = ", ".join(sorted(s.value for s in TERMINAL_STATUSES))
        raise InvalidArgument(
            f"unknown job status {value!r}; prune takes the finished ones: {finished}"
        ) from None
    return True


# Fleet-wide settings (`agentfleet config set NAME VALUE`) and what each one means.
CONFIG_NAMES = {
    "retention": "how long finished jobs and ended plans are kept, e.g. 30d; workers "
    "prune what is older, as agentfleet prune does",
}


def _config_value(name: str, value: str) -> str:
    """A setting's value, checked: an unknown name or a bad value is refused, naming it."""
    if name not in CONFIG_NAMES:
        known = ", ".join(sorted(CONFIG_NAMES))
        raise InvalidArgument(f"unknown setting {name!r}; known: {known}")
    if name == "retention":
        parse_age(value, "retention")  # refuses nonsense, zero, negatives and "30" alone
    return str(value)
