"""Jobs talk to the fleet through their lease: a `db_access: true` job gets
AGENTFLEET_SERVER and AGENTFLEET_LEASE_TOKEN, never a database URL, from a remote worker and
from a direct worker given --lease-server. The job (a real shell process running the real
console script) reads its plan's inputs, writes its ledger and its plan's fields, and
enqueues a follow-up; once its attempt has ended, its token opens nothing."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.remote.helpers import ADMIN, api, job, remote_worker, worker_token
from tests.web.live import serve_subprocess
from tests.worker.helpers import child_env, cli, stop_process, wait_until

AGENTFLEET = f"{shlex.quote(sys.executable)} -m agentfleet.cli"


def _reporting_step(out: Path, follow_up: Path) -> str:
    """The shell of a step that uses every lease command, leaving what it saw in `out`."""
    return "; ".join(
        [
            "set -e",
            f"{AGENTFLEET} lease inputs > {out}/inputs.json",
            f"{AGENTFLEET} lease write note hello > {out}/written.json",
            f"{AGENTFLEET} lease enqueue {follow_up} > {out}/follow-up.json",
            f"{AGENTFLEET} lease plan 'metadata={{\"pr\": 7}}' > /dev/null",
            f'printf %s "$AGENTFLEET_LEASE_TOKEN" > {out}/token',
            f"env | grep '^AGENTFLEET_' | cut -d= -f1 | sort > {out}/env-names",
        ]
    )


def _plan(out: Path, follow_up: Path) -> dict[str, Any]:
    return {
        "name": "report",
        "jobs": [
            {"name": "build", "engine": "shell", "cmd": "echo built"},
            {
                "name": "report",
                "engine": "shell",
                "cmd": _reporting_step(out, follow_up),
                "db_access": True,
                "depends_on": ["build"],
            },
        ],
    }


def _run_plan_and_check(server_url: str, db: str, out: Path, follow_up: Path) -> None:
    with api(server_url) as admin:
        r = admin.post("/api/plans", json=_plan(out, follow_up))
        assert r.status_code == 201, r.text
        plan_id = r.json()["id"]
        wait_until(
            lambda: admin.get(f"/api/plans/{plan_id}").json()["status"] == "completed",
            "the plan to complete",
        )
        plan = admin.get(f"/api/plans/{plan_id}").json()
        assert plan["metadata"] == {"pr": 7}
        report = next(s for s in plan["jobs"] if s["name"] == "report")
        follow_id = json.loads((out / "follow-up.json").read_text())["id"]
        wait_until(lambda: job(admin, follow_id)["status"] == "succeeded", "the follow-up")

    inputs = json.loads((out / "inputs.json").read_text())
    assert inputs["build"]["status"] == "succeeded" and inputs["build"]["stdout"] == "built\n"
    written = json.loads((out / "written.json").read_text())
    assert (written["job_id"], written["key"]) == (report["job_id"], "note")
    assert written["value"] == "hello"
    names = (out / "env-names").read_text().split()
    assert "AGENTFLEET_LEASE_TOKEN" in names and "AGENTFLEET_SERVER" in names
    assert "AGENTFLEET_DB" not in names and "AGENTFLEET_TOKEN" not in names

    # The attempt has ended: its token opens nothing (exit 1, refused), and writes nothing.
    token = (out / "token").read_text()
    env = child_env(AGENTFLEET_SERVER=server_url, AGENTFLEET_LEASE_TOKEN=token)
    late = cli("lease", "write", "note", "late", env=env)
    assert late.returncode == 1 and "no longer holds the job's lease" in late.stderr, late
    ledger = cli("--db", db, "show", str(report["job_id"]), "--json")
    assert ledger.returncode == 0, ledger.stderr


def _follow_up_file(tmp_path: Path) -> Path:
    path = tmp_path / "follow-up.md"
    path.write_text("---\nengine: shell\nqueue: default\n---\necho follow-up\n")
    return path


def test_a_remote_workers_job_reaches_the_fleet_through_its_lease(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert cli("--db", db, "init").returncode == 0
    token = worker_token(db, "box-a")
    out = tmp_path / "out"
    out.mkdir()
    with (
        serve_subprocess(db, ADMIN, tmp_path) as server,
        remote_worker(server.url, token, tmp_path / "a") as box,
    ):
        box.wait_started()
        _run_plan_and_check(server.url, db, out, _follow_up_file(tmp_path))


def test_a_direct_worker_with_a_lease_server_gives_a_token_not_the_database(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert cli("--db", db, "init").returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    with serve_subprocess(db, ADMIN, tmp_path) as server:
        log = (tmp_path / "direct.log").open("wb")
        direct = [sys.executable, "-m", "agentfleet.cli", "--db", db, "worker"]
        worker = subprocess.Popen(
            [*direct, "--lease-server", server.url, "--ttl", "5s"],
            env=child_env(),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _run_plan_and_check(server.url, db, out, _follow_up_file(tmp_path))
        finally:
            stop_process(worker)
            log.close()


def test_lease_commands_outside_a_job_say_what_is_missing() -> None:
    done = cli("lease", "show")
    assert done.returncode == 2
    assert "holds no lease on the fleet" in done.stderr and "db_access" in done.stderr
    bad = cli("lease", "plan", "metadata")
    assert bad.returncode == 2 and "FIELD=VALUE" in bad.stderr
