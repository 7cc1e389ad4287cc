"""RemoteFleet: the verbs a worker calls on its fleet, spoken over HTTP to `agentfleet serve`.

Standard library only (``http.client``, JSON bodies), so a worker machine needs nothing more
than agentfleet itself. Each thread keeps one keep-alive connection; the long poll has one
of its own, so that a stop request or a finished job can cut it short without costing the
other its connection.

* A call that could not reach the server is tried again (a new connection, short backoff);
  one that still fails raises :class:`~agentfleet.errors.StoreUnavailable`, which the worker
  treats as it treats an unreachable database: it waits and tries again, logging it. Every
  write names its lease's epoch, so a write repeated after a lost answer is judged by the
  same fence as the first; a completion whose first try landed is recognised as ours.
* Errors come back as the exceptions a direct Fleet raises: LeaseLost, JobCancelled,
  JobNotFound, InvalidArgument, StoreUnavailable. A token the server refuses (unknown or
  revoked: 401; a role that may not use the worker API: 403) raises AccessDenied and calls
  ``on_denied``, with which `agentfleet worker --server` stops.
"""

from __future__ import annotations

import http.client
import json
import logging
import select
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from agentfleet.agents.usage import Usage
from agentfleet.errors import (
    AccessDenied,
    AgentFleetError,
    InvalidArgument,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    StoreUnavailable,
)
from agentfleet.models import Job, JobStatus, Lease, Run, RunOutput
from agentfleet.remote.wire import (
    job_from_wire,
    lease_from_wire,
    lease_to_wire,
    lost_from_wire,
    output_to_wire,
    run_from_wire,
    usage_from_wire,
)
from agentfleet.tasks import REGISTRY, TaskRegistry

__all__ = ["PlanBudget", "RemoteFleet"]

log = logging.getLogger("agentfleet.remote")

API = "/api/worker"
TIMEOUT = 15.0  # seconds a request may take before the connection is given up
RETRY_PAUSES = (0.05, 0.25)  # before the second and third tries of a call that got no answer
WAIT_MARGIN = 5.0  # how much longer than its timeout a long poll may take to answer


@dataclass(frozen=True)
class PlanBudget:
    """What a worker reads of a plan: its budget (agents' watches stop past it)."""

    budget_usd: float | None


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


