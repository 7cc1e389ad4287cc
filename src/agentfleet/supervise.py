"""The job supervisor: a tiny process between a worker and its job, so a job never
outlives its worker.

The worker starts it as ``python -I -S supervise.py FD WORKER_PID``: a few standard
modules only (no ``subprocess``, ``json`` or ``socket``, whose imports cost more than the
rest of its start), so it starts fast and no job environment can break its imports. It
forks and execs the job itself. Over the socket FD it
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

Messages are lines. Worker to supervisor: ``spec <hex>`` (the job's argv, executable, cwd,
env and first deadline, marshalled), then ``lease <monotonic>``, ``term``, ``kill``.
Supervisor to worker: ``started <pid>`` or ``error <hex>`` (errno, strerror and filename,
marshalled), then ``exit <returncode> <why>`` (returncode as Popen reports it: -N for
signal N).
"""

from __future__ import annotations

import ctypes
import marshal
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False  # typing itself costs more to import than the rest of this module
if TYPE_CHECKING:
    from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
CHECK_PARENT_EVERY = 1.0  # seconds between getppid checks (a backstop for the signal)
SWEEP_GUARD = 10.0  # how long to keep killing stragglers before reporting anyway

# Why the supervisor stopped the job (the last word of the exit line).
EXITED, WORKER_GONE, LEASE_RAN_OUT = "exited", "worker-gone", "lease-ran-out"


class _suppress:  # contextlib.suppress, without importing contextlib
    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: object, tb: object) -> bool:
        return kind is not None and issubclass(kind, self.kinds)


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


def _children() -> list[int]:
    """Our children (Linux: /proc/PID/task/PID/children, or a scan of /proc)."""
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children", encoding="ascii") as file:
            return [int(pid) for pid in file.read().split()]
    except OSError:
        pass
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as file:
                    fields = file.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == me:
                found.append(int(entry))
    return found


