"""Job files: Markdown with YAML front matter, so a prompt and its settings live in one file.

Example::

    ---
    engine: claude
    cwd: services/api
    lock: services-api
    timeout: 45m
    yolo: true
    ---
    Make the flaky test in tests/test_orders.py deterministic.

Files are checked completely before anything is enqueued: :func:`load_job_files` reports every
problem in every file at once, so a batch is never half-submitted.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agentfleet import validate, yamltext
from agentfleet.durations import parse_duration
from agentfleet.engines import BUILTIN_ENGINES
from agentfleet.errors import InvalidArgument
from agentfleet.workspaces import touch
from agentfleet.workspaces.setup import WorktreeSetup

__all__ = [
    "FIELDS",
    "JobFileErrors",
    "JobFileProblem",
    "JobSpec",
    "collect_job_files",
    "load_job_file",
    "load_job_files",
    "parse_job_text",
]

_COMMON = ("engine", "queue", "priority", "lock", "limit", "timeout", "max_attempts", "labels")
_WORKSPACE = ("workspace", "base", "worktree_setup", "touch", "remote")
_AGENT = ("cwd", "yolo", "model", "env", "db_access", "idle_timeout", "budget_usd", *_WORKSPACE)
_SHELL = ("cwd", "env", "cmd", "db_access", "idle_timeout", *_WORKSPACE)
_PYTHON = ("func", "args", "kwargs")
FIELDS: tuple[str, ...] = tuple(dict.fromkeys(_COMMON + _AGENT + _SHELL + _PYTHON))
_FUNC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_TOP_KEY = re.compile(r"([^\s#:'\"][^:]*?)\s*:(?:\s|$)")
DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 3
_T = TypeVar("_T")
_STORE_NAMES = frozenset({"engine", "queue", "lock", "limit"})


@dataclass(frozen=True)
class JobSpec:
    """A validated job, ready to enqueue; ``payload`` is what the engine receives."""

    engine: str
    payload: dict[str, Any]
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    lock: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: float | None = None
    labels: tuple[str, ...] = ()
    source: str | None = None


@dataclass(frozen=True)
class JobFileProblem:
    """One thing wrong with one job file; ``field`` is None for file-level problems."""

    path: str | None
    field: str | None
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "<job>"
        if self.line is not None:
            where += f":{self.line}"
        what = f"field {self.field!r}: " if self.field else ""
        return f"{where}: {what}{self.reason}"


class JobFileErrors(InvalidArgument):
    """Every problem found in a set of job files, reported together."""

    def __init__(self, problems: Sequence[JobFileProblem]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = str(self.problems[0])
        else:
            files = len({p.path for p in self.problems})
            lines = "\n".join(f"  {p}" for p in self.problems)
            noun = "file" if files == 1 else "files"
            message = f"{len(self.problems)} problems in {files} job {noun}:\n{lines}"
        super().__init__(message)


def _split_front_matter(text: str) -> tuple[str, str, int] | str:
    """Return (yaml, body, line of first yaml line) or the reason there is no front matter."""
    lines = text.removeprefix("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        return (
            "no front matter: a job file starts with a '---' line, then YAML fields "
            "(at least 'engine'), then another '---' line, then the prompt"
        )
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), 2
    return "front matter is not closed: add a '---' line after the YAML fields"


def _key_lines(front: str, first_line: int) -> dict[str, int]:
    lines: dict[str, int] = {}
    for offset, line in enumerate(front.splitlines()):
        match = _TOP_KEY.match(line)
        if match:
            lines.setdefault(match.group(1).strip(), first_line + offset)
    return lines


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class _Checker:
    """Collects problems for one file so every bad field is reported, not just the first."""

    def __init__(self, source: str | None, lines: Mapping[str, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[JobFileProblem] = []

    def bad(self, field: str | None, reason: str) -> None:
        line = self.lines.get(field) if field else None
        self.problems.append(JobFileProblem(self.source, field, reason, line))

    def text(self, data: Mapping[str, Any], field: str, *, required: bool = False) -> str | None:
        if field not in data or data[field] is None:
            if required:
                self.bad(field, "is required")
            return None
        value = data[field]
        if not isinstance(value, str) or not value.strip():
            self.bad(field, f"must be a non-empty string, got {_kind(value)}")
            return None
        if field in _STORE_NAMES:
            return self._store_rule(field, validate.name, value.strip())
        return value.strip()

    def integer(
        self, data: Mapping[str, Any], field: str, default: int, minimum: int | None
    ) -> int:
        value = data.get(field)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(field, f"must be an integer, got {_kind(value)}")
            return default
        if minimum is not None and value < minimum:
            self.bad(field, f"must be at least {minimum}, got {value}")
            return default
        checked = self._store_rule(field, validate.int32, value)
        return default if checked is None else checked

    def boolean(self, data: Mapping[str, Any], field: str) -> bool:
        value = data.get(field)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.bad(field, f"must be true or false, got {_kind(value)}")
            return False
        return value

    def duration(self, data: Mapping[str, Any], field: str) -> float | None:
        value = data.get(field)
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except InvalidArgument as exc:
            self.bad(field, str(exc))
            return None
        return self._store_rule(field, validate.positive_seconds, seconds)

    def idle_timeout(self, data: Mapping[str, Any]) -> float | None:
        """A duration, or `off` (0 in the payload: never stopped for silence)."""
        value = data.get("idle_timeout")
        if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
            return 0.0
        if value == 0 and not isinstance(value, bool):
            self.bad("idle_timeout", "must be a positive duration like 10m; write 'off' for none")
            return None
        return self.duration(data, "idle_timeout")

    def budget(self, data: Mapping[str, Any]) -> float | None:
        value = data.get("budget_usd")
        if value is None:
            return None
        return self._store_rule("budget_usd", validate.budget_usd, value)

    def _store_rule(self, field: str, rule: Callable[[Any, str], _T], value: _T) -> _T | None:
        """Apply the store's own check too, so a file that parses here also enqueues."""
        try:
            return rule(value, field)
        except InvalidArgument as exc:
            self.bad(field, str(exc).removeprefix(f"{field} ").removeprefix("is "))
            return None

    def string_list(self, data: Mapping[str, Any], field: str) -> list[str]:
        value = data.get(field)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.bad(field, f"must be a list of non-empty strings, got {_kind(value)}")
            return []
        return list(value)

    def env(self, data: Mapping[str, Any]) -> dict[str, str]:
        value = data.get("env")
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.bad("env", f"must be a mapping of NAME: value, got {_kind(value)}")
            return {}
        env: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key or "=" in key:
                self.bad("env", f"variable name {key!r} is not a valid name")
            elif isinstance(item, bool) or not isinstance(item, str | int | float):
                self.bad("env", f"{key} must be a string (quote it), got {_kind(item)}")
            else:
                env[key] = str(item)
        return env