class RemoteFleet:
    """The worker's side of a fleet served by `agentfleet serve`, reached with a token."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float = TIMEOUT,
        tasks: TaskRegistry | None = None,
        on_denied: Callable[[AccessDenied], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(server.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument(
                f"the server must be an http:// or https:// address, not {server!r}"
            )
        if parts.username or parts.password or parts.query:
            raise InvalidArgument("the server address takes no user, password or query")
        if not isinstance(token, str) or not token.strip():
            raise InvalidArgument("a remote worker needs a token (--token or AGENTFLEET_TOKEN)")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._url = f"{parts.scheme}://{parts.netloc}{self._prefix}"
        self._token = token.strip()
        self._timeout = timeout
        self._ssl = ssl_context
        self.tasks = REGISTRY if tasks is None else tasks
        self.on_denied = on_denied
        self._local = threading.local()
        self._cursor: str | None = None
        self._wait_conn: http.client.HTTPConnection | None = None
        self._away_since: float | None = None
        self._closed = False

    # -- the handle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's address (never the token)."""
        return self._url

    def __enter__(self) -> RemoteFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._drop()
        if self._wait_conn is not None:
            self._wait_conn.close()
            self._wait_conn = None

    def hello(self) -> dict[str, Any]:
        """Who the token works as: ``role``, ``name`` (a worker token's own), ``now``."""
        return self._call("GET", "/hello")

    def now(self) -> datetime:
        return _parse_time(self._call("GET", "/now")["now"])

    # -- leases -------------------------------------------------------------------------

    def complete_and_claim(
        self,
        done: Sequence[tuple[Lease, Any]],
        *,
        worker: str,
        queues: Sequence[str] | None = None,
        limit: int = 1,
        ttl: float = 30.0,
        engines: Sequence[str] | None = None,
        host: str | None = None,
    ) -> tuple[list[int], list[Lease]]:
        """Finish a batch and claim the next: one request, one transaction on the server."""
        body = {
            "done": _done(done),
            "worker": worker,
            "queues": None if queues is None else list(queues),
            "limit": limit,
            "ttl": ttl,
            "engines": None if engines is None else list(engines),
            "host": host,
        }
        answer = self._call("POST", "/claim", body)
        leases = [lease_from_wire(item) for item in answer["leases"]]
        return list(answer["completed"]), leases

    def claim_next(
        self,
        *,
        worker: str,
        queues: Sequence[str] | None = None,
        limit: int = 1,
        ttl: float = 30.0,
        engines: Sequence[str] | None = None,
        host: str | None = None,
    ) -> list[Lease]:
        return self.complete_and_claim(
            [], worker=worker, queues=queues, limit=limit, ttl=ttl, engines=engines, host=host
        )[1]

    def complete_many(self, done: Sequence[tuple[Lease, Any]]) -> list[int]:
        if not done:
            return []
        return list(self._call("POST", "/complete-many", {"done": _done(done)})["completed"])

    def renew_many(
        self, leases: Sequence[Lease], *, ttl: float | None = None
    ) -> list[Lease | LeaseLost]:
        """Renew many leases in one request; each answer a Lease or its LeaseLost."""
        if not leases:
            return []
        body = {"leases": [lease_to_wire(lease) for lease in leases], "ttl": ttl}
        answers: list[Lease | LeaseLost] = []
        for lease, item in zip(leases, self._call("POST", "/renew", body)["answers"], strict=True):
            if "lease" in item:
                renewed = lease_from_wire(item["lease"])
                kept = (lease.worker, renewed.expires_at, renewed.attempt, renewed.run_id)
                answers.append(Lease(renewed.job_id, renewed.epoch, *kept, renewed.ttl, lease.job))
            else:
                lost = item["lost"]
                answers.append(lost_from_wire(lost["code"], lost))
        return answers

    def renew(self, lease: Lease, *, ttl: float | None = None) -> Lease:
        (answer,) = self.renew_many([lease], ttl=ttl)
        if isinstance(answer, LeaseLost):
            raise answer
        return answer

    def complete(
        self, lease: Lease, result: Any = None, *, output: RunOutput | None = None
    ) -> None:
        body = {"lease": lease_to_wire(lease), "result": result, "output": output_to_wire(output)}

        def ours(exc: LeaseLost) -> bool:  # the first try landed, its answer did not
            return exc.current_epoch == lease.epoch and exc.status == JobStatus.SUCCEEDED.value

        self._call("POST", "/complete", body, landed=ours)

    def fail(
        self,
        lease: Lease,
        error: str = "failed",
        *,
        retry: bool = True,
        delay: float | None = None,
        output: RunOutput | None = None,
    ) -> JobStatus:
        body = {
            "lease": lease_to_wire(lease),
            "error": error,
            "retry": retry,
            "delay": delay,
            "output": output_to_wire(output),
        }
        return JobStatus(self._call("POST", "/fail", body)["status"])

    def release(self, lease: Lease, *, reason: str = "worker stopping") -> JobStatus:
        body = {"lease": lease_to_wire(lease), "reason": reason}
        return JobStatus(self._call("POST", "/release", body)["status"])

    def record_output(self, lease: Lease, output: RunOutput) -> None:
        body = {"lease": lease_to_wire(lease), "output": output_to_wire(output)}
        self._call("POST", "/output", body)

    def record_process(self, lease: Lease, *, host: str, pgid: int) -> None:
        self._call("POST", "/process", {"lease": lease_to_wire(lease), "host": host, "pgid": pgid})

    # -- the worker's presence and wake-ups -------------------------------------------------

    def worker_seen(
        self, name: str, *, host: str, pid: int, queues: Sequence[str], concurrency: int
    ) -> None:
        body = {"name": name, "host": host, "pid": pid, "queues": list(queues),
                "concurrency": concurrency}  # fmt: skip
        self._call("POST", "/seen", body)

    def worker_stopped(self, name: str) -> None:
        self._call("POST", "/stopped", {"name": name})

    def wait_for_jobs(self, timeout: float, *, interrupt: int | None = None) -> bool:
        """Long poll: True once the server says work may be ready, False at the timeout or
        when `interrupt` (a file descriptor) becomes readable, which cuts the poll short."""
        if interrupt is not None and select.select([interrupt], [], [], 0)[0]:
            return False  # already rung: no poll to send
        body = json.dumps({"timeout": max(0.0, timeout), "cursor": self._cursor}).encode()
        conn = self._wait_conn
        if conn is None:
            conn = self._wait_conn = self._connection(timeout + WAIT_MARGIN)
        try:
            if conn.sock is None:
                conn.connect()
            conn.request("POST", self._prefix + API + "/wait", body=body, headers=self._headers())
            watched = [conn.sock] if interrupt is None else [conn.sock, interrupt]
            ready, _, _ = select.select(watched, [], [], max(0.0, timeout) + WAIT_MARGIN)
            if conn.sock not in ready:  # interrupted (or no answer in time): drop this poll
                conn.close()
                self._wait_conn = None
                return False
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._wait_conn = None
            self._unreachable(exc)
            raise StoreUnavailable(f"the fleet's server at {self._url} cannot be reached: "
                                   f"{_reason(exc)}") from None  # fmt: skip
        self._reachable()
        if response.will_close:
            conn.close()
            self._wait_conn = None
        answer = self._answer(response.status, raw, retried=False)
        self._cursor = answer.get("cursor")
        return bool(answer.get("woke"))

    # -- reads ------------------------------------------------------------------------------

    def get_job(self, job_id: int) -> Job:
        return job_from_wire(self._call("GET", f"/jobs/{int(job_id)}", job_id=job_id))

    def runs(self, job_id: int) -> list[Run]:
        answer = self._call("GET", f"/jobs/{int(job_id)}/runs", job_id=job_id)
        return [run_from_wire(item) for item in answer["runs"]]

    def plan_inputs(self, job_id: int) -> dict[str, dict[str, Any]]:
        answer = self._call("GET", f"/jobs/{int(job_id)}/inputs", job_id=job_id)
        inputs: dict[str, dict[str, Any]] = answer["inputs"]
        return inputs

    def get_plan(self, plan_id: int) -> PlanBudget:
        answer = self._call("GET", f"/plans/{int(plan_id)}/budget")
        return PlanBudget(answer["budget_usd"])

    def usage(
        self,
        *,
        job_id: int | None = None,
        plan_id: int | None = None,
        except_run: int | None = None,
    ) -> Usage:
        query = {k: v for k, v in (("job_id", job_id), ("plan_id", plan_id),
                                   ("except_run", except_run)) if v is not None}  # fmt: skip
        return usage_from_wire(self._call("GET", "/usage?" + urlencode(query)))

    def list_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        queue: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Queued jobs only (what a burst worker reads as it leaves), env values masked."""
        if status not in ("queued", JobStatus.QUEUED):
            raise InvalidArgument("a remote worker lists queued jobs only")
        query = {"limit": limit, **({"queue": queue} if queue is not None else {})}
        answer = self._call("GET", "/queued?" + urlencode(query))
        return [job_from_wire(item) for item in answer["jobs"]]

    # -- housekeeping: done by the server's claims, direct workers or the CLI, not here --------

    def reconcile(self) -> None:
        """Nothing: a remote worker reconciles no plans (direct workers or `agentfleet
        reconcile` do; expired leases are reaped by the server's claims)."""
        return None

    def fire_schedules(self, now: datetime | None = None) -> list[Any]:
        """Nothing: schedules fire from direct workers."""
        return []

    def prune_if_due(self, every: float = 0.0) -> None:
        """Nothing: pruning is left to direct workers (or `agentfleet prune`)."""
        return None

    # -- HTTP -----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._scheme == "https":
            context = self._ssl or ssl.create_default_context()
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connection(self._timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        job_id: int | None = None,
        landed: Callable[[LeaseLost], bool] | None = None,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers()
        tries = len(RETRY_PAUSES) + 1
        for attempt in range(tries):
            conn = self._conn()
            try:
                if conn.sock is None:
                    conn.connect()
                conn.request(method, self._prefix + API + path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                # A connection refused, reset or closed by the server is tried again; a
                # request that got no answer in time is not (it may still be at work).
                if attempt + 1 < tries and not self._closed and not isinstance(exc, TimeoutError):
                    time.sleep(RETRY_PAUSES[attempt])
                    continue
                self._unreachable(exc)
                raise StoreUnavailable(f"the fleet's server at {self._url} cannot be reached: "
                                       f"{_reason(exc)}") from None  # fmt: skip
            self._reachable()
            if response.will_close:
                self._drop()
            return self._answer(
                response.status, raw, retried=attempt > 0, job_id=job_id, landed=landed
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(
        self,
        status: int,
        raw: bytes,
        *,
        retried: bool,
        job_id: int | None = None,
        landed: Callable[[LeaseLost], bool] | None = None,
    ) -> dict[str, Any]:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if 200 <= status < 300 and isinstance(data, dict):
            return data
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or "")
        message = str(error.get("message") or f"the server answered {status}")
        if code in ("lease_lost", "job_cancelled", "not_your_lease"):
            lost = lost_from_wire(code, error)
            if retried and landed is not None and landed(lost):
                return {}
            raise lost
        if status in (401, 403):
            denied = AccessDenied(status, f"the fleet's server refused the token: {message}")
            if self.on_denied is not None:
                self.on_denied(denied)
            raise denied
        if status == 404 and job_id is not None:
            raise JobNotFound(job_id)
        if status in (400, 413, 422):
            raise InvalidArgument(message)
        if status == 409:
            current, wanted = error.get("current"), error.get("wanted")
            if isinstance(current, str) and isinstance(wanted, str):
                raise InvalidTransition("job", current, wanted, message)
            raise AgentFleetError(message)
        if status in (502, 503, 504):
            raise StoreUnavailable(f"the fleet's server at {self._url}: {message}")
        raise AgentFleetError(f"the fleet's server at {self._url} answered {status}: {message}")

    def _unreachable(self, exc: BaseException) -> None:
        if self._away_since is None:
            self._away_since = time.monotonic()
            log.warning("the fleet's server at %s cannot be reached (%s); trying again",
                        self._url, _reason(exc))  # fmt: skip

    def _reachable(self) -> None:
        if self._away_since is not None:
            away = time.monotonic() - self._away_since
            self._away_since = None
            log.info("the fleet's server at %s answers again (after %.1fs)", self._url, away)


def _done(done: Sequence[tuple[Lease, Any]]) -> list[dict[str, Any]]:
    return [{"lease": lease_to_wire(lease), "result": result} for lease, result in done]


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
