"""A running job's own way to the fleet: the lease API, with its worker's lease token.

A job with ``db_access: true`` run by a worker that knows the fleet's server gets
``AGENTFLEET_SERVER`` and ``AGENTFLEET_LEASE_TOKEN`` (and ``AGENTFLEET_CA`` when the server's
certificate needs a CA of its own) instead of any database URL::

    from agentfleet.remote import LeaseClient

    fleet = LeaseClient.from_env()
    fleet.write("pr_url", "https://example/pr/7")        # fenced by the job's lease
    fleet.enqueue("shell", {"cmd": "make deploy"}, queue="deploy")
    built = fleet.inputs()["build"]["result"]            # a plan step's dependencies

The token is good while the job's attempt holds its lease: once the attempt is taken over,
has expired or has ended, every call raises LeaseLost, so a stale attempt writes nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from agentfleet.errors import AccessDenied, InvalidArgument, LeaseLost
from agentfleet.remote.http import ServerClient

NO_LEASE = (
    "this process holds no lease on the fleet: AGENTFLEET_SERVER and AGENTFLEET_LEASE_TOKEN "
    "are given to a job with `db_access: true` run by a worker that knows the fleet's server "
    "(agentfleet worker --server, or a direct worker's --lease-server)"
)
_ATTEMPT = re.compile(r"afl_(\d+)_(\d+)_")


class LeaseClient(ServerClient):
    """The lease API (/api/lease) of the fleet's server, for the job a lease token names."""

    api = "/api/lease"
    needs = NO_LEASE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LeaseClient:
        """The client the job's environment describes; InvalidArgument when it has none."""
        env = os.environ if environ is None else environ
        server, token = env.get("AGENTFLEET_SERVER"), env.get("AGENTFLEET_LEASE_TOKEN")
        if not server or not token:
            raise InvalidArgument(NO_LEASE)
        return cls(server, token, ca_file=env.get("AGENTFLEET_CA") or None)

    def job(self) -> dict[str, Any]:
        """The job this lease belongs to, as the HTTP API shows jobs."""
        return self._call("GET", "")

    def inputs(self) -> dict[str, dict[str, Any]]:
        """What a plan step's dependencies produced: status, result and last output."""
        inputs: dict[str, dict[str, Any]] = self._call("GET", "/inputs")["inputs"]
        return inputs

    def write(self, key: str, value: Any) -> dict[str, Any]:
        """Write `value` under `key` in the job's ledger, fenced by its lease."""
        return self._call("POST", "/ledger", {"key": key, "value": value})

    def enqueue(
        self, engine: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> dict[str, Any]:
        """Enqueue a follow-up job (options as the HTTP API's enqueue takes them: queue,
        priority, lock, max_attempts, timeout, delay, run_at, dedupe_key)."""
        return self._call(
            "POST", "/jobs", {"engine": engine, "payload": dict(payload or {}), **options}
        )

    def update_plan(
        self, fields: Mapping[str, Any], *, expected: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write plan-level fields of the job's own plan (metadata, ...), fenced by its lease."""
        body: dict[str, Any] = {"fields": dict(fields)}
        if expected is not None:
            body["expected"] = dict(expected)
        return self._call("PATCH", "/plan", body)

    def _denied(self, status: int, message: str) -> Exception:
        """401 is the lease no longer current (or a wrong token): LeaseLost, as a direct
        fenced write raises it; 403 is a route a lease token may not use."""
        attempt = _ATTEMPT.match(self._token)
        if status == 401 and attempt is not None:
            return LeaseLost(int(attempt[1]), int(attempt[2]))
        return AccessDenied(status, f"the fleet's server refused the lease token: {message}")


__all__ = ["NO_LEASE", "LeaseClient"]
