"""A zone's offsets as a table of its transitions, looked up by binary search.

Asking the zone library (pendulum) per value costs four conversions for a wall clock; a zone
changes its offset only a few times a year, so the table asks it once per transition and a
value costs one `bisect`. Built lazily per span of about a year (a `_SPAN_MS` bucket), so
values spread over a century cost no more per value than values in one hour, and memory stays
bounded however far apart the values are.

Semantics are pendulum's `fold=0` (what the clock used before the table, and still the reference
of tests/test_zone_table.py): a wall clock in the repeated hour or in the spring gap means the
earlier of the instants it can mean, `wall - max(offset before, offset after)`.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from itertools import pairwise

_SPAN_S = 2**25  # seconds per bucket: about 388 days
_SPAN_MS = _SPAN_S * 1000
# Each bucket also holds the transitions this far around it, so a wall clock (at most a day off
# its instant in any zone) finds every transition that can concern it in its own bucket.
_MARGIN_S = 3 * 86_400
# Offsets are sampled this often and a change is narrowed to its second. No zone changes its
# offset twice within six hours and back (tzdata: none does so within days).
_STEP_S = 6 * 3_600
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Python's datetime range, with room for the margin and the largest offsets.
_FIRST_S = (datetime(1, 1, 3, tzinfo=timezone.utc) - _EPOCH) // timedelta(seconds=1)
_LAST_S = (datetime(9999, 12, 29, tzinfo=timezone.utc) - _EPOCH) // timedelta(seconds=1)
_BEFORE_ALL_MS = -(2**62)
_BUCKETS = 1024  # about a thousand years of buckets before the oldest is dropped


class _Bucket:
    """Offsets (ms) in one span: by instant, and by wall clock with the repeated hour marked."""

    __slots__ = ("instant_offsets", "instant_starts", "shifts", "wall_offsets", "wall_starts")

    def __init__(self, periods: list[tuple[int, int]]) -> None:
        # periods: (first instant in ms, offset in ms) in order; the first starts before the span.
        self.instant_starts = [start for start, _ in periods]
        self.instant_offsets = [offset for _, offset in periods]
        first_start, first_offset = periods[0]
        self.wall_starts = [first_start + first_offset]
        self.wall_offsets = [first_offset]
        self.shifts = [0]  # how far the wall clock repeats itself there (the autumn hour)
        for (_, before), (at, after) in pairwise(periods):
            # Wall clocks between at+min and at+max are in the gap (after > before) or the
            # repeated hour (before > after): both mean the earlier instant, wall - max.
            self._add(at + min(before, after), max(before, after), max(before - after, 0))
            self._add(at + max(before, after), after, 0)

    def _add(self, wall_start: int, offset: int, shift: int) -> None:
        if wall_start == self.wall_starts[-1]:  # a band of no width (a change of zero)
            self.wall_offsets[-1], self.shifts[-1] = offset, shift
            return
        self.wall_starts.append(wall_start)
        self.wall_offsets.append(offset)
        self.shifts.append(shift)


class ZoneTable:
    """Offsets of one zone (from its tzinfo) for instants and for wall clocks, in milliseconds."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._bucket = lru_cache(maxsize=_BUCKETS)(self._build)

    def offset_of_instant(self, ms: int) -> int:
        bucket = self._bucket(ms // _SPAN_MS)
        return bucket.instant_offsets[bisect_right(bucket.instant_starts, ms) - 1]

    def offset_of_wall(self, wall_ms: int) -> int:
        """Wall clock minus the (earlier) instant it means."""
        bucket = self._bucket(wall_ms // _SPAN_MS)
        return bucket.wall_offsets[bisect_right(bucket.wall_starts, wall_ms) - 1]

    def repeated_shift_of_wall(self, wall_ms: int) -> int:
        """In the repeated hour, how far the clock went back (ms); elsewhere 0."""
        bucket = self._bucket(wall_ms // _SPAN_MS)
        return bucket.shifts[bisect_right(bucket.wall_starts, wall_ms) - 1]

    def _offset_s(self, second: int) -> int:
        moment = datetime.fromtimestamp(second, self.zone)
        offset = moment.utcoffset() or timedelta(0)
        return offset // timedelta(seconds=1)

    def _build(self, index: int) -> _Bucket:
        start = max(index * _SPAN_S - _MARGIN_S, _FIRST_S)
        end = min((index + 1) * _SPAN_S + _MARGIN_S, _LAST_S)
        offset = self._offset_s(start)
        # The first period reaches back without end: only values before year 1's third day
        # (where `start` is clamped) fall before `start`, and they have the same offset.
        periods = [(_BEFORE_ALL_MS, offset * 1000)]
        at = start
        while at < end:
            step_end = min(at + _STEP_S, end)
            while (end_offset := self._offset_s(step_end)) != offset:
                at, offset = self._first_change(at, step_end, offset)
                periods.append((at * 1000, offset * 1000))
            at = step_end
            offset = end_offset
        return _Bucket(periods)

    def _first_change(self, low: int, high: int, offset: int) -> tuple[int, int]:
        """The first second after `low` (at most `high`) whose offset is not `offset`."""
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset_s(middle) == offset:
                low = middle
            else:
                high = middle
        return high, self._offset_s(high)
