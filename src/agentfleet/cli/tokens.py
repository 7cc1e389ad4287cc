"""`agentfleet tokens create|ls|revoke`: API tokens with a role, for `agentfleet serve`."""

from __future__ import annotations

from dataclasses import asdict
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
from agentfleet.cli.views import ago
from agentfleet.store.tokens import ROLES, TokenInfo

tokens_app = FleetTyper(
    help="API tokens for `agentfleet serve`, each with a role: worker (the worker API of "
    "`agentfleet worker --server`, for its own leases only), read (every read), operate "
    "(reads, and enqueue, cancel, retry, approve, reject, resume), admin (everything). "
    "Only a hash of each token is stored; the token itself is "
    "shown once, when it is made.\n\n"
    "Example: agentfleet tokens create --role read --name dashboard",
    no_args_is_help=True,
)
app.add_typer(tokens_app, name="tokens")


def token_dict(info: TokenInfo) -> dict[str, object]:
    return {**asdict(info), "live": info.live}


@tokens_app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[
        str,
        typer.Option(
            "--role", metavar="ROLE", help=f"One of: {', '.join(ROLES)}. e.g. --role operate"
        ),
    ],
    name: Annotated[
        str,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Who holds it; unique among the live tokens. e.g. --name box-7",
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Make a token and print it, this once: keep it now, it cannot be shown again.

    Example: agentfleet tokens create --role worker --name box-7
    """
    with handled(), open_fleet(ctx, create=True) as fleet:
        info, secret = fleet.create_token(name, role)
    if as_json:
        print_json({**token_dict(info), "token": secret})
        return
    console.print(f"token {info.name} ({info.role}), id {info.id}:", highlight=False)
    console.print(secret, highlight=False, soft_wrap=True)
    console.print("Shown once: only its hash is stored.", highlight=False)


@tokens_app.command("ls")
def ls(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the tokens, live and revoked (never their secrets).

    Example: agentfleet tokens ls --json
    """
    with handled(), open_fleet(ctx) as fleet:
        found = fleet.tokens()
        now = fleet.now()
    if as_json:
        print_json([token_dict(info) for info in found])
        return
    if not found:
        console.print("no tokens")
        return
    table = Table(box=None, header_style="bold dim")
    for column in ("name", "role", "id", "created", "last used", "state"):
        table.add_column(column)
    for info in found:
        state = "live" if info.live else f"revoked {ago(info.revoked_at, now)}"
        table.add_row(info.name, info.role, info.id, ago(info.created_at, now),
                      ago(info.last_used_at, now), state)  # fmt: skip
    console.print(table)


@tokens_app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The live token's name or id. e.g. box-7")
    ],
) -> None:
    """Revoke a token: its next request to the server is refused (sessions signed in with it too).

    Example: agentfleet tokens revoke box-7
    """
    with handled(), open_fleet(ctx) as fleet:
        revoked = fleet.revoke_token(name)
    if not revoked:
        fail(f"{name!r} names no live token (agentfleet tokens ls lists them)", ExitCode.NOT_FOUND)
    console.print(f"token {name} revoked", highlight=False)
