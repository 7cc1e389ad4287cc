"""`agentfleet limits set|ls|rm`: fleet-wide limits on jobs running at once."""

from __future__ import annotations

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

limits_app = FleetTyper(
    help="At most N jobs naming a limit (`limit: NAME` in a job file) run at once, across "
    "every worker of the fleet, and with --rate at most R of them start in any window; a "
    "job naming a limit that is not set waits.\n\n"
    "Example: agentfleet limits set claude-api 3 --rate 10/min",
    no_args_is_help=True,
)
app.add_typer(limits_app, name="limits")

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The limit's name. e.g. claude-api")]


@limits_app.command("set")
def set_limit(
    ctx: typer.Context,
    name: NameArg,
    max_running: Annotated[
        int,
        typer.Argument(
            metavar="N", help="The most jobs of this name running at once; 0 pauses them."
        ),
    ],
    rate: Annotated[
        str | None,
        typer.Option(
            "--rate",
            metavar="COUNT/UNIT",
            help="Also at most COUNT/UNIT of them start in any such window, by the store's "
            "clock: 10/min, 100/h, 5/30s, 1000/day. Setting the limit again without --rate "
            "removes the rate.",
        ),
    ] = None,
) -> None:
    """Set (or change) a limit; raising it lets waiting jobs start at once.

    Example: agentfleet limits set claude-api 3 --rate 10/min
    """
    with handled(), open_fleet(ctx, create=True) as fleet:
        fleet.set_limit(name, max_running, rate=rate)
        [limit] = [found for found in fleet.limits() if found.name == name]
    paced = f", at most {limit.rate} started" if limit.rate else ""
    console.print(f"limit {name}: at most {max_running} running at once{paced}", highlight=False)


@limits_app.command("ls")
def ls(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the limits with their jobs running and waiting.

    Example: agentfleet limits ls --json
    """
    with handled(), open_fleet(ctx) as fleet:
        found = fleet.limits()
    if as_json:
        print_json([{**vars(limit), "rate": limit.rate and str(limit.rate)} for limit in found])
        return
    if not found:
        console.print("no limits")
        return
    table = Table(box=None, header_style="bold dim")
    for column in ("name", "max running", "running", "queued", "rate", "started in window"):
        table.add_column(column)
    for limit in found:
        rate, started = (str(limit.rate), str(limit.started)) if limit.rate else ("-", "-")
        table.add_row(limit.name, str(limit.max_running), str(limit.running),
                      str(limit.queued), rate, started)  # fmt: skip
    console.print(table)


@limits_app.command("rm")
def rm(ctx: typer.Context, name: NameArg) -> None:
    """Remove a limit: jobs naming it wait until it is set again.

    Example: agentfleet limits rm claude-api
    """
    with handled(), open_fleet(ctx) as fleet:
        removed = fleet.remove_limit(name)
    if not removed:
        fail(f"no limit named {name!r}", ExitCode.NOT_FOUND)
        return
    console.print(f"limit {name} removed", highlight=False)
