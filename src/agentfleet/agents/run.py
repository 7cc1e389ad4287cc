"""An agent job's process: a :class:`~agentfleet.runner.ProcessRun` whose stdout is read as
it arrives, and whose end is judged by what the CLI said, not by its exit code alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentfleet.agents.failures import diagnose
from agentfleet.agents.resume import Resume
from agentfleet.agents.streams import AgentSummary, ReadingBuffer, make_reader
from agentfleet.execution import Outcome
from agentfleet.models import RunOutput
from agentfleet.output import OUTPUT_LIMIT
from agentfleet.runner import ProcessRun

__all__ = ["AgentRun"]


class AgentRun(ProcessRun):
    """Runs one agent CLI; its result carries ``agent``, the summary of what it said."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        engine: str,
        output: str = "text",
        executable: str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        limit: int = OUTPUT_LIMIT,
        on_exit: Callable[[], None] | None = None,
        resume: Resume | None = None,
    ) -> None:
        super().__init__(
            argv, executable=executable, cwd=cwd, env=env, limit=limit, on_exit=on_exit
        )
        self.engine = engine
        self.kind = output
        self.resume = resume
        self._reading = ReadingBuffer(limit, make_reader(output, engine), self.terminate)
        self.stdout = self._reading

    def summary(self) -> AgentSummary:
        """What the CLI has said so far (all of it, once the process has ended)."""
        if self.done():
            return self._reading.lines.finish()
        return self._reading.lines.reader.summary

    def output(self) -> RunOutput:
        """The output with the agent's summary so far, which the run record keeps (budgets
        sum its cost; a retry resumes its session)."""
        return dataclasses.replace(super().output(), agent=self._agent())

    def _agent(self) -> dict[str, Any]:
        found = self.summary().as_result()
        return found if self.resume is None else {**found, **self.resume.as_result()}

    def outcome(self) -> Outcome:
        code = self.exit_code
        if code is None or self.lease_ran_out:  # killed for its lease, not by what it said
            return super().outcome()
        summary = self.summary()
        resumed = self.resume is not None and self.resume.session_id is not None
        failure = diagnose(
            self.engine,
            self.kind,
            code,
            self.stdout.text(),
            self.stderr.text(),
            summary,
            resumed=resumed,
        )
        if failure is not None:
            return Outcome(ok=False, error=failure.reason, retry=not failure.permanent)
        return Outcome(ok=True, result={"exit_code": 0, "agent": self._agent()})
