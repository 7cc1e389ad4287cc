"""The transcript of what each CLI printed: the recorded outputs (tests/fixtures/agents), the
stand-ins' tool calls, malformed lines, and feeding line by line as output arrives."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from agentfleet.agents.standins import speaker_for
from agentfleet.agents.streams import read_output
from agentfleet.agents.transcript import (
    DETAIL_LIMIT,
    Entry,
    Transcript,
    transcript_of,
)
from agentfleet.output import truncation_marker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
DONE = "Done: wrote hello.txt."
UNAUTHORIZED = (
    "unexpected status 401 Unauthorized: Incorrect API key provided: sk-bad. You can find "
    "your API key at https://platform.openai.com/account/api-keys., "
    "url: http://127.0.0.1:8080/v1/responses"
)
METADATA = (
    "Model metadata for `gpt-5-codex` not found. Defaulting to fallback metadata; this can "
    "degrade performance and cause issues."
)
GEMINI_KEY = (
    '[API Error: {"error":{"code":400,"message":"API key not valid. Please pass a valid API '
    'key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.'
    'ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}]'
)

# What each recorded stream reads as; the text outputs are their lines, unchanged.
EXPECTED: dict[str, list[Entry]] = {
    "claude-success.jsonl": [
        Entry("system", "session started · claude-sonnet-4-5"),
        Entry("assistant", DONE),
        Entry("usage", "$0.0047 · 1,520 in / 12 out tokens"),
    ],
    "claude-not-logged-in.jsonl": [
        Entry("system", "session started · claude-opus-4-8[1m]"),
        Entry("error", "Not logged in · Please run /login"),  # said once, not by the result too
        Entry("usage", "$0.0000 · 0 in / 0 out tokens"),
    ],
    "codex-success.jsonl": [
        Entry("system", "session started"),
        Entry("error", METADATA),
        Entry("assistant", DONE),
        Entry("usage", "1,520 in / 12 out tokens"),
    ],
    "codex-unauthorized.jsonl": [
        Entry("system", "session started"),
        Entry("error", METADATA),
        *[Entry("error", f"Reconnecting... {n}/5 ({UNAUTHORIZED})") for n in range(1, 6)],
        Entry("error", UNAUTHORIZED),  # the turn.failed that repeats it is left out
    ],
    "gemini-success.jsonl": [
        Entry("system", "session started · gemini-2.5-pro"),
        Entry("assistant", DONE),  # its two deltas, joined
        Entry("usage", "1,520 in / 12 out tokens"),
    ],
    "gemini-bad-key.jsonl": [
        Entry("system", "session started · gemini-2.5-pro"),
        Entry("error", GEMINI_KEY),
        Entry("usage", "0 in / 0 out tokens"),
    ],
    "opencode-success.jsonl": [
        Entry("assistant", DONE),
        Entry("usage", "$0.0047 · 1,520 in / 12 out tokens"),
    ],
    "opencode-bad-key.jsonl": [Entry("error", "APIError: invalid x-api-key (HTTP 401)")],
    "opencode-offline.jsonl": [
        Entry(
            "error",
            "APIError: Cannot connect to API: Unable to connect. "
            "Is the computer able to access the url?",
        )
    ],
}
TEXT_FIXTURES = sorted(
    p.name for p in FIXTURES.iterdir() if p.suffix in (".txt", ".stderr")
)  # aider's text, and what the CLIs wrote to stderr


def test_every_recorded_output_is_covered() -> None:
    recorded = {p.name for p in FIXTURES.iterdir() if p.name != "README.md"}
    assert recorded == set(EXPECTED) | set(TEXT_FIXTURES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_recorded_stream_reads_as_its_transcript(name: str) -> None:
    assert transcript_of((FIXTURES / name).read_text()) == EXPECTED[name]


@pytest.mark.parametrize("name", TEXT_FIXTURES)
def test_text_passes_through_unchanged(name: str) -> None:
    text = (FIXTURES / name).read_text()
    entries = transcript_of(text)
    assert {e.kind for e in entries} == {"text"}
    assert [e.text for e in entries] == text.removesuffix("\n").split("\n")


def test_the_aider_reply_and_its_cost_line_are_kept() -> None:
    texts = [e.text for e in transcript_of((FIXTURES / "aider-success.txt").read_text())]
    assert texts[-2:] == [
        DONE,
        "Tokens: 1.9k sent, 6 received. Cost: $0.0048 message, $0.0048 session.",
    ]


def speak(cli: str, *, fail_command: bool = False) -> str:
    """What the stand-in of a CLI prints for a run that writes a file and runs two commands."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        speaker = speaker_for(cli, True, "write hello.txt: Hi!", None, "/srv/work")
        speaker.start()
        speaker.wrote("/srv/work/hello.txt", "Hi!\n")
        speaker.ran(
            "pytest -q", "..\n2 passed in 0.01s\n" + "".join(f"l{n}\n" for n in range(5)), 0
        )
        speaker.ran("make lint", "lint failed\n", 2 if fail_command else 0)
        speaker.finish("Edited hello.txt.")
    return out.getvalue()


