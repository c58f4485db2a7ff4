"""Exact's clock end to end: the fake keeps true instants and serves them as Amsterdam wall-clock
time, like Exact; real Meltano loads them into real PostgreSQL and DuckDB, and the next run's
filter, on Exact's clock again, finds the same rows and every row changed since.

What the targets do with an offset (checked with target-postgres 0.8.1 and target-duckdb 0.8.0):
both store `date-time` as a timestamp without time zone, converted to UTC (target-postgres: to
the database session's TimeZone, UTC here). So a record holds the true instant in UTC, and a date
(Exact's midnight) is that day at 00:00 UTC: it lands as the day Exact shows.
"""

from __future__ import annotations

import json
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from fake_exact import FakeExact
from fake_exact.data import odata_date
from tests.conftest import Postgres, run_meltano
from tests.test_pipeline import DIVISIONS, SCHEMA, configure, fetch, meltano_run

pytestmark = pytest.mark.pipeline

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
STREAMS = {"purchase_invoices": 130}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def amsterdam_midnight(day: date) -> str:
    """A date as Exact keeps it: midnight on its clock (the fake serves it as `/Date(day)/`)."""
    return odata_date(ms(datetime(day.year, day.month, day.day, tzinfo=AMSTERDAM)))


SPRING_DAY, AUTUMN_DAY = date(2024, 3, 31), date(2024, 10, 27)
SPRING = utc(2024, 3, 31, 1, 30)  # 03:30 CEST, just after the clocks went forward
AUTUMN_FIRST = utc(2024, 10, 27, 0, 15)  # 02:15 CEST: the first pass of the repeated hour
# 02:05 CET, the second pass: later than AUTUMN_FIRST, yet an earlier wall clock. Exact's clock
# cannot tell it from 02:05 CEST, so the tap reads it as that (an hour early, never late).
AUTUMN_SECOND = utc(2024, 10, 27, 1, 5)


def transition_rows(fake: FakeExact) -> tuple[dict, dict]:
    [spring] = fake.mutate(
        "purchase_invoices",
        1001,
        update=1,
        at_ms=ms(SPRING),
        values={
            "InvoiceDate": amsterdam_midnight(SPRING_DAY),
            "DueDate": amsterdam_midnight(AUTUMN_DAY),
        },
    )
    [autumn] = fake.mutate(
        "purchase_invoices",
        1001,
        update=1,
        start=1,
        at_ms=ms(AUTUMN_FIRST),
        values={"InvoiceDate": amsterdam_midnight(AUTUMN_DAY), "DueDate": None},
    )
    return spring, autumn


def naive(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def test_instants_and_days_land_right_and_the_next_filter_finds_every_change(
    meltano_project: Path, pg_database: Postgres
):
    with FakeExact(divisions=DIVISIONS, rows=STREAMS) as fake:
        configure(meltano_project, fake, streams=STREAMS)
        spring, autumn = transition_rows(fake)
        meltano_run(meltano_project, pg_database)

        select = f"SELECT modified, invoice_date, due_date FROM {SCHEMA}.purchase_invoices"
        # A date-time is the true instant (in UTC), a date the day Exact shows.
        assert fetch(pg_database, select + " WHERE id = %s", spring["ID"]) == [
            (naive(SPRING), datetime(2024, 3, 31), datetime(2024, 10, 27))
        ]
        assert fetch(pg_database, select + " WHERE id = %s", autumn["ID"]) == [
            (naive(AUTUMN_FIRST), datetime(2024, 10, 27), None)
        ]
        # The query of docs/exact-clock.md: days as dates, instants on Amsterdam's clock.
        readme_query = (
            "SELECT invoice_date::date, modified AT TIME ZONE 'UTC' AT TIME ZONE "
            f"'Europe/Amsterdam' FROM {SCHEMA}.purchase_invoices WHERE id = %s"
        )
        assert fetch(pg_database, readme_query, spring["ID"]) == [
            (SPRING_DAY, datetime(2024, 3, 31, 3, 30))
        ]

        # Exact changes a row in the second pass of the repeated hour, and one now.
        [late] = fake.mutate("purchase_invoices", 1001, update=1, start=2, at_ms=ms(AUTUMN_SECOND))
        [now] = fake.mutate("purchase_invoices", 1001, update=1, start=3)
        calls_before = len(fake.calls)
        meltano_run(meltano_project, pg_database)
        first_pages = [
            query
            for _, path, query, _ in fake.calls[calls_before:]
            if "/1001/purchase/PurchaseInvoices" in path and "skiptoken" not in query
        ]
        # The bookmark (02:15 CEST) sent on Exact's clock, an hour early for the repeated hour.
        assert len(first_pages) == 1
        assert "$filter=Modified%20ge%20datetime'2024-10-27T01:15:00'" in first_pages[0]
        description = f"SELECT description, modified FROM {SCHEMA}.purchase_invoices WHERE id = %s"
        assert fetch(pg_database, description, late["ID"]) == [
            (late["Description"], naive(AUTUMN_SECOND - timedelta(hours=1)))
        ]
        assert fetch(pg_database, description, now["ID"])[0][0] == now["Description"]
        assert fetch(pg_database, select + " WHERE id = %s", autumn["ID"]) == [
            (naive(AUTUMN_FIRST), datetime(2024, 10, 27), None)
        ]
        total = fetch(pg_database, f"SELECT count(*) FROM {SCHEMA}.purchase_invoices")
        assert total == [(sum(fake.row_count("purchase_invoices", d) for d in DIVISIONS),)]


def test_days_and_instants_land_right_in_duckdb(meltano_project: Path):
    with FakeExact(divisions=DIVISIONS, rows=STREAMS) as fake:
        configure(meltano_project, fake, streams=STREAMS)
        spring, autumn = transition_rows(fake)
        result = run_meltano(meltano_project, "run", "tap-exactonline", "target-duckdb")
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]

    python = meltano_project / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
    script = (
        "import duckdb, json, sys\n"
        "db = duckdb.connect(sys.argv[1], read_only=True)\n"
        'rows = db.execute("SELECT id, typeof(modified), CAST(modified AS VARCHAR), '
        "CAST(invoice_date AS VARCHAR), CAST(invoice_date AS DATE)::VARCHAR "
        # `exactonline.purchase_invoices` is unambiguous: the file is not named like the schema.
        'FROM exactonline.purchase_invoices WHERE id IN (?, ?)", sys.argv[2:])'
        ".fetchall()\n"
        "print(json.dumps(rows))\n"
    )
    database = meltano_project / "warehouse.duckdb"  # meltano.yml's default filepath
    out = subprocess.run(
        [str(python), "-c", script, str(database), spring["ID"], autumn["ID"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    landed = {row[0]: row[1:] for row in json.loads(out.stdout)}
    assert landed[spring["ID"]] == [
        "TIMESTAMP",
        "2024-03-31 01:30:00",
        "2024-03-31 00:00:00",
        "2024-03-31",
    ]
    assert landed[autumn["ID"]] == [
        "TIMESTAMP",
        "2024-10-27 00:15:00",
        "2024-10-27 00:00:00",
        "2024-10-27",
    ]
