"""A worktree job's execution: the job's own execution, run inside a worktree of its own.

To the worker it is one Execution. In a thread of its own it makes the worktree (git work
can take seconds on a large repository, and the worker's loop must keep heartbeating),
applies `worktree_setup`, starts the job's own execution there, and when that succeeds
commits what it left and describes the change. `settled` hears whether the fenced
completion won: only then does the job's branch move to the attempt's commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from agentfleet.execution import Execution, Outcome
from agentfleet.models import RunOutput
from agentfleet.workspaces import touch, worktree
from agentfleet.workspaces.git import GitError
from agentfleet.workspaces.setup import SetupFailed, WorktreeSetup
from agentfleet.workspaces.worktree import Prepared, WorkspaceSpec

log = logging.getLogger("agentfleet.workspaces")


class WorkspaceRun:
    """Make the worktree, run the job in it, commit and describe what it changed."""

    killable = True

    def __init__(
        self,
        spec: WorkspaceSpec,
        setup: WorktreeSetup,
        *,
        job_id: int,
        epoch: int,
        attempt: int,
        build: Callable[[str, Callable[[], None]], Execution],
        env: Mapping[str, str],
        on_exit: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.setup = setup
        self.job_id, self.epoch, self.attempt = job_id, epoch, attempt
        self._build = build
        self._env = dict(env)
        self._on_exit = on_exit
        self._inner: Execution | None = None
        self._prepared: Prepared | None = None
        self._failure: Outcome | None = None
        self._fields: dict[str, object] | None = None
        self._stopped = False
        self._lease: tuple[float, float] | None = None
        self._lock = threading.Lock()
        self._inner_done = threading.Event()
        self._done = threading.Event()

    # -- the Execution protocol -------------------------------------------------------

    @property
    def output_version(self) -> int:
        inner = self._inner
        return 0 if inner is None else inner.output_version

    def output(self) -> RunOutput:
        inner = self._inner
        if inner is not None:
            return inner.output()
        failure = self._failure
        return RunOutput(stderr=None if failure is None else f"{failure.error}\n")

    @property
    def pgid(self) -> int | None:
        inner = self._inner
        return None if inner is None else inner.pgid

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name=f"workspace-{self.job_id}").start()

    def lease_held(self, since: float, ttl: float) -> None:
        with self._lock:
            self._lease = (since, ttl)  # for the job's execution, once it is built
            inner = self._inner
        if inner is not None:
            inner.lease_held(since, ttl)

    def done(self) -> bool:
        return self._done.is_set()

    def terminate(self) -> None:
        with self._lock:
            self._stopped = True
            inner = self._inner
        if inner is not None:
            inner.terminate()

    def kill(self) -> None:
        with self._lock:
            self._stopped = True
            inner = self._inner
        if inner is not None:
            inner.kill()

    def outcome(self) -> Outcome:
        if self._failure is not None:
            return self._failure
        assert self._inner is not None
        inner = self._inner.outcome()
        if not inner.ok or self._fields is None:
            return inner
        base = inner.result if isinstance(inner.result, dict) else {"value": inner.result}
        return Outcome(ok=True, result={**base, **self._fields})

    def settled(self, won: bool) -> None:
        """The fenced completion (or failure) has been written: publish and tidy up."""
        prepared = self._prepared
        try:
            if won and self._fields is not None:
                worktree.publish(self.spec, self.job_id, str(self._fields["head_commit"]))
            if prepared is not None and (won or self._fields is not None):
                worktree.discard(self.spec, prepared)  # a failed attempt's is kept to inspect
        except GitError as exc:
            log.warning("job %d: tidying its workspace failed: %s", self.job_id, exc)

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._prepared = worktree.prepare(self.spec, self.job_id, self.epoch)
            self.setup.apply(self.spec.repo, self._prepared.path, self._env)
            with self._lock:
                if self._stopped:
                    raise SetupFailed("stopped before the agent started")
                self._inner = self._build(str(self._prepared.cwd), self._inner_done.set)
                if self._lease is not None:
                    self._inner.lease_held(*self._lease)
                self._inner.start()
        except (GitError, SetupFailed, OSError) as exc:
            # The agent never ran: a setup error, not an attempt of the agent's.
            self._failure = Outcome(ok=False, error=f"workspace setup failed: {exc}", retry=False)
            self._end()
            return
        self._inner_done.wait()
        if self._inner.outcome().ok:
            try:
                fields = worktree.finish(
                    self.spec, self._prepared, self.job_id, self.epoch, self.attempt
                )
            except GitError as exc:
                self._failure = Outcome(
                    ok=False, error=f"workspace: committing the job's work failed: {exc}"
                )
            else:
                stray = touch.violation(self.spec.touch, fields["files_changed"])
                if stray is None:
                    self._fields = fields
                else:  # the same change again would break the rule again: no retry
                    self._failure = Outcome(ok=False, error=f"workspace: {stray}", retry=False)
        self._end()

    def _end(self) -> None:
        self._done.set()
        self._on_exit()
