"""The real CLI against the fake Exact server over HTTP: every stream, paging, increments, tokens,
faults, rate limits, the daily budget and resuming."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import requests

from fake_exact import FakeExact
from fake_exact.clock import expected_record_datetime
from fake_exact.data import page_size
from tap_exactonline.catalog import load_catalog
from tap_exactonline.odata import snake_case
from tests.tap_runner import (
    TAP,
    fake_config,
    parse_messages,
    run_tap,
    start_tap,
    state_tokens,
    stored_tokens,
)

DIVISIONS = (1001, 1002)
# The streams our users load most, one or more of each API kind; test_every_stream.py covers all.
CORE_STREAMS = (
    "me",
    "accounts",
    "contacts",
    "gl_accounts",
    "transaction_lines",
    "items",
    "item_warehouses",
    "sales_invoices",
    "purchase_orders",
    "purchase_order_lines",
    "purchase_invoices",
    "purchase_item_prices",
    "sales_item_prices",
    "sales_orders",
    "shop_orders",
    "bill_of_material_materials",
    "stock_count_lines",
    "supplier_items",
    "warehouse_transfers",
    "receivables_list",
    "payables_list",
    "reporting_balance",
    "item_extra_fields",
)
ISO_DATETIME = re.compile(r"^-?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
# Small but always more than one page: 1,000-row pages for sync/bulk, 60 for the others.
SMALL_ROWS = {
    name: 1100 if page_size(name, load_catalog()[name].api) == 1000 else 75 for name in CORE_STREAMS
} | {"me": 1, "items": 1010}  # item_extra_fields costs one call per item


def tap_config(fake: FakeExact, **extra):
    return fake_config(fake, divisions=list(DIVISIONS), retry_base_seconds=0.01) | extra


# Rate limits have their own tests; elsewhere they would only make the suite wait.
UNLIMITED = {"minutely_limit": 1_000_000, "daily_limit": 1_000_000}


@pytest.fixture
def fake():
    with FakeExact(divisions=DIVISIONS, rows=SMALL_ROWS, **UNLIMITED) as server:
        yield server


def assert_no_secret_leaked(fake: FakeExact, *outputs: str) -> None:
    for secret in fake.issued_secrets():
        for output in outputs:
            assert secret not in output


def test_every_stream_every_division_every_row(fake: FakeExact, tmp_path: Path):
    run = run_tap(tmp_path, tap_config(fake), streams=set(CORE_STREAMS))
    assert run.returncode == 0, run.stderr[-3000:]

    catalog = load_catalog()
    for name in CORE_STREAMS:
        spec = catalog[name]
        if name == "me":
            assert [r["division"] for r in run.records("me")] == [fake.current_division]
            continue
        if spec.child_of is not None:
            continue  # checked below, per parent row
        for division in DIVISIONS:
            records = run.by_division(name).get(division, [])
            assert len(records) == fake.row_count(name, division), (name, division)
            keys = {
                tuple(r[k] for k in ("division", *[_col(x) for x in spec.keys])) for r in records
            }
            assert len(keys) == len(records), f"duplicate keys in {name}"

    # Child stream: one call per item, rows carry their item's id and division.
    items = {(r["division"], r["id"]) for r in run.records("items")}
    extra_fields = run.records("item_extra_fields")
    assert extra_fields
    assert {(r["division"], r["item_id"]) for r in extra_fields} <= items

    # One SCHEMA per stream: targets flush a batch on every SCHEMA message.
    schemas = [m["stream"] for m in run.messages if m["type"] == "SCHEMA"]
    assert sorted(schemas) == sorted(set(schemas))

    # Requests: strictly one at a time, always JSON.
    assert fake.max_concurrent_requests == 1
    assert fake.requests_without_accept == 0
    assert_no_secret_leaked(fake, run.stderr)


def _col(name: str) -> str:
    return snake_case(name)


def test_values_are_typed_as_the_schema_says(fake: FakeExact, tmp_path: Path):
    run = run_tap(tmp_path, tap_config(fake, divisions=[1001]), streams={"transaction_lines"})
    assert run.returncode == 0, run.stderr[-3000:]
    records = run.records("transaction_lines")
    expected = {row["ID"]: row for row in fake.expected_rows("transaction_lines", 1001)}
    assert len(records) == len(expected)
    for record in records:
        raw = expected[record["id"]]
        assert not any(column.startswith("__") for column in record)
        assert not any(isinstance(value, dict) for value in record.values())  # no __deferred
        assert isinstance(record["timestamp"], int) and record["timestamp"] == int(raw["Timestamp"])
        assert record["amount_dc"] == raw["AmountDC"]
        assert record["division"] == 1001
        assert record["gl_account_code"] == raw["GLAccountCode"]  # padding kept
        uuid.UUID(record["id"])
        for column in ("date", "modified", "created", "due_date"):
            value = record.get(column)
            if value is not None:
                assert ISO_DATETIME.match(value), (column, value)
        if raw["Date"] is not None:
            expected_date = expected_record_datetime("Date", raw["Date"])
            assert datetime.fromisoformat(record["date"]) == expected_date
    schema = next(m["schema"] for m in run.messages if m["type"] == "SCHEMA")
    assert schema["properties"]["amount_dc"]["type"] == ["number", "null"]
    assert schema["properties"]["timestamp"]["type"][0] == "integer"
    assert schema["properties"]["date"]["format"] == "date-time"


def test_original_column_names(fake: FakeExact, tmp_path: Path):
    run = run_tap(
        tmp_path,
        tap_config(fake, divisions=[1001], column_names="original"),
        streams={"gl_accounts"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    record = run.records("gl_accounts")[0]
    assert {"ID", "Timestamp", "Division"} <= set(record)


def test_second_run_fetches_only_changes_and_reuses_the_token(fake: FakeExact, tmp_path: Path):
    streams = {"accounts", "purchase_invoices", "reporting_balance"}
    first = run_tap(tmp_path / "1", tap_config(fake), streams=streams)
    assert first.returncode == 0, first.stderr[-3000:]
    assert fake.refresh_count == 1
    state = first.final_state
    assert state_tokens(state)["refresh_token"] != "fake-initial-refresh-token"

    changed_accounts = fake.mutate("accounts", 1001, update=3, insert=2)
    changed_invoices = fake.mutate("purchase_invoices", 1002, update=2)
    calls_before = fake.data_calls()

    second = run_tap(tmp_path / "2", tap_config(fake), streams=streams, state=state)
    assert second.returncode == 0, second.stderr[-3000:]
    # The access token from the first run is still valid: no second refresh within 570 s.
    assert fake.refresh_count == 1
    accounts = second.by_division("accounts")
    assert sorted(r["id"] for r in accounts[1001]) == sorted(r["ID"] for r in changed_accounts)
    assert accounts.get(1002, []) == []
    invoices = {r["id"] for r in second.by_division("purchase_invoices").get(1002, [])}
    assert {r["ID"] for r in changed_invoices} <= invoices
    assert len(invoices) < fake.row_count("purchase_invoices", 1002)
    # `Modified ge <bookmark>` re-reads only the rows modified at the bookmark itself.
    unchanged = second.by_division("purchase_invoices").get(1001, [])
    bookmark = first.bookmark("purchase_invoices", 1001)
    assert len(unchanged) <= 2
    assert all(r["modified"][:19] == bookmark[:19] for r in unchanged)
    # The full-table stream waits for its full_table_interval (24 h); incremental ones cost
    # one call per division.
    assert second.records("reporting_balance") == []
    # Besides: the deletion log once per division (accounts' deletions), and the divisions'
    # move dates once per run (system/Divisions, asked in the current division from current/Me,
    # which Exact does not count).
    assert fake.data_calls() - calls_before == 2 + 2 + 2 + 1 + 1
    assert second.bookmark("accounts", 1001) > first.bookmark("accounts", 1001)


def test_an_access_token_rejected_with_401_is_refreshed_once(fake: FakeExact, tmp_path: Path):
    first = run_tap(tmp_path / "1", tap_config(fake), streams={"gl_accounts"})
    assert first.returncode == 0
    fake.advance_clock(601)  # Exact's clock: the access token expired, our state says valid
    second = run_tap(
        tmp_path / "2", tap_config(fake), streams={"gl_accounts"}, state=first.final_state
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert fake.refresh_count == 2
    tokens = [state_tokens(s) for s in second.states if "exactonline_tokens" in s]
    assert tokens[-1]["refresh_token"] != state_tokens(first.final_state)["refresh_token"]
    assert_no_secret_leaked(fake, first.stderr, second.stderr)


def test_rotated_token_is_emitted_in_state_at_once(fake: FakeExact, tmp_path: Path):
    run = run_tap(tmp_path, tap_config(fake, divisions=[1001]), streams={"gl_accounts"})
    first_record = next(i for i, m in enumerate(run.messages) if m["type"] == "RECORD")
    early_states = [m for m in run.messages[:first_record] if m["type"] == "STATE"]
    assert any("exactonline_tokens" in m["value"] for m in early_states)


def test_refused_refresh_token_is_one_clear_line(fake: FakeExact, tmp_path: Path):
    run = run_tap(tmp_path, tap_config(fake, refresh_token="not-a-token"), streams={"accounts"})
    assert run.returncode == 1
    assert "Authorize the app again" in run.stderr
    assert "Traceback" not in run.stderr
    assert "not-a-token" not in run.stderr
    assert fake.token_calls == 1  # no retry loop


def test_bad_settings_fail_before_any_request(fake: FakeExact, tmp_path: Path):
    for bad, setting in (
        ({"region": "xx"}, "region"),
        ({"divisions": ["abc"]}, "divisions"),
        ({"client_id": None}, "client_id"),
        ({"token_store": "gs://bucket/tokens.json"}, "token_store"),  # gcsfs not installed
        ({"token_encryption_key": "not-a-fernet-key"}, "token_encryption_key"),
        ({"time_zone": "Europe/Amsterdamm"}, "time_zone"),
    ):
        config = tap_config(fake) | bad
        config = {k: v for k, v in config.items() if v is not None}
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        result = subprocess.run([TAP, "--config", str(config_path)], capture_output=True, text=True)
        assert result.returncode == 1
        assert setting in result.stderr
        assert "Traceback" not in result.stderr
    assert fake.calls == []


def test_5xx_html_pages_and_dropped_connections_are_retried(fake: FakeExact, tmp_path: Path):
    fake.fail_next(2, status=503, body="html")
    fake.fail_next(1, status=500, body="json")
    fake.drop_next(1)
    run = run_tap(tmp_path, tap_config(fake, divisions=[1001]), streams={"transaction_lines"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.records("transaction_lines")) == 1100
    assert "Traceback" not in run.stderr


def test_a_persistent_error_stops_with_exacts_message_and_keeps_state(
    fake: FakeExact, tmp_path: Path
):
    fake.fail_next(100, status=503, body="json", path_contains="TransactionLines")
    run = run_tap(
        tmp_path,
        tap_config(fake, divisions=[1001], max_retries=2),
        streams={"gl_accounts", "transaction_lines"},
    )
    assert run.returncode == 1
    assert "transaction_lines (division 1001)" in run.stderr
    assert "gave up after 3 attempts" in run.stderr
    assert "Traceback" not in run.stderr
    assert run.bookmark("gl_accounts", 1001)  # what was done before the failure is kept


def test_429_is_waited_out(tmp_path: Path):
    # Short windows: the tap must wait for the reset the headers (or the last window) give.
    window = 10.0
    rows = {"transaction_lines": 1100, "gl_accounts": 10}
    with FakeExact(divisions=(1001,), rows=rows, minute_window_seconds=window) as fake:
        # gl_accounts is read first and tells the tap the current window; then TransactionLines
        # gets a 429 without any header, and one with the minutely headers.
        fake.rate_limit_next(1, headers="none", path_contains="TransactionLines")
        fake.rate_limit_next(1, headers="minutely", path_contains="TransactionLines")
        run = run_tap(
            tmp_path,
            tap_config(fake, divisions=[1001]),
            streams={"gl_accounts", "transaction_lines"},
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert len(run.records("transaction_lines")) == 1100
        calls, times = fake.calls, fake.call_times
    assert [c[3] for c in calls if c[3] == 429] == [429, 429]
    # The waits the tap announces, not the wall clock: a loaded machine slows the run, not them.
    waits = [float(w) for w in re.findall(r"HTTP 429, waiting ([\d.]+) s", run.stderr)]
    assert len(waits) == 2, run.stderr[-3000:]
    # The headerless 429 belongs to the window the last answer (gl_accounts) reported, when it
    # lands inside it; when a loaded machine delays it past that window's end, the tap cannot
    # know the window and waits for the calendar minute, as Exact's windows are.
    first_429 = next(i for i, c in enumerate(calls) if c[3] == 429)
    last_answer = max(i for i, c in enumerate(calls[:first_429]) if c[3] == 200)
    same_window = times[first_429] // window == times[last_answer] // window
    if same_window:
        assert 0 < waits[0] <= window + 1, waits
    else:
        calendar = 60.0 - times[first_429] % 60.0 + 0.5
        assert abs(waits[0] - calendar) < 1.0, (waits, calendar)
    # The 429 with headers ends with the 10 s window the fake reports.
    assert 0 < waits[1] <= window + 1, waits


def test_minutely_budget_is_respected_without_any_429(tmp_path: Path):
    rows = {"transaction_lines": 6000}
    with FakeExact(
        divisions=(1001,), rows=rows, minutely_limit=3, minute_window_seconds=2.0
    ) as fake:
        run = run_tap(tmp_path, tap_config(fake, divisions=[1001]), streams={"transaction_lines"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert len(run.records("transaction_lines")) == 6000
        assert [c for c in fake.calls if c[3] == 429] == []
        assert "waiting" in run.stderr


def test_daily_budget_stops_cleanly_and_the_next_run_resumes(tmp_path: Path):
    rows = {"transaction_lines": 5500}
    with FakeExact(divisions=(1001,), rows=rows, minutely_limit=1_000_000) as fake:
        # 28 left, reserve 25: one call for the divisions' move dates, then two pages.
        fake.set_daily_remaining(1001, 28)
        config = tap_config(fake, divisions=[1001], daily_budget_reserve=25)
        first = run_tap(tmp_path / "1", config, streams={"transaction_lines"})
        assert first.returncode == 0, first.stderr[-3000:]
        assert "Daily API budget of division 1001 is spent" in first.stderr
        assert len(first.records("transaction_lines")) == 2000  # two pages, then a clean stop

        fake.set_daily_remaining(1001, 5000)
        second = run_tap(
            tmp_path / "2", config, streams={"transaction_lines"}, state=first.final_state
        )
        assert second.returncode == 0, second.stderr[-3000:]
        ids = [
            r["id"]
            for r in first.records("transaction_lines") + second.records("transaction_lines")
        ]
        assert len(ids) == len(set(ids)) == 5500


def test_a_killed_run_resumes_where_it_stopped(tmp_path: Path):
    rows = {"transaction_lines": 4000}
    # One call per 2-second window: slow enough to interrupt after the first page.
    with FakeExact(
        divisions=(1001,), rows=rows, minutely_limit=1, minute_window_seconds=2.0
    ) as fake:
        config = tap_config(fake, divisions=[1001])
        tap = start_tap(tmp_path / "1", config, {"transaction_lines"})
        lines = []
        assert tap.stdout is not None
        for line in tap.stdout:
            lines.append(line)
            if sum('"RECORD"' in x for x in lines) >= 1000:
                break
        tap.send_signal(signal.SIGTERM)
        rest, _ = tap.communicate(timeout=60)
        first = parse_messages("".join(lines) + rest)
        first_ids = [m["record"]["id"] for m in first if m["type"] == "RECORD"]
        assert 1000 <= len(first_ids) < 4000
        state = [m["value"] for m in first if m["type"] == "STATE"][-1]

        second = run_tap(tmp_path / "2", config, streams={"transaction_lines"}, state=state)
        assert second.returncode == 0, second.stderr[-3000:]
        second_ids = [r["id"] for r in second.records("transaction_lines")]
        assert set(first_ids) | set(second_ids) == {
            r["ID"] for r in fake.expected_rows("transaction_lines", 1001)
        }
        assert len(second_ids) <= 4000 - 1000  # resumed, not restarted


def test_token_store_is_written_before_use_and_read_back(fake: FakeExact, tmp_path: Path):
    store = tmp_path / "store" / "tokens.json"
    config = tap_config(fake, divisions=[1001], token_store=str(store))
    first = run_tap(tmp_path / "1", config, streams={"gl_accounts"})
    assert first.returncode == 0, first.stderr[-3000:]
    stored = stored_tokens(store.read_text())
    assert stored["refresh_token"] == state_tokens(first.final_state)["refresh_token"]
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    # Without any state (e.g. --full-refresh), the store keeps the chain alive.
    fake.advance_clock(601)
    second = run_tap(tmp_path / "2", config, streams={"gl_accounts"})
    assert second.returncode == 0, second.stderr[-3000:]
    assert fake.refresh_count == 2
    # After a new authorization, the refresh token newly put in config wins over the store.
    code = fake.issue_authorization_code("http://127.0.0.1/callback")
    granted = requests.post(
        f"{fake.base_url}/api/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1/callback",
            "client_id": "fake-client-id",
            "client_secret": "fake-client-secret",
        },
        timeout=10,
    ).json()
    fake.advance_clock(601)
    third = run_tap(
        tmp_path / "3",
        config | {"refresh_token": granted["refresh_token"]},
        streams={"gl_accounts"},
        state=second.final_state,
    )
    assert third.returncode == 0, third.stderr[-3000:]
    assert "Using the refresh token from the `refresh_token` setting" in third.stderr
    assert stored_tokens(store.read_text())["origin"] != stored["origin"]
    # ...and the next run continues that new chain from the store, not from config.
    fake.advance_clock(601)
    fourth = run_tap(
        tmp_path / "4",
        config | {"refresh_token": granted["refresh_token"]},
        streams={"gl_accounts"},
    )
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    assert "Using the refresh token from the token store" in fourth.stderr


def test_no_secret_reaches_the_logs_even_at_debug_level(fake: FakeExact, tmp_path: Path):
    debug = {"LOGLEVEL": "DEBUG", "TAP_EXACTONLINE_LOGLEVEL": "DEBUG"}
    first = run_tap(tmp_path / "1", tap_config(fake), streams={"gl_accounts"}, env=debug)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "DEBUG" in first.stderr
    fake.advance_clock(601)  # the next run meets a 401 and refreshes
    fake.fail_next(1, status=500, body="json")
    second = run_tap(
        tmp_path / "2",
        tap_config(fake),
        streams={"gl_accounts"},
        state=first.final_state,
        env=debug,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert fake.refresh_count == 2
    assert_no_secret_leaked(fake, first.stderr, second.stderr)
    assert "fake-client-secret" not in first.stderr + second.stderr


def test_connection_test_checks_every_division_the_run_would_read(fake: FakeExact, tmp_path: Path):
    def connection_test(divisions: object) -> subprocess.CompletedProcess[str]:
        config_path = tmp_path / "config.json"
        store = str(tmp_path / "tokens.json")
        config_path.write_text(json.dumps(tap_config(fake, divisions=divisions, token_store=store)))
        return subprocess.run(
            [TAP, "--config", str(config_path), "--test"],
            capture_output=True,
            text=True,
            timeout=120,
        )

    # 1099 is not one of this login's divisions: the run would be refused there.
    closed = connection_test([1001, 1099])
    assert closed.returncode == 1
    [line] = [s for s in closed.stderr.splitlines() if "Connection test failed" in s]
    assert "division 1099 of `divisions` is not open to this login" in line
    everyone = connection_test("all")
    assert everyone.returncode == 0, everyone.stderr[-3000:]
    listed = ", ".join(str(d) for d in fake.divisions)
    assert f"all {len(fake.divisions)} divisions open: {listed}" in everyone.stderr


def test_connection_test_reports_the_token_source_and_warns_about_an_old_token(
    fake: FakeExact, tmp_path: Path
):
    store = tmp_path / "tokens.json"
    config = tap_config(fake, divisions=[1001], token_store=str(store))
    assert run_tap(tmp_path / "1", config, streams={"gl_accounts"}).returncode == 0
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    calls_before = fake.data_calls()

    def connection_test() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TAP, "--config", str(config_path), "--test"],
            capture_output=True,
            text=True,
            timeout=120,
        )

    checked = connection_test()
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "Connection test passed: token from the token store, access token valid until" in (
        checked.stderr
    )
    assert "current division is 1001" in checked.stderr
    assert "the division open: 1001" in checked.stderr
    # No refresh in this test: Exact has not seen the client secret yet, and the line says so.
    assert "the client secret is checked at the next token refresh" in checked.stderr
    assert "revokes refresh tokens unused for 30 days" not in checked.stderr
    # current/Me, which Exact does not count, and one system/Divisions; no stream was read.
    assert fake.data_calls() - calls_before == 2
    assert not [line for line in checked.stdout.splitlines() if '"RECORD"' in line]

    # A token last renewed 26 days ago draws a warning (Exact revokes it after 30 unused days).
    tokens = stored_tokens(store.read_text())
    store.write_text(json.dumps(tokens | {"obtained_at": int(time.time()) - 26 * 86400}))
    warned = connection_test()
    assert warned.returncode == 0, warned.stderr[-3000:]
    assert "last renewed 26 days ago; Exact revokes refresh tokens unused for 30 days" in (
        warned.stderr
    )
    assert_no_secret_leaked(fake, checked.stderr, warned.stderr, checked.stdout)

    # A refused token fails the test with one line.
    broken = tap_config(fake, divisions=[1001], refresh_token="not-a-token")
    config_path.write_text(json.dumps(broken))
    fake.advance_clock(601)  # past the 570 s rule, which Exact checks first
    failed = connection_test()
    assert failed.returncode == 1
    assert "Connection test failed: Exact rejected the refresh token" in failed.stderr
    assert "Traceback" not in failed.stderr
