"""Exact's clock: `/Date(ms)/` is wall-clock time in Exact's zone, not UTC.

Exact's REST API FAQ ("What is the format of the datetime properties?"): the value "is
represented in UNIX time ... This is in the CET time and not GMT". So `/Date(1382667872203)/` is
the Amsterdam wall clock 2013-10-25 02:24:32.203, the instant 00:24:32.203Z. Everything the tap
sends back (`$filter` on Modified, SyncTimestamp's `modified=`, a read function's `modified=`)
is that same wall clock.

Choices, each for a reason:
- **Dates keep their day.** A value at exactly midnight on Exact's wall clock is how Exact sends a
  date (InvoiceDate, DueDate, StartDate): it becomes that day at 00:00 UTC
  (`2024-03-31T00:00:00+00:00`), so a target that stores date-times in UTC (target-postgres,
  target-duckdb) shows the day Exact shows. Read as an instant it would land on 22:00 or 23:00 of
  the day before. Audit stamps (`INSTANT_FIELDS`, among them the bookmark `Modified`) are
  always instants: a bookmark must never be ahead of the row it came from.
- **The repeated autumn hour and the spring gap** (02:00-03:00 on the DST days) are read as the
  earlier of the two instants the wall clock can mean, so a bookmark can lag, never lead: at worst
  a row is read twice, never skipped. A filter whose wall clock falls in the repeated hour starts
  one DST shift earlier, because rows of the second pass show an earlier wall clock than a
  bookmark from the first.
- **Year-1 and year-9999 sentinels** (Exact's "no date" and "forever") are passed on unshifted:
  shifted they would leave Python's date range (year 0) or stop being recognisable.
- `/Date(ms+0100)/` (WCF's form for local times) carries the UTC instant in its number; the
  suffix only names the offset it was displayed in.

The zone's offsets come from pendulum; per value the work is a binary search among the zone's
transitions (`ZoneTable`), so it costs the same whether a page's values are an hour or a century
apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

import pendulum

from tap_exactonline.zone_table import ZoneTable

DEFAULT_TIME_ZONE = "Europe/Amsterdam"
# Stamps Exact sets from its own clock: instants even at midnight (the bookmark among them).
INSTANT_FIELDS = frozenset({"Modified", "Created", "DeletedDate", "DivisionMoveDate"})

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_EPOCH_DAY = _EPOCH.date()
_DAY_MS = 86_400_000
# Wall clocks before year 2 or from year 9999 on are sentinels, not moments.
_FIRST_REAL_MS = int((datetime(2, 1, 1) - _NAIVE_EPOCH).total_seconds()) * 1000
_LAST_REAL_MS = int((datetime(9999, 1, 1) - _NAIVE_EPOCH).total_seconds()) * 1000
_CACHE_SIZE = 65536  # bounded: memory stays flat however many rows pass


class UnknownTimeZoneError(ValueError):
    pass


@lru_cache(maxsize=4096)  # days: rows of a page are seldom more than a few years apart
def _day_prefix(day: int) -> str:
    return f"{(_EPOCH_DAY + timedelta(days=day)).isoformat()}T"


def _format(ms: int) -> str:
    """The instant `ms` after the epoch as `datetime.isoformat` writes it in UTC (microseconds
    only when not zero), built from its parts: the datetime arithmetic cost twice as much."""
    day, ms_of_day = divmod(ms, _DAY_MS)
    seconds, millis = divmod(ms_of_day, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    fraction = f".{millis:03d}000" if millis else ""
    return f"{_day_prefix(day)}{hours:02d}:{minutes:02d}:{seconds:02d}{fraction}+00:00"


class ExactClock:
    """Converts between Exact's wall clock in one zone and true instants."""

    def __init__(self, zone: str = DEFAULT_TIME_ZONE) -> None:
        try:
            self.zone = pendulum.timezone(zone)
        except Exception as exc:  # pendulum raises InvalidTimezone, zoneinfo KeyError/ValueError
            raise UnknownTimeZoneError(zone) from exc
        self.name = zone
        # Per instance, so two clocks (tests, zones) never share answers.
        self.read = lru_cache(maxsize=_CACHE_SIZE)(self._read)
        # Not cached: audit stamps (`Modified`, `Created`) are all but unique per row, so a
        # cache would only miss, and hold 14 MiB of them.
        self.read_instant = self._read_instant
        self.table = ZoneTable(self.zone)

    # --- Exact -> records ---------------------------------------------------------------------

    def _read(self, value: object) -> object:
        """`/Date(ms)/` -> RFC 3339 (a date at midnight keeps its day); others pass unchanged."""
        return self._convert(value, dates=True)

    def _read_instant(self, value: object) -> object:
        """Like `read`, but midnight too is an instant: for audit stamps and bookmarks."""
        return self._convert(value, dates=False)

    def _convert(self, value: object, *, dates: bool) -> object:
        if not isinstance(value, str) or not value.startswith("/Date(") or not value.endswith(")/"):
            return value
        number = value[6:-2]
        has_offset = False
        try:
            if number.isascii() and number.isdigit():  # the usual form, read without a search
                ms = int(number)
            else:
                sign_at = max(number.rfind("+"), number.rfind("-"))
                has_offset = sign_at > 0  # an offset suffix, not a leading minus
                ms = int(number[:sign_at] if has_offset else number)
        except ValueError:  # not a number, or longer than Python reads (4,300 digits)
            return value
        if not _FIRST_REAL_MS <= ms < _LAST_REAL_MS:
            return _format(ms)  # a sentinel: as Exact wrote it
        wall_ms = self.wall_ms_of_instant(ms) if has_offset else ms
        if dates and wall_ms % _DAY_MS == 0:
            return _format(wall_ms)  # a date: that day, at 00:00 UTC
        return _format(ms if has_offset else self.instant_ms_of_wall(wall_ms))

    def instant_ms_of_wall(self, wall_ms: int) -> int:
        """Exact's wall clock (ms) -> the instant (ms); gap and repeated hour: the earlier."""
        return wall_ms - self.table.offset_of_wall(wall_ms)

    def wall_ms_of_instant(self, ms: int) -> int:
        return ms + self.table.offset_of_instant(ms)

    def instant_of_wall_labelled_utc(self, iso_value: str) -> str:
        """A value an earlier tap version wrote (Exact's wall clock labelled UTC) -> the instant,
        formatted exactly as `read_instant` formats it."""
        moment = datetime.fromisoformat(iso_value.replace("Z", "+00:00")).replace(tzinfo=None)
        wall_ms = (moment - _NAIVE_EPOCH) // timedelta(milliseconds=1)
        if not _FIRST_REAL_MS <= wall_ms < _LAST_REAL_MS:
            return _format(wall_ms)
        return _format(self.instant_ms_of_wall(wall_ms))

    # --- records and settings -> Exact ------------------------------------------------------

    def literal(self, iso_value: str) -> str:
        """An instant from our records or config -> `datetime'2024-01-31T13:45:00'` on Exact's
        wall clock, for `$filter` and `modified=`. Without an offset the value already is
        Exact's wall clock.

        Seconds are floored so a `ge` filter never skips a row modified within the same second;
        in the repeated autumn hour the filter starts one DST shift earlier (see the module).
        """
        moment = datetime.fromisoformat(iso_value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            wall = moment
        else:
            ms = (moment - _EPOCH) // timedelta(milliseconds=1)
            wall_ms = self.wall_ms_of_instant(ms)
            # The repeated hour: a later row may show an earlier clock.
            wall_ms -= self.table.repeated_shift_of_wall(wall_ms)
            wall = _NAIVE_EPOCH + timedelta(milliseconds=wall_ms)
        return f"datetime'{wall.replace(microsecond=0).isoformat()}'"
