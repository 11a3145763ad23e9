"""When a failed delivery is tried again: the retry policy, and a receiver's Retry-After."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed delivery again (Standard Webhooks' schedule by default)."""

    schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    jitter: float = 0.2

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def next_delay(self, attempt: int, draw: float = 0.5) -> float | None:
        """Seconds before the next try after failed attempt number ``attempt`` (1-based).

        ``draw`` in [0, 1) places the delay within ±jitter (0.5 is the plain
        schedule); None means no tries are left.
        """
        if attempt < 1 or attempt > len(self.schedule):
            return None
        return self.schedule[attempt - 1] * (1 + self.jitter * (2 * draw - 1))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())
