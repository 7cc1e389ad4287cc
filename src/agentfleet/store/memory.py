"""Memory store: the SQLite store over one in-memory connection behind one lock.

Sharing the SQLite code keeps a single truth for the SQL semantics; the lock makes every
transition process-atomic, with no yield between its compare and its set.
"""

from __future__ import annotations

from agentfleet.store.sqlite import Clock, SqliteStore


class MemoryStore(SqliteStore):
    def __init__(self, *, url: str = "memory://", clock: Clock | None = None) -> None:
        super().__init__(None, url=url, clock=clock, synchronous="OFF")
