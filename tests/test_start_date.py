"""`start_date` on sync streams: a starting Timestamp from read/sync/Sync/SyncTimestamp."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from fake_exact import FakeExact
from tests.tap_runner import fake_config, run_tap

ROWS = 2500
SYNC_TIMESTAMP = "/read/sync/Sync/SyncTimestamp"


def iso(odata_date: object) -> str:
    ms = int(str(odata_date)[len("/Date(") : -len(")/")])
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def test_start_date_starts_sync_streams_at_exacts_timestamp(tmp_path: Path):
    with FakeExact(
        divisions=(1001, 1002), rows={"transaction_lines": ROWS, "accounts": 40}
    ) as fake:
        rows = list(fake.expected_rows("transaction_lines", 1001))
        start_date = iso(rows[1800]["Modified"])
        config = fake_config(fake, divisions=[1001, 1002], start_date=start_date)
        run = run_tap(tmp_path, config, streams={"transaction_lines", "accounts"})
        assert run.returncode == 0, run.stderr[-3000:]

        # Rows 1800.. of each division: one page instead of three.
        lines = run.by_division("transaction_lines")
        assert {r["id"] for r in lines[1001]} == {r["ID"] for r in rows[1800:]}
        assert len(lines[1002]) == ROWS - 1800
        data_pages = [c for c in fake.calls if "/sync/Financial/TransactionLines" in c[1]]
        assert len(data_pages) == 2
        # One SyncTimestamp call per entity and division; Accounts is not served by it.
        lookups = [c for c in fake.calls if c[1].endswith(SYNC_TIMESTAMP)]
        assert len(lookups) == 2
        assert all("endPoint=%27TransactionLines%27" in c[2] for c in lookups)
        assert len(run.records("accounts")) == 80
        assert "SyncTimestamp does not serve Accounts" in run.stderr
        assert "first row on (one call per 1,000 rows) until it has a bookmark" in run.stderr

        # With a bookmark, start_date no longer matters: no lookup.
        calls = len(fake.calls)
        again = run_tap(
            tmp_path / "2", config, streams={"transaction_lines"}, state=run.final_state
        )
        assert again.returncode == 0, again.stderr[-3000:]
        assert not [c for c in fake.calls[calls:] if c[1].endswith(SYNC_TIMESTAMP)]
        assert again.record_counts() == {}


def test_start_date_after_every_row_reads_nothing(tmp_path: Path):
    with FakeExact(divisions=(1001,), rows={"transaction_lines": 50}) as fake:
        config = fake_config(fake, start_date="2099-01-01T00:00:00+00:00")
        run = run_tap(tmp_path, config, streams={"transaction_lines"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.record_counts() == {}
        assert "nothing in transaction_lines (division 1001) was modified since" in run.stderr
        # Not even an empty page is asked for: it would cost a call on every run.
        assert not [c for c in fake.calls if "/sync/Financial/TransactionLines" in c[1]]
