"""Turn what an agent CLI printed into a transcript a person can follow.

A run's stdout is the CLI's raw event stream (see :mod:`agentfleet.agents.streams`). A
:class:`Transcript` is fed it one line at a time, as it arrives, and answers each line with
the entries it adds: the assistant's messages, each tool call with its command or file, the
tool's result (its first lines, the rest folded away), errors, the session's start and the
running cost and token count.

It needs no engine configuration: each line's format is told by its own shape (Claude
Code's ``system``/``assistant``/``user``/``result`` events, Codex's ``thread.*``/``turn.*``/
``item.*``, Gemini CLI's ``init``/``message``/``tool_use``/``tool_result``/``result``,
opencode's events carrying a ``sessionID``). Any other line, aider's text or a shell job's
output, JSON or not, is a ``text`` entry holding the line unchanged. Nothing it is fed makes
it raise: an event it does not know is skipped.

The running totals are the readers' own (:func:`~agentfleet.agents.streams.make_reader`):
each format's reader is fed the same lines, and a ``usage`` entry (written as
:func:`~agentfleet.agents.usage.format_usage` writes any usage) follows each event that
changed its cost or token counts; the run-level error messages are the readers' too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from agentfleet.agents.streams import AgentSummary, StreamReader, make_reader
from agentfleet.agents.usage import Usage, format_usage
from agentfleet.output import is_truncation_marker

__all__ = ["Entry", "Kind", "Transcript", "transcript_of"]

Kind = Literal["text", "system", "assistant", "tool", "tool_result", "tool_error", "error", "usage"]

HEAD_LINES = 2  # lines of a tool's result shown before the fold
LINE_LIMIT = 240  # characters of one shown line (a tool's argument, a result's head line)
DETAIL_LIMIT = 16_000  # characters of a folded result kept

# Where a tool's input says what it acts on, in this order (Bash, Read/Write/Edit, Grep, ...).
_ARGUMENT_KEYS = (
    "command",
    "cmd",
    "file_path",
    "filePath",
    "absolute_path",
    "notebook_path",
    "path",
    "pattern",
    "url",
    "query",
    "description",
    "prompt",
)


@dataclass(frozen=True)
class Entry:
    """One thing the transcript shows.

    ``text`` is what to show. For a ``tool`` it is the tool's name and ``detail`` its
    command, file or arguments on one line; for a ``tool_result`` or ``tool_error`` it is
    the result's first lines, ``more`` counts the lines folded away and ``detail`` holds the
    whole result (cut at ``DETAIL_LIMIT`` characters) when anything was folded.
    """

    kind: Kind
    text: str
    detail: str | None = None
    more: int = 0


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _clip(text: str, limit: int = LINE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    lines = text.strip().splitlines() or [""]
    return _clip(lines[0] + (" …" if len(lines) > 1 else ""))


def _argument(value: object) -> str | None:
    """What a tool call acts on, on one line: its command, its file, else its arguments."""
    if isinstance(value, str):
        return _one_line(value) if value.strip() else None
    if isinstance(value, dict):
        for key in _ARGUMENT_KEYS:
            found = value.get(key)
            if isinstance(found, list) and found and all(isinstance(a, str) for a in found):
                found = " ".join(found)
            if _str(found):
                return _one_line(str(found))
        if not value:
            return None
    if value is None:
        return None
    try:
        return _clip(json.dumps(value, ensure_ascii=False, default=str))
    except ValueError:
        return None


def _tool(name: object, arguments: object) -> Entry:
    return Entry("tool", _str(name) or "tool", _argument(arguments))


def _output(value: object) -> str:
    """A tool's result as text: a string, or the text blocks of a list (Claude's form)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for block in value:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict):
                text = block.get("text")
                parts.append(text if isinstance(text, str) else f"[{block.get('type', 'data')}]")
        return "\n".join(parts)
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, default=str)


def _result(output: str, *, failed: bool = False) -> list[Entry]:
    kind: Kind = "tool_error" if failed else "tool_result"
    body = output.strip("\n").rstrip()
    if not body.strip():
        return [Entry(kind, "(failed, no output)")] if failed else []
    lines = body.splitlines()
    head = [_clip(line) for line in lines[:HEAD_LINES]]
    more = len(lines) - len(head)
    folded = more > 0 or head != lines[: len(head)]
    detail = None
    if folded:
        detail = body if len(body) <= DETAIL_LIMIT else body[:DETAIL_LIMIT] + "\n… (cut)"
    return [Entry(kind, "\n".join(head), detail, more)]


def _started(model: object) -> Entry:
    model = _str(model)
    return Entry("system", "session started" + (f" · {model}" if model else ""))


