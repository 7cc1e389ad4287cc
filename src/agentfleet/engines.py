"""Turn an agent job payload into the argv of a real, non-interactive agent CLI.

Every engine is a template in one table (:data:`AGENT_ENGINES`) so the docs can print exactly
what runs. A template is a sequence of argv items:

* a string is one argv element; it may use the placeholders ``{prompt}``, ``{model}`` and
  ``{cwd}`` (write ``{{`` / ``}}`` for literal braces);
* a tuple (a nested array in TOML) is an *optional group*, e.g. ``("--model", "{model}")``:
  it is kept whole or dropped whole;
* any item that references a placeholder with no value (no model given, no cwd) is dropped, so
  put a flag and its value in one group to drop the flag too;
* the item ``"{yolo_flags}"`` marks where the engine's yolo flags go when the job sets
  ``yolo: true`` (and its ``no_yolo_flags`` when it does not); without the marker they are
  appended at the end.

Some CLIs need environment variables as well as flags to run unattended (Claude Code
refuses ``--dangerously-skip-permissions`` as root unless ``IS_SANDBOX=1``): an engine's
``yolo_env`` is set for yolo jobs, under the job's own ``env``.

Built-in templates put the prompt after ``--`` or in ``--flag=value`` form, so a prompt that
starts with ``-`` (a Markdown list, say) is never mistaken for an option.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import string
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from agentfleet import validate
from agentfleet.errors import InvalidArgument

__all__ = [
    "AGENT_ENGINES",
    "BUILTIN_ENGINES",
    "DEFAULT_AGENT_TIMEOUT",
    "NON_AGENT_ENGINES",
    "OUTPUT_KINDS",
    "PLACEHOLDERS",
    "YOLO_MARKER",
    "AgentCommand",
    "EngineConfig",
    "EngineRow",
    "EngineSpec",
    "ExecutableNotFound",
    "build_agent_command",
    "default_timeout",
    "engine_table",
    "load_engine_config",
    "parse_engine_config",
    "resolve_executable",
]

PLACEHOLDERS = frozenset({"prompt", "model", "cwd", "session"})
YOLO_MARKER = "{yolo_flags}"
NON_AGENT_ENGINES = frozenset({"python", "shell", "approval"})
# How long an agent job may run when the job sets no timeout: an agent waiting on a prompt
# nobody answers (or looping) would otherwise hold its lease and its lock forever.
DEFAULT_AGENT_TIMEOUT = 2 * 3600.0
# Whose output (and failure messages) an engine's CLI prints; "text" reads nothing into it.
OUTPUT_KINDS = ("aider", "claude", "codex", "gemini", "opencode", "text")
_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

TemplateItem = str | tuple[str, ...]


class ExecutableNotFound(InvalidArgument):
    """The agent CLI an engine needs is not installed where the job can see it."""


@dataclass(frozen=True)
class EngineSpec:
    """How one agent CLI is invoked; see the module docstring for the template rules."""

    name: str
    argv: tuple[TemplateItem, ...]
    yolo_flags: tuple[str, ...] = ()
    description: str = ""
    no_yolo_flags: tuple[str, ...] = ()
    yolo_env: Mapping[str, str] = field(default_factory=dict)
    output: str = "text"
    # The template that continues an earlier run's session ({session}); None: cannot resume.
    resume_argv: tuple[TemplateItem, ...] | None = None

    def render(
        self,
        prompt: str,
        *,
        model: str | None = None,
        cwd: str | None = None,
        yolo: bool = False,
        session: str | None = None,
    ) -> list[str]:
        """Fill the template (the resume template when given a session); items whose
        placeholders have no value are dropped."""
        values = {"prompt": prompt, "model": model, "cwd": cwd, "session": session}
        flags = self.yolo_flags if yolo else self.no_yolo_flags
        template = self.argv
        if session is not None:
            if self.resume_argv is None:
                raise InvalidArgument(f"engine {self.name!r} cannot resume a session")
            template = self.resume_argv
        argv: list[str] = []
        placed = False
        for item in template:
            if item == YOLO_MARKER:
                placed = True
                argv.extend(flags)
                continue
            group = (item,) if isinstance(item, str) else item
            rendered = [_fill(part, values) for part in group]
            if all(part is not None for part in rendered):
                argv.extend(part for part in rendered if part is not None)
        if not placed:
            argv.extend(flags)
        return argv

    def env(self, *, yolo: bool = False) -> dict[str, str]:
        """The variables the engine itself sets for a job (its yolo_env, for yolo jobs)."""
        return dict(self.yolo_env) if yolo else {}


@dataclass(frozen=True)
class AgentCommand:
    """A ready-to-run agent process; ``env`` holds only the variables the engine and the job
    set (the job's win), not the inherited environment."""

    argv: list[str]
    cwd: str | None
    env: dict[str, str]
    output: str = "text"

    def full_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The child's whole environment: ``base`` (default: ours) overlaid with the job's."""
        merged = dict(os.environ if base is None else base)
        merged.update(self.env)
        return merged


def _fill(template: str, values: Mapping[str, str | None]) -> str | None:
    names = _placeholders(template)
    if any(values.get(name) is None for name in names):
        return None
    return template.format_map({name: values[name] for name in names})


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


AGENT_ENGINES: Mapping[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec(
            "claude",
            (
                "claude",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                ("--model", "{model}"),
                YOLO_MARKER,
                "--",
                "{prompt}",
            ),
            ("--dangerously-skip-permissions",),
            "Claude Code print mode; without yolo, tools that need approval are refused. "
            "As root it refuses to skip permissions unless IS_SANDBOX=1, which yolo sets.",
            yolo_env={"IS_SANDBOX": "1"},
            output="claude",
            resume_argv=(
                "claude",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--resume",
                "{session}",
                ("--model", "{model}"),
                YOLO_MARKER,
                "--",
                "{prompt}",
            ),
        ),
        EngineSpec(
            "codex",
            (
                "codex",
                "exec",
                "--json",
                "--skip-git-repo-check",
                ("--model", "{model}"),
                YOLO_MARKER,
                "--",
                "{prompt}",
            ),
            ("--dangerously-bypass-approvals-and-sandbox",),
            "Codex exec, also outside a git repository; without yolo it keeps Codex's default "
            "sandbox (read-only).",
            output="codex",
            resume_argv=(
                "codex",
                "exec",
                "resume",
                "--json",
                "--skip-git-repo-check",
                ("--model", "{model}"),
                YOLO_MARKER,
                "--",
                "{session}",
                "{prompt}",
            ),
        ),
        EngineSpec(
            "gemini",
            (
                "gemini",
                "--skip-trust",
                "--output-format",
                "stream-json",
                ("--model", "{model}"),
                YOLO_MARKER,
                "--prompt={prompt}",
            ),
            ("--yolo",),
            "Gemini CLI headless mode; --skip-trust trusts the job's folder for the session "
            "(else it ignores --yolo there); --yolo auto-approves every tool call.",
            output="gemini",
            resume_argv=(
                "gemini",
                "--skip-trust",
                "--output-format",
                "stream-json",
                "--resume",
                "{session}",
                ("--model", "{model}"),
                YOLO_MARKER,
                "--prompt={prompt}",
            ),
        ),
        EngineSpec(
            "aider",
            (
                "aider",
                "--no-pretty",
                "--no-check-update",
                "--no-show-release-notes",
                "--no-analytics",
                ("--model", "{model}"),
                YOLO_MARKER,
                "--message={prompt}",
            ),
            ("--suggest-shell-commands",),
            "Aider, one message then exit. With no terminal each question gets its default "
            "answer (yes); without yolo it suggests (and runs) no shell commands.",
            no_yolo_flags=("--no-suggest-shell-commands",),
            output="aider",
        ),
        EngineSpec(
            "opencode",
            (
                "opencode",
                "run",
                "--format",
                "json",
                ("--model", "{model}"),
                YOLO_MARKER,
                "--",
                "{prompt}",
            ),
            ("--auto",),
            "opencode run; model is provider/model. Without yolo it rejects what its config "
            "asks about, and its default config allows every tool but leaving the project "
            "folder and reading .env files: yolo: false restricts next to nothing.",
            output="opencode",
            resume_argv=(
                "opencode",
                "run",
                "--format",
                "json",
                "--session",
                "{session}",
                ("--model", "{model}"),
                YOLO_MARKER,
                "--",
                "{prompt}",
            ),
        ),
        EngineSpec(
            "devin",
            ("devin", ("--model", "{model}"), YOLO_MARKER, "-p", "--", "{prompt}"),
            ("--permission-mode", "bypass"),
            "Devin CLI single-turn mode; without yolo it runs in its normal permission mode.",
        ),
    )
}

BUILTIN_ENGINES = NON_AGENT_ENGINES | frozenset(AGENT_ENGINES)


@dataclass(frozen=True)
class EngineConfig:
    """Custom (or overriding) agent engines, usually loaded from a TOML file."""

    engines: Mapping[str, EngineSpec] = field(default_factory=dict)
    source: str | None = None

    def spec(self, name: str) -> EngineSpec | None:
        """The template for ``name``; a custom entry wins over the built-in one."""
        return self.engines.get(name) or AGENT_ENGINES.get(name)

    def is_agent(self, name: str) -> bool:
        """Whether jobs of ``name`` run an agent CLI (built-in or from this config)."""
        return name not in NON_AGENT_ENGINES and self.spec(name) is not None

    def agent_engines(self) -> list[str]:
        """Names of every agent engine, built-in and custom, sorted."""
        return sorted(set(AGENT_ENGINES) | set(self.engines))

    def engine_names(self) -> frozenset[str]:
        """Every engine a job file may name (agent and non-agent)."""
        return BUILTIN_ENGINES | frozenset(self.engines)


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _payload_str(payload: Mapping[str, Any], key: str, engine: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(
            f"engine {engine!r}: payload {key!r} must be a string, not {type(value).__name__}"
        )
    return value


def _payload_env(payload: Mapping[str, Any], engine: str) -> dict[str, str]:
    env = payload.get("env") or {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise InvalidArgument(f"engine {engine!r}: payload 'env' must map strings to strings")
    return dict(env)


def build_agent_command(
    engine: str,
    payload: Mapping[str, Any],
    config: EngineConfig | None = None,
    *,
    session: str | None = None,
    resume_prompt: str | None = None,
) -> AgentCommand:
    """Build the argv, working directory and extra environment for one agent job; with
    ``session``, the command that resumes it, sending ``resume_prompt`` (else the job's)."""
    config = config or EngineConfig()
    spec = config.spec(engine)
    if spec is None:
        if engine in NON_AGENT_ENGINES:
            raise InvalidArgument(f"engine {engine!r} is not an agent engine; it has no CLI")
        known = config.agent_engines()
        raise InvalidArgument(
            f"unknown agent engine {engine!r}{_did_you_mean(engine, known)}; "
            f"known agent engines: {', '.join(known)}"
        )
    prompt = _payload_str(payload, "prompt", engine)
    if prompt is None or not prompt.strip():
        raise InvalidArgument(f"engine {engine!r}: the payload has no prompt")
    yolo = payload.get("yolo", False)
    if not isinstance(yolo, bool):
        raise InvalidArgument(f"engine {engine!r}: payload 'yolo' must be true or false")
    model = _payload_str(payload, "model", engine)
    cwd = _payload_str(payload, "cwd", engine)
    validate.prompt(prompt, f"engine {engine!r}: the prompt")  # would fail to start
    if session is not None and resume_prompt is not None:
        validate.prompt(resume_prompt, f"engine {engine!r}: the resume prompt")
        prompt = resume_prompt
    argv = spec.render(prompt, model=model or None, cwd=cwd, yolo=yolo, session=session)
    env = {**spec.env(yolo=yolo), **_payload_env(payload, engine)}
    return AgentCommand(argv=argv, cwd=cwd, env=env, output=spec.output)


def default_timeout(engine: str, config: EngineConfig | None = None) -> float | None:
    """The timeout of a job that sets none: :data:`DEFAULT_AGENT_TIMEOUT` for agents."""
    config = config or EngineConfig()
    return DEFAULT_AGENT_TIMEOUT if config.is_agent(engine) else None


def resolve_executable(
    argv: Sequence[str], env: Mapping[str, str], *, engine: str | None = None
) -> str:
    """Find ``argv[0]`` using the job's PATH (``env['PATH']``, else ours) before spawning."""
    if not argv:
        raise InvalidArgument("cannot run an empty command")
    program = argv[0]
    search = env["PATH"] if "PATH" in env else os.environ.get("PATH", os.defpath)
    found = shutil.which(program, path=search)
    if found is not None:
        return found
    who = f"engine {engine!r}" if engine else "this job"
    if os.sep in program or (os.altsep and os.altsep in program):
        raise ExecutableNotFound(f"{who} needs {program!r}, which is missing or not executable")
    raise ExecutableNotFound(
        f"{who} needs the {program!r} executable on PATH; install it, or set PATH in the "
        "job's env to the directory that holds it"
    )


class EngineRow(NamedTuple):
    """One engine's exact commands, for the docs and ``agentfleet engines``."""

    name: str
    argv: list[str]
    argv_yolo: list[str]
    env_yolo: dict[str, str]

    def command(self, *, yolo: bool) -> str:
        """The command as a shell line, the engine's variables first."""
        env = self.env_yolo if yolo else {}
        words = [shlex.quote(f"{k}={v}") for k, v in sorted(env.items())]
        return " ".join([*words, shlex.join(self.argv_yolo if yolo else self.argv)])


def engine_table(
    config: EngineConfig | None = None, *, prompt: str = "PROMPT", model: str = "MODEL"
) -> list[EngineRow]:
    """Every agent engine's argv without and with yolo (and yolo's variables), for the docs."""
    config = config or EngineConfig()
    rows: list[EngineRow] = []
    for name in config.agent_engines():
        spec = config.spec(name)
        assert spec is not None
        rows.append(
            EngineRow(
                name,
                spec.render(prompt, model=model, yolo=False),
                spec.render(prompt, model=model, yolo=True),
                spec.env(yolo=True),
            )
        )
    return rows


# -- TOML configuration -------------------------------------------------------------------

_ENGINE_KEYS = (
    "argv",
    "resume_argv",
    "yolo_flags",
    "no_yolo_flags",
    "yolo_env",
    "output",
    "description",
)


def _check_template_string(text: object, where: str) -> str:
    if not isinstance(text, str):
        raise InvalidArgument(f"{where} must be a string, not {type(text).__name__}")
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InvalidArgument(f"{where} {text!r} has unbalanced braces ({exc})") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise InvalidArgument(
                f"{where} {text!r} uses an unknown placeholder {{{name}}}; "
                f"allowed: {allowed} (write {{{{ and }}}} for literal braces)"
            )
    return text


def _check_argv(raw: object, where: str, key: str = "argv") -> tuple[TemplateItem, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument(f"{where}.{key} must be a non-empty array")
    items: list[TemplateItem] = []
    for index, item in enumerate(raw):
        at = f"{where}.{key}[{index}]"
        if isinstance(item, list):
            if not item:
                raise InvalidArgument(f"{at} is an empty group")
            if YOLO_MARKER in item:
                raise InvalidArgument(f"{at}: {YOLO_MARKER} must be an item of its own")
            items.append(tuple(_check_template_string(p, f"{at}[{i}]") for i, p in enumerate(item)))
        elif item == YOLO_MARKER:
            items.append(item)
        else:
            items.append(_check_template_string(item, at))
    first = items[0]
    if not isinstance(first, str) or _placeholders(first) or first == YOLO_MARKER:
        raise InvalidArgument(f"{where}.{key}[0] must be the program name, without placeholders")
    if items.count(YOLO_MARKER) > 1:
        raise InvalidArgument(f"{where}.{key} has {YOLO_MARKER} more than once")
    parts = [p for it in items for p in ((it,) if isinstance(it, str) else it)]
    if not any("prompt" in _placeholders(p) for p in parts):
        raise InvalidArgument(f"{where}.{key} never uses {{prompt}}, so the job's prompt is lost")
    if key == "resume_argv" and not any("session" in _placeholders(p) for p in parts):
        raise InvalidArgument(f"{where}.{key} never uses {{session}}: it cannot resume one")
    return tuple(items)


def _check_engine(name: str, raw: object, source: str) -> EngineSpec:
    where = f"{source}: engines.{name}"
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"{where}: engine names are lowercase letters, digits, '-' and '_', starting "
            "with a letter"
        )
    if name in NON_AGENT_ENGINES:
        raise InvalidArgument(f"{where}: {name!r} is a built-in non-agent engine")
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where} must be a table like [engines.{name}]")
    for key in raw:
        if key not in _ENGINE_KEYS:
            raise InvalidArgument(
                f"{where}: unknown key {key!r}{_did_you_mean(key, _ENGINE_KEYS)}; "
                f"expected {', '.join(_ENGINE_KEYS)}"
            )
    if "argv" not in raw:
        raise InvalidArgument(f"{where} needs an argv array")
    argv = _check_argv(raw["argv"], where)
    yolo = _check_flags(raw.get("yolo_flags", []), f"{where}.yolo_flags")
    no_yolo = _check_flags(raw.get("no_yolo_flags", []), f"{where}.no_yolo_flags")
    yolo_env = _check_env(raw.get("yolo_env", {}), f"{where}.yolo_env")
    output = raw.get("output", "text")
    if output not in OUTPUT_KINDS:
        raise InvalidArgument(
            f"{where}.output must be one of {', '.join(OUTPUT_KINDS)}, not {output!r}"
            f"{_did_you_mean(str(output), OUTPUT_KINDS)}"
        )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise InvalidArgument(f"{where}.description must be a string")
    resume = raw.get("resume_argv")
    resume_argv = None if resume is None else _check_argv(resume, where, "resume_argv")
    return EngineSpec(name, argv, yolo, description, no_yolo, yolo_env, output, resume_argv)


def _check_flags(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(f, str) and f for f in raw):
        raise InvalidArgument(f"{where} must be an array of non-empty strings")
    return tuple(raw)


def _check_env(raw: object, where: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise InvalidArgument(f'{where} must be a table of NAME = "value" strings')
    for key, value in raw.items():
        if not _ENV_NAME.fullmatch(key):
            raise InvalidArgument(f"{where}: {key!r} is not a valid environment variable name")
        if not isinstance(value, str):
            raise InvalidArgument(f"{where}.{key} must be a string, not {type(value).__name__}")
    return dict(raw)


def parse_engine_config(text: str, source: str = "<engine config>") -> EngineConfig:
    """Read ``[engines.NAME]`` tables from TOML text; other top-level tables are ignored."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{source}: malformed TOML: {exc}") from None
    engines = data.get("engines", {})
    if not isinstance(engines, dict):
        raise InvalidArgument(f"{source}: 'engines' must be a table of [engines.NAME] tables")
    specs = {name: _check_engine(name, raw, source) for name, raw in engines.items()}
    return EngineConfig(specs, source)


def load_engine_config(path: str | os.PathLike[str]) -> EngineConfig:
    """Load custom engines from a TOML file."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read engine config {source!r}: {exc}") from None
    return parse_engine_config(text, source)
