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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from agentfleet.errors import InvalidArgument
from agentfleet.jobfile import JobSpec, load_job_file, parse_job_text
from agentfleet.models import NewJob
from agentfleet.plans.model import (
    APPROVAL_ENGINE,
    DEFAULT_MAX_REJECTIONS,
    PlanMode,
    PlanSpec,
    StepSpec,
    validate_dag,
)

PLAN_KEYS = ("name", "mode", "max_parallel", "metadata", "jobs")
STEP_KEYS = ("name", "depends_on", "file", "prompt", "message", "on_reject", "max_rejections")


def _hint(key: object, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _job_from_inline(entry: Mapping[str, Any], where: str) -> JobSpec:
    front = {k: v for k, v in entry.items() if k not in STEP_KEYS}
    body = entry.get("prompt") or entry.get("message") or ""
    if not isinstance(body, str):
        raise InvalidArgument(f"{where}: 'prompt' must be text")
    text = "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n" + body + "\n"
    return parse_job_text(text, source=where, in_plan=True)


def _new_job(spec: JobSpec) -> NewJob:
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


def parse_plan(data: object, base_dir: Path, source: str = "<plan>") -> PlanSpec:
    if not isinstance(data, dict):
        raise InvalidArgument(f"{source}: a plan file must be a mapping with 'name' and 'jobs'")
    for key in data:
        if key not in PLAN_KEYS:
            raise InvalidArgument(f"{source}: unknown field {key!r}{_hint(key, PLAN_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"{source}: 'name' is required and must be text")
    try:
        mode = PlanMode(data.get("mode", "auto"))
    except ValueError:
        raise InvalidArgument(f"{source}: 'mode' must be 'auto' or 'supervised'") from None
    max_parallel = data.get("max_parallel", 4)
    if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
        raise InvalidArgument(f"{source}: 'max_parallel' must be a whole number >= 1")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidArgument(f"{source}: 'metadata' must be a mapping")
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise InvalidArgument(f"{source}: 'jobs' must be a non-empty list")
    steps = [_step(entry, i, base_dir, source) for i, entry in enumerate(jobs, 1)]
    validate_dag(steps)
    return PlanSpec(
        name=name, steps=tuple(steps), mode=mode, max_parallel=max_parallel, metadata=metadata
    )


def _step(entry: object, index: int, base_dir: Path, source: str) -> StepSpec:
    where = f"{source}: job #{index}"
    if not isinstance(entry, dict):
        raise InvalidArgument(f"{where} must be a mapping")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"{where} needs a 'name'")
    where = f"{source}: job {name!r}"
    depends = entry.get("depends_on", [])
    if isinstance(depends, str):
        depends = [depends]
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise InvalidArgument(f"{where}: 'depends_on' must be a list of job names")
    if "file" in entry:
        extra = set(entry) - {"name", "depends_on", "file"}
        if extra:
            raise InvalidArgument(
                f"{where}: a job given by 'file' takes its settings from that file; "
                f"remove {sorted(extra)}"
            )
        path = base_dir / str(entry["file"])
        spec = load_job_file(path, in_plan=True)
    else:
        spec = _job_from_inline(entry, where)
    on_reject = entry.get("on_reject")
    max_rejections = entry.get("max_rejections", DEFAULT_MAX_REJECTIONS)
    if spec.engine != APPROVAL_ENGINE and ("on_reject" in entry or "max_rejections" in entry):
        raise InvalidArgument(f"{where}: 'on_reject' and 'max_rejections' are for approval gates")
    if on_reject is not None and not isinstance(on_reject, str):
        raise InvalidArgument(f"{where}: 'on_reject' must name a job")
    if (
        isinstance(max_rejections, bool)
        or not isinstance(max_rejections, int)
        or max_rejections < 0
    ):
        raise InvalidArgument(f"{where}: 'max_rejections' must be a whole number >= 0")
    return StepSpec(
        name=name,
        job=_new_job(spec),
        depends_on=tuple(depends),
        on_reject=on_reject,
        max_rejections=max_rejections,
    )


def load_plan_file(path: str | Path) -> PlanSpec:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read plan file {file}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{file}: bad YAML: {exc}") from exc
    return parse_plan(data, file.parent, str(file))
