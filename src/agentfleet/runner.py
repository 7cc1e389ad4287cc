"""Run one job's subprocess in its own process group and capture its output.

* The child starts a new session (``start_new_session=True``), so it leads its own process
  group: signals reach it and everything it spawned, and a Ctrl-C aimed at the worker's
  terminal does not reach it.
* stdin is ``/dev/null``: agent CLIs wait forever on a piped stdin.
* When the child exits, whatever it left behind in its group (a backgrounded server, a stuck
  grandchild) is killed, so its pipes close and nothing outlives the job. The group is
  signalled while the exited leader is still unreaped, so its id cannot have been reused.
* stdout and stderr are each kept capped (see :mod:`agentfleet.output`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from agentfleet.execution import Outcome
from agentfleet.models import RunOutput
from agentfleet.output import OUTPUT_LIMIT, TailBuffer

__all__ = ["ProcessRun", "describe_exit"]

# After the child exits, how long to wait for its pipes to drain (a process that left the
# group on purpose, with setsid, may keep them open).
READER_GRACE = 2.0


def describe_exit(code: int) -> str:
    """``exit code 3`` or ``killed by signal SIGKILL`` (Popen reports signals as -N)."""
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by signal {name}"


class ProcessRun:
    """A subprocess the worker watches; ``on_exit`` is called (from a thread) when it ends."""

    killable = True

    def __init__(
        self,
        argv: Sequence[str],
        *,
        executable: str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        limit: int = OUTPUT_LIMIT,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.executable = executable
        self.cwd = cwd
        self.env = None if env is None else dict(env)
        self.stdout = TailBuffer(limit)
        self.stderr = TailBuffer(limit)
        self._on_exit = on_exit
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._reaped = False
        self._done = threading.Event()
        self._readers: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def exit_code(self) -> int | None:
        return self._proc.returncode if self._done.is_set() and self._proc else None

    @property
    def output_version(self) -> int:
        return self.stdout.version + self.stderr.version

    def start(self) -> None:
        """Spawn the child; raises OSError when it cannot be started."""
        self._proc = subprocess.Popen(
            self.argv,
            executable=self.executable,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for stream, sink in ((self._proc.stdout, self.stdout), (self._proc.stderr, self.stderr)):
            reader = threading.Thread(target=_pump, args=(stream, sink), daemon=True)
            reader.start()
            self._readers.append(reader)
        threading.Thread(target=self._wait, daemon=True, name=f"wait-{self._proc.pid}").start()

    def _wait(self) -> None:
        proc = self._proc
        assert proc is not None
        waitid = getattr(os, "waitid", None)
        if waitid is not None:
            # Wait for the exit but leave the leader unreaped (WNOWAIT): until it is reaped
            # its pid, which is also the group id, cannot be reused by another process.
            with contextlib.suppress(ChildProcessError):
                waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            with self._lock:
                _killpg(proc.pid, signal.SIGKILL)  # whatever the job left in its group
                proc.wait()
                self._reaped = True
        else:  # pragma: no cover - platforms without waitid
            proc.wait()
            with self._lock:
                self._reaped = True
                _killpg(proc.pid, signal.SIGKILL)
        for reader in self._readers:
            reader.join(READER_GRACE)
        self._done.set()
        if self._on_exit is not None:
            self._on_exit()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _signal(self, sig: signal.Signals) -> None:
        with self._lock:
            if self._proc is not None and not self._reaped:
                _killpg(self._proc.pid, sig)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def output(self) -> RunOutput:
        return RunOutput(self.exit_code, self.stdout.text(), self.stderr.text())

    def settled(self, won: bool) -> None:
        return None  # a plain process has nothing to publish

    def outcome(self) -> Outcome:
        code = self.exit_code
        if code is None:
            return Outcome(ok=False, error="the process has not finished")
        if code == 0:
            return Outcome(ok=True, result={"exit_code": 0})
        return Outcome(ok=False, error=describe_exit(code), retry=True)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    if pgid <= 1 or pgid == os.getpgrp():  # never ourselves, never "every process"
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _pump(stream: IO[bytes], sink: TailBuffer) -> None:
    try:
        while True:
            chunk = stream.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                break
            sink.write(chunk)
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            stream.close()
