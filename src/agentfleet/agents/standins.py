"""How the stand-in agent (:mod:`agentfleet.fake_agent`) speaks: each real CLI's output
format, closely enough for agentfleet's readers to be tested against it.

A *speaker* is told what the stand-in does (it starts, writes a file, commits, finishes or
fails) and prints it the way one CLI would: Claude Code's ``stream-json``, Codex's
``exec --json`` events, Gemini CLI's ``stream-json``, opencode's ``run --format json``,
aider's text with its ``Tokens: ... Cost: ...`` line, or the stand-in's own plain text when
no machine-readable mode was asked for. Progress notes (``fake-agent: ...``) go to stdout in
plain text and to stderr when stdout is a stream of events.

The error messages are the real CLIs' own (see the recorded outputs under
``tests/fixtures/agents/``), so that what agentfleet recognises in them is tested.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

__all__ = ["NOT_LOGGED_IN", "Speaker", "speaker_for"]

# What each CLI prints when it has no credentials, and the exit code it ends with.
NOT_LOGGED_IN: dict[str, tuple[str, int]] = {
    "claude": ("Not logged in · Please run /login", 1),
    "codex": (
        "unexpected status 401 Unauthorized: Incorrect API key provided: sk-bad. You can find "
        "your API key at https://platform.openai.com/account/api-keys.",
        1,
    ),
    "gemini": (
        "Please set an Auth method in your settings.json or specify one of the following "
        "environment variables before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, "
        "GOOGLE_GENAI_USE_GCA",
        41,
    ),
    "aider": (
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect \n"
        "API key provided: sk-bad. You can find your API key at \n"
        "https://platform.openai.com/account/api-keys.\n"
        "The API provider is not able to authenticate you. Check your API key.",
        0,
    ),
    "opencode": ("APIError: invalid x-api-key", 1),
    "text": ("not logged in", 1),
}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _usage(prompt: str, text: str) -> tuple[int, int, float]:
    """Deterministic token counts and cost for a prompt and an answer."""
    sent = 1200 + len(prompt) // 4
    received = 20 + len(text) // 4
    return sent, received, round((sent * 3 + received * 15) / 1_000_000, 6)


class Speaker:
    """The stand-in's own plain text (no machine-readable mode asked for)."""

    persona = "text"
    streams = False  # a machine-readable mode, used only when the command line asks for it
    quiet = False  # stdout is the CLI's own: the stand-in's notes go to stderr
    checks_login_first = False  # refuses before its first event when not logged in

    def __init__(self, prompt: str, model: str | None, cwd: str) -> None:
        self.prompt = prompt
        self.model = model
        self.cwd = cwd
        self.session_id = str(uuid.uuid4())
        self.turns = 0

    def emit(self, record: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def note(self, message: str) -> None:
        print(f"fake-agent: {message}", file=sys.stderr if self.quiet else sys.stdout, flush=True)

    def start(self) -> None:
        """The CLI has started (a stream's first event)."""

    def wrote(self, path: str, text: str) -> None:
        """The agent wrote a file with a tool."""

    def ran(self, command: str, output: str, code: int) -> None:
        """The agent ran a shell command."""

    def finish(self, text: str) -> None:
        """The agent's final message, and the run's usage."""

    def fail(self, message: str) -> None:
        """The run failed with ``message`` (the CLI's own words)."""
        print(message, file=sys.stderr, flush=True)


class ClaudeSpeaker(Speaker):
    """``claude -p --output-format stream-json --verbose``."""

    persona = "claude"
    streams = True
    quiet = True

    def __init__(self, prompt: str, model: str | None, cwd: str) -> None:
        super().__init__(prompt, model, cwd)
        self.model = model or "claude-sonnet-4-5-20250929"
        self.started = _now_ms()

    def _base(self) -> dict[str, Any]:
        return {
            "parent_tool_use_id": None,
            "session_id": self.session_id,
            "uuid": str(uuid.uuid4()),
        }

    def start(self) -> None:
        self.emit(
            {
                "type": "system",
                "subtype": "init",
                "cwd": self.cwd,
                "session_id": self.session_id,
                "tools": ["Bash", "Edit", "Glob", "Grep", "Read", "Write"],
                "mcp_servers": [],
                "model": self.model,
                "permissionMode": "default",
                "apiKeySource": "none",
                "claude_code_version": "2.0.0",
                "output_style": "default",
                "uuid": str(uuid.uuid4()),
            }
        )

    def _assistant(self, content: list[dict[str, Any]]) -> None:
        self.turns += 1
        self.emit(
            {
                "type": "assistant",
                "message": {
                    "id": f"msg_{uuid.uuid4().hex[:24]}",
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": content,
                    "stop_reason": None,
                    "usage": {"input_tokens": 4, "output_tokens": 12},
                },
                **self._base(),
            }
        )

    def _tool(self, name: str, args: dict[str, Any], output: str) -> None:
        call = f"toolu_{uuid.uuid4().hex[:24]}"
        self._assistant([{"type": "tool_use", "id": call, "name": name, "input": args}])
        self.emit(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [{"tool_use_id": call, "type": "tool_result", "content": output}],
                },
                **self._base(),
            }
        )

    def wrote(self, path: str, text: str) -> None:
        self._tool("Write", {"file_path": path, "content": text}, f"File created at: {path}")

    def ran(self, command: str, output: str, code: int) -> None:
        self._tool("Bash", {"command": command}, output)

    def _result(self, text: str, *, error: bool) -> None:
        sent, received, cost = _usage(self.prompt, text) if not error else (0, 0, 0.0)
        self.emit(
            {
                "type": "result",
                "subtype": "success",
                "is_error": error,
                "duration_ms": _now_ms() - self.started,
                "duration_api_ms": 0,
                "num_turns": max(1, self.turns),
                "result": text,
                "session_id": self.session_id,
                "total_cost_usd": cost,
                "usage": {
                    "input_tokens": sent - 1000 if sent else 0,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 1000 if sent else 0,
                    "output_tokens": received,
                    "service_tier": "standard",
                },
                "permission_denials": [],
                "uuid": str(uuid.uuid4()),
            }
        )

    def finish(self, text: str) -> None:
        self._assistant([{"type": "text", "text": text}])
        self._result(text, error=False)

    def fail(self, message: str) -> None:
        self.turns += 1
        self.emit(
            {
                "type": "assistant",
                "message": {
                    "id": str(uuid.uuid4()),
                    "type": "message",
                    "role": "assistant",
                    "model": "<synthetic>",
                    "content": [{"type": "text", "text": message}],
                    "stop_reason": "stop_sequence",
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
                **self._base(),
                "error": "authentication_failed" if "/login" in message else "unknown",
            }
        )
        self._result(message, error=True)


class CodexSpeaker(Speaker):
    """``codex exec --json``."""

    persona = "codex"
    streams = True
    quiet = True

    def __init__(self, prompt: str, model: str | None, cwd: str) -> None:
        super().__init__(prompt, model, cwd)
        self.items = 0

    def _item(self, kind: str, **fields: Any) -> None:
        self.emit(
            {"type": "item.completed", "item": {"id": f"item_{self.items}", "type": kind, **fields}}
        )
        self.items += 1

    def start(self) -> None:
        self.emit({"type": "thread.started", "thread_id": self.session_id})
        self.emit({"type": "turn.started"})

    def wrote(self, path: str, text: str) -> None:
        self._item("file_change", changes=[{"path": path, "kind": "add"}], status="completed")

    def ran(self, command: str, output: str, code: int) -> None:
        self._item(
            "command_execution",
            command=command,
            aggregated_output=output,
            exit_code=code,
            status="completed" if code == 0 else "failed",
        )

    def finish(self, text: str) -> None:
        self._item("agent_message", text=text)
        sent, received, _ = _usage(self.prompt, text)
        self.emit(
            {
                "type": "turn.completed",
                "usage": {
                    "input_tokens": sent,
                    "cached_input_tokens": 1000,
                    "output_tokens": received,
                },
            }
        )

    def fail(self, message: str) -> None:
        self.emit({"type": "error", "message": message})
        self.emit({"type": "turn.failed", "error": {"message": message}})


class GeminiSpeaker(Speaker):
    """``gemini -o stream-json``."""

    persona = "gemini"
    streams = True
    quiet = True
    checks_login_first = True

    def __init__(self, prompt: str, model: str | None, cwd: str) -> None:
        super().__init__(prompt, model, cwd)
        self.model = model or "gemini-2.5-pro"
        self.started = _now_ms()
        self.tools = 0

    def start(self) -> None:
        self.emit(
            {
                "type": "init",
                "timestamp": _iso(),
                "session_id": self.session_id,
                "model": self.model,
            }
        )
        self.emit({"type": "message", "timestamp": _iso(), "role": "user", "content": self.prompt})

    def _tool(self, name: str, args: dict[str, Any], output: str) -> None:
        self.tools += 1
        tool_id = f"{name}-{_now_ms()}-{uuid.uuid4().hex[:12]}"
        self.emit(
            {
                "type": "tool_use",
                "timestamp": _iso(),
                "tool_name": name,
                "tool_id": tool_id,
                "parameters": args,
            }
        )
        self.emit(
            {
                "type": "tool_result",
                "timestamp": _iso(),
                "tool_id": tool_id,
                "status": "success",
                "output": output,
            }
        )

    def wrote(self, path: str, text: str) -> None:
        self._tool(
            "write_file", {"file_path": path, "content": text}, f"Successfully created {path}."
        )

    def ran(self, command: str, output: str, code: int) -> None:
        self._tool("run_shell_command", {"command": command}, output)

    def _stats(self, text: str) -> dict[str, int]:
        sent, received, _ = _usage(self.prompt, text)
        return {
            "total_tokens": sent + received,
            "input_tokens": sent,
            "output_tokens": received,
            "cached": 1000,
            "input": sent - 1000,
            "duration_ms": _now_ms() - self.started,
            "tool_calls": self.tools,
        }

    def finish(self, text: str) -> None:
        middle = len(text) // 2
        for chunk in (text[:middle], text[middle:]):
            self.emit(
                {
                    "type": "message",
                    "timestamp": _iso(),
                    "role": "assistant",
                    "content": chunk,
                    "delta": True,
                }
            )
        self.emit(
            {"type": "result", "timestamp": _iso(), "status": "success", "stats": self._stats(text)}
        )

    def fail(self, message: str) -> None:
        # Gemini CLI reports a fatal start-up error (auth, trust) on stderr, not in the stream.
        print(message, file=sys.stderr, flush=True)


class OpencodeSpeaker(Speaker):
    """``opencode run --format json``."""

    persona = "opencode"
    streams = True
    quiet = True

    def __init__(self, prompt: str, model: str | None, cwd: str) -> None:
        super().__init__(prompt, model, cwd)
        self.session_id = f"ses_{uuid.uuid4().hex[:26]}"
        self.message_id = f"msg_{uuid.uuid4().hex[:26]}"

    def _event(self, kind: str, part: dict[str, Any]) -> None:
        self.emit(
            {
                "type": kind,
                "timestamp": _now_ms(),
                "sessionID": self.session_id,
                "part": {
                    "id": f"prt_{uuid.uuid4().hex[:26]}",
                    "sessionID": self.session_id,
                    "messageID": self.message_id,
                    **part,
                },
            }
        )

    def start(self) -> None:
        self._event("step_start", {"type": "step-start"})

    def _tool(self, name: str, args: dict[str, Any], output: str) -> None:
        self._event(
            "tool_use",
            {
                "type": "tool",
                "callID": f"call_{uuid.uuid4().hex[:24]}",
                "tool": name,
                "state": {"status": "completed", "input": args, "output": output, "title": name},
            },
        )
        self._step_finish("tool-calls", "")  # each step ends with its cost, as opencode's do

    def _step_finish(self, reason: str, text: str) -> None:
        sent, received, cost = _usage(self.prompt, text)
        self._event(
            "step_finish",
            {
                "type": "step-finish",
                "reason": reason,
                "cost": cost,
                "tokens": {
                    "input": sent - 1000,
                    "output": received,
                    "reasoning": 0,
                    "cache": {"read": 1000, "write": 0},
                },
            },
        )
        if reason != "stop":
            self._event("step_start", {"type": "step-start"})  # the next step begins

    def wrote(self, path: str, text: str) -> None:
        self._tool("write", {"filePath": path, "content": text}, "")

    def ran(self, command: str, output: str, code: int) -> None:
        self._tool("bash", {"command": command}, output)

    def finish(self, text: str) -> None:
        now = _now_ms()
        self._event("text", {"type": "text", "text": text, "time": {"start": now, "end": now}})
        self._step_finish("stop", text)

    def fail(self, message: str) -> None:
        name, _, detail = message.partition(": ")
        data: dict[str, Any] = {"message": detail or message, "isRetryable": not detail}
        if name == "APIError" and "api-key" in detail:
            data["statusCode"] = 401
        self.emit(
            {
                "type": "error",
                "timestamp": _now_ms(),
                "sessionID": self.session_id,
                "error": {"name": name if detail else "UnknownError", "data": data},
            }
        )


class AiderSpeaker(Speaker):
    """aider ``--no-pretty``: plain text; the reply (with its edit blocks), the Tokens/Cost
    line, then what aider did with it."""

    persona = "aider"
    quiet = True

    def __init__(self, prompt: str, model: str | None, cwd: str) -> None:
        super().__init__(prompt, model, cwd)
        self.blocks: list[str] = []
        self.after: list[str] = []

    def start(self) -> None:
        model = self.model or "anthropic/claude-sonnet-4-5"
        print(f"Aider v0.86.1\nMain model: {model} with diff edit format", flush=True)
        print("Git repo: .git with 1 files\nRepo-map: using 4096 tokens, auto refresh", flush=True)

    def wrote(self, path: str, text: str) -> None:
        name = path.rpartition("/")[2]
        self.blocks.append(f"{name}\n```\n<<<<<<< SEARCH\n=======\n{text}>>>>>>> REPLACE\n```")
        self.after.append(f"Applied edit to {name}")

    def ran(self, command: str, output: str, code: int) -> None:
        self.after.append(f"Commit {output}")

    def finish(self, text: str) -> None:
        print("\n\n".join([text, *self.blocks]) + "\n", flush=True)
        sent, received, cost = _usage(self.prompt, text)
        print(
            f"Tokens: {sent / 1000:.1f}k sent, {received} received. "
            f"Cost: ${cost:.4f} message, ${cost:.4f} session.",
            flush=True,
        )
        print("\n".join(self.after), flush=True)

    def fail(self, message: str) -> None:
        print(message, flush=True)  # aider prints its errors to stdout, and exits 0


_SPEAKERS: dict[str, type[Speaker]] = {
    cls.persona: cls
    for cls in (ClaudeSpeaker, CodexSpeaker, GeminiSpeaker, OpencodeSpeaker, AiderSpeaker)
}


def speaker_for(
    persona: str | None, streaming: bool, prompt: str, model: str | None, cwd: str
) -> Speaker:
    """The speaker of that CLI; plain text for a stream-capable CLI not asked to stream."""
    cls = _SPEAKERS.get(persona or "")
    if cls is None or (cls.streams and not streaming):
        return Speaker(prompt, model, cwd)
    return cls(prompt, model, cwd)
