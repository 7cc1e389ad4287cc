"""The job supervisor: a tiny process between a worker and its job, so a job never
outlives its worker.

The worker starts it as ``python -I -S supervise.py FD WORKER_PID`` (standard library only,
so it starts fast and no job environment can break its imports). Over the socket FD it
reads the job's spec, starts the job in a process group of its own and reports its pid;
then it waits for whichever comes first:

* the job exits: whatever it left behind is killed, and the exit status is reported;
* the socket reaches EOF, or the supervisor is re-parented (the worker died: SIGKILL, OOM,
  crash; ``PR_SET_PDEATHSIG`` and a once-a-second ``getppid`` both notice): the job's
  whole group is killed;
* the lease deadline the worker last sent passes (the worker is stopped, frozen, or
  cannot reach the store): the group is killed before the lease can be taken over;
* ``term`` / ``kill`` from the worker: the group is signalled.

The supervisor is the job's parent and a child subreaper, so it signals the group only
while the leader is unreaped (its id cannot be reused), and processes that left the group
(``setsid``, double forks) are re-parented to it and killed with the rest. The job gets
``PR_SET_PDEATHSIG`` too: should the supervisor itself be SIGKILLed, its leader dies.

Messages are lines. Worker to supervisor: one JSON spec, then ``lease <monotonic>``,
``term``, ``kill``. Supervisor to worker: ``started <pid>`` or ``error <json>`` (errno,
strerror, filename), then ``exit <returncode> <why>`` (returncode as Popen reports it: -N
for signal N).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
CHECK_PARENT_EVERY = 1.0  # seconds between getppid checks (a backstop for the signal)
SWEEP_GUARD = 10.0  # how long to keep killing stragglers before reporting anyway

# Why the supervisor stopped the job (the last word of the exit line).
EXITED, WORKER_GONE, LEASE_RAN_OUT = "exited", "worker-gone", "lease-ran-out"


def _load_prctl() -> Any:
    """libc's prctl(2) on Linux, loaded once (before any fork); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _prctl(option: int, value: int) -> bool:
    """prctl(2); False (and nothing done) where there is none."""
    return _PRCTL is not None and int(_PRCTL(option, value, 0, 0, 0)) == 0


def _die_with_parent() -> None:
    """In the job, before exec: SIGKILL when the supervisor dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _processes() -> list[tuple[int, str, int, int]]:
    """(pid, state, ppid, pgid) of every process (Linux /proc; empty elsewhere)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found.append((int(entry), fields[0], int(fields[1]), int(fields[2])))
    return found


