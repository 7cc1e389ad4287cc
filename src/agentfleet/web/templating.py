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
from agentfleet.plans.model import Plan, PlanStatus
from agentfleet.serialize import job_summary

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    seconds = (now - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 1:
        return "now"
    if seconds < 60:
        text = f"{int(seconds)}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)}h"
    else:
        text = f"{int(seconds // 86400)}d"
    return f"in {text}" if future else f"{text} ago"


def duration(start: datetime | None, end: datetime | None, now: datetime) -> str:
    if start is None:
        return ""
    seconds = max(0.0, ((end or now) - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60)}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60)}m"


def utc(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def event_text(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in data.items())


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
