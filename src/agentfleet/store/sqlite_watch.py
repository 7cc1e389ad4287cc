"""A doorbell for SQLite waiters: a descriptor that becomes readable when the database's
files are written, so an idle worker can sleep in select() instead of polling.

On Linux this is inotify on the database's folder, filtered to the database's own files
(every commit appends to its `-wal` file with write(), whichever process makes it). It only
rings: `PRAGMA data_version` stays the judge of whether another connection committed, and a
ring for anything else (this connection's own commit, a checkpoint) costs one check. Where
inotify is missing (other systems, a kernel out of watches) there is no doorbell, and the
waiter polls data_version as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import sys
from contextlib import suppress
from pathlib import Path

# From <sys/inotify.h>.
IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x002, 0x008, 0x080, 0x100
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name
_WATCHED = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE


class FileWatch:
    """One inotify descriptor watching the folder of `path` for writes to its files."""

    def __init__(self, fd: int, names: frozenset[bytes]) -> None:
        self._fd = fd
        self._names = names

    @classmethod
    def open(cls, path: str | Path) -> FileWatch | None:
        """A watch on the database at `path`, or None where inotify cannot give one."""
        if not sys.platform.startswith("linux"):
            return None
        libc = _libc()
        if libc is None:
            return None
        database = Path(path).resolve()
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        folder = os.fsencode(database.parent)
        if libc.inotify_add_watch(fd, folder, _WATCHED) < 0:
            os.close(fd)
            return None
        base = os.fsencode(database.name)
        return cls(fd, frozenset({base, base + b"-wal", base + b"-journal"}))

    def fileno(self) -> int:
        return self._fd

    def rang(self) -> bool:
        """Read every queued event; whether one was a write to the database's files."""
        hit = False
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return hit
            except OSError:
                return True  # the watch broke: let the caller look
            if not data:
                return hit
            offset = 0
            while offset + _EVENT.size <= len(data):
                _, _, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                hit = hit or name in self._names or not name  # no name: the queue overflowed

    def close(self) -> None:
        with suppress(OSError):
            os.close(self._fd)


_LIBC: list[ctypes.CDLL | None] = []


def _libc() -> ctypes.CDLL | None:
    if not _LIBC:
        try:
            libc: ctypes.CDLL | None = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            assert libc is not None
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        except (OSError, AttributeError):
            libc = None
        _LIBC.append(libc)
    return _LIBC[0]
