"""Run one job's subprocess in its own process group, tied to the worker's life.

* The child is started by a supervisor (:mod:`agentfleet.supervise`) in a new session, so
  it leads its own process group: signals reach it and everything it spawned, and a Ctrl-C
  aimed at the worker's terminal does not reach it (nor the supervisor).
* It never outlives the worker: when the worker dies (SIGKILL, OOM, crash) the supervisor
  kills the whole group; when the lease the worker last confirmed (``lease_held``) runs out
  before it is renewed (the worker is stopped, or cannot reach the store), likewise.
* stdin is ``/dev/null``: agent CLIs wait forever on a piped stdin.
* When the child exits, whatever it left behind (in its group, or escaped with ``setsid``)
  is killed, so its pipes close and nothing outlives the job. The group is signalled while
  the exited leader is still unreaped, so its id cannot have been reused.
* stdout and stderr are each kept capped (see :mod:`agentfleet.output`).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from agentfleet import supervise
from agentfleet.execution import Outcome
from agentfleet.models import RunOutput
from agentfleet.output import OUTPUT_LIMIT, TailBuffer

__all__ = ["ProcessRun", "describe_exit"]

# After the child exits, how long to wait for its pipes to drain (a process that holds
# them and is beyond the supervisor's reach may keep them open).
READER_GRACE = 2.0
# How long the supervisor may take to start the job before the start counts as failed.
START_GUARD = 60.0
# The supervisor kills the job this long before the lease it last heard of runs out, so
# that the group is gone before another worker can take the job over.
LEASE_MARGIN_SHARE = 0.1
LEASE_MARGIN_MAX = 1.0
_SUPERVISOR = os.path.abspath(supervise.__file__)


def lease_deadline(since: float, ttl: float) -> float:
    """When (time.monotonic) to kill a job whose lease was granted or renewed by a call made
    at `since` for `ttl` seconds: the store set the expiry no earlier than that call."""
    return since + ttl - min(LEASE_MARGIN_MAX, ttl * LEASE_MARGIN_SHARE)


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
        self._supervisor: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._pid: int | None = None
        self._code: int | None = None
        self._why = supervise.EXITED
        self._deadline: float | None = None
        self._buffered = b""  # read past the supervisor's first answer
        self._send_lock = threading.Lock()
        self._closed = False
        self._done = threading.Event()
        self._readers: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        """The job's own process (its group's leader), once started."""
        return self._pid

    @property
    def pgid(self) -> int | None:
        return self._pid

    @property
    def supervisor_pid(self) -> int | None:
        return None if self._supervisor is None else self._supervisor.pid

    @property
    def exit_code(self) -> int | None:
        return self._code if self._done.is_set() else None

    @property
    def output_version(self) -> int:
        return self.stdout.version + self.stderr.version

    @property
    def lease_ran_out(self) -> bool:
        """Whether the supervisor killed it because its lease was not renewed in time."""
        return self._done.is_set() and self._why == supervise.LEASE_RAN_OUT

    def start(self) -> None:
        """Spawn the supervisor and, through it, the child; OSError when it cannot start."""
        ours, theirs = socket.socketpair()
        try:
            self._supervisor = subprocess.Popen(
                [sys.executable, "-I", "-S", _SUPERVISOR, str(theirs.fileno()), str(os.getpid())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=(theirs.fileno(),),
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self._control = ours
        spec = {
            "argv": self.argv,
            "executable": self.executable,
            "cwd": self.cwd,
            "env": self.env,
            "deadline": self._deadline,
        }
        reply = self._handshake(f"spec {marshal.dumps(spec).hex()}")
        word, _, rest = reply.partition(" ")
        if word != "started":
            said = self._abandon()
            raise _start_error(rest, said)
        self._pid = int(rest)
        proc = self._supervisor
        assert proc.stdout is not None and proc.stderr is not None
        for stream, sink in ((proc.stdout, self.stdout), (proc.stderr, self.stderr)):
            reader = threading.Thread(target=_pump, args=(stream, sink), daemon=True)
            reader.start()
            self._readers.append(reader)
        threading.Thread(target=self._wait, daemon=True, name=f"wait-{self._pid}").start()

    def _handshake(self, spec: str) -> str:
        """Send the spec; the supervisor's first answer (``error`` when there is none)."""
        control = self._control
        assert control is not None
        control.settimeout(START_GUARD)
        try:
            control.sendall(spec.encode() + b"\n")
            line, self._buffered = _next_line(control, b"")
        except OSError as exc:
            line = f"error the job's supervisor did not answer: {exc}"
        finally:
            with contextlib.suppress(OSError):
                control.settimeout(None)
        if line is None:
            line = "error the job's supervisor exited before starting the job"
        return line

    def _abandon(self) -> str:
        """The job never started: let the supervisor go; the last line it printed."""
        proc = self._supervisor
        if self._control is not None:
            self._control.close()
        if proc is None:
            return ""
        try:
            _, err = proc.communicate(timeout=START_GUARD)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        lines = (err or b"").decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def _wait(self) -> None:
        control, proc = self._control, self._supervisor
        assert control is not None and proc is not None
        buffered = self._buffered
        while True:
            line, buffered = _next_line(control, buffered)
            if line is None:
                break
            word, _, rest = line.partition(" ")
            if word == "exit":
                code, _, why = rest.partition(" ")
                self._code, self._why = int(code), why or supervise.EXITED
                break
        proc.wait()
        if self._code is None:  # the supervisor itself was killed
            self._code = proc.returncode
        with self._send_lock:
            self._closed = True
            control.close()
        for reader in self._readers:
            reader.join(READER_GRACE)
        self._done.set()
        if self._on_exit is not None:
            self._on_exit()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _send(self, line: str) -> None:
        control = self._control
        if control is None or self._pid is None:
            return
        with self._send_lock, contextlib.suppress(OSError):
            if not self._closed:
                control.sendall(line.encode() + b"\n")

    def terminate(self) -> None:
        self._send("term")

    def kill(self) -> None:
        self._send("kill")

    def lease_held(self, since: float, ttl: float) -> None:
        """The lease was granted or renewed by a call made at `since` (time.monotonic) for
        `ttl` seconds: the supervisor kills the job if no renewal follows in time."""
        deadline = lease_deadline(since, ttl)
        if self._deadline is not None and deadline <= self._deadline:
            return
        self._deadline = deadline
        self._send(f"lease {deadline!r}")

    def output(self) -> RunOutput:
        return RunOutput(self.exit_code, self.stdout.text(), self.stderr.text())

    def settled(self, won: bool) -> None:
        return None  # a plain process has nothing to publish

    def outcome(self) -> Outcome:
        code = self.exit_code
        if code is None:
            return Outcome(ok=False, error="the process has not finished")
        if self.lease_ran_out:
            return Outcome(ok=False, error=LEASE_RAN_OUT_ERROR, retry=True)
        if code == 0:
            return Outcome(ok=True, result={"exit_code": 0})
        return Outcome(ok=False, error=describe_exit(code), retry=True)


LEASE_RAN_OUT_ERROR = (
    "killed: its lease ran out before the worker renewed it (worker stopped, or the store "
    "unreachable)"
)


def _start_error(reported: str, said: str) -> OSError:
    """The OSError the job's start raised in the supervisor (as Popen would have raised it
    here), or one saying why the supervisor could not start it."""
    try:
        errno, strerror, filename = marshal.loads(bytes.fromhex(reported))
        return OSError(int(errno), str(strerror), filename)
    except (ValueError, TypeError, EOFError):
        return OSError(f"{reported}: {said}" if said else reported)


def _next_line(control: socket.socket, buffered: bytes) -> tuple[str | None, bytes]:
    """The next line from the socket and what was read past it; None at EOF."""
    while b"\n" not in buffered:
        try:
            chunk = control.recv(65536)
        except OSError:
            return None, b""
        if not chunk:
            return None, b""
        buffered += chunk
    line, _, rest = buffered.partition(b"\n")
    return line.decode(), rest


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
