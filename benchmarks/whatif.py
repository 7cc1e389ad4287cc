"""What-if drains: how fast would PostgreSQL go with parts of each job's bookkeeping left out?

A profiling aid, never a product setting: it re-runs the drain with the batch statement
edited in the worker processes, to price what each part costs on this machine. The
variants break the contract on purpose (no events, no run closes) and exist only here.

    python -m benchmarks.whatif --jobs 50000 --workers 2 4 --batch 2000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from agentfleet.store import postgres
from benchmarks.agentfleet_bench import BATCH, _drain_body, _enqueue
from benchmarks.peers.common import (
    Result,
    WorkerLink,
    emit,
    fresh_database,
    run_drain,
    run_worker_safely,
)

_SUCCEEDED_EVENT = """, done_logged AS (
        INSERT INTO events (job_id, kind, epoch, worker)
        SELECT id, 'succeeded', lease_epoch, worker FROM done
    )"""
_CLAIMED_EVENT = """, logged AS (
        INSERT INTO events (job_id, kind, at, epoch, worker, data)
        SELECT id, 'claimed', now(), lease_epoch, worker, jsonb_build_object('attempt', attempts)
        FROM claimed
    )"""
_RUN_CLOSE = """, closed AS (
        UPDATE runs SET status = 'succeeded', finished_at = clock_timestamp()
        FROM done
        WHERE runs.job_id = done.id AND runs.epoch = done.lease_epoch AND runs.status = 'running'
    )"""

# variant -> the parts of the statement it leaves out
VARIANTS: dict[str, tuple[str, ...]] = {
    "full": (),
    "no-events": (_SUCCEEDED_EVENT, _CLAIMED_EVENT),
    "no-events-no-run-close": (_SUCCEEDED_EVENT, _CLAIMED_EVENT, _RUN_CLOSE),
}


def _without(parts: tuple[str, ...]) -> None:
    """Edit the store's statement in this (worker) process; fail loudly if it changed."""
    for part in parts:
        for name in ("_COMPLETE_BATCH", "_CLAIM_BATCH"):
            text = getattr(postgres, name)
            if part in text:
                setattr(postgres, name, text.replace(part, ""))
                break
        else:
            raise RuntimeError("the batch statement changed; update benchmarks/whatif.py")


def _body(link: WorkerLink, url: str, batch: int, variant: str) -> None:
    _without(VARIANTS[variant])
    _drain_body(link, url, batch)  # the benchmark's own drain loop, on the edited statement


def _worker(link: WorkerLink, url: str, batch: int, variant: str) -> None:
    run_worker_safely(link, lambda: _body(link, url, batch, variant))


def drain(variant: str, n_jobs: int, workers: int, batch: int) -> Result:
    with fresh_database(f"whatif_{variant}_w{workers}") as url:
        _enqueue(url, n_jobs, 0)
        run = run_drain(_worker, url, (batch, variant), workers, timeout=1800.0)
    return Result(
        "agentfleet",
        f"whatif_{variant}",
        workers,
        batch,
        run.jobs,
        run.seconds,
        run.jobs / run.seconds,
        notes=run.cpu_note(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=50000)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    args = parser.parse_args(argv)
    rows = [
        drain(variant, args.jobs, workers, args.batch)
        for workers in args.workers
        for variant in VARIANTS
    ]
    emit(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
