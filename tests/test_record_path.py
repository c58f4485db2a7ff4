"""Pages decode straight into structs (`pages.RowShape`): the RECORD lines stay byte-for-byte
what the previous path wrote, which decoded every row into a dict and built the record from it.

Every catalog entity (on every API it can be read from) gets a page of rows whose fields take
every awkward value of their Edm type in turn: nulls, missing fields, Int64 as text and as a
number, dates at Exact's midnight, sentinels, offsets, text that is not a date, escapes and
astral characters, floats that do not round-trip naively. Beside them each row carries what
Exact adds (`__metadata`, `__deferred` links, fields not asked for).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import msgspec
import pytest
import requests
from singer_sdk.singerlib import RecordMessage

from tap_exactonline import pages
from tap_exactonline.catalog import EntitySpec, load_catalog
from tap_exactonline.exact_clock import ExactClock
from tap_exactonline.odata import RecordPlan
from tap_exactonline.output import BatchingWriter
from tap_exactonline.pages import RowShape
from tests.conftest import record_of

DIVISION = 1001
EXTRACTED = datetime(2026, 12, 3, tzinfo=timezone.utc)

VALUES: dict[str, list[Any]] = {
    "Edm.String": [
        "plain",
        "",
        "                 8",
        "ünïcødé ✓ 😀",  # json.dumps sends the emoji as a surrogate pair
        'quote " backslash \\ newline \n tab \t',
        "/Date(1382667872203)/",  # text that looks like a date stays text
        None,
    ],
    "Edm.Guid": ["71b961de-b9f3-49fe-883d-0f46c7e0e89b", None],
    "Edm.Double": [0, 1.5, -0.0, 1e-7, 0.30000000000000004, 12345678901234567890, 1e20, None],
    "Edm.Int16": [0, -1, 32767, None],
    "Edm.Int32": [0, -2147483648, 7, None],
    "Edm.Byte": [0, 255, None],
    "Edm.Int64": ["123456789012", 123456789012, "-5", "", "not a number", None],
    "Edm.Boolean": [True, False, None],
    "Edm.Binary": ["AAECAwQ=", None],
    "Edm.DateTime": [
        "/Date(0)/",
        "/Date(1382667872203)/",  # an instant on Exact's clock (CEST)
        "/Date(1711843200000)/",  # midnight on Exact's clock: a date
        "/Date(1729990800000)/",  # 01:00 UTC on the autumn DST day (the repeated hour)
        "/Date(-62135596800000)/",  # year 1: Exact's "no date"
        "/Date(253402214400000)/",  # year 9999: "forever"
        "/Date(1382667872203+0100)/",  # WCF's form with an offset
        "not a date",
        None,
    ],
}
ROWS = 12


def exact_rows(spec: EntitySpec) -> list[dict[str, Any]]:
    """Rows as Exact sends them: every field present except one, plus Exact's extras."""
    fields = list(spec.fields.items())
    rows = []
    for index in range(ROWS):
        row: dict[str, Any] = {
            "__metadata": {"uri": f"https://start.exactonline.nl/row/{index}", "type": "T"},
        }
        for position, (name, edm) in enumerate(fields):
            if position == index % len(fields) and name not in spec.keys:
                continue  # Exact leaves a field out now and then
            values = VALUES.get(edm, VALUES["Edm.String"])
            row[name] = values[(index + position) % len(values)]
        row["NotInTheCatalog"] = {"nested": [1, 2]}
        row["Lines"] = {"__deferred": {"uri": "https://start.exactonline.nl/lines"}}
        rows.append(row)
    return rows


def response_of(body: Mapping[str, Any]) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode()
    return response


def previous_records(
    plan: RecordPlan, body: bytes, division: int, select: Iterable[str]
) -> list[dict[str, Any]]:
    """The previous path, as it was: each row a dict, the record built field by field."""
    rows = msgspec.json.decode(body)["d"]["results"]
    chosen = [name for name in dict.fromkeys(select) if name in plan.fields]
    convert_of: dict[str, Callable[[object], object] | None] = {
        name: plan._convert(name) for name in chosen
    }
    plain = [(name, plan.column_for[name]) for name in chosen if convert_of[name] is None]
    converted = [
        (name, plan.column_for[name], convert_of[name]) for name in chosen if convert_of[name]
    ]
    records = []
    for row in rows:
        record = {column: row.get(name) for name, column in plain}
        for name, column, convert in converted:
            value = row.get(name)
            record[column] = None if value is None else convert(value)
        record[plan.division_column] = division
        records.append(record)
    return records


