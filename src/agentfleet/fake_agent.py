"""A stand-in agent CLI so demos and tests run with no network, API keys or real agents.

It accepts the flags of the real CLIs loosely (``-p PROMPT``, ``-- PROMPT``, ``exec PROMPT``,
``run PROMPT``, ``--message PROMPT``, ``--prompt=PROMPT``, ``--model M`` and the yolo flags),
then makes one deterministic edit in the current directory:

* every ``write FILE: TEXT`` in the prompt writes ``TEXT`` (the rest of that line) to ``FILE``;
* otherwise the prompt is appended to ``AGENT_NOTES.md``;

and, inside a git work tree, commits the change under a fixed author. Environment knobs:

* ``AGENTFLEET_FAKE_AGENT_LOG``: append one JSON line describing the call to this file;
* ``AGENTFLEET_FAKE_AGENT_SLEEP``: pause between steps (``2``, ``500ms``, ``1m``) to mimic a
  long job;
* ``AGENTFLEET_FAKE_AGENT_EXIT``: a non-zero value makes the agent fail with that exit code
  before editing anything (after logging), to exercise retries.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentfleet.durations import parse_duration
from agentfleet.errors import InvalidArgument

__all__ = ["ENV_EXIT", "ENV_LOG", "ENV_SLEEP", "NOTES_FILE", "Invocation", "main", "parse_args"]

ENV_LOG = "AGENTFLEET_FAKE_AGENT_LOG"
ENV_SLEEP = "AGENTFLEET_FAKE_AGENT_SLEEP"
ENV_EXIT = "AGENTFLEET_FAKE_AGENT_EXIT"
NOTES_FILE = "AGENT_NOTES.md"
AUTHOR_NAME = "agentfleet fake agent"
AUTHOR_EMAIL = "fake-agent@agentfleet.invalid"
USAGE_ERROR = 2

_PROMPT_FLAGS = frozenset({"--prompt", "--message", "--msg"})
_PRINT_FLAGS = frozenset({"-p", "--print"})
_MODEL_FLAGS = frozenset({"--model", "-m"})
_YOLO_FLAGS = frozenset(
    {
        "--dangerously-skip-permissions",
        "--dangerously-bypass-approvals-and-sandbox",
        "--yolo",
        "-y",
        "--yes-always",
        "--auto",
    }
)
_VALUE_FLAGS = frozenset({"--permission-mode", "--approval-mode", "--sandbox", "--output-format"})
_YOLO_MODES = frozenset({"bypass", "dangerous", "yolo", "danger-full-access"})
_SUBCOMMANDS = frozenset({"exec", "run"})
_WRITE = re.compile(r"\bwrite[ \t]+(\S+?):[ \t]*(.*)")


@dataclass
class Invocation:
    """What the fake agent understood from its command line."""

    prompt: str | None = None
    model: str | None = None
    yolo: bool = False
    ignored: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str]) -> Invocation:
    """Parse the union of the real CLIs' flags; unknown options are ignored, not fatal."""
    inv = Invocation()
    words: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        name, has_value, inline = (
            token.partition("=") if token.startswith("--") else (token, "", "")
        )
        takes_next = nxt is not None and not nxt.startswith("-")
        i += 1
        if token == "--":
            words.extend(argv[i:])
            break
        if name in _PROMPT_FLAGS or name in _PRINT_FLAGS:
            if has_value:
                inv.prompt = inline
            elif takes_next and nxt is not None:
                inv.prompt, i = nxt, i + 1
        elif name in _MODEL_FLAGS:
            if has_value:
                inv.model = inline
            elif nxt is not None:
                inv.model, i = nxt, i + 1
        elif name in _YOLO_FLAGS:
            inv.yolo = True
        elif name in _VALUE_FLAGS:
            value = inline if has_value else (nxt or "")
            i += 0 if has_value else 1
            inv.yolo = inv.yolo or value in _YOLO_MODES
        elif token.startswith("-") and token != "-":
            inv.ignored.append(token)
        elif not words and token in _SUBCOMMANDS and inv.prompt is None:
            continue
        else:
            words.append(token)
    if inv.prompt is None and words:
        inv.prompt = " ".join(words)
    return inv


