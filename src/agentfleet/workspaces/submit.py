"""What a worktree job records when it is submitted: its repository, where in it it runs,
and the commit it branches from, so that every attempt (on any host, at any time) starts
from the same code, and every job of a plan from the same base."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from agentfleet import validate
from agentfleet.errors import InvalidArgument
from agentfleet.workspaces import touch
from agentfleet.workspaces.setup import WorktreeSetup
from agentfleet.workspaces.worktree import WORKTREE, locate

WORKSPACES = ("none", WORKTREE)


def with_workspace(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload with its workspace checked and, for a worktree, located (once)."""
    out = dict(payload)
    kind = out.get("workspace", "none")
    if kind not in WORKSPACES:
        raise InvalidArgument(f"workspace must be one of {', '.join(WORKSPACES)}, not {kind!r}")
    if kind != WORKTREE:
        for key in ("base", "worktree_setup", "branch_prefix", "touch"):
            if key in out:
                raise InvalidArgument(f"{key!r} applies only to workspace: worktree jobs")
        return out
    setup = WorktreeSetup.of(out.get("worktree_setup"))
    if setup.as_payload() is not None:
        out["worktree_setup"] = setup.as_payload()
    if out.get("touch") is not None:
        out["touch"] = list(touch.parse(out["touch"]))
    base = out.get("base")
    if base is not None:
        validate.name(base, "base")
    prefix = out.get("branch_prefix")
    if prefix is not None and not (isinstance(prefix, str) and prefix.endswith("/")):
        raise InvalidArgument("branch_prefix must be text ending in '/', e.g. 'agentfleet/'")
    if "base_commit" not in out:
        cwd = out.get("cwd") or os.getcwd()
        if not isinstance(cwd, str):
            raise InvalidArgument("payload 'cwd' must be a folder path")
        out.update(locate(cwd, base))
        out["cwd"] = os.path.abspath(cwd)
    return out
