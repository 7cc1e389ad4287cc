"""Small helpers for plan tests: plan specs and a synchronous drain loop."""

from __future__ import annotations

from typing import Any

from agentfleet import Fleet, Lease


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
