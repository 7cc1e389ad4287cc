"""Lines are read as the bytes arrive, whatever the chunks; nothing grows without bound."""

from __future__ import annotations

import json

from agentfleet.agents.streams import (
    AgentSummary,
    LineReader,
    ReadingBuffer,
    StreamReader,
    make_reader,
)


class Recorder(StreamReader):
    def __init__(self) -> None:
        super().__init__("rec")
        self.lines: list[str] = []

    def feed(self, line: str) -> None:
        self.lines.append(line)


def test_lines_split_across_chunks_are_joined() -> None:
    rec = Recorder()
    lines = LineReader(rec)
    for chunk in (b'{"a":', b' 1}\n{"b"', b": 2}\r\nlast", b" one"):
        lines.write(chunk)
    assert rec.lines == ['{"a": 1}', '{"b": 2}']
    lines.finish()
    assert rec.lines == ['{"a": 1}', '{"b": 2}', "last one"]
    lines.finish()  # once only
    lines.write(b"late\n")
    assert rec.lines[-1] == "last one"


def test_a_line_longer_than_the_limit_is_skipped_whole() -> None:
    rec = Recorder()
    lines = LineReader(rec, max_line=10)
    lines.write(b"short\n" + b"x" * 8)
    lines.write(b"y" * 8)  # now over the limit: dropped, and the rest of it too
    lines.write(b"zzz\nafter\n")
    lines.finish()
    assert rec.lines == ["short", "after"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    rec = Recorder()
    lines = LineReader(rec)
    lines.write("é".encode()[:1] + b"\n")
    assert rec.lines == ["\ufffd"]


def test_the_reading_buffer_keeps_the_tail_and_reads_everything() -> None:
    reader = make_reader("claude", "claude")
    buffer = ReadingBuffer(64, reader)
    events = [{"type": "system", "subtype": "init", "session_id": "s-1"}] + [
        {"type": "assistant", "message": {"content": [{"type": "text", "text": f"step {i}"}]}}
        for i in range(20)
    ]
    for event in events:
        buffer.write((json.dumps(event) + "\n").encode())
    assert buffer.text().startswith("[agentfleet: ")  # only the tail is kept ...
    summary = buffer.lines.finish()
    assert (summary.session_id, summary.text) == ("s-1", "step 19")  # ... all was read
    assert summary.events == 21


def test_a_reader_skips_what_it_cannot_read() -> None:
    for kind in ("claude", "codex", "gemini", "opencode", "aider", "text", "unknown"):
        reader = make_reader(kind, "e")
        for line in (
            "",
            "not json",
            "{broken",
            "[1, 2]",
            '{"type": 3}',
            '{"type": "result", "usage": "x", "total_cost_usd": "y", "num_turns": true}',
            '{"type": "step_finish", "part": {"tokens": {"input": "a"}, "cost": null}}',
            '{"type": "turn.completed", "usage": [1]}',
            '{"type": "message", "role": "assistant", "content": 5}',
            "Tokens: lots sent, 3 received.",
        ):
            reader.feed(line)
        summary = reader.finish()
        assert isinstance(summary, AgentSummary)
        assert summary.cost_usd is None and summary.input_tokens is None
