"""What a worktree job records when it is submitted: its repository, where in it it runs,
and the commit it branches from, so that every attempt (on any host, at any time) starts
from the same code, and every job of a plan from the same base. With `remote: NAME` also
the remote's URL, once the base commit is on the remote for other machines to fetch."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from agentfleet import validate
from agentfleet.errors import InvalidArgument
from agentfleet.workspaces import remote, touch
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
        for key in ("base", "worktree_setup", "branch_prefix", "touch", "remote"):
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
    return with_remote(out)


def with_remote(payload: dict[str, Any]) -> dict[str, Any]:
    """A located worktree payload with its `remote` checked: the remote's URL recorded and
    the base commit pushed there (once; again is a no-op)."""
    name = payload.get("remote")
    if name is None:
        return payload
    remote.check_name(name, "remote")
    setup = payload.get("worktree_setup")
    if isinstance(setup, Mapping) and (setup.get("copy") or setup.get("link")):
        raise InvalidArgument(
            "worktree_setup copy and link read the submitter's checkout, which a worker on "
            "another machine does not have: with 'remote', make the files with run commands"
        )
    if "remote_url" not in payload:
        repo, base = payload.get("repo"), payload.get("base_commit")
        if not isinstance(repo, str) or not isinstance(base, str):
            raise InvalidArgument("'remote' needs the job's repository and base commit")
        payload.update(remote.located(repo, name, base))
    return payload
