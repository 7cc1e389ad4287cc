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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from agentfleet.agents.usage import Usage
from agentfleet.errors import (
    AccessDenied,
    InvalidArgument,
    LeaseLost,
    StoreUnavailable,
)
from agentfleet.models import Job, JobStatus, Lease, Run, RunOutput
from agentfleet.remote.http import TIMEOUT, ServerClient, why_unreachable
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

WAIT_MARGIN = 5.0  # how much longer than its timeout a long poll may take to answer


@dataclass(frozen=True)
class PlanBudget:
    """What a worker reads of a plan: its budget (agents' watches stop past it)."""

    budget_usd: float | None


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


class RemoteFleet(ServerClient):
    """The worker's side of a fleet served by `agentfleet serve`, reached with a token."""

    api = "/api/worker"
    needs = "a remote worker needs a token (--token or AGENTFLEET_TOKEN)"

    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float = TIMEOUT,
        tasks: TaskRegistry | None = None,
        on_denied: Callable[[AccessDenied], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
    ) -> None:
        super().__init__(server, token, timeout=timeout, ssl_context=ssl_context, ca_file=ca_file)
        self.tasks = REGISTRY if tasks is None else tasks
        self.on_denied = on_denied
        self._cursor: str | None = None
        self._wait_conn: http.client.HTTPConnection | None = None

    # -- the handle ---------------------------------------------------------------------

    def __enter__(self) -> RemoteFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        super().close()
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

    def lease_token(self, lease: Lease) -> str:
        """A token for the lease's job to reach the fleet's lease API while the lease is
        current (the server mints it; LeaseLost when the lease is no longer held)."""
        token: str = self._call("POST", "/lease-token", {"lease": lease_to_wire(lease)})["token"]
        return token

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
            conn.request(
                "POST", self._prefix + self.api + "/wait", body=body, headers=self._headers()
            )
            watched = [conn.sock] if interrupt is None else [conn.sock, interrupt]
            ready, _, _ = select.select(watched, [], [], max(0.0, timeout) + WAIT_MARGIN)
            if conn.sock not in ready:  # interrupted (or no answer in time): drop this poll
                conn.close()
                self._wait_conn = None
                return False
            response = conn.getresponse()
            raw = response.read()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            self._wait_conn = None
            raise self.untrusted(exc) from None
        except ssl.SSLError as exc:
            conn.close()
            self._wait_conn = None
            raise self.not_tls(exc) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._wait_conn = None
            self._unreachable(exc)
            raise StoreUnavailable(f"the fleet's server at {self._url} cannot be reached: "
                                   f"{why_unreachable(exc)}") from None  # fmt: skip
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


def _done(done: Sequence[tuple[Lease, Any]]) -> list[dict[str, Any]]:
    return [{"lease": lease_to_wire(lease), "result": result} for lease, result in done]