def _unknown_field(name: object) -> str:
    text = str(name)
    close = difflib.get_close_matches(text, FIELDS, n=1)
    if close:
        return f"unknown field {text!r} (did you mean {close[0]!r}?)"
    return f"unknown field {text!r}; known fields: {', '.join(FIELDS)}"


def _check_engine(
    check: _Checker, data: Mapping[str, Any], known: Sequence[str], in_plan: bool
) -> str | None:
    engine = check.text(data, "engine", required=True)
    if engine == "approval" and not in_plan:
        check.bad(
            "engine",
            "an approval gate only exists inside a plan (alone it would wait for ever): "
            "name this file in a plan's jobs, with depends_on",
        )
        return None
    if engine is None or engine in known:
        return engine
    close = difflib.get_close_matches(engine, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    check.bad("engine", f"unknown engine {engine!r}{hint}; known engines: {', '.join(known)}")
    return None


def _allowed_fields(engine: str) -> tuple[str, ...]:
    extra = {"python": _PYTHON, "shell": _SHELL, "approval": ()}.get(engine, _AGENT)
    return _COMMON + extra


def _owner(field: str) -> str:
    if field in _PYTHON:
        return "engine 'python'"
    if field == "cmd":
        return "engine 'shell'"
    agent_only = ("yolo", "model", "budget_usd")
    return "agent engines" if field in agent_only else "agent engines and 'shell'"


def _cmd(check: _Checker, data: Mapping[str, Any]) -> str | list[str] | None:
    raw = data.get("cmd")
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip():
        return raw
    if isinstance(raw, list) and raw and all(isinstance(p, str) for p in raw) and raw[0]:
        return list(raw)
    check.bad("cmd", f"must be a string or a non-empty list of strings, got {_kind(raw)}")
    return None


def _func(check: _Checker, data: Mapping[str, Any]) -> str | None:
    func = check.text(data, "func")
    if func is not None and not _FUNC.fullmatch(func):
        check.bad("func", f"must look like 'package.module:function', got {func!r}")
        return None
    return func


def _args(check: _Checker, data: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    args = data.get("args")
    if args is not None and not isinstance(args, list):
        check.bad("args", f"must be a list, got {_kind(args)}")
    kwargs = data.get("kwargs")
    if kwargs is not None and (
        not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs)
    ):
        check.bad("kwargs", f"must be a mapping with string keys, got {_kind(kwargs)}")
    return (
        args if isinstance(args, list) else [],
        kwargs if isinstance(kwargs, dict) else {},
    )


def _fields(check: _Checker, data: Mapping[str, Any]) -> dict[str, Any]:
    """Type-check every field, whatever the engine, so one pass reports all mistakes."""
    args, kwargs = _args(check, data)
    return {
        "queue": check.text(data, "queue") or DEFAULT_QUEUE,
        "priority": check.integer(data, "priority", 0, None),
        "lock": check.text(data, "lock"),
        "limit": check.text(data, "limit"),
        "max_attempts": check.integer(data, "max_attempts", DEFAULT_MAX_ATTEMPTS, 1),
        "timeout": check.duration(data, "timeout"),
        "idle_timeout": check.idle_timeout(data),
        "budget_usd": check.budget(data),
        "labels": check.string_list(data, "labels"),
        "cwd": check.text(data, "cwd"),
        "yolo": check.boolean(data, "yolo"),
        "db_access": check.boolean(data, "db_access"),
        "model": check.text(data, "model"),
        "env": check.env(data),
        "cmd": _cmd(check, data),
        "func": _func(check, data),
        "args": args,
        "kwargs": kwargs,
        **_workspace(check, data),
    }


def _workspace(check: _Checker, data: Mapping[str, Any]) -> dict[str, Any]:
    """`workspace: worktree`, its `base` ref and its `worktree_setup`, shape-checked here;
    the repository itself is found when the job is enqueued."""
    kind = check.text(data, "workspace")
    if kind is not None and kind not in ("none", "worktree"):
        check.bad("workspace", f"must be 'none' or 'worktree', not {kind!r}")
        kind = None
    setup = data.get("worktree_setup")
    if setup is not None:
        try:
            setup = WorktreeSetup.of(setup).as_payload()
        except InvalidArgument as exc:
            check.bad("worktree_setup", str(exc).removeprefix("worktree_setup"))
            setup = None
    touched = data.get("touch")
    if touched is not None:
        try:
            touched = list(touch.parse(touched))
        except InvalidArgument as exc:
            check.bad("touch", str(exc).removeprefix("touch").lstrip(": "))
            touched = None
    worktree = kind == "worktree"
    for key in ("base", "worktree_setup", "touch", "remote"):
        if data.get(key) is not None and not worktree:
            check.bad(key, "applies only to 'workspace: worktree' jobs")
    return {
        "workspace": kind if worktree else None,
        "base": check.text(data, "base"),
        "worktree_setup": setup if worktree else None,
        "touch": touched if worktree else None,
        "remote": check.text(data, "remote"),
    }


def _payload(
    check: _Checker, engine: str, v: Mapping[str, Any], body: str, data: Mapping[str, Any]
) -> dict[str, Any]:
    if engine == "python":
        if data.get("func") is None:
            check.bad("func", "engine 'python' needs 'func: package.module:function'")
        payload = {"func": v["func"], "args": v["args"], "kwargs": v["kwargs"]}
    elif engine == "shell":
        cmd = v["cmd"] if v["cmd"] is not None else (body or None)
        if cmd is None and data.get("cmd") is None:
            check.bad("cmd", "engine 'shell' needs a 'cmd' field or the command as the body")
        payload = {
            "cmd": cmd,
            "cwd": v["cwd"],
            "env": v["env"],
            "db_access": v["db_access"] or None,
            "idle_timeout": v["idle_timeout"],
            **_workspace_fields(v),
        }
    elif engine == "approval":
        payload = {"message": body or None}
    else:
        if not body:
            check.bad(None, "the prompt is empty: write it below the closing '---' line")
        check._store_rule("prompt", validate.prompt, body)
        payload = {
            "prompt": body,
            "model": v["model"],
            "yolo": v["yolo"],
            "cwd": v["cwd"],
            "env": v["env"],
            "labels": v["labels"],
            "db_access": v["db_access"] or None,  # kept only when the job opts in
            "idle_timeout": v["idle_timeout"],
            "budget_usd": v["budget_usd"],
            **_workspace_fields(v),
        }
    return {key: value for key, value in payload.items() if value is not None}


def _workspace_fields(v: Mapping[str, Any]) -> dict[str, Any]:
    return {key: v[key] for key in _WORKSPACE}


def _problems_or_spec(
    text: str,
    source: str | None,
    known: Sequence[str],
    in_plan: bool = False,
    base_dir: Path | None = None,
) -> JobSpec | list[JobFileProblem]:
    split = _split_front_matter(text)
    if isinstance(split, str):
        return [JobFileProblem(source, None, split, 1)]
    front, body, first_line = split
    try:
        data = yamltext.load(front)
    except yamltext.Refused as refused:
        line = first_line + refused.line - 1 if refused.line is not None else first_line
        reason = refused.reason.replace("bad YAML", "bad YAML in front matter")
        return [JobFileProblem(source, None, reason, line)]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        reason = f"front matter must be a mapping of field: value, got {_kind(data)}"
        return [JobFileProblem(source, None, reason, first_line)]

    check = _Checker(source, _key_lines(front, first_line))
    engine = _check_engine(check, data, known, in_plan)
    allowed = _allowed_fields(engine) if engine else FIELDS
    for key in data:
        if key not in FIELDS:
            check.bad(str(key), _unknown_field(key))
        elif key not in allowed:
            check.bad(key, f"does not apply to engine {engine!r}; it is for {_owner(key)}")
    v = _fields(check, data)
    if v["workspace"] == "worktree" and v["cwd"] is None and base_dir is not None:
        v["cwd"] = "."  # a worktree job's repository is the one its file lies in
    if isinstance(v["cwd"], str) and base_dir is not None and not os.path.isabs(v["cwd"]):
        # Relative to the file that says it, not to wherever a worker happens to run.
        v["cwd"] = os.path.normpath(os.path.join(base_dir.absolute(), v["cwd"]))
    payload = _payload(check, engine, v, body.strip(), data) if engine else {}
    if v["limit"] is not None and engine != "approval":
        payload["limit"] = v["limit"]  # a fleet-wide limit: `agentfleet limits set NAME N`
    for key, value in payload.items():  # what YAML allows but a store cannot keep
        check._store_rule(key if key in FIELDS else "prompt", validate.json_value, value)
    if check.problems or engine is None:
        return sorted(check.problems, key=lambda p: p.line or 0)
    return JobSpec(
        engine=engine,
        payload=payload,
        queue=v["queue"],
        priority=v["priority"],
        lock=v["lock"],
        max_attempts=v["max_attempts"],
        timeout=v["timeout"],
        labels=tuple(v["labels"]),
        source=source,
    )


def _known(known_engines: Iterable[str]) -> list[str]:
    return sorted(set(known_engines))


def parse_job_text(
    text: str,
    source: str | None = None,
    known_engines: Iterable[str] = BUILTIN_ENGINES,
    *,
    in_plan: bool = False,
    base_dir: Path | None = None,
) -> JobSpec:
    """Parse one job file's text; raises :class:`JobFileErrors` listing all its problems.
    `in_plan`: the job is a plan's step, so it may be an approval gate. `base_dir`: the
    folder a relative `cwd` is resolved against (the job file's); it is stored absolute."""
    result = _problems_or_spec(text, source, _known(known_engines), in_plan, base_dir)
    if isinstance(result, list):
        raise JobFileErrors(result)
    return result


def _read(path: Path) -> str | JobFileProblem:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return JobFileProblem(str(path), None, "is not UTF-8 text")
    except OSError as exc:
        return JobFileProblem(str(path), None, f"cannot be read: {exc.strerror or exc}")


def load_job_file(
    path: str | os.PathLike[str],
    known_engines: Iterable[str] = BUILTIN_ENGINES,
    *,
    in_plan: bool = False,
) -> JobSpec:
    """Read and parse one job file."""
    text = _read(Path(path))
    if isinstance(text, JobFileProblem):
        raise JobFileErrors([text])
    return parse_job_text(
        text, os.fspath(path), known_engines, in_plan=in_plan, base_dir=Path(path).parent
    )


def _collect(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[JobFileProblem]]:
    files: list[Path] = []
    problems: list[JobFileProblem] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.md") if p.is_file())
            if not found:
                problems.append(JobFileProblem(str(path), None, "directory has no *.md job files"))
        elif path.exists():
            found = [path]
        else:
            problems.append(JobFileProblem(str(path), None, "no such file or directory"))
            continue
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                files.append(file)
    return files, problems


def collect_job_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand directories to their ``*.md`` files (recursively, sorted); keep files as given."""
    files, problems = _collect(paths)
    if problems:
        raise JobFileErrors(problems)
    return files


def load_job_files(
    paths: Iterable[str | os.PathLike[str]], known_engines: Iterable[str] = BUILTIN_ENGINES
) -> list[JobSpec]:
    """Check every file first; raise one :class:`JobFileErrors` if any file is bad."""
    known = _known(known_engines)
    files, problems = _collect(paths)
    specs: list[JobSpec] = []
    for file in files:
        text = _read(file)
        if isinstance(text, JobFileProblem):
            problems.append(text)
            continue
        result = _problems_or_spec(text, str(file), known, base_dir=file.parent)
        if isinstance(result, list):
            problems.extend(result)
        else:
            specs.append(result)
    if problems:
        raise JobFileErrors(problems)
    return specs
