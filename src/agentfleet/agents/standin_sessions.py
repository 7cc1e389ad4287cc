"""The stand-in agent's sessions: kept on the machine, filed by folder, as the real CLIs
keep theirs, so that a retry can resume one only where the real CLI could.

A session is a small JSON file under ``AGENTFLEET_FAKE_AGENT_SESSIONS`` (default
``~/.cache/agentfleet-fake-agent/sessions``) holding the folder it ran in and how many
times it was resumed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["ENV_SESSIONS", "NOT_FOUND", "find", "save"]

ENV_SESSIONS = "AGENTFLEET_FAKE_AGENT_SESSIONS"
# What each CLI prints when told to resume a session it does not have (recorded from the
# real CLIs), and its exit code. "{id}" is the session asked for.
NOT_FOUND: dict[str, tuple[str, int]] = {
    "claude": ("No conversation found with session ID: {id}", 1),
    "codex": (
        "Error: thread/resume: thread/resume failed: no rollout found for thread id {id} "
        "(code -32600)",
        1,
    ),
    "gemini": ("Error resuming session: No previous sessions found for this project.", 1),
    "opencode": ("Error: Session not found", 1),
    "text": ("no such session: {id}", 1),
}
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _folder() -> Path:
    configured = os.environ.get(ENV_SESSIONS)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "agentfleet-fake-agent" / "sessions"


def _path(session_id: str) -> Path:
    return _folder() / f"{_SAFE.sub('_', session_id)}.json"


def save(session_id: str, cwd: str, persona: str, resumed: int = 0) -> None:
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    record = {"id": session_id, "cwd": cwd, "persona": persona, "resumed": resumed}
    _path(session_id).write_text(json.dumps(record), encoding="utf-8")


def find(session_id: str, cwd: str) -> dict[str, Any] | None:
    """The session, if it exists here and was started in ``cwd``."""
    try:
        record = json.loads(_path(session_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("cwd") != cwd:
        return None
    return record
