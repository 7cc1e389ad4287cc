"""A worktree job's change as people read it: `diff`, `show`, the dashboard's job page."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agentfleet.cli import app
from tests.conftest import StoreEnv
from tests.web.conftest import make_web
from tests.worker.helpers import run_burst
from tests.workspaces.repos import make_repo


def _cli(url: str, *args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(app, ["--db", url, *args], catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


def _changed_job(store: StoreEnv, tmp_path: Path) -> int:
    repo = make_repo(tmp_path / "repo")
    cmd = "printf 'print(\"v2\")\\n' > src/app.py; echo note > NOTES.md"
    job = store.fleet.enqueue("shell", {"cmd": cmd, "cwd": str(repo), "workspace": "worktree"})
    run_burst(store.fleet)
    return job.id


def test_diff_prints_the_patch_and_the_stat(store: StoreEnv, tmp_path: Path) -> None:
    job_id = _changed_job(store, tmp_path)
    code, out, _ = _cli(store.url, "diff", str(job_id))
    assert code == 0
    assert "-print('v1')" in out and '+print("v2")' in out and "+note" in out
    code, out, _ = _cli(store.url, "diff", str(job_id), "--stat")
    assert "NOTES.md  +1 -0" in out and "src/app.py  +1 -1" in out and "2 files, +2 -1" in out
    code, out, _ = _cli(store.url, "diff", str(job_id), "--json")
    body = json.loads(out)
    assert body["branch"] == f"agentfleet/job-{job_id}"
    assert [f["path"] for f in body["files"]] == ["NOTES.md", "src/app.py"]


def test_show_names_the_branch_and_the_change(store: StoreEnv, tmp_path: Path) -> None:
    job_id = _changed_job(store, tmp_path)
    code, out, _ = _cli(store.url, "show", str(job_id))
    assert code == 0
    assert f"agentfleet/job-{job_id}" in out and "2 files, +2 -1" in out
    assert f"agentfleet diff {job_id}" in out


def test_diff_of_a_job_without_a_workspace_says_why(store: StoreEnv) -> None:
    job = store.fleet.enqueue("shell", {"cmd": "true"})
    run_burst(store.fleet)
    code, _, err = _cli(store.url, "diff", str(job.id))
    assert code == 2 and "only a succeeded 'workspace: worktree' job" in err


def test_the_job_page_shows_the_diff_per_file_coloured(store: StoreEnv, tmp_path: Path) -> None:
    job_id = _changed_job(store, tmp_path)
    web = make_web(store)
    html = web.client.get(f"/jobs/{job_id}").text
    assert 'id="job-change"' in html and f"agentfleet/job-{job_id}" in html
    assert '<span class="d-add">+note</span>' in html
    assert '<span class="d-del">-print(&#39;v1&#39;)</span>' in html
    assert html.count('class="file-diff"') == 2


def test_workspaces_lists_and_cleans_what_attempts_left(store: StoreEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    failed = store.fleet.enqueue(
        "shell", {"cmd": "exit 1", "cwd": str(repo), "workspace": "worktree"}, max_attempts=1
    )
    run_burst(store.fleet)
    _, out, _ = _cli(store.url, "workspaces", "ls", "--repo", str(repo), "--json")
    [item] = json.loads(out)
    assert (item["job"], item["status"], item["running"]) == (failed.id, "failed", False)
    _, out, _ = _cli(store.url, "workspaces", "clean", "--repo", str(repo))
    assert "removed 0 worktree(s)" in out  # a failed job's worktree is kept to inspect
    _, out, _ = _cli(store.url, "workspaces", "clean", "--repo", str(repo), "--failed")
    assert "removed 1 worktree(s)" in out
    _, out, _ = _cli(store.url, "workspaces", "ls", "--repo", str(repo))
    assert "no agentfleet worktrees here" in out


def test_a_new_attempt_clears_what_an_earlier_attempt_left_on_this_host(tmp_path: Path) -> None:
    from agentfleet.workspaces import worktree

    repo = make_repo(tmp_path / "repo")
    spec = worktree.WorkspaceSpec.of({"workspace": "worktree", **worktree.locate(repo)})
    assert spec is not None
    crashed = worktree.prepare(spec, job_id=8, epoch=1)  # its worker died here
    (crashed.cwd / "half.txt").write_text("half done\n")
    again = worktree.prepare(spec, job_id=8, epoch=2)
    assert not crashed.path.exists() and again.path.exists()
    assert not (again.cwd / "half.txt").exists()
