"""Exact's clock for the fake: its data are true instants; Exact serves and filters them as
Amsterdam wall-clock time (Exact's REST API FAQ: "This is in the CET time and not GMT").

Independent of the tap's pendulum arithmetic: the standard library's zoneinfo.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Europe/Amsterdam")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)
# Year-1 and year-9999 sentinels are not moments: Exact writes them as they are.
_FIRST_REAL_MS = (datetime(2, 1, 1) - _NAIVE_EPOCH) // _MS
_LAST_REAL_MS = (datetime(9999, 1, 1) - _NAIVE_EPOCH) // _MS


def wall_ms(instant_ms: int) -> int:
    """The Amsterdam wall clock of an instant, as epoch-style milliseconds."""
    if not _FIRST_REAL_MS <= instant_ms < _LAST_REAL_MS:
        return instant_ms
    local = (_EPOCH + timedelta(milliseconds=instant_ms)).astimezone(ZONE)
    return (local.replace(tzinfo=None) - _NAIVE_EPOCH) // _MS


def instant_ms(wall: int) -> int:
    """An Amsterdam wall clock -> the instant (the earlier one where the clock is ambiguous)."""
    if not _FIRST_REAL_MS <= wall < _LAST_REAL_MS:
        return wall
    local = (_NAIVE_EPOCH + timedelta(milliseconds=wall)).replace(tzinfo=ZONE, fold=0)
    return (local.astimezone(timezone.utc) - _EPOCH) // _MS


def midnight_ms(day_ms: int) -> int:
    """The instant of Amsterdam midnight on the UTC calendar day `day_ms` falls on: how Exact
    keeps a date-only value (it serves it as midnight on its wall clock)."""
    return instant_ms(day_ms - day_ms % 86_400_000)


def representable(ms: int) -> bool:
    """Can Exact's wall clock tell this instant apart (not the second pass of the autumn hour)?"""
    return instant_ms(wall_ms(ms)) == ms


@lru_cache(maxsize=65536)
def to_wire(value: str) -> str:
    """`/Date(instant)/` -> `/Date(wall)/`; `/Date(instant+hhmm)/` (WCF's local form) keeps the
    instant and gets the offset Amsterdam had then."""
    number = value[len("/Date(") : -len(")/")]
    sign_at = max(number.rfind("+"), number.rfind("-"))
    if sign_at <= 0:
        return f"/Date({wall_ms(int(number))})/"
    ms = int(number[:sign_at])
    offset_minutes = (wall_ms(ms) - ms) // 60_000
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"/Date({ms}{sign}{hours:02d}{minutes:02d})/"


def utc_iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat()


# Date-time fields that stay instants at midnight (docs/exact-clock.md): audit stamps, the bookmark.
AUDIT_STAMPS = frozenset({"Modified", "Created", "DeletedDate", "DivisionMoveDate"})


def expected_record_datetime(field: str, canonical: str) -> datetime:
    """What a record must hold for a canonical `/Date(instant[+hhmm])/`: the instant, except that
    a date (midnight in Amsterdam) keeps its day, at 00:00 UTC, unless it is an audit stamp."""
    number = canonical[len("/Date(") : -len(")/")]
    sign_at = max(number.rfind("+"), number.rfind("-"))
    instant = _EPOCH + timedelta(milliseconds=int(number[:sign_at] if sign_at > 0 else number))
    local = instant.astimezone(ZONE)
    if field not in AUDIT_STAMPS and local.time() == datetime.min.time():
        return datetime.combine(local.date(), datetime.min.time(), timezone.utc)
    return instant
