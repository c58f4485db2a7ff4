"""`stream_api`: a stream read from another of its APIs, for the columns only that API has."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fake_exact import FakeExact
from tap_exactonline.catalog import load_catalog, parse_stream_api
from tests.tap_runner import TAP, TapRun, discover, fake_config, run_tap

CATALOG = load_catalog()
ITEMS_SYNC = "/api/v1/1001/sync/Logistics/Items"
ITEMS_STANDARD = "/api/v1/1001/logistics/Items"
UNLIMITED = {"minutely_limit": 10**6, "daily_limit": 10**6}


def calls_to(fake: FakeExact, path: str, since: int = 0) -> list[tuple[str, str, str, int]]:
    return [call for call in fake.calls[since:] if call[1] == path]


def tokens_only(run: TapRun) -> dict:
    """The state without bookmarks: the next run reuses the tokens (Exact's 570 s rule)."""
    return {key: value for key, value in run.final_state.items() if key != "bookmarks"}


def bookmark(run: TapRun, stream: str) -> dict:
    (partition,) = run.final_state["bookmarks"][stream]["partitions"]
    return partition


# --- the setting ------------------------------------------------------------------------------


def test_choices_come_as_an_object_or_as_meltanos_json_string():
    assert parse_stream_api({"items": "standard"}) == ({"items": "standard"}, [])
    assert parse_stream_api('{"items": "bulk", "accounts": "sync"}') == (
        {"items": "bulk", "accounts": "sync"},
        [],
    )
    assert parse_stream_api(None) == ({}, [])
    assert parse_stream_api("") == ({}, [])
    _, problems = parse_stream_api("items=standard")
    assert problems == [
        'Setting `stream_api` must be an object of stream name -> API, e.g. {"items": '
        "\"standard\"} (got 'items=standard')."
    ]


def test_each_bad_entry_is_one_line_naming_the_stream_and_its_choices():
    choices, problems = parse_stream_api(
        {"itemz": "standard", "journals": "bulk", "items": "read", "accounts": "standard"}
    )
    assert choices == {"accounts": "standard"}
    assert problems == [
        "Setting `stream_api`: `itemz` is not a stream; did you mean `items`?",
        "Setting `stream_api`: `journals` is read from `standard` only; Exact serves it from no "
        "other API.",
        "Setting `stream_api`: `items` cannot be read from 'read'; choose one of `sync`, `bulk`, "
        "`standard`.",
    ]
    (unlike,) = parse_stream_api({"zzz_qqq": "sync"})[1]
    assert unlike.startswith("Setting `stream_api`: `zzz_qqq` is not a stream; the streams with")
    assert "`items`, `leave_absence_hours_by_day`" in unlike


def test_bad_choices_stop_the_tap_before_any_request(tmp_path: Path):
    with FakeExact() as fake:
        bad = fake_config(fake, stream_api={"items": "read", "nope": "sync"})
        run = run_tap(tmp_path / "bad", bad, with_catalog=False)
        # A resync re-reads a sync stream from the start: not possible on another API.
        resync = fake_config(fake, stream_api={"accounts": "standard"}, resync_streams=["accounts"])
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(resync))
        moved = subprocess.run([TAP, "--config", str(config_path)], capture_output=True, text=True)
        assert fake.calls == []
    assert run.returncode == 1
    assert "Setting `stream_api`: `items` cannot be read from 'read'; choose one of `sync`, " in (
        run.stderr
    )
    assert "Setting `stream_api`: `nope` is not a stream" in run.stderr
    assert "Traceback" not in run.stderr
    assert moved.returncode == 1
    assert (
        "Setting `resync_streams` names streams that are not sync streams: accounts "
        "(`stream_api` reads accounts from another API)." in moved.stderr
    )


# --- discovery and a run ------------------------------------------------------------------------


def test_discovery_builds_the_stream_on_the_chosen_api(tmp_path: Path):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"client_id": "x", "client_secret": "y", "stream_api": {"items": "standard"}})
    )
    streams = {s["tap_stream_id"]: s for s in discover(config)["streams"]}
    items = streams["items"]
    assert {"is_batch_number_item", "is_serial_number_item"} <= set(items["schema"]["properties"])
    assert "timestamp" not in items["schema"]["properties"]
    assert items["replication_key"] == "modified"
    assert items["key_properties"] == ["division", "id"]
    # Every other stream as before: still on its cheapest API.
    assert "timestamp" in streams["accounts"]["schema"]["properties"]
    assert len(streams) == sum(spec.api != "beta" for spec in CATALOG.values())


def test_items_on_the_standard_api_bring_their_extra_columns_in_pages_of_60(tmp_path: Path):
    with FakeExact(rows={"items": 130}, **UNLIMITED) as fake:
        on_sync = run_tap(tmp_path / "sync", fake_config(fake), streams={"items"})
        # As Meltano passes an object set on the command line: a JSON string.
        config = fake_config(fake, stream_api='{"items": "standard"}')
        on_standard = run_tap(
            tmp_path / "standard", config, streams={"items"}, state=tokens_only(on_sync)
        )
        expected = {row["ID"]: row for row in fake.expected_rows("items", 1001, api="standard")}
        sync_pages, standard_pages = calls_to(fake, ITEMS_SYNC), calls_to(fake, ITEMS_STANDARD)
    assert on_sync.returncode == 0, on_sync.stderr[-3000:]
    assert on_standard.returncode == 0, on_standard.stderr[-3000:]
    assert "is_batch_number_item" not in on_sync.records("items")[0]
    records = on_standard.records("items")
    assert len(records) == len(on_sync.records("items")) == 130
    for record in records:
        row = expected[record["id"]]
        assert record["is_batch_number_item"] is row["IsBatchNumberItem"]
        assert record["is_serial_number_item"] is row["IsSerialNumberItem"]
        assert "timestamp" not in record
    # The same 130 rows: one call on the sync API, three on the standard one.
    assert len(sync_pages) == 1 and len(standard_pages) == 3
    assert all("IsBatchNumberItem" in call[2] for call in standard_pages[:1])
    assert bookmark(on_standard, "items")["replication_key"] == "modified"