def _group_exists(pgid: int) -> bool:
    """Whether any process is left in the group. Only a probe (signal 0): the leader has
    been reaped, so the id may no longer be the job's and is never signalled again."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_any() -> None:
    """Reap every child of ours that has exited (the leader is reaped already)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Supervisor:
    """One job's supervisor (see the module docstring)."""

    def __init__(self, control: int, worker_pid: int) -> None:
        self.control = control
        self.worker_pid = worker_pid
        self.buffer = b""
        self.deadline: float | None = None
        self.pid: int | None = None  # the job's leader
        self.code: int | None = None  # its exit status, once reaped
        self.why = EXITED
        self.worker_gone = False
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)

    # -- the socket ----------------------------------------------------------------------

    def send(self, line: str) -> None:
        data = line.encode() + b"\n"
        with _suppress(OSError):
            while data:
                data = data[os.write(self.control, data) :]

    def read_line(self) -> str | None:
        """The next whole line, blocking; None at EOF."""
        while b"\n" not in self.buffer:
            chunk = os.read(self.control, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    def _drain_control(self) -> bool:
        """Handle what the worker sent; False at EOF (the worker is gone)."""
        try:
            chunk = os.read(self.control, 65536)
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
            with _suppress(ValueError):
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
            self.pid = _spawn(spec)
        except OSError as exc:
            why = (exc.errno or 0, exc.strerror or str(exc), exc.filename)
            self.send(f"error {marshal.dumps(why).hex()}")
            return False
        self.send(f"started {self.pid}")
        return True

    def signal_group(self, sig: signal.Signals) -> None:
        """Signal the job's group; only while its leader is unreaped (so the id is ours)."""
        if self.pid is None or self.code is not None:
            return
        with _suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill_all(self, why: str) -> None:
        """SIGKILL the group, remembering why (unless the job had already ended)."""
        if self.why == EXITED and not self._exited():
            self.why = why
        self.signal_group(signal.SIGKILL)

    def _exited(self) -> bool:
        """Whether the leader has exited (left unreaped: its group id stays reserved)."""
        if self.pid is None:
            return False
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _parent_gone(self) -> bool:
        return os.getppid() != self.worker_pid

    def watch(self) -> None:
        """Wait for the job's end, killing its group if the worker goes or the lease ends."""
        assert self.pid is not None
        os.set_blocking(self.control, False)
        pidfd = _pidfd(self.pid)
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
            with _suppress(InterruptedError):
                ready, _, _ = select.select(watched, [], [], timeout)
                if self.wake_read in ready:
                    with _suppress(OSError):
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
        with _suppress(OSError):
            os.write(self.wake_write, b"!")
        if self._parent_gone():
            self._worker_is_gone()

    def sweep(self) -> None:
        """The leader has exited: kill what it left, in its group or re-parented to us,
        reap the leader, and wait (up to SWEEP_GUARD) until nothing of the job is left."""
        leader = self.pid
        assert leader is not None
        with _suppress(ProcessLookupError, PermissionError):
            os.killpg(leader, signal.SIGKILL)  # the leader is unreaped: still our id
        for pid in self._strays():
            _kill_child(pid)
        _, status = os.waitpid(leader, 0)
        self.code = os.waitstatus_to_exitcode(status)
        until = time.monotonic() + SWEEP_GUARD
        while time.monotonic() < until:
            _reap_any()
            strays = self._strays()
            for pid in strays:
                _kill_child(pid)
            if not strays and not _group_exists(leader):
                return
            time.sleep(0.005)

    def _strays(self) -> list[int]:
        """Our children other than the job's leader: processes that left the job's group
        and were re-parented to us (we are their subreaper)."""
        return [pid for pid in _children() if pid != self.pid]

    def finish(self) -> int:
        self.sweep()
        with _suppress(OSError):
            os.set_blocking(self.control, True)
        self.send(f"exit {self.code} {self.why}")
        return 0


def _spawn(spec: dict[str, Any]) -> int:
    """Fork and exec the job in a new session, stdin from /dev/null, dying with us; its pid,
    or the OSError its start met (reported back over a close-on-exec pipe)."""
    argv, executable = list(spec["argv"]), spec.get("executable")
    cwd, env = spec.get("cwd"), spec.get("env")
    program = executable or argv[0]
    search = executable is None and os.sep not in program
    failed_read, failed_write = os.pipe()  # both close on exec
    pid = os.fork()
    if pid == 0:  # the job, until it execs (we have one thread: safe to run Python here)
        try:
            os.close(failed_read)
            os.setsid()
            _die_with_parent()
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; jobs must not
                signal.signal(sig, signal.SIG_DFL)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            if cwd is not None:
                os.chdir(cwd)
            if env is None:
                (os.execvp if search else os.execv)(program, argv)
            else:
                (os.execvpe if search else os.execve)(program, argv, env)
        except OSError as exc:  # named as Popen would name it: the directory, or the program
            why = (exc.errno or 0, exc.strerror or str(exc), exc.filename or program)
            os.write(failed_write, marshal.dumps(why))
        except BaseException:
            os.write(failed_write, marshal.dumps((0, "the job could not be started", None)))
        finally:
            os._exit(127)
    os.close(failed_write)
    report = b""
    while chunk := os.read(failed_read, 65536):
        report += chunk
    os.close(failed_read)
    if not report:
        return pid  # exec succeeded: the pipe closed with nothing in it
    os.waitpid(pid, 0)
    errno, strerror, filename = marshal.loads(report)
    raise OSError(errno, strerror, filename)


def _ignore(signum: int, frame: object) -> None:
    return None


def _kill_child(pid: int) -> None:
    """SIGKILL a child of ours (and the group it leads), then reap it if it has died."""
    with _suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)  # unreaped, so this group id is still its own
        os.kill(pid, signal.SIGKILL)
    with _suppress(ChildProcessError):
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
    control, worker_pid = int(argv[1]), int(argv[2])
    os.set_inheritable(control, False)  # the job must not hold the worker's line open
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
    if line is None or supervisor._parent_gone() or not line.startswith("spec "):
        return 0  # the worker died before the job could start: start nothing
    if not supervisor.start(marshal.loads(bytes.fromhex(line[len("spec ") :]))):
        return 0
    supervisor.watch()
    return supervisor.finish()


if __name__ == "__main__":
    code = main(sys.argv)
    os._exit(code)  # nothing to flush or finalize: the worker is waiting for our exit
