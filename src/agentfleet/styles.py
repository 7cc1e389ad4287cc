"""How statuses and agent transcripts look in a terminal: the rich styles the command line
and the demo share."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

from agentfleet.agents.transcript import Entry

__all__ = [
    "PLAN_STYLE",
    "STATUS_STYLE",
    "TRANSCRIPT_STYLE",
    "WORKER_STYLE",
    "status_text",
    "transcript_entry",
]

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


TRANSCRIPT_STYLE = {
    "system": "dim",
    "tool": "cyan",
    "tool_result": "dim",
    "tool_error": "red",
    "error": "bold red",
    "usage": "dim",
}


def transcript_entry(entry: Entry) -> Text:
    """One entry of an agent's transcript as the terminal shows it: a tool call
    (``▸ Bash: pytest -q``), its result folded, an error, the usage so far."""
    style = TRANSCRIPT_STYLE.get(entry.kind, "")
    if entry.kind == "tool":
        return Text(f"▸ {entry.text}" + (f": {entry.detail}" if entry.detail else ""), style)
    if entry.kind in ("tool_result", "tool_error"):
        lines = entry.text.split("\n")
        text = Text("\n".join(["  ⎿ " + lines[0], *("    " + line for line in lines[1:])]), style)
        if entry.more:
            text.append(f"  (+{entry.more} {'line' if entry.more == 1 else 'lines'})", "dim")
        return text
    if entry.kind == "error":
        return Text(f"✗ {entry.text}", style)
    if entry.kind in ("usage", "system"):
        return Text(f"· {entry.text}", style)
    return Text(entry.text, style)
