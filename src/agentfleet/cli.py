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
