"""Exact's per-division rate limits and the faults tests can inject."""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY_SECONDS = 86_400


class RateLimiter:
    """Calendar-aligned minutely windows and UTC days, counted per division (real time).

    Real time, not the fake clock: clients compare X-RateLimit-*-Reset with their own clock.
    """

    def __init__(self, minutely_limit: int, window_seconds: float, daily_limit: int) -> None:
        self.minutely_limit = minutely_limit
        self.window = window_seconds
        self.daily_limit = daily_limit
        self._minute: dict[int, tuple[float, int]] = {}  # division -> (window start, calls)
        self._day: dict[int, tuple[int, int]] = {}  # division -> (UTC day number, calls)

    def _window_start(self, now: float) -> float:
        return math.floor(now / self.window) * self.window

    def _minute_used(self, division: int, now: float) -> tuple[float, int]:
        start = self._window_start(now)
        seen_start, used = self._minute.get(division, (start, 0))
        return start, used if seen_start == start else 0

    def _day_used(self, division: int, now: float) -> tuple[int, int]:
        day = int(now // DAY_SECONDS)
        seen_day, used = self._day.get(division, (day, 0))
        return day, used if seen_day == day else 0

    def minutely_headers(self, division: int, now: float) -> dict[str, str]:
        start, used = self._minute_used(division, now)
        return {
            "X-RateLimit-Minutely-Limit": str(self.minutely_limit),
            "X-RateLimit-Minutely-Remaining": str(max(0, self.minutely_limit - used)),
            "X-RateLimit-Minutely-Reset": str(round((start + self.window) * 1000)),
        }

    def daily_headers(self, division: int, now: float) -> dict[str, str]:
        day, used = self._day_used(division, now)
        return {
            "X-RateLimit-Limit": str(self.daily_limit),
            "X-RateLimit-Remaining": str(max(0, self.daily_limit - used)),
            "X-RateLimit-Reset": str((day + 1) * DAY_SECONDS * 1000),  # next UTC midnight, ms
        }

    def admit(self, division: int, now: float) -> tuple[bool, dict[str, str]]:
        """Count one call; a refused call (429) carries only the headers of the limit hit."""
        day, day_used = self._day_used(division, now)
        if day_used >= self.daily_limit:
            return False, self.daily_headers(division, now)
        start, minute_used = self._minute_used(division, now)
        if minute_used >= self.minutely_limit:
            return False, self.minutely_headers(division, now)
        self._day[division] = (day, day_used + 1)
        self._minute[division] = (start, minute_used + 1)
        return True, {**self.daily_headers(division, now), **self.minutely_headers(division, now)}

    def set_daily_remaining(self, division: int, remaining: int, now: float) -> None:
        day = int(now // DAY_SECONDS)
        self._day[division] = (day, max(0, self.daily_limit - remaining))


@dataclass
class Fault:
    """An injected failure for the next `remaining` data requests matching `path_contains`."""

    kind: str  # "fail" | "drop" | "rate_limit"
    remaining: int
    path_contains: str | None = None
    status: int = 503
    body: str = "json"  # fail: "json" | "html" | "empty"
    headers: str = "minutely"  # rate_limit: "minutely" | "none"

    def matches(self, path: str) -> bool:
        return self.remaining > 0 and (self.path_contains is None or self.path_contains in path)
