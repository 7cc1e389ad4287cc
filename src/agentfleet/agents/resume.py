"""Whether a retried agent job continues its earlier session or starts afresh.

A CLI keeps its sessions on the machine it ran on, filed under the folder it ran in, so a
retry resumes only on the same host, in the same folder (a worktree job gets a new worktree
per attempt, so it starts afresh), with an engine that can resume headless
(``EngineSpec.resume_argv``). The resumed agent is told why its previous attempt ended.
Either way the run records what happened (``resumed_session`` or ``fresh_because``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentfleet.engines import EngineSpec
from agentfleet.models import Job, Run

__all__ = ["RESUME_FAILED", "Resume", "plan_resume", "resume_prompt"]

# How a failed resume reads in the run's error (see agents/failures.py): that session is
# never tried again.
RESUME_FAILED = "resume failed"


@dataclass(frozen=True)
class Resume:
    """What a retry does: continue ``session_id`` (with ``prompt``), or start afresh."""

    session_id: str | None = None
    prompt: str | None = None
    fresh_because: str | None = None

    def as_result(self) -> dict[str, Any]:
        """What the run's ``agent`` record says about it."""
        if self.session_id is not None:
            return {"resumed_session": self.session_id}
        return {"fresh_because": self.fresh_because}


def resume_prompt(previous: Run, prompt: str) -> str:
    """The message a resumed session gets: why the last attempt ended, then the task."""
    why = previous.error or f"it ended {previous.status.value}"
    return (
        f"Your previous attempt at this task was stopped: {why}.\n"
        "Continue from where you were and finish the task:\n\n"
        f"{prompt}"
    )


def _session(run: Run) -> str | None:
    agent = run.agent if isinstance(run.agent, Mapping) else {}
    session = agent.get("session_id")
    return session if isinstance(session, str) and session else None


def plan_resume(
    job: Job, runs: Sequence[Run], epoch: int, host: str, spec: EngineSpec | None
) -> Resume | None:
    """How attempt ``epoch`` of ``job`` (an agent job when ``spec`` is its engine) starts on
    ``host``; None for a first attempt and for jobs that are not agents."""
    earlier = [r for r in runs if r.epoch < epoch]
    if not earlier or spec is None:
        return None
    dead = {_session(r) for r in earlier if (r.error or "").startswith(RESUME_FAILED)}
    previous = next((r for r in reversed(earlier) if _session(r) and _session(r) not in dead), None)
    if previous is None:
        return Resume(fresh_because="no earlier attempt left a session to resume")
    if spec.resume_argv is None:
        return Resume(fresh_because=f"engine {job.engine!r} cannot resume a session headless")
    if previous.host != host:
        where = previous.host or "an unknown host"
        return Resume(fresh_because=f"the previous session is on {where}, not on {host}")
    if job.payload.get("workspace") == "worktree":
        return Resume(fresh_because="the previous session belongs to the last attempt's worktree")
    prompt = job.payload.get("prompt")
    if not isinstance(prompt, str):
        return Resume(fresh_because="the job has no prompt to resume with")
    return Resume(session_id=_session(previous), prompt=resume_prompt(previous, prompt))
