"""Exact refuses some entities in some divisions (mandatory `$filter`, no rights, a module the
division lacks). Such a stream is reported once and skipped for that division; the run goes on
and fails at the end only when the user selected that stream by name."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import pytest

from fake_exact import FakeExact
from tap_exactonline.catalog import load_catalog
from tap_exactonline.errors import refused_field_name
from tests.tap_runner import fake_config, run_tap

DIVISIONS = (1001, 1002)
REFUSAL = "This endpoint has mandatory filtering applied"
KEY_REFUSAL = "'ID' is not a valid property of PaymentTerms"


def config(fake: FakeExact) -> dict:
    return fake_config(fake, divisions=list(DIVISIONS))


def error_lines(stderr: str, text: str) -> list[str]:
    return [line for line in stderr.splitlines() if text in line and "ERROR" in line]


def test_a_refused_stream_is_skipped_and_the_run_succeeds_when_not_chosen_by_name(
    tmp_path: Path,
):
    with FakeExact(
        divisions=DIVISIONS, default_rows=2, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        fake.require_filter("purchase_invoices", fields=("InvoiceDate",), division=1002)
        # A bulk stream's field Exact no longer accepts in one division: read without it.
        fake.refuse_select("sales_orders", "CustomField", division=1001)
        # A sync stream's key: no read without it, so the stream is refused there.
        fake.refuse_select("payment_terms", "ID", division=1002)
        run = run_tap(tmp_path, config(fake), with_catalog=False, timeout=600)

    assert run.returncode == 0, run.stderr[-3000:]
    refusals = error_lines(run.stderr, REFUSAL)
    assert len(refusals) == 1
    assert "purchase_invoices (division 1002)" in refusals[0]
    assert "InvoiceDate" in refusals[0]
    assert "Traceback" not in run.stderr
    # The refused division is skipped; the other division and every other stream still sync.
    assert set(run.by_division("purchase_invoices")) == {1001}
    assert set(run.by_division("accounts")) == set(DIVISIONS)
    assert set(run.by_division("warehouses")) == set(DIVISIONS)
    assert not error_lines(run.stderr, "CustomField")
    [dropped] = [line for line in run.stderr.splitlines() if "CustomField" in line]
    assert "WARNING" in dropped
    assert "sales_orders" in dropped and "division 1001" in dropped
    assert set(run.by_division("sales_orders")) == set(DIVISIONS)
    [sync_refusal] = error_lines(run.stderr, KEY_REFUSAL)
    assert "payment_terms (division 1002)" in sync_refusal
    assert set(run.by_division("payment_terms")) == {1001}
    assert run.bookmark("payment_terms", 1002) is None
    assert (
        "Skipped because Exact refused them: payment_terms (division 1002), "
        "purchase_invoices (division 1002). They" in run.stderr
    )
    # Its bookmark for 1002 is not advanced: the next run tries the whole window again.
    assert run.bookmark("purchase_invoices", 1002) is None
    assert run.bookmark("purchase_invoices", 1001) is not None


def test_everything_but_a_few_streams_is_not_choosing_the_refused_one_by_name(tmp_path: Path):
    # Meltano's `select: ["*.*", "!warehouses.*"]`: every stream selected but one.
    offered = {name for name, spec in load_catalog().items() if spec.api != "beta"}
    with FakeExact(
        divisions=DIVISIONS, default_rows=1, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        fake.require_filter("purchase_invoices", fields=("InvoiceDate",), division=1002)
        run = run_tap(tmp_path, config(fake), streams=offered - {"warehouses"}, timeout=600)

    assert run.returncode == 0, run.stderr[-3000:]
    assert len(error_lines(run.stderr, REFUSAL)) == 1
    assert "Skipped because Exact refused them: purchase_invoices (division 1002)" in run.stderr
    assert "warehouses" not in run.record_counts()
    assert set(run.by_division("purchase_invoices")) == {1001}


def test_a_refused_stream_selected_by_name_fails_the_run_after_the_others(tmp_path: Path):
    with FakeExact(
        divisions=DIVISIONS, default_rows=2, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        fake.require_filter("reporting_balance", division=1001)
        run = run_tap(tmp_path, config(fake), streams={"reporting_balance", "gl_accounts"})

    assert run.returncode == 1
    assert len(error_lines(run.stderr, REFUSAL)) == 1
    assert "Exact refused streams you selected: reporting_balance" in run.stderr
    assert "Traceback" not in run.stderr
    # Everything else arrived, and its state was emitted, before the run failed.
    assert set(run.by_division("reporting_balance")) == {1002}
    assert set(run.by_division("gl_accounts")) == set(DIVISIONS)
    assert run.bookmark("gl_accounts", 1002) is not None


def test_a_refused_child_stream_is_not_asked_again_for_every_parent_row(tmp_path: Path):
    with FakeExact(
        divisions=DIVISIONS, rows={"items": 25}, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        fake.require_filter("item_extra_fields", division=1001)
        run = run_tap(tmp_path, config(fake), streams={"items", "item_extra_fields"})
        asked = [c for c in fake.calls if "/1001/read/logistics/ItemExtraField" in c[1]]

    assert run.returncode == 1
    assert len(asked) == 1
    assert len(run.by_division("items")[1001]) == 25
    assert set(run.by_division("item_extra_fields")) == {1002}


def test_a_mandatory_filter_that_takes_modified_is_met_on_the_first_run(tmp_path: Path):
    path = "/api/v1/1002/" + load_catalog()["purchase_invoices"].path
    with FakeExact(
        divisions=DIVISIONS, rows={"purchase_invoices": 75}, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        fake.require_filter("purchase_invoices", fields=("InvoiceDate", "Modified"), division=1002)
        first = run_tap(tmp_path / "first", config(fake), streams={"purchase_invoices"})
        first_calls = [c for c in fake.calls if c[1] == path]
        expected = {d: fake.row_count("purchase_invoices", d) for d in DIVISIONS}
        fake.mutate("purchase_invoices", 1002, update=2)
        calls_before = len(fake.calls)
        second = run_tap(
            tmp_path / "second",
            config(fake),
            streams={"purchase_invoices"},
            state=first.final_state,
        )
        second_calls = [c for c in fake.calls[calls_before:] if c[1] == path]

    assert first.returncode == 0, first.stderr[-3000:]
    assert not error_lines(first.stderr, REFUSAL)
    assert "purchase_invoices (division 1002): Exact requires a $filter here" in first.stderr
    assert {d: len(rows) for d, rows in first.by_division("purchase_invoices").items()} == expected
    # Refused once without a filter, then read whole from the earliest Modified (2 pages).
    statuses = [status for *_, status in first_calls]
    assert statuses == [400, 200, 200]
    assert "$filter" not in first_calls[0][2]
    assert "Modified%20ge%20datetime'1900-01-01T00:00:00'" in first_calls[1][2]
    assert first.bookmark("purchase_invoices", 1002) is not None
    # The next run filters from its bookmark, as everywhere else: no refusal, no retry.
    assert second.returncode == 0, second.stderr[-3000:]
    assert [status for *_, status in second_calls] == [200]
    assert "1900-01-01" not in second_calls[0][2]
    assert len(second.by_division("purchase_invoices")[1002]) >= 2


def selected_fields(query: str) -> set[str]:
    return set(parse_qs(query)["$select"][0].split(","))


def test_a_field_exact_no_longer_accepts_is_dropped_there_and_its_column_stays(tmp_path: Path):
    path = {d: f"/api/v1/{d}/" + load_catalog()["payment_terms"].path for d in DIVISIONS}
    with FakeExact(
        divisions=DIVISIONS, rows={"payment_terms": 30}, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        # Renamed or dropped by Exact in one division, in the words of Exact's OData server.
        fake.refuse_select(
            "payment_terms",
            "AccountName",
            division=1002,
            message="Could not find a property named '{field}' on type "
            "'Exact.Web.Api.Models.{entity}'.",
        )
        run = run_tap(tmp_path, config(fake), streams={"payment_terms"})
        calls = {d: [c for c in fake.calls if c[1] == path[d]] for d in DIVISIONS}

    assert run.returncode == 0, run.stderr[-3000:]
    assert not error_lines(run.stderr, "")
    # 1002: refused once with the field, asked again once without it; 1001 still sends it.
    assert [status for *_, status in calls[1002]] == [400, 200]
    assert "AccountName" in selected_fields(calls[1002][0][2])
    assert selected_fields(calls[1002][1][2]) == selected_fields(calls[1002][0][2]) - {
        "AccountName"
    }
    assert [status for *_, status in calls[1001]] == [200]
    assert "AccountName" in selected_fields(calls[1001][0][2])
    [warning] = [line for line in run.stderr.splitlines() if "AccountName" in line]
    assert "WARNING" in warning
    assert "payment_terms" in warning and "division 1002" in warning
    # The column stays in the table (null where Exact no longer sends it).
    [schema] = [m for m in run.messages if m["type"] == "SCHEMA"]
    assert "account_name" in schema["schema"]["properties"]
    rows = run.by_division("payment_terms")
    assert len(rows[1002]) == 30 and all(r["account_name"] is None for r in rows[1002])
    assert any(r["account_name"] is not None for r in rows[1001])
    # The bookmark advances as on any complete read.
    assert run.bookmark("payment_terms", 1002) == max(r["timestamp"] for r in rows[1002])
    assert run.bookmark("payment_terms", 1001) == max(r["timestamp"] for r in rows[1001])


@pytest.mark.parametrize(
    "message",
    [
        "'AccountName' is not a valid property of PaymentTerms.",
        "The property name 'AccountName' is not valid",
        "Could not find a property named 'AccountName' on type 'Exact.Web.Api.Models.X'.",
        "could not find a property named 'accountname' on type 'Exact.Web.Api.Models.X'.",
    ],
)
def test_the_field_exact_names_is_read_from_each_form_of_its_message(message: str):
    named = refused_field_name(f"payment_terms (division 1): HTTP 400: {message}")
    assert named is not None and named.lower() == "accountname"
    assert refused_field_name(f"x: HTTP 400: {REFUSAL} ... fields in the url: Modified") is None
