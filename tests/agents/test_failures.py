"""Which failures are for good, and what their one-line reason says."""

from __future__ import annotations

import json

from agentfleet.agents.failures import diagnose, last_line
from agentfleet.agents.streams import read_output


def claude_result(text: str, *, error: bool = True) -> str:
    return json.dumps(
        {"type": "result", "subtype": "success", "is_error": error, "result": text, "num_turns": 1}
    )


def test_an_overloaded_api_is_retried() -> None:
    out = claude_result("API Error: 529 Overloaded")
    failure = diagnose("claude", "claude", 1, out, "", read_output("claude", "claude", out))
    assert failure is not None and not failure.permanent
    assert failure.reason == "exit code 1: API Error: 529 Overloaded"


def test_no_credit_is_for_good() -> None:
    out = claude_result("Credit balance is too low")
    failure = diagnose("claude", "claude", 1, out, "", read_output("claude", "claude", out))
    assert failure is not None and failure.permanent
    assert (
        failure.reason
        == "engine 'claude' has no credit left on its account: Credit balance is too low"
    )


def test_what_the_agents_tools_printed_proves_nothing() -> None:
    """A stream's stdout holds the output of the commands the agent ran: an "unknown option"
    there is the agent's business, not a refused flag of the CLI's."""
    tool = json.dumps(
        {
            "type": "user",
            "message": {
                "content": [{"type": "tool_result", "content": "error: unknown option '--x'"}]
            },
        }
    )
    out = "\n".join([tool, "error: unknown option '--x'", claude_result("boom")])
    failure = diagnose("claude", "claude", 1, out, "", read_output("claude", "claude", out))
    assert failure is not None and not failure.permanent
    assert failure.reason == "exit code 1: boom"


def test_a_plain_text_cli_fails_with_its_last_words() -> None:
    out = "working\nstill working\n"
    err = "Traceback (most recent call last):\nValueError: no\n"
    failure = diagnose("mine", "text", 3, out, err, read_output("text", "mine", out))
    assert failure is not None and not failure.permanent
    assert failure.reason == "exit code 3: ValueError: no"
    assert diagnose("mine", "text", 0, out, "", read_output("text", "mine", out)) is None
    killed = diagnose("mine", "text", -9, "", "", read_output("text", "mine", ""))
    assert killed is not None and killed.reason == "killed by signal SIGKILL"


def test_last_line_is_one_short_line() -> None:
    assert last_line(None, "", "a\n\n  b  \n\n") == "b"
    assert last_line("\x1b[31mred\x1b[0m") == "red"
    long = last_line("x" * 1000)
    assert long is not None and len(long) == 200 and long.endswith("…")
    assert last_line("", None) is None
