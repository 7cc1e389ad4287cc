"""What a fresh worktree lacks because git does not track it: `worktree_setup:` names files
to copy in (`.env`), folders to link (`node_modules`, `.venv`) and commands to run, in that
order, before the agent starts. Each failure is a setup error naming the step; the agent
never runs on a half-made workspace."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agentfleet.errors import InvalidArgument

SETUP_TIMEOUT = 30 * 60.0
_KEYS = ("copy", "link", "run")


class SetupFailed(RuntimeError):
    """A worktree could not be made ready; the message names the step and why."""


@dataclass(frozen=True)
class WorktreeSetup:
    copy: tuple[str, ...] = ()
    link: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    timeout: float = SETUP_TIMEOUT

    @classmethod
    def of(cls, value: object, what: str = "worktree_setup") -> WorktreeSetup:
        """Checked at submit: a mapping of copy / link / run, each a list of strings."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise InvalidArgument(f"{what} must be a mapping with copy, link and run lists")
        unknown = sorted(map(str, set(value) - set(_KEYS)))
        if unknown:
            raise InvalidArgument(f"{what}: unknown key(s) {unknown}; known: {list(_KEYS)}")
        lists: dict[str, tuple[str, ...]] = {}
        for key in _KEYS:
            items = value.get(key) or []
            if isinstance(items, str):
                items = [items]
            if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
                raise InvalidArgument(f"{what}.{key} must be a list of non-empty strings")
            if key != "run":
                for item in items:
                    if os.path.isabs(item) or ".." in Path(item).parts:
                        raise InvalidArgument(
                            f"{what}.{key}: {item!r} must be a path inside the repository"
                        )
            lists[key] = tuple(items)
        return cls(lists["copy"], lists["link"], lists["run"])

    def as_payload(self) -> dict[str, list[str]] | None:
        if not (self.copy or self.link or self.run):
            return None
        return {"copy": list(self.copy), "link": list(self.link), "run": list(self.run)}

    def apply(self, checkout: Path, worktree: Path, env: Mapping[str, str]) -> None:
        """Copy, link, then run, from the user's checkout into the attempt's worktree."""
        for name in self.copy:
            source, target = checkout / name, worktree / name
            if not source.exists():
                raise SetupFailed(f"copy {name}: there is no {source}")
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
        for name in self.link:
            source, target = checkout / name, worktree / name
            if not source.exists():
                raise SetupFailed(f"link {name}: there is no {source}")
            if target.is_symlink() or target.exists():
                raise SetupFailed(f"link {name}: {target} already exists in the worktree")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source.resolve(), target_is_directory=source.is_dir())
        for command in self.run:
            try:
                done = subprocess.run(
                    ["/bin/sh", "-c", command],
                    cwd=worktree,
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                )
            except subprocess.TimeoutExpired:
                raise SetupFailed(f"run {command!r}: no end after {self.timeout:g} s") from None
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
                said = " | ".join(tail) or f"exit code {done.returncode}"
                raise SetupFailed(f"run {command!r} failed (exit {done.returncode}): {said}")
