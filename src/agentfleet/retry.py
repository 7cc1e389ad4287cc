"""Retry policy: exponential backoff with jitter, computed by the caller, enforced by the store."""

from __future__ import annotations

import random
from dataclasses import dataclass

from agentfleet.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delay before attempt n+1 is `base * factor**(n-1)`, capped, times a random 50-100%.

    Jitter spreads retries of jobs that failed together (a flaky dependency) so they do not
    come back as one thundering herd.
    """

    base: float = 2.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.factor < 1 or not 0 <= self.jitter <= 1:
            raise InvalidArgument(
                "retry policy needs base >= 0, cap >= 0, factor >= 1 and 0 <= jitter <= 1"
            )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        raw = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        spread = (rng or random).uniform(1.0 - self.jitter, 1.0)
        return raw * spread
