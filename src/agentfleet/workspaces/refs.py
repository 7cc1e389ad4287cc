"""Where the merge train's branches live: in the repository itself, or on a remote.

Either way a branch moves only from the commit the train read to the one it made: locally
by `git update-ref REF NEW OLD`, on a remote by `git push --force-with-lease=REF:OLD`, which
the remote checks the same way. The train is written once, against this interface.
"""

from __future__ import annotations

from typing import Protocol

from agentfleet.workspaces.git import ZERO, Git
from agentfleet.workspaces.remote import Clone


class Refs(Protocol):
    @property
    def local(self) -> bool:
        """Whether the branches are the user's own (a checkout of one may need to move)."""
        ...

    def value(self, ref: str) -> str | None:
        """The commit `ref` names now (present here to work with), or None."""
        ...

    def swap(self, ref: str, new: str, old: str | None, message: str) -> bool:
        """Move `ref` to `new` only if it is at `old` (None: only if it does not exist)."""
        ...

    def bring(self, commit: str, *hints: str) -> None:
        """Make `commit` present here (`hints`: refs that may hold it)."""
        ...


class LocalRefs:
    """The branches of the repository the train works in."""

    local = True

    def __init__(self, git: Git) -> None:
        self.git = git

    def value(self, ref: str) -> str | None:
        return self.git.ref_value(ref)

    def swap(self, ref: str, new: str, old: str | None, message: str) -> bool:
        return self.git.update_ref(ref, new, old or ZERO, message)

    def bring(self, commit: str, *hints: str) -> None:
        return None  # every commit of the plan is here already


class RemoteRefs:
    """The branches of a remote, worked on in this machine's clone of it."""

    local = False

    def __init__(self, clone: Clone) -> None:
        self.clone = clone

    def value(self, ref: str) -> str | None:
        return self.clone.fetch(ref)

    def swap(self, ref: str, new: str, old: str | None, message: str) -> bool:
        return self.clone.swap(ref, new, old)

    def bring(self, commit: str, *hints: str) -> None:
        self.clone.bring(commit, *hints)
