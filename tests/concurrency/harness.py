"""Race harness: many claimers, each on its own connection, released together by a barrier."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from agentfleet import Fleet

Claimer = Callable[[int], bool]


def race_rounds(claimers: Sequence[Claimer], job_ids: Sequence[int]) -> list[int]:
    """Every claimer tries every job; per job all start at one barrier. Winners per round."""
    barrier = threading.Barrier(len(claimers))
    wins = [[False] * len(claimers) for _ in job_ids]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            for round_no, job_id in enumerate(job_ids):
                barrier.wait(timeout=60)
                wins[round_no][index] = claimers[index](job_id)
        except BaseException as exc:  # surfaced below, never swallowed
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(claimers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [sum(row) for row in wins]


def real_claimer(fleet: Fleet, worker: str) -> Claimer:
    return lambda job_id: fleet.claim(job_id, worker=worker, ttl=60) is not None


class ReadCheckWriteClaim:
    """DELIBERATELY BROKEN claim, kept so the race tests stay honest.

    This is the seed's bug: read the job, check its status in Python, then write without
    naming the expected state. The pause between check and write stands for any await point
    or network round trip. Two claimers that read before either writes both "win".
    """

    def __init__(self, fleet: Fleet, worker: str) -> None:
        self.db = fleet.store.dialect
        self.worker = worker

    def __call__(self, job_id: int) -> bool:
        with self.db.session() as tx:
            row = tx.one("SELECT status, lease_epoch FROM jobs WHERE id = :id", {"id": job_id})
        if row is None or row["status"] != "queued":
            return False
        time.sleep(0.002)
        with self.db.tx() as tx:
            tx.q(
                "UPDATE jobs SET status = 'running', lease_epoch = :epoch, worker = :worker "
                "WHERE id = :id",
                {"epoch": row["lease_epoch"] + 1, "worker": self.worker, "id": job_id},
            )
        return True
