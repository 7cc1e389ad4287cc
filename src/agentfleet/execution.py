"""What a worker runs for one lease: a subprocess or a Python call, behind one interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from agentfleet.models import RunOutput

__all__ = ["Execution", "Outcome"]


@dataclass(frozen=True)
class Outcome:
    """How an execution ended on its own: a result, or an error and whether to retry."""

    ok: bool
    result: Any = None
    error: str | None = None
    retry: bool = True


class Execution(Protocol):
    """One running attempt. The worker polls it; it never writes to the store itself."""

    @property
    def killable(self) -> bool:
        """False for in-process Python calls: a thread cannot be stopped, only abandoned."""
        ...

    @property
    def output_version(self) -> int:
        """Changes whenever new output arrived (so unchanged output is not re-sent)."""
        ...

    @property
    def pgid(self) -> int | None:
        """The process group the attempt runs in, once started (None: no process)."""
        ...

    def start(self) -> None: ...

    def lease_held(self, since: float, ttl: float) -> None:
        """The lease was granted or renewed by a call made at `since` (time.monotonic) for
        `ttl` seconds; a process is killed if no renewal follows before it could expire."""
        ...

    def done(self) -> bool: ...

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM to its process group)."""
        ...

    def kill(self) -> None:
        """Stop it now (SIGKILL to its process group)."""
        ...

    def output(self) -> RunOutput: ...

    def outcome(self) -> Outcome:
        """How it ended; only meaningful once ``done()``."""
        ...

    def settled(self, won: bool) -> None:
        """The worker wrote the attempt's end: `won` says whether its fenced completion was
        accepted (a workspace publishes its commit only then)."""
        ...
