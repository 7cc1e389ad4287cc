"""How a retry decides between resuming a session and starting afresh (agents/resume.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentfleet.agents.failures import diagnose
from agentfleet.agents.resume import RESUME_FAILED, plan_resume
from agentfleet.agents.streams import AgentSummary
from agentfleet.engines import AGENT_ENGINES
from agentfleet.models import Job, JobStatus, Run, RunStatus

AT = datetime(2026, 1, 1, tzinfo=UTC)
CLAUDE = AGENT_ENGINES["claude"]


def _job(payload: dict[str, Any] | None = None, engine: str = "claude") -> Job:
    return Job(
        id=7, queue="default", engine=engine, payload={"prompt": "fix it", **(payload or {})},
        status=JobStatus.RUNNING, priority=0, lock=None, max_attempts=3, attempts=2,
        lease_epoch=2, worker="w", lease_expires_at=None, timeout=None, run_at=AT,
        dedupe_key=None, rev=1, result=None, error=None, cancel_requested=False,
        created_at=AT, updated_at=AT, finished_at=None,
    )  # fmt: skip


def _run(epoch: int, session: str | None, *, host: str = "host-a", error: str = "timeout") -> Run:
    return Run(
        id=epoch, job_id=7, attempt=epoch, epoch=epoch, worker="w", status=RunStatus.FAILED,
        started_at=AT, finished_at=AT, error=error, exit_code=None, stdout=None, stderr=None,
        host=host, agent=None if session is None else {"session_id": session},
    )  # fmt: skip


def test_a_first_attempt_and_a_job_that_is_no_agent_have_nothing_to_decide() -> None:
    assert plan_resume(_job(), [], 1, "host-a", CLAUDE) is None
    assert plan_resume(_job(), [_run(1, "s1")], 1, "host-a", CLAUDE) is None  # only earlier
    assert plan_resume(_job(engine="shell"), [_run(1, "s1")], 2, "host-a", None) is None


def test_the_latest_session_on_this_host_is_resumed_with_why_the_attempt_ended() -> None:
    runs = [_run(1, "s1"), _run(2, "s2", error="exit code 3: tests failed")]
    resume = plan_resume(_job(), runs, 3, "host-a", CLAUDE)
    assert resume is not None and resume.session_id == "s2"
    assert resume.prompt == (
        "Your previous attempt at this task was stopped: exit code 3: tests failed.\n"
        "Continue from where you were and finish the task:\n\nfix it"
    )
    assert resume.as_result() == {"resumed_session": "s2"}


def test_each_reason_to_start_afresh_is_said() -> None:
    def why(job: Job, runs: list[Run], spec: Any = CLAUDE) -> str | None:
        resume = plan_resume(job, runs, 2, "host-a", spec)
        assert resume is not None and resume.session_id is None
        return resume.fresh_because

    assert why(_job(), [_run(1, None)]) == "no earlier attempt left a session to resume"
    aider = AGENT_ENGINES["aider"]
    assert why(_job(engine="aider"), [_run(1, "s1")], aider) == (
        "engine 'aider' cannot resume a session headless"
    )
    assert why(_job(), [_run(1, "s1", host="host-b")]) == (
        "the previous session is on host-b, not on host-a"
    )
    assert why(_job({"workspace": "worktree"}), [_run(1, "s1")]) == (
        "the previous session belongs to the last attempt's worktree"
    )


def test_a_session_that_failed_to_resume_is_not_tried_again() -> None:
    failed = f"{RESUME_FAILED}: No conversation found with session ID: s1"
    runs = [_run(1, "s1"), _run(2, "s1", error=failed)]
    resume = plan_resume(_job(), runs, 3, "host-a", CLAUDE)
    assert resume is not None and resume.session_id is None
    runs.append(_run(3, "s3"))
    resume = plan_resume(_job(), runs, 4, "host-a", CLAUDE)
    assert resume is not None and resume.session_id == "s3"


def test_a_resumed_run_that_found_no_session_fails_so_the_retry_starts_afresh() -> None:
    summary = AgentSummary("claude", session_id="s1", is_error=True)
    summary.error = "No conversation found with session ID: s1"
    failure = diagnose("claude", "claude", 1, "", "", summary, resumed=True)
    assert failure is not None and not failure.permanent
    assert failure.reason == f"{RESUME_FAILED}: No conversation found with session ID: s1"
    # The same words from a run that resumed nothing are an ordinary failure.
    plain = diagnose("claude", "claude", 1, "", "", summary, resumed=False)
    assert plain is not None and not plain.reason.startswith(RESUME_FAILED)


def test_every_engine_that_resumes_puts_the_session_in_its_argv() -> None:
    for name, spec in AGENT_ENGINES.items():
        if spec.resume_argv is None:
            continue
        argv = spec.render("PROMPT", session="SESSION", yolo=True)
        fresh = spec.render("PROMPT", yolo=True)
        assert "SESSION" in argv and argv[-1].endswith("PROMPT"), name
        assert "SESSION" not in fresh, name