class Supervisor:
    """One job's supervisor (see the module docstring)."""

    def __init__(self, control: socket.socket, worker_pid: int) -> None:
        self.control = control
        self.worker_pid = worker_pid
        self.buffer = b""
        self.deadline: float | None = None
        self.job: subprocess.Popen[bytes] | None = None
        self.why = EXITED
        self.worker_gone = False
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)

    # -- the socket ----------------------------------------------------------------------

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError):
            self.control.sendall(line.encode() + b"\n")

    def read_line(self) -> str | None:
        """The next whole line, blocking; None at EOF."""
        while b"\n" not in self.buffer:
            chunk = self.control.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    def _drain_control(self) -> bool:
        """Handle what the worker sent; False at EOF (the worker is gone)."""
        try:
            chunk = self.control.recv(65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        self.buffer += chunk
        while b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            self.command(line.decode().strip())
        return True

    def command(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "lease":
            with contextlib.suppress(ValueError):
                self.deadline = float(rest)
        elif word == "term":
            self.signal_group(signal.SIGTERM)
        elif word == "kill":
            self.signal_group(signal.SIGKILL)

    # -- the job -------------------------------------------------------------------------

    def start(self, spec: dict[str, Any]) -> bool:
        """Start the job; report its pid, or why it could not start."""
        if spec.get("deadline") is not None:
            self.deadline = float(spec["deadline"])
        try:
            self.job = subprocess.Popen(
                spec["argv"],
                executable=spec.get("executable"),
                cwd=spec.get("cwd"),
                env=spec.get("env"),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_die_with_parent,  # the supervisor has one thread: safe here
            )
        except OSError as exc:
            why = {"errno": exc.errno or 0, "strerror": exc.strerror or str(exc)}
            self.send(f"error {json.dumps({**why, 'filename': exc.filename})}")
            return False
        self.send(f"started {self.job.pid}")
        return True

    def signal_group(self, sig: signal.Signals) -> None:
        """Signal the job's group; only while its leader is unreaped (so the id is ours)."""
        job = self.job
        if job is None or job.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.pid, sig)

    def kill_all(self, why: str) -> None:
        """SIGKILL the group, remembering why (unless the job had already ended)."""
        if self.why == EXITED and not self._exited():
            self.why = why
        self.signal_group(signal.SIGKILL)

    def _exited(self) -> bool:
        """Whether the leader has exited (left unreaped: its group id stays reserved)."""
        job = self.job
        if job is None:
            return False
        try:
            info = os.waitid(os.P_PID, job.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _parent_gone(self) -> bool:
        return os.getppid() != self.worker_pid

    def watch(self) -> None:
        """Wait for the job's end, killing its group if the worker goes or the lease ends."""
        job = self.job
        assert job is not None
        self.control.setblocking(False)
        pidfd = _pidfd(job.pid)
        next_parent_check = time.monotonic() + CHECK_PARENT_EVERY
        while not self._exited():
            now = time.monotonic()
            waits = [next_parent_check - now]
            if self.deadline is not None:
                waits.append(self.deadline - now)
            if pidfd is None:
                waits.append(0.05)
            timeout = max(0.0, min(waits))
            watched: list[Any] = [self.wake_read]
            if not self.worker_gone:
                watched.append(self.control)
            if pidfd is not None:
                watched.append(pidfd)
            with contextlib.suppress(InterruptedError):
                ready, _, _ = select.select(watched, [], [], timeout)
                if self.wake_read in ready:
                    with contextlib.suppress(OSError):
                        os.read(self.wake_read, 4096)
                if self.control in ready and not self._drain_control():
                    self._worker_is_gone()
            now = time.monotonic()
            if now >= next_parent_check:
                next_parent_check = now + CHECK_PARENT_EVERY
                if self._parent_gone():
                    self._worker_is_gone()
            if self.deadline is not None and now >= self.deadline:
                self.deadline = None
                self.kill_all(LEASE_RAN_OUT)
        if pidfd is not None:
            os.close(pidfd)

    def _worker_is_gone(self) -> None:
        self.worker_gone = True
        self.kill_all(WORKER_GONE)

    def on_death_signal(self, signum: int, frame: object) -> None:
        """PR_SET_PDEATHSIG arrives when the thread that started us ends; the worker may
        still be alive, so getppid decides (the loop checks it on waking)."""
        with contextlib.suppress(OSError):
            os.write(self.wake_write, b"!")
        if self._parent_gone():
            self._worker_is_gone()

    def sweep(self) -> None:
        """The leader has exited: kill what it left, in its group or re-parented to us."""
        job = self.job
        assert job is not None
        until = time.monotonic() + SWEEP_GUARD
        me = os.getpid()
        while True:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)  # the leader is unreaped: still our id
            processes = _processes()
            strays = [pid for pid, _, ppid, _ in processes if ppid == me and pid != job.pid]
            for pid in strays:
                _kill_child(pid)
            in_group = any(pgid == job.pid and state != "Z" for _, state, _, pgid in processes)
            if (not strays and not in_group) or time.monotonic() > until:
                return
            time.sleep(0.01)

    def finish(self) -> int:
        job = self.job
        assert job is not None
        self.sweep()
        code = job.wait()
        with contextlib.suppress(OSError):
            self.control.setblocking(True)
        self.send(f"exit {code} {self.why}")
        return 0


def _ignore(signum: int, frame: object) -> None:
    return None


def _kill_child(pid: int) -> None:
    """SIGKILL a child of ours (and the group it leads), then reap it if it has died."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)  # unreaped, so this group id is still its own
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux 5.3+), or None."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def main(argv: list[str]) -> int:
    fd, worker_pid = int(argv[1]), int(argv[2])
    control = socket.socket(fileno=fd)
    supervisor = Supervisor(control, worker_pid)
    for sig in (signal.SIGINT, signal.SIGHUP):
        # Caught, not ignored: a caught signal is reset for the job when it execs, an
        # ignored one would stay ignored in the job. (In a session of its own, no terminal
        # sends these here anyway.)
        signal.signal(sig, _ignore)
    signal.signal(signal.SIGTERM, supervisor.on_death_signal)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    line = supervisor.read_line()
    if line is None or supervisor._parent_gone():
        return 0  # the worker died before the job could start: start nothing
    if not supervisor.start(json.loads(line)):
        return 0
    supervisor.watch()
    return supervisor.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
