"""How a worker runs the merge train's jobs: `merge_job` as a process of the job's own, its
report read back into the job's result (or, when it stopped the train, its error)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from agentfleet.execution import Outcome
from agentfleet.models import RunOutput
from agentfleet.runner import ProcessRun
from agentfleet.workspaces.merge_job import CONFLICT, IN_THE_WAY, MOVED, RESULT_MARK, TEST_FAILED
from agentfleet.workspaces.train_plan import TRAIN_ENGINES

__all__ = ["TRAIN_ENGINES", "TrainRun", "last_report"]


def last_report(stdout: str | None) -> dict[str, Any] | None:
    """The `AGENTFLEET_RESULT {json}` line a merge job printed last, if any."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(RESULT_MARK):
            try:
                value = json.loads(line[len(RESULT_MARK) :])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


class TrainRun:
    """A merge or land job's process, whose outcome is what it reported."""

    killable = True

    def __init__(
        self,
        engine: str,
        payload: Mapping[str, Any],
        *,
        cwd: str,
        env: Mapping[str, str],
        limit: int,
        on_exit: Callable[[], None],
    ) -> None:
        self._process = ProcessRun(
            [sys.executable, "-m", "agentfleet.workspaces.train_main", engine],
            cwd=cwd,
            env={**env, "AGENTFLEET_PAYLOAD": json.dumps(dict(payload))},
            limit=limit,
            on_exit=on_exit,
        )

    @property
    def output_version(self) -> int:
        return self._process.output_version

    @property
    def pgid(self) -> int | None:
        return self._process.pgid

    def start(self) -> None:
        self._process.start()

    def lease_held(self, since: float, ttl: float) -> None:
        self._process.lease_held(since, ttl)

    def done(self) -> bool:
        return self._process.done()

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()

    def output(self) -> RunOutput:
        return self._process.output()

    def settled(self, won: bool) -> None:
        return None

    def outcome(self) -> Outcome:
        ran = self._process.outcome()
        out = self._process.output()
        reported = last_report(out.stdout)
        if ran.ok:
            return Outcome(ok=True, result=reported or {"exit_code": 0})
        code = self._process.exit_code
        said = (out.stderr or "").strip().splitlines()
        reason = said[-1] if said else ran.error or "failed"
        # A conflict, a failing test gate or a dirty checkout waits for a person; a branch
        # that moved underneath, or anything unexpected, is tried again.
        final = code in (CONFLICT, TEST_FAILED, IN_THE_WAY)
        return Outcome(ok=False, error=reason, retry=not final or code == MOVED)
