"""Child-process bodies for the multi-process races (importable under spawn)."""

from __future__ import annotations

import random
from typing import Any

import agentfleet
from tests.concurrency.harness import ReadCheckWriteClaim


def claim_rounds(
    url: str, worker: str, job_ids: list[int], barrier: Any, results: Any, broken: bool
) -> None:
    """One process: for every job, wait for the others, then try to claim it."""
    with agentfleet.open(url, reap_interval=-1) as fleet:
        claim = ReadCheckWriteClaim(fleet, worker) if broken else None
        won: list[int] = []
        for job_id in job_ids:
            barrier.wait(timeout=120)
            if claim is not None:
                ok = claim(job_id)
            else:
                ok = fleet.claim(job_id, worker=worker, ttl=60) is not None
            if ok:
                won.append(job_id)
        results.put((worker, won))


def drain(url: str, worker: str, start: Any, results: Any, seed: int) -> None:
    """One process: claim_next in random batch sizes and complete until the queue is empty."""
    rng = random.Random(seed)
    claimed: list[int] = []
    with agentfleet.open(url, reap_interval=-1) as fleet:
        start.wait(timeout=120)
        while True:
            leases = fleet.claim_next(worker=worker, limit=rng.randint(1, 16), ttl=60)
            if not leases:
                break
            for lease in leases:
                claimed.append(lease.job_id)
                fleet.complete(lease, result={"by": worker})
    results.put((worker, claimed))
