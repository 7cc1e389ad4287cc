"""`touch: [globs]`: a worktree job that changes files outside its globs fails, naming them,
and its commit never reaches the job's branch."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet import JobStatus
from agentfleet.errors import InvalidArgument
from agentfleet.jobfile import parse_job_text
from agentfleet.workspaces import touch
from tests.conftest import StoreEnv
from tests.worker.helpers import run_burst
from tests.workspaces.repos import git, make_repo


@pytest.mark.parametrize(
    ("glob", "path", "allowed"),
    [
        ("src/**", "src/app.py", True),
        ("src/**", "src/deep/er/x.py", True),
        ("src/**", "srcx/app.py", False),
        ("src/", "src/a/b.txt", True),
        ("*.md", "README.md", True),
        ("*.md", "docs/guide.md", False),
        ("**/*.md", "docs/guide.md", True),
        ("**/*.md", "README.md", True),
        ("docs/?.txt", "docs/a.txt", True),
        ("docs/?.txt", "docs/ab.txt", False),
        ("tests/test_[ab].py", "tests/test_a.py", True),
        ("tests/test_[!ab].py", "tests/test_a.py", False),
        ("tests/test_[a-c].py", "tests/test_b.py", True),
        ("a+b.txt", "a+b.txt", True),
        ("a+b.txt", "aab.txt", False),
    ],
)
def test_globs(glob: str, path: str, allowed: bool) -> None:
    assert touch.allowed(glob, path) is allowed


def test_the_violation_names_every_stray_file() -> None:
    assert touch.violation(("src/**",), ["src/a.py"]) is None
    assert touch.violation((), ["anything"]) is None
    said = touch.violation(("src/**", "docs/*"), ["src/a.py", "setup.py", "docs/x/y.md"])
    assert said == "changed files outside touch [src/**, docs/*]: setup.py, docs/x/y.md"


@pytest.mark.parametrize("bad", [[], [""], ["/etc/*"], ["../up/*"], [3], {"a": 1}])
def test_bad_globs_are_refused(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="touch"):
        touch.parse(bad)


def test_a_job_file_checks_touch(tmp_path: Path) -> None:
    make_repo(tmp_path / "repo")
    ok = "---\nengine: shell\nworkspace: worktree\ntouch: [src/**]\n---\ntrue\n"
    spec = parse_job_text(ok, "job.md", base_dir=tmp_path / "repo")
    assert spec.payload["touch"] == ["src/**"]
    with pytest.raises(InvalidArgument, match=r"'touch'.*only to 'workspace: worktree'"):
        parse_job_text("---\nengine: shell\ntouch: [src/**]\n---\ntrue\n", "job.md")
    with pytest.raises(InvalidArgument, match=r"'touch'.*inside the repository"):
        parse_job_text(ok.replace("src/**", "../x"), "job.md", base_dir=tmp_path / "repo")


def test_a_change_outside_touch_fails_the_job_without_a_retry(
    store: StoreEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    body = {"cwd": str(repo), "workspace": "worktree", "touch": ["docs/**"]}
    stray = store.fleet.enqueue(
        "shell", {**body, "cmd": "mkdir -p docs; echo a > docs/a.md; echo b >> README.md"}
    ).id
    kept = store.fleet.enqueue("shell", {**body, "cmd": "mkdir -p docs; echo a > docs/a.md"}).id
    run_burst(store.fleet, concurrency=2)

    failed = store.fleet.get_job(stray)
    assert failed.status is JobStatus.FAILED and failed.attempts == 1, failed.error
    assert failed.error == "workspace: changed files outside touch [docs/**]: README.md"
    branches = git(repo, "branch", "--list", "agentfleet/*").split()
    assert f"agentfleet/job-{stray}" not in branches  # its commit is not the job's
    done = store.fleet.get_job(kept)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.result["files_changed"] == ["docs/a.md"]
