"""`agentfleet config set|get|ls|unset`: fleet-wide settings kept in the database."""

from __future__ import annotations

from typing import Annotated

import typer

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
from agentfleet.fleet import CONFIG_NAMES

config_app = FleetTyper(
    help="Fleet-wide settings, stored in the database so that every worker reads the same "
    + "("
    + "; ".join(f"{name}: {what}" for name, what in CONFIG_NAMES.items())
    + ")."
    + "\n\nExample: agentfleet config set retention 30d",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")

NameArg = Annotated[str, typer.Argument(metavar="NAME", help=f"One of: {', '.join(CONFIG_NAMES)}.")]


@config_app.command("set")
def set_value(ctx: typer.Context, name: NameArg, value: Annotated[str, typer.Argument(
        metavar="VALUE", help="e.g. 30d for retention")]) -> None:  # fmt: skip
    """Set a setting.

    Example: agentfleet config set retention 30d
    """
    with handled(), open_fleet(ctx, create=True) as fleet:
        fleet.set_config(name, value)
    console.print(f"{name} = {value}", highlight=False)


@config_app.command("get")
def get_value(ctx: typer.Context, name: NameArg) -> None:
    """Print a setting's value (exit 3 when it is not set).

    Example: agentfleet config get retention
    """
    with handled(), open_fleet(ctx) as fleet:
        found = fleet.config()
    if name not in found:
        if name not in CONFIG_NAMES:
            fail(f"unknown setting {name!r}; known: {', '.join(CONFIG_NAMES)}", ExitCode.BAD_INPUT)
        fail(f"{name} is not set", ExitCode.NOT_FOUND)
    console.print(found[name], highlight=False)


@config_app.command("ls")
def ls(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the settings that are set.

    Example: agentfleet config ls --json
    """
    with handled(), open_fleet(ctx) as fleet:
        found = fleet.config()
    if as_json:
        print_json(found)
        return
    for name, value in found.items():
        console.print(f"{name} = {value}", highlight=False)
    if not found:
        console.print("no settings")


@config_app.command("unset")
def unset(ctx: typer.Context, name: NameArg) -> None:
    """Remove a setting (for retention: nothing is pruned automatically any more).

    Example: agentfleet config unset retention
    """
    with handled(), open_fleet(ctx) as fleet:
        removed = fleet.unset_config(name)
    if not removed:
        fail(f"{name} is not set", ExitCode.NOT_FOUND)
    console.print(f"{name} unset", highlight=False)
