"""Every catalog stream, beta included, synced by the real CLI from the fake server.

One tap run reads every stream (the fake serves them all generically from the same catalog); each
stream is then checked on its own: row count, pages used, unique non-null keys, and every value
typed as its Edm type says.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import jsonschema
import pytest

from fake_exact import FakeExact
from fake_exact.book_tables import COMPUTED, INVOICE_TABLES, ROWS_PER_HEADER
from fake_exact.books import LINES_PER_ENTRY
from fake_exact.clock import expected_record_datetime
from fake_exact.data import page_size
from tap_exactonline.catalog import EntitySpec, load_catalog
from tap_exactonline.odata import snake_case
from tests.tap_runner import TapRun, fake_config, run_tap

DIVISION = 1001
CATALOG = load_catalog()
# Streams whose deletions sync/Deleted reports: DELETE_EACH rows of each are deleted before the
# run, enough for the deletion log to need two pages too.
TRACKED = {name for name, spec in CATALOG.items() if spec.deleted_entity_type is not None}
DELETE_EACH = 20
# Transaction lines are deleted a whole entry at a time (see docs/fake-books.md).
DELETED_ROWS = {"transaction_lines": DELETE_EACH * LINES_PER_ENTRY}
# A deleted entry takes its invoice with it (docs/fake-books.md): the invoice tables get half a
# page more, as many invoices as those entries can be.
INVOICE_STREAMS = {name for name, _ in INVOICE_TABLES}
# One row more than a page (after the deletions), so every stream that pages needs two pages;
# the streams computed from the entries (ReportingBalance, the open-item and ageing lists, ...)
# take their size from the books, not from `rows`.
ROWS = {
    name: page_size(name, spec.api)
    + page_size(name, spec.api) // 2 * (name in INVOICE_STREAMS)
    + 1
    + DELETED_ROWS.get(name, DELETE_EACH * (name in TRACKED))
    for name, spec in CATALOG.items()
} | {"me": 1}
# Read functions fed per parent row that run only when selected by name (one call per parent).
ON_REQUEST = {name for name, spec in CATALOG.items() if spec.child_of and spec.child_of.on_request}
PARENTS = {CATALOG[name].child_of.parent for name in ON_REQUEST}  # type: ignore[union-attr]
DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")

Sync = tuple[FakeExact, TapRun]


def _config(fake: FakeExact) -> dict[str, Any]:
    return fake_config(fake, divisions=[DIVISION], beta_endpoints=True)


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sync]:
    """Every stream selected, as Meltano's default `select: ["*.*"]` does."""
    with FakeExact(
        divisions=(DIVISION,), rows=ROWS, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        for name in sorted(TRACKED):
            fake.delete(name, DIVISION, DELETE_EACH)
        run = run_tap(tmp_path_factory.mktemp("everything"), _config(fake), timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
        yield fake, run


@pytest.fixture(scope="module")
def by_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sync]:
    """The on-request streams and their parents, selected by name."""
    rows = dict.fromkeys(PARENTS, 40)
    with FakeExact(
        divisions=(DIVISION,), rows=rows, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        work = tmp_path_factory.mktemp("by-name")
        run = run_tap(work, _config(fake), streams=ON_REQUEST | PARENTS, timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
        yield fake, run


@pytest.fixture
def sync_of(everything: Sync, by_name: Sync) -> Callable[[str], Sync]:
    return lambda name: by_name if name in ON_REQUEST else everything


def expected_value(field: str, edm: str, raw: Any) -> Any:
    """What the record must hold for an Exact value, worked out independently of the tap.

    The fake's values are instants, served on Exact's Amsterdam clock.
    """
    if raw is None:
        return None
    if edm == "Edm.DateTime":
        assert DATE.match(raw), raw
        return expected_record_datetime(field, raw)
    if edm == "Edm.Int64":
        return int(raw)
    return raw


def check_value(stream: str, column: str, edm: str, value: Any, raw: Any) -> None:
    expected = expected_value(column, edm, raw)
    where = f"{stream}.{column}"
    if expected is None:
        assert value is None, where
    elif edm == "Edm.DateTime":
        assert datetime.fromisoformat(value) == expected, where
    elif edm == "Edm.Guid":
        assert uuid.UUID(value) == uuid.UUID(expected), where
    elif edm == "Edm.Double":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
        assert math.isclose(value, expected), where
    elif edm in ("Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte"):
        assert type(value) is int and value == expected, where
    elif edm == "Edm.Boolean":
        assert value is expected, where
    else:
        assert value == expected, where


def check_records(
    name: str,
    spec: EntitySpec,
    schema: dict[str, Any],
    records: list[dict[str, Any]],
    expected: dict[tuple, dict[str, Any]],
) -> None:
    """Every value of every record against Exact's raw value, and the stream's own schema.

    Every value is compared one by one; the JSON-schema check (types, formats, nullability) runs
    once per record shape (which columns are null, and each value's type), which covers the
    same ground at a fraction of the cost of validating 1,000 alike records.
    """
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    columns = [(field, snake_case(field), edm) for field, edm in spec.fields.items()]
    shapes_seen: set[tuple] = set()
    for record in records:
        shape = tuple((key, type(value)) for key, value in record.items())
        if shape not in shapes_seen:
            shapes_seen.add(shape)
            validator.validate(record)
        raw = expected[record_key(spec, record)]
        for field, column, edm in columns:
            check_value(name, field, edm, record[column], raw[field])


def raw_key(spec: EntitySpec, raw: dict[str, Any]) -> tuple:
    return tuple(str(raw[key]).lower() for key in spec.keys)


def record_key(spec: EntitySpec, record: dict[str, Any]) -> tuple:
    return tuple(str(record[snake_case(key)]).lower() for key in spec.keys)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_stream_arrives_whole_and_typed(sync_of: Callable[[str], Sync], name: str):
    fake, run = sync_of(name)
    spec = CATALOG[name]
    records = [r for r in run.records(name) if r.get("_sdc_deleted_at") is None]
    # Rows deleted before the run arrive only as tombstones: key, division, deletion time.
    tombstones = [r for r in run.records(name) if r.get("_sdc_deleted_at") is not None]
    deleted = {
        (str(entry["EntityKey"]).lower(),)
        for entry in fake.deletions
        if entry["stream"] == name and entry["division"] == DIVISION
    }
    assert {record_key(spec, r) for r in tombstones} == deleted
    assert all(r["division"] == DIVISION for r in tombstones)
    schema = next(
        m["schema"] for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == name
    )

    # Every row, each once, with its division and a complete key.
    expected = {raw_key(spec, raw): raw for raw in fake.expected_rows(name, DIVISION)}
    division = fake.current_division if name == "me" else DIVISION
    assert len(records) == len(expected) > 0
    assert {record["division"] for record in records} == {division}
    keys = [record_key(spec, record) for record in records]
    assert all(all(part != "None" for part in key) for key in keys)
    assert set(keys) == set(expected)

    # Typed as Exact's Edm types say, and valid against the stream's own schema.
    check_records(name, spec, schema, records, expected)

    # Pages: one call per page of `page_size` rows; a child stream one call per parent row.
    path = "/api/v1" + spec.url_path.format(division=DIVISION)
    # (current/Me is also asked for the login's division, which system/Users rows carry.)
    # (and, with sync streams selected, system/Divisions for the divisions' move dates.)
    own_lookups = ("$select=CurrentDivision", "$select=Code,DivisionMoveDate")
    calls = [c for c in fake.calls if c[1] == path and c[2] not in own_lookups]
    if spec.child_of is not None:
        assert len(calls) == len(run.records(spec.child_of.parent))
    else:
        assert len(calls) == math.ceil(len(records) / page_size(name, spec.api))
        one_row_per_division = name == "me" or set(spec.keys) <= {"Division"}
        # system/Divisions lists the login's divisions: here one.
        sized_by_test = not (one_row_per_division or name == "system_divisions" or name in COMPUTED)
        assert not sized_by_test or len(calls) == 2
        assert all(status == 200 for *_, status in calls)


def test_on_request_streams_wait_to_be_selected_by_name(everything: Sync):
    fake, run = everything
    assert ON_REQUEST and not ON_REQUEST & set(run.record_counts())
    for name in ON_REQUEST:
        path = "/api/v1" + CATALOG[name].url_path.format(division=DIVISION)
        assert not [call for call in fake.calls if call[1] == path], name
        assert f"Not reading {name}: it costs one API call per" in run.stderr
    assert set(run.record_counts()) == set(CATALOG) - ON_REQUEST


def test_every_request_was_sequential_json(everything: Sync, by_name: Sync):
    for fake, _ in (everything, by_name):
        assert fake.max_concurrent_requests == 1
        assert fake.requests_without_accept == 0


# Every other API a stream can be read from (`stream_api`): one run per round, the first
# alternative of every stream that has one, then the second.
ROUNDS = [
    {
        name: list(spec.alternatives)[n]
        for name, spec in CATALOG.items()
        if len(spec.alternatives) > n
    }
    for n in range(max(len(spec.alternatives) for spec in CATALOG.values()))
]
ALTERNATIVES = sorted((name, api) for name, spec in CATALOG.items() for api in spec.alternatives)
# More than a page on each of the stream's other APIs (a header-only one has a row per invoice,
# the sync one three).
ALTERNATIVE_ROWS = {
    name: (max(page_size(name, api) for api in spec.alternatives) + 1)
    * ROWS_PER_HEADER.get(name, 1)
    for name, spec in CATALOG.items()
    if spec.alternatives
}


@pytest.fixture(scope="module")
def on_other_apis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeExact, list]]:
    with FakeExact(
        divisions=(DIVISION,), rows=ALTERNATIVE_ROWS, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        runs: list[TapRun] = []
        tokens = None  # each run takes over the last one's tokens (Exact's 570 s rule)
        for n, choice in enumerate(ROUNDS):
            work = tmp_path_factory.mktemp(f"other-apis-{n}")
            config = _config(fake) | {"stream_api": choice}
            run = run_tap(work, config, streams=set(choice), state=tokens, timeout=900)
            assert run.returncode == 0, run.stderr[-3000:]
            tokens = {k: v for k, v in run.final_state.items() if k != "bookmarks"}
            runs.append(run)
        yield fake, runs


@pytest.mark.parametrize(("name", "api"), ALTERNATIVES)
def test_stream_on_another_api_arrives_whole_and_typed(
    on_other_apis: tuple[FakeExact, list[TapRun]], name: str, api: str
):
    fake, runs = on_other_apis
    run = runs[list(CATALOG[name].alternatives).index(api)]
    spec = CATALOG[name].on_api(api)
    records = [r for r in run.records(name) if r.get("_sdc_deleted_at") is None]
    expected = {raw_key(spec, raw): raw for raw in fake.expected_rows(name, DIVISION, api=api)}
    assert len(records) == len(expected) > 0
    assert {record_key(spec, record) for record in records} == set(expected)

    # The chosen endpoint's columns, typed as its Edm types say; its own schema.
    schema = next(
        m["schema"] for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == name
    )
    assert set(schema["properties"]) >= {snake_case(field) for field in spec.fields}
    check_records(name, spec, schema, records, expected)

    # Its own endpoint's pages, and never the default endpoint.
    path = "/api/v1" + spec.url_path.format(division=DIVISION)
    calls = [c for c in fake.calls if c[1] == path]
    assert len(calls) == math.ceil(len(records) / page_size(name, spec.api)) >= 2
    default = "/api/v1" + CATALOG[name].url_path.format(division=DIVISION)
    assert not [c for c in fake.calls if c[1] == default]
