"""Plan files: YAML naming the plan and its jobs, each inline or a path to a job file.

Example::

    name: checkout-redesign
    mode: supervised          # or auto
    max_parallel: 2
    jobs:
      - name: backend
        engine: claude
        prompt: Add the /checkout endpoint.
      - name: review
        engine: approval
        message: Check the API before the frontend starts.
        on_reject: backend
        depends_on: [backend]
      - name: frontend
        file: jobs/frontend.md   # a job file with its own front matter
        depends_on: [review]
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from agentfleet import validate, yamltext
from agentfleet.engines import BUILTIN_ENGINES
from agentfleet.errors import InvalidArgument
from agentfleet.jobfile import JobSpec, load_job_file, parse_job_text
from agentfleet.models import NewJob
from agentfleet.plans.model import (
    ALL_SUCCESS,
    APPROVAL_ENGINE,
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_MAX_REJECTIONS,
    TRIGGER_RULES,
    LoopSpec,
    PlanMode,
    PlanSpec,
    StepSpec,
    validate_dag,
)
from agentfleet.workspaces.train import plan_with_workspaces

PLAN_KEYS = ("name", "mode", "max_parallel", "metadata", "budget_usd", "jobs", "merge", "pr")
STEP_KEYS = (
    "name", "depends_on", "file", "prompt", "message", "on_reject", "max_rejections", "when",
    "trigger_rule", "loop",
)  # fmt: skip
LOOP_KEYS = ("until", "max_iterations", "from")


def _hint(key: object, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _job_from_inline(
    entry: Mapping[str, Any], where: str, known_engines: Iterable[str], base_dir: Path
) -> JobSpec:
    front = {k: v for k, v in entry.items() if k not in STEP_KEYS}
    body = entry.get("prompt") or entry.get("message") or ""
    if not isinstance(body, str):
        raise InvalidArgument(f"{where}: 'prompt' must be text")
    text = "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n" + body + "\n"
    return parse_job_text(
        text, source=where, known_engines=known_engines, in_plan=True, base_dir=base_dir
    )


def new_job_of(spec: JobSpec) -> NewJob:
    """The job a parsed job file asks for (its labels kept in the payload)."""
    payload = dict(spec.payload)
    if spec.labels and "labels" not in payload:
        payload["labels"] = list(spec.labels)
    return NewJob(
        engine=spec.engine,
        payload=payload,
        queue=spec.queue,
        priority=spec.priority,
        lock=spec.lock,
        max_attempts=spec.max_attempts,
        timeout=spec.timeout,
    )


def parse_plan(
    data: object,
    base_dir: Path,
    source: str = "<plan>",
    known_engines: Iterable[str] = BUILTIN_ENGINES,
) -> PlanSpec:
    """A plan from its parsed YAML or JSON: every value checked as job input is, each
    problem an InvalidArgument naming the file, the job and the field."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"{source}: a plan file must be a mapping with 'name' and 'jobs'")
    for key in data:
        if key not in PLAN_KEYS:
            raise InvalidArgument(f"{source}: unknown field {key!r}{_hint(key, PLAN_KEYS)}")
    if data.get("name") is None:
        raise InvalidArgument(f"{source}: 'name' is required: the plan's name")
    name = validate.name(data["name"], f"{source}: 'name'")
    try:
        mode = PlanMode(data.get("mode", "auto"))
    except (ValueError, TypeError):
        raise InvalidArgument(f"{source}: 'mode' must be 'auto' or 'supervised'") from None
    max_parallel = validate.int32(
        data.get("max_parallel", 4), f"{source}: 'max_parallel'", minimum=1
    )
    metadata = validate.json_document(data.get("metadata") or {}, f"{source}: 'metadata'")
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise InvalidArgument(f"{source}: 'jobs' must be a non-empty list")
    known = frozenset(known_engines)
    steps = [_step(entry, i, base_dir, source, known) for i, entry in enumerate(jobs, 1)]
    try:
        validate_dag(steps)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{source}: {exc}") from None
    budget = validate.optional_budget_usd(data.get("budget_usd"), f"{source}: 'budget_usd'")
    spec = PlanSpec(
        name=name,
        steps=tuple(steps),
        mode=mode,
        max_parallel=max_parallel,
        metadata=metadata,
        budget_usd=budget,
    )
    return plan_with_workspaces(spec, data, source)


def _depends_on(value: object, where: str) -> tuple[str, ...]:
    depends = [value] if isinstance(value, str) else value
    if not isinstance(depends, list):
        raise InvalidArgument(f"{where}: 'depends_on' must be a list of job names")
    names = [validate.name(d, f"{where}: 'depends_on'") for d in depends]
    twice = sorted({d for d in names if names.count(d) > 1})
    if twice:
        raise InvalidArgument(f"{where}: 'depends_on' lists {', '.join(map(repr, twice))} twice")
    return tuple(names)


