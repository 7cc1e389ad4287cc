"""`agentfleet prune`: delete finished jobs and ended plans past an age, with their runs."""

from __future__ import annotations

from typing import Annotated

import typer

from agentfleet.cli.app import JsonOpt, app, console, err, handled, open_fleet, print_json


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Delete what finished more than AGE ago (with its unit), e.g. 30d, 12h, 90m.",
        ),
    ],
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="STATUSES",
            help="Only jobs that ended so, comma-separated (default: every finished status), "
            "e.g. succeeded,cancelled. Plans go when completed, cancelled or abandoned.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Count what would go and delete nothing, e.g. before a first prune."
        ),
    ] = False,
    no_plans: Annotated[
        bool,
        typer.Option(
            "--no-plans", help="Leave plans and their steps alone, e.g. to keep their history."
        ),
    ] = False,
    batch: Annotated[
        int,
        typer.Option(
            "--batch", metavar="N", help="Jobs or plans per transaction, e.g. 100.", min=1
        ),
    ] = 500,
    as_json: JsonOpt = False,
) -> None:
    """Delete finished jobs and ended plans older than --older-than, with their runs,
    output, events and ledger rows, a batch per transaction (workers never wait long).

    Never a queued, waiting or running job, and never a step of a plan on its own: a
    plan's steps go with the plan, once it is completed, cancelled or abandoned.

    Example: agentfleet prune --older-than 30d --status succeeded,cancelled --dry-run
    """
    statuses = None if status is None else [s.strip() for s in status.split(",") if s.strip()]
    with handled(), open_fleet(ctx) as fleet:
        done = fleet.prune(older_than, statuses=statuses, dry_run=dry_run, batch=batch,
                           plans=not no_plans)  # fmt: skip
    if as_json:
        print_json(done.as_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{verb} {done.jobs} job(s) and {done.plans} plan(s) with {done.plan_steps} step(s)"
        + f", {done.runs} run(s) and {done.events} event(s)"
        + (f", in {len(done.batches)} batch(es)" if done.batches else ""),
        highlight=False,
    )
    if dry_run:
        err.print("nothing was deleted (--dry-run)", highlight=False)
