"""The README's review-and-fix walkthrough, pasted into a shell as a new user would: the
real console script, a real worker, the stand-in `claude` the block itself puts on PATH."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Walkthrough: review and fix, with stand-in agents", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, "the walkthrough's shell block is missing"
    return found.group(1)


def test_the_review_and_fix_walkthrough_runs_as_written(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AGENTFLEET_DB", None)
    done = subprocess.run(
        ["bash", "-e", "-c", _walkthrough()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert 'round 2 after "Edited fix-1.md."' in out
    assert "iteration 2 of 3" in out
    shop = tmp_path / "shop"
    assert sorted(p.name for p in shop.iterdir()) == [
        "cart.py", "fix-1.md", "fix-2.md", "plan.md", "review-1.md", "review-2.md",
    ]  # fmt: skip
    assert (shop / "fix-1.md").read_text() == 'round 1 after "nothing yet"\n'
    shown = subprocess.run(
        ["agentfleet", "plan", "show", "1", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    plan = json.loads(shown.stdout)
    steps = {s["name"]: s for s in plan["jobs"]}
    assert plan["status"] == "completed"
    assert steps["review-3"]["status"] == "failed"  # tolerated by one_success
    assert steps["fix (iteration 1)"]["loop"]["iteration"] == 1
    assert steps["fix"]["loop"]["iteration"] == 2
    assert steps["ship"]["status"] == "succeeded"