def _step(
    entry: object, index: int, base_dir: Path, source: str, known_engines: frozenset[str]
) -> StepSpec:
    where = f"{source}: job #{index}"
    if not isinstance(entry, dict):
        raise InvalidArgument(f"{where} must be a mapping")
    if entry.get("name") is None:
        raise InvalidArgument(f"{where} needs a 'name'")
    name = validate.name(entry["name"], f"{where}: 'name'")
    where = f"{source}: job {name!r}"
    depends = _depends_on(entry.get("depends_on", []), where)
    when, rule = _condition(entry, where)
    if "file" in entry:
        extra = set(entry) - {"name", "depends_on", "file", "when", "trigger_rule", "loop"}
        if extra:
            raise InvalidArgument(
                f"{where}: a job given by 'file' takes its settings from that file; "
                f"remove {sorted(extra)}"
            )
        path = base_dir / validate.name(entry["file"], f"{where}: 'file'")
        spec = load_job_file(path, known_engines, in_plan=True)
    else:
        spec = _job_from_inline(entry, where, known_engines, base_dir)
    on_reject = entry.get("on_reject")
    if spec.engine != APPROVAL_ENGINE and ("on_reject" in entry or "max_rejections" in entry):
        raise InvalidArgument(f"{where}: 'on_reject' and 'max_rejections' are for approval gates")
    if on_reject is not None:
        on_reject = validate.name(on_reject, f"{where}: 'on_reject'")
    max_rejections = validate.int32(
        entry.get("max_rejections", DEFAULT_MAX_REJECTIONS), f"{where}: 'max_rejections'", minimum=0
    )
    return StepSpec(
        name=name,
        job=new_job_of(spec),
        depends_on=depends,
        on_reject=on_reject,
        max_rejections=max_rejections,
        when=when,
        trigger_rule=rule,
        loop=_loop(entry.get("loop"), where),
    )


def _loop(value: object, where: str) -> LoopSpec | None:
    """A step's `loop:`: `until` (an expression), `max_iterations`, `from` (the body's
    first step)."""
    if value is None:
        return None
    where = f"{where}: 'loop'"
    if not isinstance(value, dict):
        raise InvalidArgument(
            f'{where} must be a mapping, e.g. {{until: "steps.fix.ok", max_iterations: 3}}'
        )
    for key in value:
        if key not in LOOP_KEYS:
            raise InvalidArgument(f"{where}: unknown field {key!r}{_hint(key, LOOP_KEYS)}")
    until = value.get("until")
    if until is not None and (not isinstance(until, str) or not until.strip()):
        raise InvalidArgument(f"{where}: 'until' must be an expression, e.g. steps.fix.ok")
    iterations = validate.int32(
        value.get("max_iterations", DEFAULT_MAX_ITERATIONS), f"{where}: 'max_iterations'",
        minimum=1,
    )  # fmt: skip
    start = value.get("from")
    if start is not None:
        start = validate.name(start, f"{where}: 'from'")
    return LoopSpec(until=until, max_iterations=iterations, start=start)


def _condition(entry: Mapping[str, Any], where: str) -> tuple[str | None, str]:
    """A step's `when:` (an expression, checked against the DAG at submit) and its
    `trigger_rule:`."""
    when = entry.get("when")
    if when is not None:
        if isinstance(when, bool):
            when = "true" if when else "false"
        if not isinstance(when, str) or not when.strip():
            raise InvalidArgument(f"{where}: 'when' must be an expression, e.g. "
                                  "steps.review.result.verdict == 'fix'")  # fmt: skip
    rule = entry.get("trigger_rule", ALL_SUCCESS)
    if rule not in TRIGGER_RULES:
        raise InvalidArgument(
            f"{where}: 'trigger_rule' must be one of {', '.join(TRIGGER_RULES)}, not {rule!r}"
        )
    return when, rule


def load_plan_file(path: str | Path, known_engines: Iterable[str] = BUILTIN_ENGINES) -> PlanSpec:
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"{file}: is not UTF-8 text") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read plan file {file}: {exc.strerror}") from exc
    return parse_plan(parse_plan_text(text, str(file)), file.parent, str(file), known_engines)


def parse_plan_text(text: str, source: str) -> object:
    """A plan file's YAML, under the same reading rules as job files."""
    try:
        return yamltext.load(text)
    except yamltext.Refused as refused:
        raise InvalidArgument(f"{source}: {refused}") from None