def lines(stream: str, records: Iterable[dict[str, Any]]) -> list[bytes]:
    """The RECORD lines the tap writes for these records."""
    writer = BatchingWriter()
    return [
        bytes(writer.format_message(RecordMessage(stream, record, time_extracted=EXTRACTED)))
        for record in records
    ]


def every_spec() -> list[EntitySpec]:
    specs = []
    for spec in load_catalog().values():
        specs.extend(spec.on_api(api) for api in spec.apis)
    return specs


def stream_records(plan: RecordPlan, response: requests.Response) -> list[dict[str, Any]]:
    rows, _ = RowShape(plan).page(response)
    return [plan.apply(row, DIVISION) for row in rows]


@pytest.mark.parametrize("rename", [True, False], ids=["snake_case", "exact_names"])
def test_every_entity_and_field_type_gives_the_same_record_lines(rename):
    clock = ExactClock()
    checked, specs = 0, every_spec()
    assert len(specs) > 350  # every entity, on each API it can be read from
    for spec in specs:
        rows = exact_rows(spec)
        body = {"d": {"results": rows, "__next": "https://start.exactonline.nl/next"}}
        response = response_of(body)
        # All fields, and a selection of some (the keys and every third field).
        selections = [list(spec.record_fields), [*spec.keys, *list(spec.fields)[::3]]]
        for select in selections:
            plan = RecordPlan(spec.record_fields, rename=rename, clock=clock)
            plan.select(select)
            expected = previous_records(plan, response.content, DIVISION, select)
            got = stream_records(plan, response_of(body))
            assert lines(spec.name, got) == lines(spec.name, expected), spec.name
            checked += len(got)
    assert checked == len(specs) * len(selections) * ROWS


def test_a_usual_page_never_takes_the_general_path(monkeypatch):
    spec = load_catalog()["transaction_lines"]
    plan = RecordPlan(spec.record_fields, rename=True)

    def general_path(response: requests.Response) -> Any:
        raise AssertionError("decoded into dicts")

    monkeypatch.setattr(pages, "odata_page", general_path)
    body = {"d": {"results": exact_rows(spec), "__next": "https://start.exactonline.nl/next"}}
    rows, next_link = RowShape(plan).page(response_of(body))
    assert len(rows) == ROWS
    assert next_link == "https://start.exactonline.nl/next"


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda rows: {"d": rows}, id="odata-v1-list"),
        pytest.param(lambda rows: {"d": {"results": rows, "__next": ""}}, id="empty-next"),
    ],
)
def test_other_page_forms_give_the_same_records(wrap):
    spec = load_catalog()["sales_invoices"].on_api("standard")
    plan = RecordPlan(spec.record_fields, rename=True)
    rows = exact_rows(spec)
    expected = [record_of(plan, row, DIVISION) for row in rows]
    got_rows, next_link = RowShape(plan).page(response_of(wrap(rows)))
    assert [plan.apply(row, DIVISION) for row in got_rows] == expected
    assert next_link is None


@pytest.mark.parametrize(
    "bad", [b"bad \\ud800 text", b"bad \xff text"], ids=["lone-surrogate", "invalid-utf8"]
)
def test_a_page_with_text_that_is_not_utf8_still_gives_its_rows(bad: bytes):
    spec = load_catalog()["accounts"]
    plan = RecordPlan(spec.record_fields, rename=True)
    rows = exact_rows(spec)
    rows[0]["Name"] = "SURROGATE"
    response = response_of({"d": {"results": rows}})
    response._content = response.content.replace(b"SURROGATE", bad)
    got, _ = RowShape(plan).page(response)
    assert plan.apply(got[0], DIVISION)["name"] == "bad \ufffd text"
    assert pages.was_repaired(response)


@pytest.mark.parametrize(
    ("fields", "rename"),
    [
        ({"ID": "Edm.Guid", "Id": "Edm.Guid"}, True),  # both become `id`
        ({"ID": "Edm.Guid", "Not a name": "Edm.String"}, False),
        ({"ID": "Edm.Guid", "_exact_attributes": "Edm.String"}, False),
    ],
    ids=["duplicate", "not-an-identifier", "private"],
)
def test_columns_a_row_struct_cannot_hold_are_refused_by_name(fields: dict[str, str], rename):
    with pytest.raises(ValueError, match="columns a row struct cannot hold"):
        RowShape(RecordPlan(fields, rename=rename))
