"""The agentfleet command line: every command is one Fleet operation, rendered.

Exit codes (also in ``agentfleet --help`` and the README):

0 ok; 1 refused (the operation was not allowed: nothing to cancel, a running job cannot be
retried); 2 bad input (a bad option, value or job file; nothing was written); 3 not found
(no such job or run); 4 store unavailable (the database cannot be opened or reached).
"""

from __future__ import annotations

from agentfleet.cli import (
    changes,
    config,
    lease,
    lifecycle,
    limits,
    plans,
    read,
    retention,
    schedules,
    serve,
    submit,
    tokens,
    work,
)
from agentfleet.cli.app import EXIT_CODES, ExitCode, app

__all__ = [
    "EXIT_CODES",
    "ExitCode",
    "app",
    "changes",
    "config",
    "lease",
    "lifecycle",
    "limits",
    "main",
    "plans",
    "read",
    "retention",
    "schedules",
    "serve",
    "submit",
    "tokens",
    "work",
]


def main() -> None:
    app(prog_name="agentfleet")
