"""How statuses look in a terminal: the rich styles the command line and the demo share."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

__all__ = ["PLAN_STYLE", "STATUS_STYLE", "WORKER_STYLE", "status_text"]

# Job and run statuses.
STATUS_STYLE = {
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "skipped": "dim",
    "expired": "red",
    "released": "blue",
}
PLAN_STYLE = {
    "pending": "cyan",
    "running": "yellow",
    "paused": "bold magenta",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}
WORKER_STYLE = {"alive": "green", "stale": "yellow", "stopped": "dim"}


def status_text(status: str, styles: Mapping[str, str] = STATUS_STYLE) -> Text:
    """The status as plain text (never read as markup) in its colour."""
    return Text(status, style=styles.get(status, ""))
