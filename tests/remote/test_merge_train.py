"""A plan's merge train run by a remote worker: worktree steps, their merges behind the test
gate, an approval and the landing, every write through the server's worker API (the worker
has no database path); main moves by one commit per step."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.remote.helpers import ADMIN, api, remote_worker, worker_token
from tests.web.live import serve_subprocess
from tests.worker.helpers import cli, wait_until

PLAN = """\
name: shop
mode: supervised
merge:
  into: main
  test: python3 -m py_compile settings.py
jobs:
  - name: cart
    engine: shell
    cmd: "echo 'def count(items): return len(items)' > cart.py"
    workspace: worktree
    cwd: shop
  - name: euro
    engine: shell
    cmd: echo "CURRENCY = 'EUR'" > settings.py
    workspace: worktree
    cwd: shop
"""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_remote_worker_runs_a_merge_train_to_its_landing(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    shop.mkdir()
    _git(shop, "init", "-q", "-b", "main")
    (shop / "settings.py").write_text("CURRENCY = 'GBP'\n")
    _git(shop, "add", "-A")
    _git(shop, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "the shop")
    (tmp_path / "plan.yaml").write_text(PLAN)
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert cli("--db", db, "init").returncode == 0
    token = worker_token(db, "box-git")
    with (
        serve_subprocess(db, ADMIN, tmp_path) as server,
        api(server.url) as admin,
        remote_worker(server.url, token, tmp_path / "box") as box,
    ):
        box.wait_started()
        submitted = cli("--db", db, "plan", "submit", str(tmp_path / "plan.yaml"), cwd=tmp_path)
        assert submitted.returncode == 0, submitted.stderr
        pending = wait_until(
            lambda: admin.get("/api/plans/1").json()["pending"], "the plan to reach pre_merge"
        )
        assert pending.startswith("pre_merge")
        r = admin.post("/api/plans/1/approve", json={"checkpoint": pending})
        assert r.status_code == 200, r.text
        wait_until(lambda: admin.get("/api/plans/1").json()["status"] == "completed", "the landing")
        steps = {s["name"]: s for s in admin.get("/api/plans/1").json()["jobs"]}
    assert {s["status"] for s in steps.values()} == {"succeeded"}
    log = _git(shop, "log", "--format=%s", "main").splitlines()
    assert sorted(log[:2]) == ["agentfleet: cart (plan 1)", "agentfleet: euro (plan 1)"]
    assert log[2] == "the shop"
    assert (shop / "settings.py").read_text() == "CURRENCY = 'EUR'\n"
    assert "box-git" in box.log() and not (tmp_path / "box" / ".agentfleet").exists()
