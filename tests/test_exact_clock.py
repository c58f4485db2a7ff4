"""Exact's clock: `/Date(ms)/` is Amsterdam wall-clock time (Exact's REST API FAQ, "What is the
format of the datetime properties?": "This is in the CET time and not GMT").

The expectations are worked out with the standard library's zoneinfo, independently of the tap's
pendulum arithmetic.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tap_exactonline.exact_clock import ExactClock
from tap_exactonline.odata import RecordPlan
from tests.conftest import record_of

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NAIVE_EPOCH = datetime(1970, 1, 1)
CLOCK = ExactClock("Europe/Amsterdam")


def wire(wall: datetime) -> str:
    """What Exact sends for this Amsterdam wall clock."""
    return f"/Date({(wall - NAIVE_EPOCH) // timedelta(milliseconds=1)})/"


def wall_of(instant: datetime) -> datetime:
    return instant.astimezone(AMSTERDAM).replace(tzinfo=None)


def utc(*args: int) -> str:
    return datetime(*args, tzinfo=timezone.utc).isoformat()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # The FAQ's own example value, 02:24 CEST on 25 October 2013.
        ("/Date(1382667872203)/", "2013-10-25T00:24:32.203000+00:00"),
        (wire(datetime(2024, 1, 15, 9, 30)), utc(2024, 1, 15, 8, 30)),  # CET: UTC+1
        (wire(datetime(2024, 7, 15, 9, 30)), utc(2024, 7, 15, 7, 30)),  # CEST: UTC+2
        ("/Date(-1)/", utc(1969, 12, 31, 22, 59, 59, 999000)),
        # WCF's local form: the number is the instant, the suffix only the display offset.
        ("/Date(1382667872203+0200)/", "2013-10-25T02:24:32.203000+00:00"),
        ("/Date(1382667872203-0500)/", "2013-10-25T02:24:32.203000+00:00"),
        # Year-1 and year-9999 sentinels pass unshifted.
        ("/Date(-62135596800000)/", "0001-01-01T00:00:00+00:00"),
        ("/Date(253402300799000)/", "9999-12-31T23:59:59+00:00"),
        ("2020-01-01T00:00:00", "2020-01-01T00:00:00"),
        ("/Date(soon)/", "/Date(soon)/"),
        ("/Date(" + "7" * 5000 + ")/", "/Date(" + "7" * 5000 + ")/"),  # more than int() reads
        (None, None),
    ],
)
def test_values_are_read_on_exacts_clock(raw, expected):
    assert CLOCK.read(raw) == expected


@pytest.mark.parametrize(
    "day",
    [
        datetime(2024, 1, 3),
        datetime(2024, 3, 31),  # spring: clocks go 02:00 -> 03:00
        datetime(2024, 7, 1),
        datetime(2024, 10, 27),  # autumn: 02:00-03:00 twice
        datetime(1900, 1, 1),  # before 1940 Amsterdam was UTC+00:19:32 / +00:20
    ],
)
def test_a_date_keeps_its_day_but_an_audit_stamp_is_an_instant(day):
    raw = wire(day)  # Exact sends a date as midnight on its clock
    assert CLOCK.read(raw) == day.replace(tzinfo=timezone.utc).isoformat()
    instant = day.replace(tzinfo=AMSTERDAM).astimezone(timezone.utc)
    assert CLOCK.read_instant(raw) == instant.isoformat()
    plan = RecordPlan({"InvoiceDate": "Edm.DateTime", "Modified": "Edm.DateTime"}, rename=True)
    record = record_of(plan, {"InvoiceDate": raw, "Modified": raw}, 1)
    assert record["invoice_date"].startswith(day.date().isoformat() + "T00:00:00")
    assert datetime.fromisoformat(record["modified"]) == instant


def test_every_minute_of_both_transition_days_round_trips():
    """Instant -> Exact's wall clock -> record: the same instant, except in the second pass of
    the repeated autumn hour, which Exact's clock cannot tell from the first: read as the earlier
    instant, one hour early (a bookmark lags, never leads)."""
    for day in (
        datetime(2024, 3, 31, tzinfo=timezone.utc),
        datetime(2024, 10, 26, 12, tzinfo=timezone.utc),
    ):
        for minute in range(24 * 60):
            instant = day + timedelta(minutes=minute, seconds=7, milliseconds=250)
            wall = wall_of(instant)
            read = datetime.fromisoformat(str(CLOCK.read_instant(wire(wall))))
            earlier = wall.replace(fold=0).replace(tzinfo=AMSTERDAM).astimezone(timezone.utc)
            assert read == earlier, instant
            assert read in (instant, instant - timedelta(hours=1)), instant


def test_the_spring_gap_reads_as_the_earlier_instant():
    # 02:30 does not exist on 31 March 2024: it is read with the summer offset, 00:30Z (the
    # earlier of 00:30Z and 01:30Z).
    assert CLOCK.read(wire(datetime(2024, 3, 31, 2, 30))) == utc(2024, 3, 31, 0, 30)


def exact_matches(row_wall: datetime, literal: str) -> bool:
    """Exact evaluates `Modified ge datetime'...'` on its own wall clock."""
    text = re.fullmatch(r"datetime'(.+)'", literal)
    assert text is not None
    return row_wall >= datetime.fromisoformat(text.group(1))


def test_a_filter_from_a_bookmark_never_skips_a_later_row():
    """For bookmarks all around both transitions: every row modified at or after the bookmark
    (the same second included) matches the filter Exact is sent, on Exact's wall clock."""
    rng = random.Random(7)
    starts = [
        datetime(2024, 3, 30, 22, tzinfo=timezone.utc),
        datetime(2024, 10, 26, 22, tzinfo=timezone.utc),
    ]
    for start in starts:
        for step in range(0, 6 * 3600, 97):
            bookmark = start + timedelta(seconds=step, microseconds=rng.randrange(10**6))
            literal = CLOCK.literal(bookmark.isoformat())
            for later in range(0, 3 * 3600, 61):
                row = bookmark.replace(microsecond=0) + timedelta(seconds=later)
                assert exact_matches(wall_of(row), literal), (bookmark, row, literal)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-15T08:30:15.900000+00:00", "datetime'2024-01-15T09:30:15'"),  # floored
        ("2024-07-15T07:30:15Z", "datetime'2024-07-15T09:30:15'"),
        ("2024-07-15T09:30:15+02:00", "datetime'2024-07-15T09:30:15'"),
        # Without an offset a value (start_date: 2024-01-01) already is Exact's wall clock.
        ("2024-01-01T00:00:00", "datetime'2024-01-01T00:00:00'"),
        # 02:30 CEST, first pass of the repeated hour: ask from 01:30, so that rows of the second
        # pass (02:00-02:30 CET, later instants) are not left out.
        ("2024-10-27T00:30:00+00:00", "datetime'2024-10-27T01:30:00'"),
    ],
)
def test_filter_literals_are_on_exacts_clock(value, expected):
    assert CLOCK.literal(value) == expected


def test_the_zone_is_a_setting():
    london = ExactClock("Europe/London")
    assert london.read(wire(datetime(2024, 7, 15, 9, 30))) == utc(2024, 7, 15, 8, 30)
    assert london.literal(utc(2024, 7, 15, 8, 30)) == "datetime'2024-07-15T09:30:00'"


def test_random_instants_round_trip_outside_the_repeated_hour():
    rng = random.Random(11)
    for _ in range(20000):
        instant = datetime(1950, 1, 1, tzinfo=timezone.utc) + timedelta(
            milliseconds=rng.randrange(100 * 365 * 86_400_000)
        )
        wall = wall_of(instant)
        first, second = (wall.replace(fold=f, tzinfo=AMSTERDAM).utcoffset() for f in (0, 1))
        if first != second:
            continue  # the repeated hour: see the transition-day test
        assert CLOCK.read_instant(wire(wall)) == instant.isoformat(), instant
