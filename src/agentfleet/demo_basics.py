"""A short tour of the core contract on the embedded SQLite store, printed readably."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import agentfleet
from agentfleet import LeaseLost


def run_basics(console: Console, db_path: Path | None = None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="agentfleet-demo-"))
    path = db_path or workdir / "fleet.db"
    url = f"sqlite:///{path}"
    console.rule("[bold]agentfleet: the core contract")
    console.print(f"database: {url}")
    with agentfleet.open(url) as fleet:
        jobs = [
            fleet.enqueue("shell", {"cmd": f"echo step {n}"}, priority=n % 2) for n in range(1, 5)
        ]
        console.print(f"enqueued {len(jobs)} jobs: {', '.join(f'#{j.id}' for j in jobs)}")

        leases = fleet.claim_next(worker="worker-a", limit=3, ttl=30)
        for lease in leases:
            console.print(
                f"worker-a claimed #{lease.job_id} "
                f"(priority {lease.job.priority if lease.job else '?'}, epoch {lease.epoch})"
            )
            fleet.complete(lease, result={"ok": True})
            console.print(f"worker-a completed #{lease.job_id}")

        [last] = fleet.claim_next(worker="worker-b", ttl=0.5)
        console.print(
            f"worker-b claimed #{last.job_id} with a 0.5 s lease (epoch {last.epoch}) "
            "and then stalls..."
        )
        time.sleep(0.7)
        taken = fleet.claim(last.job_id, worker="worker-c", ttl=30)
        assert taken is not None
        console.print(
            f"[yellow]the lease expired[/]: worker-c took #{taken.job_id} over "
            f"at epoch {taken.epoch}"
        )
        try:
            fleet.complete(last, result={"by": "worker-b"})
        except LeaseLost as lost:
            console.print(f"[red]worker-b's late completion was refused[/]: {lost}")
        fleet.complete(taken, result={"by": "worker-c"})
        console.print(f"worker-c completed #{taken.job_id}")

        table = Table(title="jobs", show_lines=False)
        for column in ("job", "status", "attempts", "epoch", "runs (worker: outcome)", "result"):
            table.add_column(column)
        for job in sorted(fleet.list_jobs(), key=lambda j: j.id):
            runs = ", ".join(f"{r.worker}: {r.status.value}" for r in fleet.runs(job.id))
            table.add_row(
                f"#{job.id}",
                job.status.value,
                str(job.attempts),
                str(job.lease_epoch),
                runs,
                str(job.result),
            )
        console.print(table)