# --- switching: the other API's bookmark is not used --------------------------------------------


def test_switching_from_sync_reads_the_stream_from_the_start(tmp_path: Path):
    with FakeExact(rows={"items": 130}, **UNLIMITED) as fake:
        first = run_tap(tmp_path / "1", fake_config(fake), streams={"items"})
        assert first.returncode == 0, first.stderr[-3000:]
        assert bookmark(first, "items")["replication_key"] == "timestamp"

        calls = len(fake.calls)
        config = fake_config(fake, stream_api={"items": "standard"})
        switched = run_tap(tmp_path / "2", config, streams={"items"}, state=first.final_state)
        assert switched.returncode == 0, switched.stderr[-3000:]
        # Every row, asked for without a filter: the Timestamp is not taken for a date.
        pages = calls_to(fake, ITEMS_STANDARD, calls)
        assert len(switched.records("items")) == 130 and len(pages) == 3
        assert "$filter" not in pages[0][2]
        assert (
            "items (division 1001): its bookmark is on `timestamp`, written while `stream_api` "
            "read it from another API; reading it from the start instead." in switched.stderr
        )
        assert bookmark(switched, "items")["replication_key"] == "modified"

        # Later runs are incremental on the new API, without the warning.
        calls = len(fake.calls)
        again = run_tap(tmp_path / "3", config, streams={"items"}, state=switched.final_state)
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(again.records("items")) == 1  # the bookmark's own row: `Modified ge`
        assert "Modified%20ge%20datetime'" in calls_to(fake, ITEMS_STANDARD, calls)[0][2]
        assert "its bookmark is on" not in again.stderr

        # Back to sync: the Modified date is no Timestamp either.
        calls = len(fake.calls)
        back = run_tap(
            tmp_path / "4", fake_config(fake), streams={"items"}, state=again.final_state
        )
        assert back.returncode == 0, back.stderr[-3000:]
        assert len(back.records("items")) == 130
        assert "Timestamp%20gt%201&" in calls_to(fake, ITEMS_SYNC, calls)[0][2] + "&"
        assert bookmark(back, "items")["replication_key"] == "timestamp"


def test_a_switch_with_start_date_reads_from_start_date(tmp_path: Path):
    with FakeExact(rows={"items": 1500}, **UNLIMITED) as fake:
        first = run_tap(tmp_path / "1", fake_config(fake), streams={"items"})
        assert first.returncode == 0, first.stderr[-3000:]
        rows = list(fake.expected_rows("items", 1001, api="standard"))
        ms = int(str(rows[750]["Modified"])[len("/Date(") : -len(")/")])
        start_date = datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()

        calls = len(fake.calls)
        config = fake_config(fake, stream_api={"items": "standard"}, start_date=start_date)
        switched = run_tap(tmp_path / "2", config, streams={"items"}, state=first.final_state)
        assert switched.returncode == 0, switched.stderr[-3000:]
        assert "Modified%20ge%20datetime'" in calls_to(fake, ITEMS_STANDARD, calls)[0][2]
        assert 0 < len(switched.records("items")) < len(rows)
        assert f"reading it from start_date {start_date} instead." in switched.stderr


def test_between_bulk_and_standard_the_modified_bookmark_is_kept(tmp_path: Path):
    with FakeExact(rows={"items": 130}, **UNLIMITED) as fake:
        on_bulk = fake_config(fake, stream_api={"items": "bulk"})
        first = run_tap(tmp_path / "1", on_bulk, streams={"items"})
        assert first.returncode == 0, first.stderr[-3000:]
        calls = len(fake.calls)
        on_standard = fake_config(fake, stream_api={"items": "standard"})
        second = run_tap(tmp_path / "2", on_standard, streams={"items"}, state=first.final_state)
        assert second.returncode == 0, second.stderr[-3000:]
        assert len(second.records("items")) == 1  # the bookmark's own row: `Modified ge`
        assert "Modified%20ge%20datetime'" in calls_to(fake, ITEMS_STANDARD, calls)[0][2]
        assert "its bookmark is on" not in second.stderr


@pytest.mark.parametrize("name", ["sales_invoices", "purchase_orders"])
def test_header_only_endpoints_are_keyed_on_their_header(name: str):
    # Their sync endpoints hold header and line rows keyed on `ID`; the others one row per
    # invoice or order, so the deletion log's keys do not fit them.
    spec = CATALOG[name]
    assert spec.keys == ("ID",) and spec.deleted_entity_type is not None
    for other in spec.alternatives.values():
        assert other.keys != spec.keys and other.deleted_entity_type is None
