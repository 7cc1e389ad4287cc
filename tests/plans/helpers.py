"""Small helpers for plan tests: plan specs and a synchronous drain loop."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from agentfleet import Fleet, Lease

# The stale window the stale-plan tests open their fleet with: short enough to wait out on
# PostgreSQL's clock, which a test cannot move.
STALE = 2.0


def shell(name: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "engine": "shell",
        "cmd": f"echo {name}",
        "depends_on": list(deps),
        **extra,
    }


def gate(name: str, *deps: str, on_reject: str | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "engine": "approval",
        "message": f"approve {name}?",
        "depends_on": list(deps),
        **extra,
    }
    if on_reject:
        entry["on_reject"] = on_reject
    return entry


def plan(*jobs: dict[str, Any], mode: str = "auto", max_parallel: int = 4) -> dict[str, Any]:
    return {"name": "test-plan", "mode": mode, "max_parallel": max_parallel, "jobs": list(jobs)}


def drain(fleet: Fleet, fail: set[str] | None = None) -> list[str]:
    """Run every claimable job to the end: the named steps fail for good, the rest succeed."""
    ran: list[str] = []
    while leases := fleet.claim_next(worker="w", limit=10):
        for lease in leases:
            step = lease.job.step if lease.job else None
            ran.append(step or str(lease.job_id))
            if fail and step in fail:
                fleet.fail(lease, f"{step} broke", retry=False)
            else:
                fleet.complete(lease, result={"step": step})
    return ran


def claim_all(fleet: Fleet) -> list[Lease]:
    return fleet.claim_next(worker="w", limit=100)


def stale_at(fleet: Fleet, plan_id: int, window: float = STALE) -> datetime:
    """When the plan goes stale if nothing happens: its last write (the plan's or a job's)
    plus the stale window."""
    p = fleet.get_plan(plan_id)
    last = max([p.updated_at, *(fleet.get_job(s.job_id).updated_at for s in p.jobs)])
    return last + timedelta(seconds=window)


def still_fresh(fleet: Fleet, plan_id: int, window: float = STALE) -> bool:
    """True while the store's clock has not reached stale_at: a check made before this
    returned True was made on a fresh plan (on a slow machine it may come back False)."""
    return fleet.now() < stale_at(fleet, plan_id, window)
