"""Real servers and remote workers for the worker API's tests: `agentfleet serve` and
`agentfleet worker --server URL --token TOKEN` as subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx

from tests.worker.helpers import PATIENCE, child_env, cli, stop_process, wait_until

ADMIN = "remote-admin-token-0123456789"


def worker_token(db_url: str, name: str) -> str:
    """A new worker token, made as a person would: `agentfleet tokens create --role worker`."""
    done = cli("--db", db_url, "tokens", "create", "--role", "worker", "--name", name, "--json")
    assert done.returncode == 0, done.stderr
    token: str = json.loads(done.stdout)["token"]
    return token


def revoke(db_url: str, name: str) -> None:
    done = cli("--db", db_url, "tokens", "revoke", name)
    assert done.returncode == 0, done.stderr


def api(server_url: str, token: str = ADMIN) -> httpx.Client:
    return httpx.Client(
        base_url=server_url, headers={"Authorization": f"Bearer {token}"}, timeout=PATIENCE
    )


@contextmanager
def remote_worker(
    server_url: str,
    token: str,
    workdir: Path,
    *args: str,
    token_in_env: bool = False,
    log_name: str = "worker.log",
) -> Iterator[RemoteWorker]:
    """`agentfleet worker --server URL --token TOKEN` in its own working directory, with no
    database in its arguments or environment. Killed (this process only) on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = child_env()  # no AGENTFLEET_* variable: no database URL
    argv = [sys.executable, "-m", "agentfleet.cli", "worker", "--server", server_url]
    if token_in_env:
        env["AGENTFLEET_TOKEN"] = token
    else:
        argv += ["--token", token]
    log = workdir / log_name
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, *args],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    worker = RemoteWorker(proc, log)
    try:
        yield worker
    finally:
        stop_process(proc)


class RemoteWorker:
    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self) -> None:
        wait_until(
            lambda: "worker started" in self.log() or self.proc.poll() is not None,
            "the remote worker to start",
        )
        assert self.proc.poll() is None, self.log()


def job(client: httpx.Client, job_id: int) -> dict[str, Any]:
    r = client.get(f"/api/jobs/{job_id}")
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def runs(client: httpx.Client, job_id: int, output: bool = False) -> list[dict[str, Any]]:
    r = client.get(f"/api/jobs/{job_id}/runs", params={"output": str(output).lower()})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["runs"]
    return found