TOOLS = {
    "claude": [("Write", "/srv/work/hello.txt"), ("Bash", "pytest -q"), ("Bash", "make lint")],
    "codex": [("edit", "add /srv/work/hello.txt"), ("shell", "pytest -q"), ("shell", "make lint")],
    "gemini": [
        ("write_file", "/srv/work/hello.txt"),
        ("run_shell_command", "pytest -q"),
        ("run_shell_command", "make lint"),
    ],
    "opencode": [("write", "/srv/work/hello.txt"), ("bash", "pytest -q"), ("bash", "make lint")],
}


@pytest.mark.parametrize("cli", sorted(TOOLS))
def test_tool_calls_show_their_command_and_a_folded_result(cli: str) -> None:
    spoken = speak(cli)
    entries = transcript_of(spoken)
    assert [(e.text, e.detail) for e in entries if e.kind == "tool"] == TOOLS[cli]
    pytest_result = next(e for e in entries if e.kind == "tool_result" and ".." in e.text)
    assert pytest_result.text == "..\n2 passed in 0.01s"  # the first lines
    assert pytest_result.more == 5  # and how many more
    assert pytest_result.detail is not None and pytest_result.detail.endswith("l3\nl4")
    kinds = [e.kind for e in entries]
    assert kinds.index("tool") < kinds.index("tool_result") < kinds.index("assistant")
    assert entries[-2:][0] == Entry("assistant", "Edited hello.txt.")
    said = read_output(cli, cli, spoken)  # the run's totals, as the job's result has them
    tokens = f"{said.input_tokens:,} in / {said.output_tokens:,} out tokens"
    assert said.input_tokens and entries[-1].kind == "usage" and tokens in entries[-1].text


def test_a_failed_command_is_a_tool_error() -> None:
    entries = transcript_of(speak("codex", fail_command=True))
    assert Entry("tool_error", "lint failed") in entries
    assert Entry("tool_result", "lint failed") not in entries
    claude = {
        "type": "user",
        "message": {
            "role": "user",
            "content": [{"type": "tool_result", "is_error": True, "content": "Exit code 1"}],
        },
    }
    assert transcript_of(json.dumps(claude)) == [Entry("tool_error", "Exit code 1")]


def test_a_codex_command_is_shown_when_it_starts_and_once() -> None:
    item = {
        "id": "item_3",
        "type": "command_execution",
        "command": "sleep 9",
        "status": "in_progress",
    }
    started = {"type": "item.started", "item": item}
    done = {
        "type": "item.completed",
        "item": {**item, "status": "completed", "exit_code": 0, "aggregated_output": "ok\n"},
    }
    transcript = Transcript()
    assert transcript.feed(json.dumps(started)) == [Entry("tool", "shell", "sleep 9")]
    assert transcript.feed(json.dumps(done)) == [Entry("tool_result", "ok")]
    exited = {"type": "item.completed", "item": {**done["item"], "exit_code": 1, "id": "item_4"}}
    assert transcript.feed(json.dumps(exited))[1:] == [Entry("tool_error", "ok")]


def test_the_running_cost_adds_up_step_by_step() -> None:
    def step(cost: float, tokens_in: int) -> str:
        part = {"type": "step-finish", "cost": cost, "tokens": {"input": tokens_in, "output": 10}}
        return json.dumps({"type": "step_finish", "sessionID": "ses_1", "part": part})

    transcript = Transcript()
    assert transcript.feed(step(0.01, 1000)) == [
        Entry("usage", "$0.0100 · 1,000 in / 10 out tokens")
    ]
    assert transcript.feed(step(0.0025, 500)) == [
        Entry("usage", "$0.0125 · 1,500 in / 20 out tokens")
    ]
    assert transcript.feed(step(0, 0)) == [Entry("usage", "$0.0125 · 1,500 in / 30 out tokens")]
    text = {"type": "text", "sessionID": "ses_1", "part": {"type": "text", "text": "hm"}}
    assert transcript.feed(json.dumps(text)) == [Entry("assistant", "hm")]  # no usage: unchanged


def test_fed_line_by_line_each_entry_comes_with_its_line() -> None:
    lines = speak("claude").splitlines()
    transcript = Transcript()
    per_line = [transcript.feed(line) for line in lines]
    assert per_line[0] == [Entry("system", "session started · claude-sonnet-4-5-20250929")]
    assert per_line[1] == [Entry("tool", "Write", "/srv/work/hello.txt")]  # before its result
    assert transcript.finish() == []
    assert [e for entries in per_line for e in entries] == transcript_of(speak("claude"))


def test_gemini_deltas_come_as_one_message_when_the_next_event_or_the_end_arrives() -> None:
    lines = (FIXTURES / "gemini-success.jsonl").read_text().splitlines()
    transcript = Transcript()
    assert [transcript.feed(line) for line in lines[:4]] == [
        [Entry("system", "session started · gemini-2.5-pro")],
        [],  # the user's prompt
        [],  # a delta, held
        [],
    ]
    assert transcript.feed(lines[4])[0] == Entry("assistant", DONE)
    cut_short = Transcript()
    for line in lines[:4]:
        cut_short.feed(line)
    assert cut_short.finish() == [Entry("assistant", DONE)]
    assert cut_short.finish() == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_whole_and_split_anywhere_give_the_same_transcript(name: str) -> None:
    text = (FIXTURES / name).read_text()
    halves = Transcript()
    lines = text.splitlines()
    middle = len(lines) // 2
    entries = [e for line in lines[:middle] for e in halves.feed(line)]
    entries += [e for line in lines[middle:] for e in halves.feed(line)]
    assert entries + halves.finish() == transcript_of(text)


