"""The clock's zone table against pendulum, the reference it replaced: for instants spread over
1970-2100 and around every transition of zones with DST, without, south of the equator, at
half hours, and with historic oddities (Dublin's negative DST, Casablanca's Ramadan changes).

The transitions are found here independently of the table: by sampling the zone every hour and
narrowing each change to its second (pendulum's zone is the standard library's zoneinfo, which
`datetime.fromtimestamp` asks directly: ten times faster than pendulum's own call).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pendulum
import pytest

from tap_exactonline.exact_clock import ExactClock

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NAIVE_EPOCH = datetime(1970, 1, 1)
MS = timedelta(milliseconds=1)
FIRST_S = 0  # 1970
LAST_S = (datetime(2100, 1, 1, tzinfo=timezone.utc) - EPOCH) // timedelta(seconds=1)
HOUR_S = 3600
ZONES = [
    "Europe/Amsterdam",
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Europe/Dublin",
    "Africa/Casablanca",
    "Australia/Lord_Howe",  # a DST shift of half an hour
]


def reference_offset_of_instant(zone, seconds: float) -> timedelta:
    return pendulum.from_timestamp(seconds, tz=zone).utcoffset()


def reference_instant_ms_of_wall(zone, wall_ms: int) -> int:
    """How the clock read a wall clock before the table: pendulum's fold=0."""
    wall = NAIVE_EPOCH + wall_ms * MS
    local = zone.convert(wall.replace(fold=0))
    return (local.astimezone(timezone.utc) - EPOCH) // MS


def reference_literal(zone, instant_ms: int) -> str:
    """The filter literal as the clock wrote it before the table, with pendulum."""
    wall = (EPOCH + instant_ms * MS).astimezone(zone).replace(tzinfo=None)
    earlier, later = (
        wall - zone.convert(wall.replace(fold=fold)).astimezone(timezone.utc).replace(tzinfo=None)
        for fold in (0, 1)
    )
    if earlier != later:
        wall -= abs(earlier - later)
    return f"datetime'{wall.replace(microsecond=0).isoformat()}'"


def transitions(zone) -> list[int]:
    """Every second in 1970-2100 at which the zone's offset changes."""
    found = []
    before = reference_offset_of_instant(zone, FIRST_S)
    for hour in range(FIRST_S + HOUR_S, LAST_S, HOUR_S):
        after = datetime.fromtimestamp(hour, zone).utcoffset()
        if after != before:
            low, high = hour - HOUR_S, hour
            while high - low > 1:
                middle = (low + high) // 2
                if reference_offset_of_instant(zone, middle) == before:
                    low = middle
                else:
                    high = middle
            found.append(high)
            before = after
    return found


@pytest.mark.parametrize("name", ZONES)
def test_the_zone_table_agrees_with_pendulum(name):
    clock = ExactClock(name)
    zone = pendulum.timezone(name)
    rng = random.Random(name)
    instants_ms = [rng.randrange(FIRST_S * 1000, LAST_S * 1000) for _ in range(3000)]
    changes = transitions(zone)
    assert len(changes) >= (0 if name == "Asia/Kolkata" else 100), changes
    for change in changes:
        for delta_s in [*range(-HOUR_S, HOUR_S + 1, 300), -1, 1]:
            instants_ms.append((change + delta_s) * 1000 + rng.randrange(1000))
        instants_ms.extend([change * 1000, change * 1000 - 1])
    for instant_ms in instants_ms:
        offset = reference_offset_of_instant(zone, instant_ms / 1000) // MS
        assert clock.wall_ms_of_instant(instant_ms) == instant_ms + offset, (name, instant_ms)
        # Walls around the instant: near a transition they cover the gap and the repeated hour,
        # with their edges (the instant's own wall clock, and the one a DST shift away).
        for wall_ms in (instant_ms + offset, instant_ms + offset - HOUR_S * 1000, instant_ms):
            expected = reference_instant_ms_of_wall(zone, wall_ms)
            assert clock.instant_ms_of_wall(wall_ms) == expected, (name, wall_ms)
        literal_of = (EPOCH + instant_ms * MS).isoformat()
        assert clock.literal(literal_of) == reference_literal(zone, instant_ms), (name, literal_of)


@pytest.mark.parametrize("name", ["Europe/Amsterdam", "Australia/Sydney", "America/New_York"])
def test_far_years_agree_with_pendulum(name):
    """Before the zone's first transition (local mean time) and long after its last listed one
    (its rule goes on), as far as Python's dates reach."""
    clock = ExactClock(name)
    zone = pendulum.timezone(name)
    rng = random.Random(name)
    firsts = [datetime(1, 1, 1, 6, tzinfo=timezone.utc), datetime(1, 1, 2, 12, tzinfo=timezone.utc)]
    years = [2, 1000, 1800, 1850, 1900, 1940, 2200, 2500, 5000, 9998]
    spread = [
        datetime(year, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(365 * 86_400))
        for year in years
        for _ in range(200)
    ]
    for instant in firsts + spread:
        instant_ms = (instant - EPOCH) // MS
        assert clock.literal(instant.isoformat()) == reference_literal(zone, instant_ms), instant
    for instant in spread:
        instant_ms = (instant - EPOCH) // MS
        offset = reference_offset_of_instant(zone, instant_ms / 1000) // MS
        assert clock.wall_ms_of_instant(instant_ms) == instant_ms + offset, instant
        expected = reference_instant_ms_of_wall(zone, instant_ms)
        assert clock.instant_ms_of_wall(instant_ms) == expected, instant
