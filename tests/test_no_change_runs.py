"""Runs when nothing changed: one call per incremental stream and division, and the streams
Exact cannot read incrementally (no `Modified` or `Timestamp`) are not re-read on every run but
once per `full_table_interval` (24 h by default), kept in the state."""

from __future__ import annotations

import copy
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fake_exact import FakeExact
from tests.tap_runner import fake_config, run_tap

DIVISIONS = (1001, 1002)
INCREMENTAL = ("accounts", "gl_accounts", "sales_invoices", "purchase_orders")
FULL_TABLE = ("receivables_list", "payables_list", "me")


def hours_ago(hours: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(hours=hours)).isoformat()


API_PATH = re.compile(r"^/api/v1/(?:(\d+)/)?(.*)$")


def calls_by_path(fake: FakeExact, since: int) -> Counter[tuple[str, str]]:
    counted: Counter[tuple[str, str]] = Counter()
    for _, path, _, _ in fake.calls[since:]:
        match = API_PATH.match(path)
        if match:
            counted[(match[1] or "", match[2])] += 1
    return counted


def test_a_run_when_nothing_changed_costs_one_call_per_incremental_stream(tmp_path: Path):
    rows = dict.fromkeys((*INCREMENTAL, *FULL_TABLE), 150)
    with FakeExact(divisions=DIVISIONS, rows=rows, minutely_limit=10**6) as fake:
        config = fake_config(fake, divisions=list(DIVISIONS))
        streams = {*INCREMENTAL, *FULL_TABLE}
        first = run_tap(tmp_path / "1", config, streams=streams)
        assert first.returncode == 0, first.stderr[-3000:]
        assert set(first.record_counts()) >= set(streams)

        before = len(fake.calls)
        second = run_tap(tmp_path / "2", config, streams=streams, state=first.final_state)
        assert second.returncode == 0, second.stderr[-3000:]
        calls = calls_by_path(fake, before)
        # One call per incremental stream (and the deletion log) per division; besides, one
        # to find the user and one to check the divisions for moves.
        own = {
            path: n for (_, path), n in calls.items() if path in ("current/Me", "system/Divisions")
        }
        assert own == {"current/Me": 1, "system/Divisions": 1}
        per_division = Counter(division for (division, path) in calls.elements() if path not in own)
        assert per_division == dict.fromkeys(map(str, DIVISIONS), len(INCREMENTAL) + 1), calls
        assert not [
            path for _, path in calls if "ReceivablesList" in path or "PayablesList" in path
        ]
        assert not second.records("receivables_list") and not second.records("me")
        assert (
            "Not read in this run, read completely less than 24 h ago (full_table_interval): "
            "me (once); payables_list (1001, 1002); receivables_list (1001, 1002)."
        ) in second.stderr
        assert re.search(
            r"receivables_list\s+1001\s+0\s+0\s+[\d.]+\s+skipped: read recently", (second.stderr)
        )


def test_a_full_table_stream_is_read_again_once_its_interval_has_passed(tmp_path: Path):
    with FakeExact(divisions=(1001,)) as fake:
        # The books' open items: as many as their invoices left unpaid.
        open_items = fake.row_count("receivables_list", 1001)
        assert open_items > 0
        # A store: the run without state below takes its token from there.
        config = fake_config(fake, token_store=str(tmp_path / "tokens.json"))
        first = run_tap(tmp_path / "1", config, streams={"receivables_list"})
        assert len(first.records("receivables_list")) == open_items

        # 23 hours later: still skipped. 25 hours later: read again.
        state = copy.deepcopy(first.final_state)
        [partition] = state["bookmarks"]["receivables_list"]["partitions"]
        partition["last_full_read_at"] = hours_ago(23)
        skipped = run_tap(tmp_path / "2", config, streams={"receivables_list"}, state=state)
        assert skipped.returncode == 0 and not skipped.records("receivables_list")
        partition["last_full_read_at"] = hours_ago(25)
        again = run_tap(tmp_path / "3", config, streams={"receivables_list"}, state=state)
        assert len(again.records("receivables_list")) == open_items
        [read_at] = [
            p["last_full_read_at"]
            for p in again.final_state["bookmarks"]["receivables_list"]["partitions"]
        ]
        assert datetime.now(timezone.utc) - datetime.fromisoformat(read_at) < timedelta(minutes=10)

        # 0 reads them on every run; a run without state (--full-refresh) reads them too.
        every_run = config | {"full_table_interval": 0}
        zero = run_tap(
            tmp_path / "4", every_run, streams={"receivables_list"}, state=again.final_state
        )
        assert len(zero.records("receivables_list")) == open_items
        fresh = run_tap(tmp_path / "5", config, streams={"receivables_list"})
        assert len(fresh.records("receivables_list")) == open_items


def test_a_read_stopped_short_is_not_taken_for_complete(tmp_path: Path):
    # Books with more than two pages (60 rows each) of open items.
    with FakeExact(divisions=(1001,), rows={"transaction_lines": 12_000}) as fake:
        assert fake.row_count("receivables_list", 1001) > 2 * 60
        fake.set_daily_remaining(1001, 27)  # reserve 25: the budget runs out mid-read
        run = run_tap(tmp_path / "1", fake_config(fake), streams={"receivables_list"})
        partitions = run.final_state["bookmarks"]["receivables_list"].get("partitions", [])
        assert all("last_full_read_at" not in p for p in partitions)