MALFORMED = [
    '{"type": "assistant", "message": {"content": [{"type": "text", "text": "cut',
    "[1, 2, 3]",
    '{"type": 5}',
    '{"type": "assistant", "message": {"content": "not a list"}}',
    '{"type": "assistant", "message": {"content": [7, {"type": "text", "text": 3}]}}',
    '{"type": "user", "message": {"content": [{"type": "tool_result", "content": {"a": 1}}]}}',
    '{"type": "item.completed", "item": "x"}',
    '{"type": "item.completed", "item": {"type": "command_execution", "id": []}}',
    '{"type": "item.completed", "item": {"type": "file_change", "changes": "x"}}',
    '{"type": "tool_use", "tool_name": null, "parameters": [1]}',
    '{"type": "tool_result", "tool_id": 1, "status": "error", "error": 5}',
    '{"type": "message", "role": "assistant", "content": 5}',
    '{"type": "tool_use", "sessionID": 1, "part": []}',
    '{"type": "tool_use", "sessionID": 1, "part": {"state": "done"}}',
    '{"type": "result", "subtype": "error_during_execution", "is_error": true}',
    "\x00\udcff{}",
    "{" * 10_000 + "}" * 10_000,
]


def test_malformed_lines_never_raise_and_non_events_pass_unchanged() -> None:
    transcript = Transcript()
    seen = [transcript.feed(line) for line in MALFORMED]
    assert seen[0] == [Entry("text", MALFORMED[0])]  # not JSON: shown as it is
    assert seen[1] == [Entry("text", "[1, 2, 3]")]
    assert seen[2] == [Entry("text", '{"type": 5}')]
    assert seen[3] == []  # a Claude event with nothing to show
    assert seen[5] == [Entry("tool_result", '{"a": 1}')]
    assert seen[9] == [Entry("tool", "tool", "[1]")]
    assert seen[10] == [Entry("tool_error", "5")]
    assert seen[14] == [Entry("error", "error_during_execution")]
    assert transcript.finish() == []


def test_other_json_is_a_shell_jobs_output_and_passes_unchanged() -> None:
    lines = [
        '{"event": "job.claim_completed", "job": 12}',
        '{"type": "custom", "n": 1}',
        '{"type": "error", "message": "a shell job\'s own log line"}',
        '{"type": "item.created", "item": 3}',
        "",
        "  x",
    ]
    assert transcript_of("\n".join(lines) + "\n") == [Entry("text", line) for line in lines]


def test_a_long_result_is_cut_and_a_long_argument_clipped() -> None:
    long = "x" * (DETAIL_LIMIT + 500)
    event = {
        "type": "user",
        "message": {"content": [{"type": "tool_result", "content": f"a\nb\n{long}"}]},
    }
    (entry,) = transcript_of(json.dumps(event))
    assert entry.more == 1 and entry.detail is not None
    assert entry.detail.endswith("… (cut)") and len(entry.detail) < DETAIL_LIMIT + 20
    call = {
        "type": "assistant",
        "message": {
            "content": [{"type": "tool_use", "name": "Bash", "input": {"command": "y" * 999}}]
        },
    }
    (tool,) = transcript_of(json.dumps(call))
    assert tool.detail is not None and len(tool.detail) == 240 and tool.detail.endswith("…")
    heredoc = {
        **call,
        "message": {
            "content": [
                {"type": "tool_use", "name": "Bash", "input": {"command": "cat <<EOF\nhi\nEOF"}}
            ]
        },
    }
    assert transcript_of(json.dumps(heredoc)) == [Entry("tool", "Bash", "cat <<EOF …")]


def test_a_kept_tail_leaves_out_the_event_it_starts_inside() -> None:
    whole = (FIXTURES / "claude-success.jsonl").read_text()
    first_end = whole.index("\n")
    kept = truncation_marker(5000, 1000) + whole[first_end - 40 :]
    entries = transcript_of(kept)
    assert entries[0] == Entry("text", truncation_marker(5000, 1000).rstrip("\n"))
    assert entries[1:] == EXPECTED["claude-success.jsonl"][1:]
    # a shell job's cut line is kept: it is not the end of an event
    assert transcript_of(truncation_marker(9, 1) + "ail of a line\nnext\n")[1:] == [
        Entry("text", "ail of a line"),
        Entry("text", "next"),
    ]


def test_a_tail_cut_mid_line_drops_its_first_line() -> None:
    assert transcript_of("tail of a line\nwhole\n", cut=True) == [Entry("text", "whole")]
    assert transcript_of("") == [] and transcript_of("\n") == [Entry("text", "")]
    assert transcript_of("no newline") == [Entry("text", "no newline")]
