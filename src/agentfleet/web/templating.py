"""The dashboard's templates and the helpers they call; error pages use them too.

Nothing here knows about requests' authentication or routes, so :mod:`agentfleet.web.errors`
and :mod:`agentfleet.web.pages` can both import it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from agentfleet.agents.usage import Usage, format_usage, over_budget
from agentfleet.durations import format_duration
from agentfleet.plans.model import Plan, PlanStatus
from agentfleet.serialize import job_summary

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def ago(value: datetime | None, now: datetime) -> str:
    """How long ago (or how soon), in its largest unit: ``5m ago``, ``in 45s``."""
    if value is None:
        return "never"
    seconds = (now - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 1:
        return "now"
    unit = next(u for u in (86400, 3600, 60, 1) if seconds >= u)
    text = format_duration(seconds // unit * unit)
    return f"in {text}" if future else f"{text} ago"


def duration(start: datetime | None, end: datetime | None, now: datetime) -> str:
    """How long a run took (or has taken so far), to the tenth of a second: ``1h30m``."""
    if start is None:
        return ""
    return format_duration(max(0.0, round(((end or now) - start).total_seconds(), 1)))


def seconds_text(value: object) -> str:
    """Seconds as people write them (``3h``, ``1h30m``, ``90s``); anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return str(value)
    return format_duration(round(value, 1) if value >= 1 else value)


# Event data that are seconds (`retry_in=2s`, not `retry_in=1.98`).
SECONDS_KEYS = frozenset({"retry_in", "older_than_s", "timeout", "idle_timeout", "ttl"})


def utc(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def event_text(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={seconds_text(v) if k in SECONDS_KEYS else v}" for k, v in data.items())


def checkpoint_text(plan: Plan) -> str:
    """One line on why a plan needs a person."""
    ctx = plan.checkpoint_context or {}
    if plan.status is PlanStatus.PAUSED and ctx.get("kind") == "approval":
        message = ctx.get("message")
        return f"waiting for approval at {plan.checkpoint}" + (f": {message}" if message else "")
    if plan.status is PlanStatus.PAUSED and plan.checkpoint == "pre_pr":
        return "all jobs done: approve to complete"
    if ctx.get("job"):
        return f"job {ctx.get('job')} {ctx.get('kind')}" + (
            f": {ctx.get('error')}" if ctx.get("error") else ""
        )
    return plan.checkpoint or plan.status.value


def result_text(value: Any, width: int = 140) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


TEMPLATES.env.globals.update(
    ago=ago,
    utc=utc,
    duration=duration,
    summary=job_summary,
    checkpoint_text=checkpoint_text,
    result_text=result_text,
    pretty=pretty_json,
)
TEMPLATES.env.filters["event_text"] = event_text
TEMPLATES.env.filters["usage"] = format_usage
TEMPLATES.env.filters["over_budget"] = over_budget
TEMPLATES.env.filters["agent_usage"] = lambda agent: format_usage(Usage.of_agent(agent))
