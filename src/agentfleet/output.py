"""Capped capture of what a run prints: the last ``OUTPUT_LIMIT`` bytes of each stream.

An agent can print for hours; the run record keeps only the tail, which is where the
answer and the error usually are. When anything was dropped the kept text starts with a
one-line marker saying how much.
"""

from __future__ import annotations

import re
import threading

__all__ = ["OUTPUT_LIMIT", "TailBuffer", "is_truncation_marker", "truncation_marker"]

OUTPUT_LIMIT = 1024 * 1024  # bytes kept per stream (stdout and stderr each)

_MARKER = re.compile(r"\[agentfleet: \d+ earlier bytes dropped; only the last \d+ bytes are kept\]")


def truncation_marker(dropped: int, limit: int) -> str:
    return f"[agentfleet: {dropped} earlier bytes dropped; only the last {limit} bytes are kept]\n"


def is_truncation_marker(line: str) -> bool:
    """Whether a line (without its newline) is the marker ``truncation_marker`` writes."""
    return _MARKER.fullmatch(line) is not None


class TailBuffer:
    """Thread-safe byte sink keeping the last ``limit`` bytes; ``version`` counts writes."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be at least one byte")
        self.limit = limit
        self._data = bytearray()
        self._dropped = 0
        self._version = 0
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        return self._version

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        with self._lock:
            self._data += chunk
            # Trim lazily (at twice the limit) so a stream of small writes stays linear.
            excess = len(self._data) - self.limit
            if excess > self.limit:
                del self._data[:excess]
                self._dropped += excess
            self._version += 1

    def text(self) -> str:
        """The kept tail as text (invalid UTF-8 replaced), with the marker if truncated."""
        with self._lock:
            excess = max(0, len(self._data) - self.limit)
            body = bytes(self._data[excess:])
            dropped = self._dropped + excess
        decoded = body.decode("utf-8", errors="replace")
        return truncation_marker(dropped, self.limit) + decoded if dropped else decoded
