"""A stand-in agent CLI so demos and tests run with no network, API keys or real agents.

It accepts the flags of the real CLIs loosely (``-p PROMPT``, ``-- PROMPT``, ``exec PROMPT``,
``run PROMPT``, ``--message PROMPT``, ``--prompt=PROMPT``, ``--model M`` and the yolo flags),
then makes one deterministic edit in the current directory:

* every ``write FILE: TEXT`` in the prompt writes ``TEXT`` (the rest of that line) to ``FILE``;
* otherwise the prompt is appended to ``AGENT_NOTES.md``;

and, inside a git work tree, commits the change under a fixed author.

It plays the CLI its command line belongs to (``exec`` is Codex, ``run`` opencode,
``--message`` aider, ``--prompt`` Gemini CLI, ``-p`` Claude Code; or
``AGENTFLEET_FAKE_AGENT_AS``), speaking that CLI's machine-readable output when asked for it
(see :mod:`agentfleet.agents.standins`) and refusing what the real one refuses: Claude Code
skipping permissions as root without ``IS_SANDBOX=1``, Codex outside a git repository
without ``--skip-git-repo-check``, Gemini CLI in a folder it does not trust. Environment
knobs:

* ``AGENTFLEET_FAKE_AGENT_LOG``: append one JSON line describing the call (argv, cwd,
  environment) to this file;
* ``AGENTFLEET_FAKE_AGENT_SLEEP``: pause between steps (``2``, ``500ms``, ``1m``) to mimic a
  long job;
* ``AGENTFLEET_FAKE_AGENT_EXIT``: a non-zero value makes the agent fail with that exit code
  before editing anything (after logging), to exercise retries;
* ``AGENTFLEET_FAKE_AGENT_FAIL=auth``: fail as the real CLI does when it is not logged in
  (its message, its exit code: aider's is 0); ``=no-model`` (aider): offer a browser login
  and wait for it, as aider does with no model and no key;
* ``AGENTFLEET_FAKE_AGENT_FAIL=fresh``: fail a new session (after its first event, exit 1,
  a retryable error) and carry on normally in a resumed one: a retry that resumes;
* ``AGENTFLEET_FAKE_AGENT_AS``: the CLI to play, when the command line does not tell;
* ``AGENTFLEET_FAKE_AGENT_SESSIONS``: where its sessions are kept (see
  :mod:`agentfleet.agents.standin_sessions`). Each CLI's resume flag (``--resume ID``,
  ``exec resume ... ID PROMPT``, ``--session ID``) continues a session started in the same
  folder, or fails with that CLI's own message.
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

from agentfleet.agents import standin_sessions
from agentfleet.agents.standins import NOT_LOGGED_IN, Speaker, speaker_for
from agentfleet.durations import parse_duration
from agentfleet.errors import InvalidArgument

__all__ = [
    "ENV_AS",
    "ENV_EXIT",
    "ENV_FAIL",
    "ENV_LOG",
    "ENV_SLEEP",
    "NOTES_FILE",
    "Invocation",
    "main",
    "parse_args",
]

ENV_LOG = "AGENTFLEET_FAKE_AGENT_LOG"
ENV_SLEEP = "AGENTFLEET_FAKE_AGENT_SLEEP"
ENV_EXIT = "AGENTFLEET_FAKE_AGENT_EXIT"
ENV_FAIL = "AGENTFLEET_FAKE_AGENT_FAIL"
ENV_AS = "AGENTFLEET_FAKE_AGENT_AS"
PERSONAS = ("aider", "claude", "codex", "gemini", "opencode", "text")
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
        "--suggest-shell-commands",
        "--auto",
    }
)
_VALUE_FLAGS = frozenset(
    {"--permission-mode", "--approval-mode", "--sandbox", "--output-format", "-o", "--format"}
)
_YOLO_MODES = frozenset({"bypass", "dangerous", "yolo", "danger-full-access"})
_SUBCOMMANDS = frozenset({"exec", "run"})
_RESUME_FLAGS = frozenset({"--resume", "-r", "--session", "-s"})
_WRITE = re.compile(r"\bwrite[ \t]+(\S+?):[ \t]*(.*)")


@dataclass
class Invocation:
    """What the fake agent understood from its command line."""

    prompt: str | None = None
    model: str | None = None
    yolo: bool = False
    ignored: list[str] = field(default_factory=list)
    prompt_flag: str | None = None  # how the prompt was given: -p, --prompt, --message ...
    subcommand: str | None = None  # exec (Codex) or run (opencode)
    options: dict[str, str] = field(default_factory=dict)  # --output-format and the like
    flags: set[str] = field(default_factory=set)  # every option given, values aside
    resume: str | None = None  # the session to continue
    codex_resume: bool = False  # `codex exec resume ... SESSION PROMPT`

    @property
    def persona(self) -> str:
        """The CLI this command line is written for."""
        if self.subcommand == "exec":
            return "codex"
        if self.subcommand == "run":
            return "opencode"
        if self.prompt_flag in ("--message", "--msg"):
            return "aider"
        if self.prompt_flag == "--prompt":
            return "gemini"
        if self.prompt_flag in _PRINT_FLAGS and "--permission-mode" not in self.flags:
            return "claude"
        return "text"

    def streaming(self, persona: str) -> bool:
        """Whether the command line asks that CLI for its machine-readable output."""
        fmt = self.options.get("--output-format") or self.options.get("-o")
        return {
            "claude": fmt == "stream-json",
            "gemini": fmt == "stream-json",
            "codex": "--json" in self.flags,
            "opencode": self.options.get("--format") == "json",
        }.get(persona, False)


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
        if token.startswith("-") and token != "-":
            inv.flags.add(name)
        if name in _PROMPT_FLAGS or name in _PRINT_FLAGS:
            inv.prompt_flag = name
            if has_value:
                inv.prompt = inline
            elif takes_next and nxt is not None:
                inv.prompt, i = nxt, i + 1
        elif name in _MODEL_FLAGS:
            if has_value:
                inv.model = inline
            elif nxt is not None:
                inv.model, i = nxt, i + 1
        elif name in _RESUME_FLAGS:
            if has_value:
                inv.resume = inline
            elif nxt is not None:
                inv.resume, i = nxt, i + 1
        elif name in _YOLO_FLAGS:
            inv.yolo = True
        elif name in _VALUE_FLAGS:
            value = inline if has_value else (nxt or "")
            i += 0 if has_value else 1
            inv.options[name] = value
            inv.yolo = inv.yolo or value in _YOLO_MODES
        elif token.startswith("-") and token != "-":
            inv.ignored.append(token)
        elif not words and token in _SUBCOMMANDS and inv.prompt is None:
            inv.subcommand = inv.subcommand or token
            continue
        elif not words and token == "resume" and inv.subcommand == "exec":
            inv.codex_resume = True
        else:
            words.append(token)
    if inv.codex_resume and words:
        inv.resume, words = words[0], words[1:]
    if inv.prompt is None and words:
        inv.prompt = " ".join(words)
    return inv


def _log(argv: Sequence[str], inv: Invocation, persona: str) -> None:
    path = os.environ.get(ENV_LOG)
    if not path:
        return
    record = {
        "argv": list(argv),
        "cwd": os.getcwd(),
        "prompt": inv.prompt,
        "model": inv.model,
        "yolo": inv.yolo,
        "persona": persona,
        "env": dict(os.environ),
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


def _inside_git(root: Path) -> bool | None:
    """Whether ``root`` is in a git work tree; None when git is not installed."""
    try:
        inside = _git(["rev-parse", "--is-inside-work-tree"], root)
    except FileNotFoundError:
        return None
    return inside.returncode == 0 and inside.stdout.strip() == "true"


def _commit(prompt: str, root: Path, speaker: Speaker) -> tuple[int, str | None]:
    """Commit what changed: the exit status, and the commit's short hash if one was made."""
    inside = _inside_git(root)
    if inside is None:
        speaker.note("git is not installed; not committing")
        return 0, None
    if not inside:
        speaker.note("not a git repository; not committing")
        return 0, None
    _git(["add", "-A"], root)
    if not _git(["status", "--porcelain"], root).stdout.strip():
        speaker.note("nothing changed; not committing")
        return 0, None
    title = prompt.strip().splitlines()[0][:60]
    message = f"fake-agent: {title}"
    done = _git(["-c", "commit.gpgsign=false", "commit", "--no-verify", "-q", "-m", message], root)
    if done.returncode != 0:
        speaker.note(f"git commit failed: {done.stderr.strip() or done.stdout.strip()}")
        return 1, None
    sha = _git(["rev-parse", "--short", "HEAD"], root).stdout.strip()
    speaker.ran(f"git commit -m {json.dumps(message)}", f"{sha} {message}", 0)
    speaker.note(f"committed {sha}")
    return 0, sha


