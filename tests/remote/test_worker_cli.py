"""`agentfleet worker --server URL --token TOKEN`: what it refuses before it starts."""

from __future__ import annotations

from pathlib import Path

from tests.remote.helpers import ADMIN, worker_token
from tests.web.live import serve_subprocess
from tests.worker.helpers import child_env, cli


def test_db_and_server_together_are_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    done = cli("--db", db, "worker", "--server", "http://127.0.0.1:9", "--token", "t" * 20)
    assert done.returncode == 2
    assert "--db and --server cannot both be given" in done.stderr
    assert not (tmp_path / "fleet.db").exists()


def test_a_server_needs_a_token_and_a_token_needs_a_server(tmp_path: Path) -> None:
    done = cli("worker", "--server", "http://127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 2 and "--server needs a token" in done.stderr
    done = cli("worker", "--token", "t" * 20, cwd=tmp_path)
    assert done.returncode == 2 and "--token: only for a remote worker" in done.stderr
    done = cli("worker", "--server", "ftp://x", "--token", "t" * 20, cwd=tmp_path)
    assert done.returncode == 2 and "http:// or https://" in done.stderr
    assert not (tmp_path / ".agentfleet").exists()  # no database was made here


def test_a_worker_token_names_its_worker(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert cli("--db", db, "init").returncode == 0
    token = worker_token(db, "box-7")
    with serve_subprocess(db, ADMIN, tmp_path) as server:
        env = child_env(AGENTFLEET_SERVER=server.url, AGENTFLEET_TOKEN=token)
        done = cli("worker", "--name", "other", "--burst", env=env, cwd=tmp_path)
        assert done.returncode == 2
        assert "leave out --name or give --name box-7" in done.stderr
        done = cli("worker", "--burst", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "box-7" in done.stderr and "worker started" in done.stderr
        env["AGENTFLEET_TOKEN"] = "aft_000000000000_" + "x" * 43
        done = cli("worker", "--burst", env=env, cwd=tmp_path)
        assert done.returncode == 1 and "refused the token" in done.stderr