def _blocks(event: dict[str, Any]) -> list[dict[str, Any]]:
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict)]


def _format_of(event: dict[str, Any], current: str | None) -> str | None:
    """Which CLI printed this event, by its shape; ``current`` (the stream's so far) for
    an event that could be more than one, or one of a type this module does not know."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return None
    if "sessionID" in event:
        return "opencode"
    if kind == "system" and "subtype" in event:
        return "claude"
    if kind in ("assistant", "user") and isinstance(event.get("message"), dict):
        return "claude"
    if kind == "result":
        if "subtype" in event or "total_cost_usd" in event:
            return "claude"
        if "stats" in event or "status" in event:
            return "gemini"
    if (
        (kind == "thread.started" and "thread_id" in event)
        or kind in ("turn.started", "turn.completed", "turn.failed")
        or (kind.startswith("item.") and isinstance(event.get("item"), dict))
    ):
        return "codex"
    if (
        (kind == "init" and "session_id" in event)
        or (kind == "message" and "role" in event)
        or (kind == "tool_use" and "tool_name" in event)
        or (kind == "tool_result" and "tool_id" in event)
        or (kind == "error" and "severity" in event)
    ):
        return "gemini"
    return current  # Codex's errors, and events of types not known here


class Transcript:
    """Fed one line of output at a time (without its newline); each call returns the entries
    that line adds. Call :meth:`finish` when the output has ended."""

    def __init__(self) -> None:
        self.format: str | None = None  # the CLI whose events were read last
        self._readers: dict[str, StreamReader] = {}
        self._usage: tuple[float | None, int | None, int | None] = (None, None, None)
        self._last_error: str | None = None
        self._deltas: list[str] = []  # Gemini's assistant message, as it streams in
        self._open: set[object] = set()  # Codex commands shown when they started
        self._after_marker = False
        self._handlers: dict[str, Callable[[dict[str, Any], AgentSummary], list[Entry]]] = {
            "claude": self._claude,
            "codex": self._codex,
            "gemini": self._gemini,
            "opencode": self._opencode,
        }

    def feed(self, line: str) -> list[Entry]:
        """The entries one more line adds (none for an event that shows nothing)."""
        try:
            return self._feed(line)
        except Exception:  # a malformed event must never stop the transcript
            return []

    def finish(self) -> list[Entry]:
        """The output has ended: what was still held back (a message being streamed)."""
        return self._flush()

    def _feed(self, line: str) -> list[Entry]:
        after_marker, self._after_marker = self._after_marker, is_truncation_marker(line)
        event = self._event(line)
        fmt = None if event is None else _format_of(event, self.format)
        if event is None or fmt is None:
            stripped = line.strip()
            if after_marker and stripped.endswith("}"):
                return self._flush()  # the cut-off end of an event the kept tail starts in
            return [*self._flush(), Entry("text", line)]
        self.format = fmt
        reader = self._readers.get(fmt)
        if reader is None:
            reader = self._readers[fmt] = make_reader(fmt, fmt)
        reader.feed(line)
        summary = reader.summary
        if fmt == "gemini" and event.get("type") == "message" and event.get("role") == "assistant":
            entries = self._gemini_message(event)
        else:
            entries = [*self._flush(), *self._handlers[fmt](event, summary)]
        shown = [e for e in entries if not self._repeated(e)]
        usage = (summary.cost_usd, summary.input_tokens, summary.output_tokens)
        if usage != self._usage and usage != (None, None, None):
            self._usage = usage
            shown.append(Entry("usage", format_usage(Usage(*usage))))
        return shown

    @staticmethod
    def _event(line: str) -> dict[str, Any] | None:
        stripped = line.strip()
        if not (stripped.startswith("{") and stripped.endswith("}")):
            return None
        try:
            event = json.loads(stripped)
        except ValueError:
            return None
        return event if isinstance(event, dict) else None

    def _repeated(self, entry: Entry) -> bool:
        """An error said again (a retry's message, then the failure that repeats it)."""
        if entry.kind != "error":
            return False
        if entry.text == self._last_error:
            return True
        self._last_error = entry.text
        return False

    def _flush(self) -> list[Entry]:
        text = "".join(self._deltas).strip()
        self._deltas = []
        return [Entry("assistant", text)] if text else []

    def _error(self, summary: AgentSummary, fallback: str = "error") -> list[Entry]:
        return [Entry("error", summary.error or fallback)]

    # -- one method per CLI: the entries of one of its events ---------------------------

    def _claude(self, event: dict[str, Any], summary: AgentSummary) -> list[Entry]:
        kind = event.get("type")
        if kind == "system":
            return [_started(event.get("model"))] if event.get("subtype") == "init" else []
        entries: list[Entry] = []
        if kind == "assistant":
            failed = event.get("error") is not None  # a synthetic message saying what failed
            for block in _blocks(event):
                text = _str(block.get("text")) if block.get("type") == "text" else None
                if text:
                    entries.append(Entry("error" if failed else "assistant", text.strip()))
                elif block.get("type") == "tool_use":
                    entries.append(_tool(block.get("name"), block.get("input")))
        elif kind == "user":
            for block in _blocks(event):
                if block.get("type") == "tool_result":
                    failed = block.get("is_error") is True
                    entries += _result(_output(block.get("content")), failed=failed)
        elif kind == "result" and summary.is_error:
            entries += self._error(summary)
        return entries

    def _codex(self, event: dict[str, Any], summary: AgentSummary) -> list[Entry]:
        kind = event.get("type")
        if kind == "thread.started":
            return [_started(None)]
        if kind in ("error", "turn.failed"):
            return self._error(summary, str(kind))
        item = event.get("item")
        if not isinstance(item, dict) or not str(kind).startswith("item."):
            return []
        done = kind == "item.completed"
        shape, ident = item.get("type"), item.get("id")
        if shape == "command_execution":
            entries = [] if ident in self._open else [_tool("shell", item.get("command"))]
            if not done:
                self._open.add(ident)
                return entries
            self._open.discard(ident)
            code = item.get("exit_code")
            failed = item.get("status") == "failed" or (isinstance(code, int) and code != 0)
            return entries + _result(_output(item.get("aggregated_output")), failed=failed)
        if not done:
            return []
        if shape == "agent_message" and _str(item.get("text")):
            return [Entry("assistant", str(item["text"]).strip())]
        if shape == "error":
            return [Entry("error", _str(item.get("message")) or "error")]
        if shape == "file_change":
            changes = item.get("changes")
            paths = [
                f"{c.get('kind', 'edit')} {c.get('path')}"
                for c in (changes if isinstance(changes, list) else [])
                if isinstance(c, dict)
            ]
            return [Entry("tool", "edit", _clip(", ".join(paths)) or None)]
        if shape == "mcp_tool_call":
            name = ".".join(str(item[k]) for k in ("server", "tool") if _str(item.get(k)))
            entries = [_tool(name, item.get("arguments"))]
            error = item.get("error")
            if error:
                message = error.get("message") if isinstance(error, dict) else error
                return entries + _result(_output(message), failed=True)
            return entries + _result(_output(item.get("result")))
        if shape == "web_search":
            return [_tool("web_search", item.get("query"))]
        return []

    def _gemini_message(self, event: dict[str, Any]) -> list[Entry]:
        content = event.get("content")
        if not isinstance(content, str):
            return []
        if event.get("delta") is True:
            self._deltas.append(content)
            return []
        entries = self._flush()
        return [*entries, Entry("assistant", content.strip())] if content.strip() else entries

    def _gemini(self, event: dict[str, Any], summary: AgentSummary) -> list[Entry]:
        kind = event.get("type")
        if kind == "init":
            return [_started(event.get("model"))]
        if kind == "tool_use":
            return [_tool(event.get("tool_name"), event.get("parameters"))]
        if kind == "tool_result":
            if event.get("status") == "error":
                error = event.get("error")
                message = error.get("message") if isinstance(error, dict) else error
                return _result(_output(message or event.get("output")), failed=True)
            return _result(_output(event.get("output")))
        if kind == "error":
            if event.get("severity") == "error":
                return self._error(summary)
            message = _str(event.get("message"))
            return [Entry("system", message.strip())] if message else []
        if kind == "result" and event.get("status") == "error":
            return self._error(summary)
        return []

    def _opencode(self, event: dict[str, Any], summary: AgentSummary) -> list[Entry]:
        kind = event.get("type")
        part = event.get("part")
        part = part if isinstance(part, dict) else {}
        if kind == "text" and _str(part.get("text")):
            return [Entry("assistant", str(part["text"]).strip())]
        if kind == "tool_use":
            state = part.get("state")
            state = state if isinstance(state, dict) else {}
            entries = [_tool(part.get("tool"), state.get("input"))]
            if state.get("status") == "error":
                return entries + _result(_output(state.get("error")), failed=True)
            return entries + _result(_output(state.get("output")))
        if kind == "error":
            return self._error(summary)
        return []


def transcript_of(text: str, *, cut: bool = False) -> list[Entry]:
    """The transcript of a whole output; ``cut``: it starts part-way through a line (a
    kept tail), and that partial first line is left out."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line, or an empty output
    if cut:
        lines = lines[1:]
    transcript = Transcript()
    entries = [entry for line in lines for entry in transcript.feed(line)]
    return entries + transcript.finish()
