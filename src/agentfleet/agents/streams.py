"""Read an agent CLI's output as it arrives and sum it up: session, final message, usage.

Each CLI has its own machine-readable mode, and each reader here follows one:

* ``claude -p --output-format stream-json --verbose``: one JSON object a line; a
  ``system``/``init`` event with the ``session_id``, ``assistant`` and ``user`` messages,
  and a closing ``result`` event (``result``, ``is_error``, ``num_turns``,
  ``total_cost_usd``, ``usage``);
* ``codex exec --json``: ``thread.started`` (``thread_id``), ``item.completed`` items (the
  ``agent_message`` is the answer), ``turn.completed`` with ``usage``, and ``turn.failed`` or
  ``error`` events;
* ``gemini -o stream-json``: ``init`` (``session_id``), ``message`` deltas of the
  assistant, ``tool_use``/``tool_result``, ``error`` and a closing ``result`` with ``stats``;
* ``opencode run --format json``: events carrying ``sessionID`` and a ``part``: ``text``,
  ``tool_use``, ``step_finish`` (``cost``, ``tokens``) and ``error``;
* aider, which has no such mode: its text, where each reply ends in a ``Tokens: 2.1k sent,
  240 received. Cost: $0.01 message, $0.02 session.`` line.

A reader never raises on what it is fed: a line that is not what it expects is skipped, so
a CLI that changes its format degrades to an emptier summary, never to a failed job.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from agentfleet.output import OUTPUT_LIMIT, TailBuffer

__all__ = [
    "AgentSummary",
    "LineReader",
    "ReadingBuffer",
    "StreamReader",
    "make_reader",
    "read_output",
]

_TEXT_LIMIT = 8000  # characters of the final message kept in the job's result


@dataclass
class AgentSummary:
    """What one agent run said about itself; ``None`` where the CLI did not say."""

    engine: str
    session_id: str | None = None
    text: str | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    turns: int | None = None
    is_error: bool = False
    error: str | None = None  # the CLI's own error message, when it reported one
    events: int = 0  # how many events of its stream were read

    def as_result(self) -> dict[str, Any]:
        """The ``agent`` object of a job's result."""
        found = asdict(self)
        found.pop("error")
        found.pop("events")
        if isinstance(found["cost_usd"], float):
            found["cost_usd"] = round(found["cost_usd"], 6)  # no float noise in results
        text = found["text"]
        if isinstance(text, str) and len(text) > _TEXT_LIMIT:
            found["text"] = text[-_TEXT_LIMIT:]
        return found