def _say(message: str) -> None:
    print(f"fake-agent: {message}", flush=True)


def _log(argv: Sequence[str], inv: Invocation) -> None:
    path = os.environ.get(ENV_LOG)
    if not path:
        return
    record = {
        "argv": list(argv),
        "cwd": os.getcwd(),
        "prompt": inv.prompt,
        "model": inv.model,
        "yolo": inv.yolo,
    }
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _sleep_seconds() -> float:
    raw = os.environ.get(ENV_SLEEP, "").strip()
    if not raw or raw in ("0", "0.0"):
        return 0.0
    return parse_duration(raw)


def _forced_exit() -> int:
    raw = os.environ.get(ENV_EXIT, "").strip()
    if not raw:
        return 0
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"{ENV_EXIT} must be an integer exit code, not {raw!r}") from None


def _edit(prompt: str, root: Path) -> list[str]:
    """Apply the prompt's edit and return the paths touched, relative to ``root``."""
    writes = _WRITE.findall(prompt)
    if not writes:
        with open(root / NOTES_FILE, "a", encoding="utf-8") as handle:
            handle.write(prompt.rstrip() + "\n")
        return [NOTES_FILE]
    touched: list[str] = []
    for name, text in writes:
        target = (root / name).resolve()
        if not target.is_relative_to(root.resolve()):
            raise InvalidArgument(
                f"refusing to write {name!r}: it is outside the working directory"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text.rstrip() + "\n", encoding="utf-8")
        touched.append(name)
    return touched


def _git(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME=AUTHOR_NAME,
        GIT_AUTHOR_EMAIL=AUTHOR_EMAIL,
        GIT_COMMITTER_NAME=AUTHOR_NAME,
        GIT_COMMITTER_EMAIL=AUTHOR_EMAIL,
    )
    return subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )


def _commit(prompt: str, root: Path) -> int:
    try:
        inside = _git(["rev-parse", "--is-inside-work-tree"], root)
    except FileNotFoundError:
        _say("git is not installed; not committing")
        return 0
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        _say("not a git repository; not committing")
        return 0
    _git(["add", "-A"], root)
    if not _git(["status", "--porcelain"], root).stdout.strip():
        _say("nothing changed; not committing")
        return 0
    title = prompt.strip().splitlines()[0][:60]
    done = _git(
        ["-c", "commit.gpgsign=false", "commit", "--no-verify", "-q", "-m", f"fake-agent: {title}"],
        root,
    )
    if done.returncode != 0:
        _say(f"git commit failed: {done.stderr.strip() or done.stdout.strip()}")
        return 1
    sha = _git(["rev-parse", "--short", "HEAD"], root).stdout.strip()
    _say(f"committed {sha}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake agent; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    inv = parse_args(args)
    _log(args, inv)
    try:
        pause = _sleep_seconds()
        forced = _forced_exit()
    except InvalidArgument as exc:
        _say(str(exc))
        return USAGE_ERROR
    _say(f"starting (model={inv.model or 'default'}, yolo={str(inv.yolo).lower()})")
    time.sleep(pause)
    if forced:
        _say(f"failing on purpose with exit code {forced}")
        return forced
    if not inv.prompt or not inv.prompt.strip():
        _say("no prompt given; pass -p PROMPT, -- PROMPT or --message PROMPT")
        return USAGE_ERROR
    root = Path.cwd()
    try:
        touched = _edit(inv.prompt, root)
    except (InvalidArgument, OSError) as exc:
        _say(f"cannot edit: {exc}")
        return 1
    _say(f"edited {', '.join(touched)}")
    time.sleep(pause)
    status = _commit(inv.prompt, root)
    if status == 0:
        _say("done")
    return status


if __name__ == "__main__":
    sys.exit(main())
