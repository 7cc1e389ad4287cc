"""What agents spent: cost and tokens summed over runs, for a job, a plan, or a budget.

Each run keeps what its agent CLI reported (``Run.agent``, see :mod:`agentfleet.agents.
streams`); a sum is ``None`` where no run reported that figure, so "unknown" never reads as
"free".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet.models import Run

__all__ = ["Usage", "budget_exceeded", "format_usage", "over_budget", "short_usage"]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _count(value: object) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _plus(total: float | None, value: object) -> float | None:
    number = _number(value)
    if number is None:
        return total
    return number if total is None else total + number


@dataclass(frozen=True)
class Usage:
    """Cost (US dollars) and tokens of some agent runs; ``runs`` counts those that reported."""

    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    runs: int = 0

    @classmethod
    def of_agent(cls, agent: Mapping[str, Any] | None) -> Usage:
        """One run's usage, from its ``agent`` summary."""
        return cls.total([agent])

    @classmethod
    def total(cls, agents: Iterable[Mapping[str, Any] | None]) -> Usage:
        """The sum of runs' ``agent`` summaries (those that have none count for nothing)."""
        found = cls()
        for agent in agents:
            if isinstance(agent, Mapping):
                found = found.add(agent)
        return found

    @classmethod
    def of_runs(cls, runs: Iterable[Run]) -> Usage:
        return cls.total(run.agent for run in runs)

    def add(self, agent: Mapping[str, Any]) -> Usage:
        """This usage plus one run's ``agent`` summary."""
        return self + Usage(
            _number(agent.get("cost_usd")),
            _count(agent.get("input_tokens")),
            _count(agent.get("output_tokens")),
            1,
        )

    def __add__(self, other: Usage) -> Usage:
        tokens_in = _plus(self.input_tokens, other.input_tokens)
        tokens_out = _plus(self.output_tokens, other.output_tokens)
        return Usage(
            _plus(self.cost_usd, other.cost_usd),
            None if tokens_in is None else int(tokens_in),
            None if tokens_out is None else int(tokens_out),
            self.runs + other.runs,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "runs": self.runs,
        }


def format_usage(usage: Usage) -> str:
    """``$0.0123 · 1,234 in / 456 out tokens``; ``-`` when nothing was reported."""
    parts = []
    if usage.cost_usd is not None:
        parts.append(f"${usage.cost_usd:,.4f}")
    if usage.input_tokens is not None or usage.output_tokens is not None:
        parts.append(f"{usage.input_tokens or 0:,} in / {usage.output_tokens or 0:,} out tokens")
    return " · ".join(parts) or "-"


def short_usage(usage: Usage) -> str:
    """The cost when it is known, else the tokens, for a narrow column: ``$0.0123``."""
    if usage.cost_usd is not None:
        return f"${usage.cost_usd:,.4f}"
    if usage.input_tokens is not None or usage.output_tokens is not None:
        return f"{usage.input_tokens or 0:,}/{usage.output_tokens or 0:,} tok"
    return "-"


def over_budget(usage: Usage, budget_usd: float | None) -> str:
    """`` of a $5 budget``, or `` over its $5 budget``; empty without a budget."""
    if budget_usd is None:
        return ""
    past = usage.cost_usd is not None and usage.cost_usd > budget_usd
    return f" {'over its' if past else 'of a'} ${budget_usd:g} budget"


def budget_exceeded(spent: Usage, budget_usd: float | None, what: str) -> str | None:
    """The reason to stop when ``spent`` has passed ``budget_usd``; None while within it."""
    if budget_usd is None or spent.cost_usd is None or spent.cost_usd <= budget_usd:
        return None
    return f"budget exceeded: {what} cost ${spent.cost_usd:,.4f}, over its ${budget_usd:g}"