def _add(current: int | float | None, value: object) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return current
    return value if current is None else current + value


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _message(value: object) -> str | None:
    """An error message from a string or from an object with ``message`` (or ``data``)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        for key in ("message", "data", "error"):
            found = _message(value.get(key))
            if found:
                return found
        return _str(value.get("name"))
    return None


class StreamReader:
    """Fed one line of stdout at a time; ``summary`` is what it has read so far. ``hopeless``
    turns true when the CLI is waiting for something that cannot come (aider waiting for
    a browser login): the run should be stopped rather than left to its timeout."""

    def __init__(self, engine: str) -> None:
        self.summary = AgentSummary(engine)
        self.hopeless = False

    def feed(self, line: str) -> None:
        """Read one line (without its newline)."""

    def finish(self) -> AgentSummary:
        """The output has ended: the summary of the whole run."""
        return self.summary


class _JsonLines(StreamReader):
    def feed(self, line: str) -> None:
        line = line.strip()
        if not line.startswith("{"):
            return
        try:
            event = json.loads(line)
        except ValueError:
            return
        if isinstance(event, dict):
            self.summary.events += 1
            self.event(event)

    def event(self, event: dict[str, Any]) -> None:
        raise NotImplementedError


class ClaudeReader(_JsonLines):
    """``claude -p --output-format stream-json --verbose``."""

    def event(self, event: dict[str, Any]) -> None:
        s = self.summary
        s.session_id = _str(event.get("session_id")) or s.session_id
        kind = event.get("type")
        if kind == "assistant":
            message = event.get("message")
            content = message.get("content") if isinstance(message, dict) else None
            texts = [
                block["text"]
                for block in content or []
                if isinstance(block, dict)
                and block.get("type") == "text"
                and isinstance(block.get("text"), str)
            ]
            if texts:
                s.text = "".join(texts)
        elif kind == "result":
            s.text = _str(event.get("result")) or s.text
            s.is_error = (
                event.get("is_error") is True or event.get("subtype", "success") != "success"
            )
            if s.is_error:
                errors = event.get("errors")
                first = errors[0] if isinstance(errors, list) and errors else None
                s.error = _message(first) or _str(event.get("result")) or str(event.get("subtype"))
            s.cost_usd = _add(None, event.get("total_cost_usd"))
            s.turns = _int(event.get("num_turns"))
            usage = event.get("usage")
            if isinstance(usage, dict):
                total = None
                for key in (
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ):
                    total = _add(total, usage.get(key))
                s.input_tokens = total
                s.output_tokens = _int(usage.get("output_tokens"))


class CodexReader(_JsonLines):
    """``codex exec --json``."""

    def event(self, event: dict[str, Any]) -> None:
        s = self.summary
        kind = event.get("type")
        if kind == "thread.started":
            s.session_id = _str(event.get("thread_id")) or s.session_id
        elif kind == "item.completed":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "agent_message":
                s.text = _str(item.get("text")) or s.text
        elif kind == "turn.completed":
            s.turns = (s.turns or 0) + 1
            usage = event.get("usage")
            if isinstance(usage, dict):
                s.input_tokens = _add(s.input_tokens, usage.get("input_tokens"))
                s.output_tokens = _add(s.output_tokens, usage.get("output_tokens"))
            s.is_error, s.error = False, None  # the turn recovered from what came before
        elif kind in ("turn.failed", "error"):
            s.is_error = True
            s.error = _message(event.get("error") if kind == "turn.failed" else event) or kind


class GeminiReader(_JsonLines):
    """``gemini -o stream-json``. It reports no turns: each model response (text, tool
    calls, or both, up to the tools' results) is counted as one."""

    def __init__(self, engine: str) -> None:
        super().__init__(engine)
        self._parts: list[str] = []
        self._fresh = True  # the next assistant message starts a new answer
        self._responding = False  # inside one model response

    def _respond(self) -> None:
        if not self._responding:
            self._responding = True
            self.summary.turns = (self.summary.turns or 0) + 1

    def event(self, event: dict[str, Any]) -> None:
        s = self.summary
        kind = event.get("type")
        if kind == "init":
            s.session_id = _str(event.get("session_id")) or s.session_id
        elif kind == "message" and event.get("role") == "assistant":
            content = event.get("content")
            if isinstance(content, str):
                self._respond()
                if self._fresh or event.get("delta") is not True:
                    self._parts = []
                self._parts.append(content)
                self._fresh = False
                s.text = "".join(self._parts)
        elif kind == "tool_use":
            self._respond()
            self._fresh = True
        elif kind == "tool_result":
            self._fresh, self._responding = True, False
        elif kind == "error" and event.get("severity") == "error":
            s.is_error, s.error = True, _message(event) or "error"
        elif kind == "result":
            if event.get("status") == "error":
                s.is_error = True
                s.error = _message(event.get("error")) or s.error or "error"
            else:
                s.is_error, s.error = False, None
            stats = event.get("stats")
            if isinstance(stats, dict):
                s.input_tokens = _int(stats.get("input_tokens"))
                s.output_tokens = _int(stats.get("output_tokens"))


class OpencodeReader(_JsonLines):
    """``opencode run --format json``."""

    def event(self, event: dict[str, Any]) -> None:
        s = self.summary
        s.session_id = s.session_id or _str(event.get("sessionID"))
        kind = event.get("type")
        part = event.get("part")
        part = part if isinstance(part, dict) else {}
        if kind == "text":
            s.text = _str(part.get("text")) or s.text
        elif kind == "step_finish":
            s.turns = (s.turns or 0) + 1
            s.cost_usd = _add(s.cost_usd, part.get("cost"))
            tokens = part.get("tokens")
            if isinstance(tokens, dict):
                cache = tokens.get("cache")
                s.input_tokens = _add(s.input_tokens, tokens.get("input"))
                if isinstance(cache, dict):
                    s.input_tokens = _add(s.input_tokens, cache.get("read"))
                s.output_tokens = _add(s.output_tokens, tokens.get("output"))
        elif kind == "error":
            s.is_error = True
            error = event.get("error")
            s.error = _message(error) or "error"
            if isinstance(error, dict):
                data = error.get("data")
                status = data.get("statusCode") if isinstance(data, dict) else None
                name = _str(error.get("name"))
                if name and not s.error.startswith(name):
                    s.error = f"{name}: {s.error}"
                if isinstance(status, int):
                    s.error += f" (HTTP {status})"


_AIDER_TOKENS = re.compile(
    r"^Tokens: (?P<sent>[\d.]+[kM]?) sent(?:, [\d.]+[kM]? cache \w+)*, "
    r"(?P<received>[\d.]+[kM]?) received\.(?: Cost: \$(?P<message>[\d.]+) message, "
    r"\$(?P<session>[\d.]+) session\.)?"
)
# What aider prints when the model's API failed: it still exits 0.
_AIDER_ERROR = re.compile(
    r"^(litellm\.\w+(?:Error|Exception)\b.*|The API provider .*|"
    r"\w+Error: .*(?:api|API|key|auth).*)$"
)
# aider with no model and no key offers a browser login and waits minutes for it.
_AIDER_HOPELESS = re.compile(r"^No LLM model was specified and no API keys were provided")
# aider's banner: what it prints before the reply starts.
_AIDER_BANNER = re.compile(
    r"^(Aider v\d|Main model:|Weak model:|Editor model:|Git repo:|Repo-map:)"
)
_AIDER_NOISE = re.compile(
    r"^(Aider v\d|Main model:|Weak model:|Editor model:|Git repo:|Repo-map:|Model:|"
    r"Added .* to the chat|Warning|https?://|For more info|Tokens:|Applied edit|Commit |"
    r"Cost estimates|Use /help|You can skip|Update git|Can't initialize prompt|─|-{3,}|"
    r"Retrying in|Please answer|Run shell command|Add .* to .gitignore)"
)


def _count(text: str) -> int:
    scale = {"k": 1_000, "M": 1_000_000}.get(text[-1], 1)
    number = text[:-1] if scale != 1 else text
    return round(float(number) * scale)


class AiderReader(StreamReader):
    """aider's plain text (run with ``--no-pretty``)."""

    def __init__(self, engine: str) -> None:
        super().__init__(engine)
        self._reply: list[str] = []

    def feed(self, line: str) -> None:
        s = self.summary
        line = line.rstrip()
        match = _AIDER_TOKENS.match(line)
        if match:
            s.turns = (s.turns or 0) + 1
            s.input_tokens = _add(s.input_tokens, _count(match["sent"]))
            s.output_tokens = _add(s.output_tokens, _count(match["received"]))
            if match["session"] is not None:
                s.cost_usd = float(match["session"])
            reply = "\n".join(self._reply).strip()
            if reply:
                s.text = reply
            self._reply = []
            return
        if _AIDER_HOPELESS.match(line):
            self.hopeless = True
            s.is_error, s.error = True, line
            return
        error = _AIDER_ERROR.match(line)
        if error:
            s.is_error, s.error = True, line
            return
        if _AIDER_BANNER.match(line):
            self._reply = []  # whatever came before the banner was not the reply
        elif line and not _AIDER_NOISE.match(line):
            self._reply.append(line)

    def finish(self) -> AgentSummary:
        if self.summary.text is None and not self.summary.is_error:
            reply = "\n".join(self._reply).strip()
            self.summary.text = reply or None
        return self.summary


_READERS: dict[str, type[StreamReader]] = {
    "aider": AiderReader,
    "claude": ClaudeReader,
    "codex": CodexReader,
    "gemini": GeminiReader,
    "opencode": OpencodeReader,
    "text": StreamReader,
}


def make_reader(output: str, engine: str) -> StreamReader:
    """The reader for an engine whose CLI prints ``output`` (see ``OUTPUT_KINDS``)."""
    return _READERS.get(output, StreamReader)(engine)


def read_output(output: str, engine: str, text: str) -> AgentSummary:
    """Read a whole recorded output at once (as the tests and ``show`` do)."""
    reader = make_reader(output, engine)
    for line in text.splitlines():
        reader.feed(line)
    return reader.finish()


class LineReader:
    """Splits a byte stream into lines for a reader; a line too long to be an event is
    skipped (a reader keeps no unbounded buffer)."""

    def __init__(self, reader: StreamReader, max_line: int = OUTPUT_LIMIT) -> None:
        self.reader = reader
        self.max_line = max_line
        self._partial = bytearray()
        self._skipping = False
        self._lock = threading.Lock()
        self._finished = False

    def write(self, chunk: bytes) -> None:
        with self._lock:
            if self._finished:
                return
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    break
                self._line(chunk[start:end])
                start = end + 1
            rest = chunk[start:]
            if len(self._partial) + len(rest) > self.max_line:
                self._partial.clear()
                self._skipping = True
            elif not self._skipping:
                self._partial += rest

    def _line(self, tail: bytes) -> None:
        data = bytes(self._partial) + tail
        self._partial.clear()
        if self._skipping:
            self._skipping = False
            return
        self.reader.feed(data.decode("utf-8", errors="replace").rstrip("\r"))

    def finish(self) -> AgentSummary:
        """The stream ended: read its last line, once, and return the summary."""
        with self._lock:
            if not self._finished:
                self._finished = True
                if self._partial and not self._skipping:
                    self._line(b"")
                return self.reader.finish()
            return self.reader.summary


class ReadingBuffer(TailBuffer):
    """A run's stdout: kept (its tail) like any output, and read line by line as it comes;
    ``on_hopeless`` is called once when the reader gives up on the run."""

    def __init__(
        self, limit: int, reader: StreamReader, on_hopeless: Callable[[], None] | None = None
    ) -> None:
        super().__init__(limit)
        self.lines = LineReader(reader)
        self._on_hopeless = on_hopeless
        self._told = False

    def write(self, chunk: bytes) -> None:
        super().write(chunk)
        with contextlib.suppress(Exception):  # a reader must never break the capture
            self.lines.write(chunk)
        if self.lines.reader.hopeless and not self._told and self._on_hopeless is not None:
            self._told = True
            self._on_hopeless()
