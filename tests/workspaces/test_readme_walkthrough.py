"""The README's workspace walkthrough, pasted into a shell as a new user would: the real
console script, real workers, a real repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Walkthrough: three jobs on one repository", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, "the walkthrough's shell block is missing"
    return found.group(1)


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
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
    assert "conflicts in settings.py" in out  # the second of euro and dollar to merge
    assert "waiting at approval gate pre_merge" in out
    shop = tmp_path / "shop"
    log = subprocess.run(
        ["git", "log", "--format=%s", "main"], cwd=shop, capture_output=True, text=True
    ).stdout.splitlines()
    assert sorted(log[:3]) == [f"agentfleet: {n} (plan 1)" for n in ("cart", "dollar", "euro")]
    assert log[3] == "the shop"
    assert (shop / "cart.py").read_text() == "def count(items): return len(items)\n"
    assert (shop / "settings.py").read_text() in ("CURRENCY = 'EUR'\n", "CURRENCY = 'USD'\n")
    clean = subprocess.run(["git", "status", "--porcelain"], cwd=shop, capture_output=True)
    assert clean.stdout == b""
