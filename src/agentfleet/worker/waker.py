"""The worker loop's doorbell: a self-pipe that signal handlers and other threads ring."""

from __future__ import annotations

import contextlib
import os
import select


class Waker:
    """A self-pipe: safe to poke from signal handlers and other threads.

    The pipe is closed only when nothing refers to the waker any more (executions keep a
    reference to ``wake``), so a late ``wake`` can never write into a reused descriptor.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe is awake already
            os.write(self._write, b"!")

    def fileno(self) -> int:
        """Readable once woken: a store's wait watches it beside its own wake-ups."""
        return self._read

    def wait(self, timeout: float) -> None:
        with contextlib.suppress(OSError, InterruptedError):
            ready, _, _ = select.select([self._read], [], [], max(0.0, timeout))
            if ready:
                self.drain()

    def drain(self) -> None:
        with contextlib.suppress(OSError):  # empty: nothing more to read
            while os.read(self._read, 4096):
                pass

    def __del__(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