# What each real CLI prints when it refuses to start (their own words).
REFUSALS = {
    "claude-root": (
        "--dangerously-skip-permissions cannot be used with root/sudo privileges for "
        "security reasons",
        1,
    ),
    "codex-git": ("Not inside a trusted directory and --skip-git-repo-check was not specified.", 1),
    "gemini-trust": (
        "Gemini CLI is not running in a trusted directory. To proceed, either use "
        "`--skip-trust`, set the `GEMINI_CLI_TRUST_WORKSPACE=true` environment variable, or "
        "trust this directory in interactive mode.",
        55,
    ),
}


AIDER_NO_MODEL = """No LLM model was specified and no API keys were provided.
OpenRouter provides free and paid access to many LLMs.
Login to OpenRouter or create a free account? (Y)es/(N)o [Yes]:
Please open this URL in your browser to connect Aider with OpenRouter:

Waiting up to 5 minutes for you to finish in the browser...
Use Control-C to interrupt."""


def _refusal(inv: Invocation, persona: str, root: Path) -> str | None:
    """What the real CLI would refuse about this call, if anything."""
    env = os.environ
    if (
        persona == "claude"
        and "--dangerously-skip-permissions" in inv.flags
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
        and env.get("IS_SANDBOX") != "1"
    ):
        return "claude-root"
    if persona == "codex" and "--skip-git-repo-check" not in inv.flags and not _inside_git(root):
        return "codex-git"
    if (
        persona == "gemini"
        and "--skip-trust" not in inv.flags
        and env.get("GEMINI_CLI_TRUST_WORKSPACE") != "true"
    ):
        return "gemini-trust"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake agent; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    inv = parse_args(args)
    persona = os.environ.get(ENV_AS, "").strip() or inv.persona
    _log(args, inv, persona)
    root = Path.cwd()
    speaker = speaker_for(persona, inv.streaming(persona), inv.prompt or "", inv.model, str(root))
    try:
        pause = _sleep_seconds()
        forced = _forced_exit()
        failure = os.environ.get(ENV_FAIL, "").strip()
        if persona not in PERSONAS:
            raise InvalidArgument(f"{ENV_AS} must be one of {', '.join(PERSONAS)}")
        if failure not in ("", "auth", "no-model", "fresh"):
            raise InvalidArgument(
                f"{ENV_FAIL} must be 'auth', 'no-model' or 'fresh', not {failure!r}"
            )
    except InvalidArgument as exc:
        speaker.note(str(exc))
        return USAGE_ERROR
    refused = _refusal(inv, persona, root)
    if refused is not None:
        message, code = REFUSALS[refused]
        print(message, file=sys.stderr, flush=True)
        return code
    if failure == "auth" and speaker.checks_login_first:
        message, code = NOT_LOGGED_IN[persona]
        print(message, file=sys.stderr, flush=True)
        return code
    resumed = None
    if inv.resume is not None:
        resumed = standin_sessions.find(inv.resume, str(root))
        if resumed is None:
            message, code = standin_sessions.NOT_FOUND.get(
                persona, standin_sessions.NOT_FOUND["text"]
            )
            print(message.format(id=inv.resume), file=sys.stderr, flush=True)
            return code
        speaker.session_id = inv.resume
    count = 0 if resumed is None else int(resumed.get("resumed", 0)) + 1
    standin_sessions.save(speaker.session_id, str(root), persona, count)
    speaker.note(f"starting (model={inv.model or 'default'}, yolo={str(inv.yolo).lower()})")
    if resumed is not None:
        speaker.note(f"resuming session {inv.resume}")
    speaker.start()
    time.sleep(pause)
    if failure == "fresh" and resumed is None:
        speaker.fail("the model API timed out (a new session failed on purpose)")
        return 1
    if failure == "auth":
        message, code = NOT_LOGGED_IN[persona]
        speaker.fail(message)
        return code
    if failure == "no-model":
        print(AIDER_NO_MODEL, flush=True)
        time.sleep(300)  # "Waiting up to 5 minutes for you to finish in the browser..."
        return 1
    if forced:
        speaker.note(f"failing on purpose with exit code {forced}")
        speaker.fail(f"failing on purpose with exit code {forced}")
        return forced
    if not inv.prompt or not inv.prompt.strip():
        speaker.note("no prompt given; pass -p PROMPT, -- PROMPT or --message PROMPT")
        return USAGE_ERROR
    try:
        touched = _edit(inv.prompt, root)
    except (InvalidArgument, OSError) as exc:
        speaker.note(f"cannot edit: {exc}")
        speaker.fail(f"cannot edit: {exc}")
        return 1
    for name in touched:
        speaker.wrote(str(root / name), (root / name).read_text(encoding="utf-8"))
    speaker.note(f"edited {', '.join(touched)}")
    time.sleep(pause)
    status, sha = _commit(inv.prompt, root, speaker)
    if status != 0:
        speaker.fail("git commit failed")
        return status
    committed = f" and committed {sha}" if sha else ""
    speaker.finish(f"Edited {', '.join(touched)}{committed}.")
    speaker.note("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
