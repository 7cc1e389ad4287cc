"""`agentfleet schedule add|ls|pause|resume|rm`: job and plan files run on a cron."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agentfleet.cli.app import (
    ExitCode,
    JsonOpt,
    app,
    console,
    fail,
    handled,
    open_fleet,
    print_json,
)
from agentfleet.cli.readable import FleetTyper
from agentfleet.scheduling import ScheduleNotFound
from agentfleet.serialize import schedule_dict

schedule_app = FleetTyper(
    help="Run a job file or a plan file on a cron expression; every worker fires due slots, "
    "each slot exactly once.\n\nExample: agentfleet schedule add nightly --cron '0 3 * * *' "
    "triage.md",
    no_args_is_help=True,
)
app.add_typer(schedule_app, name="schedule")

NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="The schedule's name. e.g. nightly-triage")
]


def _not_found(exc: ScheduleNotFound) -> None:
    fail(str(exc), ExitCode.NOT_FOUND)


@schedule_app.command("add")
def add(
    ctx: typer.Context,
    name: NameArg,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="A job file (.md) or a plan file (.yaml). e.g. triage.md"
        ),
    ],
    cron: Annotated[
        str,
        typer.Option(
            "--cron",
            metavar="CRON",
            help="Five fields: minute hour day month weekday. e.g. --cron '0 3 * * *'",
        ),
    ],
    tz: Annotated[
        str,
        typer.Option("--tz", metavar="ZONE", help="The cron's time zone. e.g. --tz Europe/Paris"),
    ] = "UTC",
    catch_up: Annotated[
        str,
        typer.Option(
            "--catch-up",
            metavar="skip|once",
            help="Slots missed while no worker ran: skip (default) or once. e.g. --catch-up once",
        ),
    ] = "skip",
    overlap: Annotated[
        str,
        typer.Option(
            "--overlap",
            metavar="allow|skip",
            help="allow (default), or skip a slot while the last run goes on. e.g. --overlap skip",
        ),
    ] = "allow",
    engines: Annotated[
        list[str] | None,
        typer.Option(
            "--engine",
            metavar="ENGINE",
            help="A custom engine the file may use (repeatable). e.g. --engine mycli",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a schedule. The file is checked and kept now, so any worker can run it.

    Example: agentfleet schedule add nightly-triage --cron '0 3 * * *' --tz Europe/Paris triage.md
    """
    with handled(), open_fleet(ctx, create=True) as fleet:
        made = fleet.add_schedule(
            name, cron, file, tz=tz, catch_up=catch_up, overlap=overlap, engines=engines or ()
        )
    if as_json:
        print_json(schedule_dict(made))
        return
    runs = ", ".join(t.isoformat(timespec="minutes") for t in made.upcoming(3))
    console.print(f"schedule {made.name} added ({made.kind} {made.source}); next: {runs}",
                  highlight=False, soft_wrap=True)  # fmt: skip


@schedule_app.command("ls")
def ls(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the schedules with their next runs and what the last slot did.

    Example: agentfleet schedule ls --json
    """
    with handled(), open_fleet(ctx) as fleet:
        found = fleet.schedules.all()
    if as_json:
        print_json([schedule_dict(s) for s in found])
        return
    if not found:
        console.print("no schedules")
        return
    table = Table(box=None, header_style="bold dim")
    for column in ("name", "cron", "tz", "next run", "last", "file"):
        table.add_column(column)
    for s in found:
        upcoming = s.upcoming(1)
        nxt = "paused" if s.paused else upcoming[0].isoformat(timespec="minutes")
        table.add_row(s.name, s.cron, s.tz, nxt, s.last_outcome or "-", s.source or "-")
    console.print(table)


def _change(ctx: typer.Context, name: str, verb: str) -> None:
    with handled(), open_fleet(ctx) as fleet:
        try:
            if verb == "rm":
                fleet.schedules.remove(name)
                console.print(f"schedule {name} removed")
                return
            changed = (
                fleet.schedules.pause(name) if verb == "pause" else fleet.schedules.resume(name)
            )
        except ScheduleNotFound as exc:
            _not_found(exc)
            return
    state = "paused" if changed.paused else f"resumed; next: {changed.next_at.isoformat()}"
    console.print(f"schedule {name} {state}", highlight=False)


@schedule_app.command("pause")
def pause(ctx: typer.Context, name: NameArg) -> None:
    """Fire nothing until resumed.

    Example: agentfleet schedule pause nightly-triage
    """
    _change(ctx, name, "pause")


@schedule_app.command("resume")
def resume(ctx: typer.Context, name: NameArg) -> None:
    """Fire again from the first slot after now.

    Example: agentfleet schedule resume nightly-triage
    """
    _change(ctx, name, "resume")


@schedule_app.command("rm")
def rm(ctx: typer.Context, name: NameArg) -> None:
    """Remove a schedule (what it started stays).

    Example: agentfleet schedule rm nightly-triage
    """
    _change(ctx, name, "rm")
