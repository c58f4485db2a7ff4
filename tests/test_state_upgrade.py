"""Upgrading loses nothing: a state written before the tap read Exact's clock (version 1: date-time
bookmarks and DivisionMoveDates were Exact's Amsterdam wall clock labelled UTC, an hour or two
ahead of the instant) must not make the next run skip rows or resync a division."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fake_exact import FakeExact
from tests.tap_runner import fake_config, run_tap

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
STATE_VERSION_KEY = "exactonline_state_version"


def as_version_1(value: str) -> str:
    """How the earlier version wrote an instant: its Amsterdam wall clock, labelled UTC."""
    local = datetime.fromisoformat(value).astimezone(AMSTERDAM)
    return local.replace(tzinfo=timezone.utc).isoformat()


def version_1_state(state: dict[str, Any]) -> dict[str, Any]:
    old = copy.deepcopy(state)
    assert old.pop(STATE_VERSION_KEY) == 2
    for bookmark in old["bookmarks"].values():
        for partition in bookmark.get("partitions", []):
            value = partition.get("replication_key_value")
            if isinstance(value, str):
                partition["replication_key_value"] = as_version_1(value)
    moves = old["exactonline_division_moves"]
    for division, value in moves.items():
        moves[division] = as_version_1(value)
    return old


def test_a_version_1_state_reads_every_changed_row_and_resyncs_nothing(tmp_path: Path):
    streams = {"purchase_invoices", "accounts"}
    with FakeExact(divisions=(1001,), rows={"purchase_invoices": 130, "accounts": 50}) as fake:
        fake.move_division(1001)  # a DivisionMoveDate to remember
        config = fake_config(fake, divisions=[1001])
        first = run_tap(tmp_path / "1", config, streams=streams)
        assert first.returncode == 0, first.stderr[-3000:]
        bookmark = datetime.fromisoformat(first.bookmark("purchase_invoices", 1001))
        old_state = version_1_state(first.final_state)
        assert old_state["bookmarks"]["purchase_invoices"]["partitions"][0][
            "replication_key_value"
        ] == as_version_1(bookmark.isoformat())

        # Rows Exact changed after the bookmark, but before the wall clock version 1 kept.
        offset = bookmark.astimezone(AMSTERDAM).utcoffset()
        assert offset == timedelta(hours=1)
        changed = []
        for start, minutes in enumerate((1, 30, 59)):
            moment = bookmark + timedelta(minutes=minutes)
            changed += fake.mutate(
                "purchase_invoices",
                1001,
                update=1,
                start=start,
                at_ms=int(moment.timestamp() * 1000),
            )
        second = run_tap(tmp_path / "2", config, streams=streams, state=old_state)
        assert second.returncode == 0, second.stderr[-3000:]

    read = {record["id"]: record for record in second.records("purchase_invoices")}
    for row in changed:
        assert row["ID"] in read, row["ID"]
        assert read[row["ID"]]["description"] == row["Description"]
    assert "moved back to the true instants" in second.stderr
    assert "moved to another Exact database" not in second.stderr
    assert second.records("accounts") == []  # incremental: nothing changed, no resync
    assert second.final_state[STATE_VERSION_KEY] == 2
    # Timestamps are row versions, not times: untouched.
    assert second.bookmark("accounts", 1001) == first.bookmark("accounts", 1001)
