"""The server sends expired leases back to the queue, every few seconds while it runs.

Claims reap too (a direct worker's, and the server's own for remote workers), but a fleet
whose only worker just died, or was stopped by a revoked token, makes no claim: without
this its jobs would read `running` for ever. Reaping is a conditional write by the store's
clock, so several servers (and workers) doing it at once hand each job back once.
"""

from __future__ import annotations

import asyncio
import logging

from agentfleet.fleet import Fleet

log = logging.getLogger("agentfleet.web")

REAP_EVERY = 2.0  # seconds between the server's reaps


async def reap_forever(fleet: Fleet, every: float = REAP_EVERY) -> None:
    """Reap until cancelled; a store that is away or read-only only skips a turn."""
    while True:
        await asyncio.sleep(every)
        try:
            reaped = await asyncio.to_thread(fleet.reap_expired)
        except Exception as exc:  # the store is away, or this server may not write
            log.debug("could not reap expired leases: %s", exc)
            continue
        for job_id, status in reaped:
            log.info("job %s: its lease expired; now %s", job_id, status.value)


__all__ = ["REAP_EVERY", "reap_forever"]
