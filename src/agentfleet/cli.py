"""The agentfleet command line."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    help="agentfleet: a durable job queue and workflow coordinator for fleets of AI coding agents.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.command()
def demo() -> None:
    """Run a short demo on a throwaway embedded SQLite database."""
    from agentfleet.demo_basics import run_basics

    run_basics(console)


@app.callback()
def _root() -> None:
    """agentfleet: a durable job queue and workflow coordinator for fleets of AI coding agents."""


def main() -> None:
    app()


# -- serve: the HTTP API and dashboard (needs the `web` extra) -----------------------------


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8700, help="Port to listen on."),
    token: str | None = typer.Option(
        None,
        envvar="AGENTFLEET_TOKEN",
        show_default=False,
        help="Bearer token for the API; generated and printed once when unset (loopback only).",
    ),
    public_read: bool = typer.Option(
        False, "--public-read", help="Let anyone who can reach the server read without a token."
    ),
    db: str | None = typer.Option(
        None, "--db", envvar="AGENTFLEET_DB", help="Database URL (default: the local SQLite)."
    ),
) -> None:
    """Serve the HTTP API, the dashboard and /metrics."""
    try:
        from agentfleet.web.server import ServeRefused
        from agentfleet.web.server import serve as run_server
    except ImportError as exc:
        console.print(f"[red]{exc.name} is missing:[/] pip install 'agentfleet[web]'")
        raise typer.Exit(2) from None
    try:
        run_server(db, host=host, port=port, token=token, public_read=public_read)
    except ServeRefused as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
