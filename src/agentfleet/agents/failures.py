"""Tell an agent attempt that a retry may fix from one that no retry can.

A CLI that is not logged in, that refuses to work in an untrusted folder, or that does not
know one of the flags it was given fails the same way every time: spending the job's
remaining attempts on it only delays the news. :func:`diagnose` reads how the attempt ended
(exit code, output, what the stream reader understood) and returns a :class:`Failure`, with
a one-line reason and whether it is permanent, or ``None`` when the attempt succeeded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentfleet.agents.resume import RESUME_FAILED
from agentfleet.agents.streams import AgentSummary
from agentfleet.engines import OUTPUT_KINDS
from agentfleet.runner import describe_exit

__all__ = ["Failure", "diagnose", "last_line"]

_REASON_LIMIT = 200  # characters of what the CLI said, in a reason


@dataclass(frozen=True)
class Failure:
    reason: str
    permanent: bool


@dataclass(frozen=True)
class _Rule:
    """A known failure of one CLI (``kinds``), recognised by a pattern in its output or by
    its exit code, that no retry fixes."""

    kinds: frozenset[str]
    what: str  # the reason, completed with the line that matched
    pattern: re.Pattern[str] | None = None
    exit_codes: frozenset[int] = frozenset()
    even_on_success: bool = False  # a CLI that exits 0 on it (aider)


_NOT_LOGGED_IN = "is not logged in (or its API key is invalid) on this worker"
_REFUSED_OPTION = "refused an option of its command line (a CLI version the engine does not fit)"
_RULES = (
    # -- refused flags: the CLI's version does not match the engine's argv --------------
    # (commander: claude; clap: codex; yargs: gemini, opencode; argparse: aider)
    _Rule(
        frozenset(OUTPUT_KINDS),
        _REFUSED_OPTION,
        re.compile(
            r"^(?:error: unknown option '[^']+'|error: unexpected argument '[^']+' found|"
            r"Unknown arguments?: .+|\S+: error: unrecognized arguments: .+)",
            re.MULTILINE,
        ),
    ),
    # -- claude ---------------------------------------------------------------------------
    _Rule(
        frozenset({"claude"}),
        "refused --dangerously-skip-permissions as root (it needs IS_SANDBOX=1 there)",
        re.compile(r"--dangerously-skip-permissions cannot be used with root"),
    ),
    _Rule(
        frozenset({"claude"}),
        _NOT_LOGGED_IN,
        re.compile(
            r"Invalid API key|Please run /login|Not logged in|OAuth token has expired|"
            r"OAuth token revoked|authentication_error|authentication_failed|"
            r"Invalid bearer token",
            re.IGNORECASE,
        ),
    ),
    _Rule(
        frozenset({"claude"}),
        "has no credit left on its account",
        re.compile(r"Credit balance is too low", re.IGNORECASE),
    ),
    # -- codex ----------------------------------------------------------------------------
    _Rule(
        frozenset({"codex"}),
        "refused to run outside a git repository (it needs --skip-git-repo-check)",
        re.compile(r"Not inside a trusted directory and --skip-git-repo-check"),
    ),
    _Rule(
        frozenset({"codex"}),
        _NOT_LOGGED_IN,
        re.compile(
            r"401 Unauthorized|Not logged in|Missing (?:OpenAI )?API key|invalid_api_key|"
            r"Incorrect API key",
            re.IGNORECASE,
        ),
    ),
    # -- gemini: its exit codes say what went wrong ----------------------------------------
    _Rule(
        frozenset({"gemini"}),
        _NOT_LOGGED_IN,
        re.compile(
            r"Please set an Auth method|GEMINI_API_KEY environment variable not found|"
            r"API key not valid|API_KEY_INVALID",
            re.IGNORECASE,
        ),
        frozenset({41}),
    ),
    _Rule(
        frozenset({"gemini"}),
        "refused to run in a folder it does not trust (it needs --skip-trust)",
        re.compile(
            r"not running in a trusted (?:directory|folder)|FatalUntrustedWorkspaceError",
            re.IGNORECASE,
        ),
        frozenset({55}),
    ),
    _Rule(
        frozenset({"gemini"}),
        "refused its configuration or input",
        None,
        frozenset({42, 52}),
    ),
    # -- aider: exits 0 even when it could not reach the model ------------------------------
    _Rule(
        frozenset({"aider"}),
        _NOT_LOGGED_IN,
        re.compile(r"^The API provider is not able to authenticate you.*$", re.MULTILINE),
        even_on_success=True,
    ),
    _Rule(
        frozenset({"aider"}),
        _NOT_LOGGED_IN,
        re.compile(
            r"AuthenticationError|not able to authenticate you|No LLM model was specified and "
            r"no API keys were provided|invalid x-api-key|Incorrect API key",
            re.IGNORECASE,
        ),
        even_on_success=True,
    ),
    # -- opencode -------------------------------------------------------------------------
    _Rule(
        frozenset({"opencode"}),
        _NOT_LOGGED_IN,
        re.compile(
            r"ProviderAuthError|API key is missing|invalid x-api-key|Invalid API key|"
            r"Incorrect API key|\(HTTP 40[13]\)|opencode auth login",
            re.IGNORECASE,
        ),
    ),
    _Rule(
        frozenset({"opencode"}),
        _REFUSED_OPTION,
        re.compile(r"^opencode run \[message\.\.\]$", re.MULTILINE),  # its usage, no more
    ),
)


# What each CLI says when the session it was told to resume is not there.
_NO_SESSION = re.compile(
    r"No conversation found with session ID|Error resuming session|no rollout found for thread|"
    r"Session not found|Invalid session identifier"
)


def last_line(*texts: str | None) -> str | None:
    """The last non-empty line of the first text that has one, cut to one short line."""
    for text in texts:
        if not text:
            continue
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line:
                return _short(line)
    return None


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _short(line: str) -> str:
    line = " ".join(_ANSI.sub("", line).split())
    return line if len(line) <= _REASON_LIMIT else line[: _REASON_LIMIT - 1] + "…"


def _matched_line(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    if match is None:
        return None
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    return _short(text[start : None if end < 0 else end])


def diagnose(
    engine: str,
    kind: str,
    exit_code: int,
    stdout: str,
    stderr: str,
    summary: AgentSummary,
    *,
    resumed: bool = False,
) -> Failure | None:
    """How the attempt failed, or ``None`` when it did not. A resumed attempt that found no
    session fails with :data:`RESUME_FAILED`, to be retried afresh.

    Known failures are looked for in the error the CLI reported and in its stderr; in its
    stdout only when that is plain text (aider's, or a stream the reader could not read):
    a JSON stream's stdout holds what the agent's tools printed, which proves nothing."""
    plain = kind in ("aider", "text") or summary.events == 0
    said = "\n".join(filter(None, [summary.error, stderr, stdout if plain else None]))
    failed = exit_code != 0 or summary.is_error
    missing = _matched_line(_NO_SESSION, "\n".join([said, stdout])) if resumed else None
    if failed and missing is not None:
        return Failure(f"{RESUME_FAILED}: {missing}", permanent=False)
    for rule in _RULES:
        if kind not in rule.kinds or not (failed or rule.even_on_success):
            continue
        line = None if rule.pattern is None else _matched_line(rule.pattern, said)
        by_code = exit_code in rule.exit_codes
        if line is None and not by_code:
            continue
        detail = line or (summary.error and _short(summary.error)) or last_line(stderr, stdout)
        reason = f"engine {engine!r} {rule.what}"
        if detail:
            reason += f": {detail}"
        if by_code:
            reason += f" ({describe_exit(exit_code)})"
        return Failure(reason, permanent=True)
    if not failed:
        return None
    detail = _short(summary.error) if summary.error else last_line(stderr, stdout)
    if exit_code != 0:
        reason = describe_exit(exit_code)
    else:
        reason = f"engine {engine!r} reported an error although it exited 0"
    return Failure(f"{reason}: {detail}" if detail else reason, permanent=False)
