"""Helpers for tests that run real processes: waiting, pids, workers, fake agents."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentfleet import Fleet, Worker

SRC = str(Path(__file__).resolve().parents[2] / "src")
PATIENCE = 30.0  # how long a wait may take before the test fails (never a speed assertion)


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = PATIENCE) -> Any:
    """Poll until predicate() is truthy and return its value; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_group(pgid: int) -> None:
    """SIGKILL one job's process group, and never anything else.

    Never shell out to `kill -9 -PGID`: some `kill` binaries read `-PGID` as an option and
    end up signalling every process (pid -1). os.killpg with a checked leader cannot.
    """
    if pgid <= 1 or pgid == os.getpgrp():
        raise ValueError(f"refusing to kill process group {pgid}")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLEET_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m agentfleet.cli ARGS` in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "agentfleet.cli", *args],
        env=env or child_env(COLUMNS="200"),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_worker(url: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """A worker process (`agentfleet worker`), its output going to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agentfleet.cli", "--db", url, "worker", *args],
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(PATIENCE)


@contextmanager
def worker_thread(fleet: Fleet, **options: Any) -> Iterator[Worker]:
    """A Worker running in a thread; stopped (at once) and joined on exit."""
    options.setdefault("poll_max", 0.2)
    worker = Worker(fleet, **options)
    thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop(now=True)
        thread.join(PATIENCE)
        assert not thread.is_alive(), "the worker did not stop"


def run_burst(fleet: Fleet, **options: Any) -> Worker:
    """Run a worker until no job is ready and none is running."""
    options.setdefault("poll_max", 0.2)
    worker = Worker(fleet, burst=True, **options)
    worker.run(handle_signals=False)
    return worker


def write_shims(bin_dir: Path, names: Sequence[str], log: Path) -> dict[str, str]:
    """Fake agent CLIs named `names`; returns the env a job needs to find and log them."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        shim = bin_dir / name
        shim.write_text(
            "#!/bin/sh\n"
            'echo "$AGENTFLEET_JOB_ID $AGENTFLEET_LEASE_EPOCH $AGENTFLEET_ATTEMPT '
            '$AGENTFLEET_DB" > "$SHIM_ENV_DIR/env.$AGENTFLEET_JOB_ID"\n'
            f'exec "{sys.executable}" -m agentfleet.fake_agent "$@"\n',
            encoding="utf-8",
        )
        shim.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
        "AGENTFLEET_FAKE_AGENT_LOG": str(log),
        "SHIM_ENV_DIR": str(bin_dir),
    }
