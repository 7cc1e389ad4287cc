"""The demo's worker processes: started as a user starts them, stopped as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path


def demo_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """The environment the demo's workers run in: its stand-ins first on PATH."""
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        **extra,
    }
    env.pop("AGENTFLEET_ENGINES", None)
    return env


def start_worker(
    url: str, name: str, log_file: Path, env: Mapping[str, str], *options: str
) -> subprocess.Popen[bytes]:
    """`agentfleet worker` as a process of its own, its output in `log_file`."""
    with log_file.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "agentfleet.cli", "--db", url, "worker", "--name", name,
             *options],
            env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def stop_workers(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each (running jobs get their grace), then wait; kill what will not stop."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
