"""Exception hierarchy: one base class so callers can catch everything agentfleet raises."""

from __future__ import annotations


class AgentFleetError(Exception):
    """Base class for every error agentfleet raises on purpose."""


class InvalidArgument(AgentFleetError, ValueError):
    """A caller passed a value agentfleet cannot accept."""


class StoreUnavailable(AgentFleetError):
    """The configured store cannot be used (missing driver, unreachable server), or the
    connection broke during a call: then a write in flight may or may not have been
    committed, and a retry is judged by the same fence (a lease's epoch) as the first try."""


class InvalidTransition(AgentFleetError):
    """A state change was asked for that the state machine does not allow."""

    def __init__(self, what: str, current: str, wanted: str, message: str | None = None) -> None:
        """`message`, when given, says in people's words what happened and what to do."""
        super().__init__(message or f"{what}: cannot go from {current!r} to {wanted!r}")
        self.what = what
        self.current = current
        self.wanted = wanted


class JobNotFound(AgentFleetError, LookupError):
    """No job has the given id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class LeaseLost(AgentFleetError):
    """The worker's lease on a job is no longer valid, so its writes must stop."""

    def __init__(
        self,
        job_id: int,
        epoch: int,
        *,
        current_epoch: int | None = None,
        status: str | None = None,
    ) -> None:
        detail = f"lease epoch {epoch} on job {job_id} is no longer held"
        if current_epoch is not None or status is not None:
            detail += f" (job is {status!r} at epoch {current_epoch})"
        super().__init__(detail)
        self.job_id = job_id
        self.epoch = epoch
        self.current_epoch = current_epoch
        self.status = status


class JobCancelled(LeaseLost):
    """The job was cancelled while running: its worker must stop it, then fail it.

    A LeaseLost, so code that stops on a lost lease also stops on a cancel; unlike a lost
    lease, the epoch still owns the job, so the worker's closing `fail` is accepted.
    """

    def __init__(self, job_id: int, epoch: int) -> None:
        super().__init__(job_id, epoch)
        self.args = (f"job {job_id} was cancelled while running (lease epoch {epoch})",)


class SchemaTooNew(AgentFleetError):
    """The database was written by a newer agentfleet than this one."""

    def __init__(self, current: int, latest: int) -> None:
        super().__init__(
            f"database schema version {current} is newer than this agentfleet supports "
            f"({latest}); upgrade agentfleet"
        )
        self.current = current
        self.latest = latest


class AccessDenied(AgentFleetError):
    """The fleet's server refused the token: unknown or revoked (401), or its role may not
    do this (403). A remote worker stops on it; its leases come back after their ttl."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
