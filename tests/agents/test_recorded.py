"""The readers and the failure diagnosis on what the real CLIs printed (see
tests/fixtures/agents/README.md): the summary of each run, and whether its failure can pass
on retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentfleet.agents.failures import diagnose
from agentfleet.agents.streams import make_reader, read_output

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
DONE = "Done: wrote hello.txt."
NOT_LOGGED_IN = "is not logged in (or its API key is invalid) on this worker: "


def summary(**fields: Any) -> dict[str, Any]:
    base = {
        "session_id": None,
        "text": None,
        "cost_usd": None,
        "input_tokens": None,
        "output_tokens": None,
        "turns": None,
        "is_error": False,
    }
    return {**base, **fields}


# (stdout file, stderr file, CLI, exit code, the `agent` of the result, failure or None)
# A failure is (permanent?, how its one-line reason starts after "engine 'CLI' ").
CASES: list[tuple[str | None, str | None, str, int, dict[str, Any], tuple[bool, str] | None]] = [
    (
        "claude-success.jsonl",
        None,
        "claude",
        0,
        summary(
            session_id="7dd516d1-4d1e-4e2e-b679-be1a81d34d7e",
            text=DONE,
            cost_usd=0.00474,
            input_tokens=1520,
            output_tokens=12,
            turns=1,
        ),
        None,
    ),
    (
        "claude-not-logged-in.jsonl",
        None,
        "claude",
        1,
        summary(
            session_id="8ba7b547-fdb0-4030-8a75-484001579b68",
            text="Not logged in · Please run /login",
            cost_usd=0,
            input_tokens=0,
            output_tokens=0,
            turns=1,
            is_error=True,
        ),
        (True, NOT_LOGGED_IN + "Not logged in · Please run /login"),
    ),
    (
        None,
        "claude-root.stderr",
        "claude",
        1,
        summary(),
        (True, "refused --dangerously-skip-permissions as root (it needs IS_SANDBOX=1 there)"),
    ),
    (
        None,
        "claude-bad-option.stderr",
        "claude",
        1,
        summary(),
        (True, "refused an option of its command line"),
    ),
    (
        "codex-success.jsonl",
        None,
        "codex",
        0,
        summary(
            session_id="01a233e7-fe58-7711-b918-4c0eaf05c824",
            text=DONE,
            input_tokens=1520,
            output_tokens=12,
            turns=1,
        ),
        None,
    ),
    (
        "codex-unauthorized.jsonl",
        None,
        "codex",
        1,
        summary(session_id="01a233e8-22cc-74d0-b5ae-afd425052dae", is_error=True),
        (True, NOT_LOGGED_IN + "unexpected status 401 Unauthorized: Incorrect API key"),
    ),
    (
        None,
        "codex-outside-git.stderr",
        "codex",
        1,
        summary(),
        (True, "refused to run outside a git repository (it needs --skip-git-repo-check)"),
    ),
    (
        None,
        "codex-bad-option.stderr",
        "codex",
        2,
        summary(),
        (True, "refused an option of its command line"),
    ),
    (
        "gemini-success.jsonl",
        None,
        "gemini",
        0,
        summary(
            session_id="e483be32-9a84-47b0-95d6-39ef6d1cc70f",
            text=DONE,
            input_tokens=1520,
            output_tokens=12,
            turns=1,
        ),
        None,
    ),
    (
        "gemini-bad-key.jsonl",
        "gemini-bad-key.stderr",
        "gemini",
        144,
        summary(
            session_id="cdacd6e4-4c2f-4405-b110-1f6f1b3a9cd9",
            input_tokens=0,
            output_tokens=0,
            is_error=True,
        ),
        (True, NOT_LOGGED_IN + "[API Error:"),
    ),
    (
        None,
        "gemini-not-logged-in.stderr",
        "gemini",
        41,
        summary(),
        (True, NOT_LOGGED_IN + "Please set an Auth method"),
    ),
    (
        None,
        "gemini-untrusted.stderr",
        "gemini",
        55,
        summary(),
        (True, "refused to run in a folder it does not trust (it needs --skip-trust): Gemini"),
    ),
    (
        None,
        "gemini-bad-option.stderr",
        "gemini",
        1,
        summary(),
        (True, "refused an option of its command line"),
    ),
    (
        "opencode-success.jsonl",
        None,
        "opencode",
        0,
        summary(
            session_id="ses_dcc1399f5ffeMOdr2KkGC9Hx8x",
            text=DONE,
            cost_usd=0.00474,
            input_tokens=1520,
            output_tokens=12,
            turns=1,
        ),
        None,
    ),
    (
        "opencode-bad-key.jsonl",
        None,
        "opencode",
        1,
        summary(session_id="ses_dcc132bbfffeSlyxY789TttbRT", is_error=True),
        (True, NOT_LOGGED_IN + "APIError: invalid x-api-key (HTTP 401)"),
    ),
    (
        "opencode-offline.jsonl",
        None,
        "opencode",
        1,
        summary(session_id="ses_dcc15110effe4mUwry9IVkmX1F", is_error=True),
        (False, "exit code 1: APIError: Cannot connect to API"),
    ),
    (
        None,
        "opencode-bad-option.stderr",
        "opencode",
        1,
        summary(),
        (True, "refused an option of its command line"),
    ),
    (
        "aider-success.txt",
        None,
        "aider",
        0,
        summary(text=DONE, cost_usd=0.0048, input_tokens=1900, output_tokens=6, turns=1),
        None,
    ),
    (
        "aider-bad-key.txt",
        None,
        "aider",
        0,  # aider exits 0 when the API refused it
        summary(is_error=True),
        (True, NOT_LOGGED_IN + "The API provider is not able to authenticate you."),
    ),
    (
        "aider-no-model.txt",
        None,
        "aider",
        -15,  # stopped: it would have waited for a browser
        summary(is_error=True),
        (True, NOT_LOGGED_IN + "No LLM model was specified and no API keys were provided."),
    ),
    (
        "aider-shell-command.txt",
        None,
        "aider",
        0,
        summary(
            text="Run this:\n```bash\necho ran > ran.txt\n```",
            cost_usd=0.0061,
            input_tokens=2400,
            output_tokens=14,
            turns=1,
        ),
        None,
    ),
]


def read(name: str | None) -> str:
    return "" if name is None else (FIXTURES / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("out", "err", "cli", "code", "agent", "failure"), CASES, ids=[c[0] or c[1] for c in CASES]
)
def test_a_recorded_run(
    out: str | None,
    err: str | None,
    cli: str,
    code: int,
    agent: dict[str, Any],
    failure: tuple[bool, str] | None,
) -> None:
    stdout, stderr = read(out), read(err)
    found = read_output(cli, cli, stdout)
    assert found.as_result() == {"engine": cli, **agent}
    diagnosed = diagnose(cli, cli, code, stdout, stderr, found)
    if failure is None:
        assert diagnosed is None
        return
    assert diagnosed is not None
    permanent, start = failure
    assert diagnosed.permanent is permanent, diagnosed
    assert diagnosed.reason.startswith(start if not permanent else f"engine {cli!r} {start}")
    assert "\n" not in diagnosed.reason and "\x1b" not in diagnosed.reason
    assert len(diagnosed.reason) < 400


def test_every_fixture_is_tested() -> None:
    named = {name for case in CASES for name in case[:2] if name}
    assert named == {p.name for p in FIXTURES.iterdir() if p.name != "README.md"}


def test_the_readers_read_fixtures_fed_in_any_chunks() -> None:
    from agentfleet.agents.streams import LineReader

    for out, _, cli, _, agent, _ in CASES:
        if out is None:
            continue
        data = read(out).encode()
        lines = LineReader(make_reader(cli, cli))
        for start in range(0, len(data), 7):
            lines.write(data[start : start + 7])
        assert lines.finish().as_result() == {"engine": cli, **agent}, out


def test_aider_asking_for_a_browser_login_is_hopeless_at_once() -> None:
    reader = make_reader("aider", "aider")
    for line in read("aider-no-model.txt").splitlines():
        reader.feed(line)
        if "No LLM model was specified" in line:
            assert reader.hopeless
            return
    raise AssertionError("the line was not read")


def test_claude_and_codex_errors_before_a_success_do_not_count() -> None:
    """codex says "Reconnecting..." as error events and may still succeed."""
    reconnect = '{"type":"error","message":"Reconnecting... 1/5 (stream disconnected)"}'
    text = read("codex-success.jsonl").replace(
        '{"type":"turn.started"}', '{"type":"turn.started"}\n' + reconnect
    )
    found = read_output("codex", "codex", text)
    assert found.is_error is False and found.text == DONE
