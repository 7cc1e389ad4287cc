"""What an earlier attempt of a job may have left running on this host, and ending it.

A worker that takes a job over looks at the job's earlier runs: those recorded on this host
with a process group. A group counts as that attempt's only while some live process in it
carries the attempt's marker in its environment (``AGENTFLEET_JOB_ID`` and
``AGENTFLEET_LEASE_EPOCH``, read from ``/proc/PID/environ``): a group id is reused only
once the group is empty, so a group with such a member is the one the attempt started, and
a group nobody can show belongs to it is never signalled. Linux only (``/proc``); elsewhere
nothing is found.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agentfleet.models import Run

__all__ = ["Clearing", "Leftovers", "find_leftovers"]

PROC = Path("/proc")
KILL_GUARD = 10.0  # after SIGKILL, how long to wait for the processes to vanish


@dataclass(frozen=True)
class Leftovers:
    """One earlier attempt's process group on this host."""

    job_id: int
    epoch: int
    pgid: int

    def members(self) -> list[int]:
        """The group's live processes that carry the attempt's marker."""
        return sorted(pid for pid, _ in _marked({self.pgid: self}))

    def alive(self) -> bool:
        """Whether any process of the group still runs (marked or not: once one marked
        member proved the group is the attempt's, every member is the attempt's)."""
        return any(pgid == self.pgid for _, pgid in _live_processes())

    def signal(self, sig: signal.Signals) -> bool:
        """Signal the group, only if a member still proves it is the attempt's; whether it
        was signalled."""
        if self.pgid <= 1 or self.pgid == os.getpgrp() or not self.members():
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)
            return True
        return False


class Clearing:
    """Ending an earlier attempt's groups: SIGTERM now, SIGKILL `grace` later (repeated each
    second), done once no process is left in them, or KILL_GUARD after the first SIGKILL:
    a SIGKILLed process never runs its own code again, even while the kernel finishes it."""

    def __init__(self, groups: list[Leftovers], grace: float, now: float) -> None:
        self.groups = groups
        self.kill_at = now + grace
        self.give_up = float("inf")
        for group in groups:
            group.signal(signal.SIGTERM)

    def done(self, now: float) -> bool:
        self.groups = [group for group in self.groups if group.alive()]
        if not self.groups or now >= self.give_up:
            return True
        if now >= self.kill_at:
            for group in self.groups:
                group.signal(signal.SIGKILL)
            self.kill_at = now + 1.0
            self.give_up = min(self.give_up, now + KILL_GUARD)
        return False


def find_leftovers(runs: Iterable[Run], host: str, before_epoch: int) -> list[Leftovers]:
    """The groups of this job's runs before `before_epoch` on `host` that still have a
    process carrying their attempt's marker (one scan of /proc for all of them)."""
    wanted = {
        run.pgid: Leftovers(run.job_id, run.epoch, run.pgid)
        for run in runs
        if run.epoch < before_epoch and run.host == host and run.pgid is not None
    }
    if not wanted:
        return []
    found = {group for _, group in _marked(wanted)}
    return sorted(found, key=lambda group: group.epoch)


def _live_processes() -> Iterator[tuple[int, int]]:
    """(pid, pgid) of every process that is not a zombie."""
    try:
        entries = os.listdir(PROC)
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = (PROC / entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] not in ("Z", "X"):
            yield int(entry), int(fields[2])


def _marked(wanted: dict[int, Leftovers]) -> Iterator[tuple[int, Leftovers]]:
    """(pid, group) for each live process in a wanted group that carries its marker."""
    for pid, pgid in _live_processes():
        group = wanted.get(pgid)
        if group is not None and _carries(pid, group):
            yield pid, group


def _carries(pid: int, group: Leftovers) -> bool:
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or not ours to read: not proven
        return False
    entries = set(environ.split(b"\0"))
    return (
        f"AGENTFLEET_JOB_ID={group.job_id}".encode() in entries
        and f"AGENTFLEET_LEASE_EPOCH={group.epoch}".encode() in entries
    )
