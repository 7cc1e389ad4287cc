"""No-op python tasks for the drain benchmark: the module `agentfleet worker --import` loads,
written as a user's own module of tasks would be."""

from __future__ import annotations

import agentfleet

NOOP = "bench:noop"


@agentfleet.task(name=NOOP)
def noop() -> None:
    """Does nothing: the drain measures the queue, not the work."""
    return None
