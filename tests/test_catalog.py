"""The catalog: generated from Exact's endpoint reference, one well-formed stream per entity."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from scripts.generate_catalog import (
    DEFAULT_SOURCE,
    OUTPUT,
    README,
    _relative_path,
    build,
    readme_with_table,
)
from tap_exactonline.catalog import load_catalog
from tap_exactonline.odata import snake_case
from tests.tap_runner import discover

CATALOG = load_catalog()


def test_catalog_matches_generator():
    if not DEFAULT_SOURCE.exists():
        pytest.skip(f"{DEFAULT_SOURCE} is not next to the repository")
    expected = build(json.loads(DEFAULT_SOURCE.read_text()))
    committed = json.loads(OUTPUT.read_text())
    assert committed == json.loads(json.dumps(expected)), (
        "catalog.json is stale: run `uv run python scripts/generate_catalog.py`"
    )


def test_every_endpoint_is_a_stream_or_left_out_with_a_reason():
    if not DEFAULT_SOURCE.exists():
        pytest.skip(f"{DEFAULT_SOURCE} is not next to the repository")
    source = json.loads(DEFAULT_SOURCE.read_text())
    endpoints = {_relative_path(uri)[0]: e for uri, e in source["endpoints"].items()}
    gettable = {path for path, endpoint in endpoints.items() if "GET" in endpoint["methods"]}
    read = {spec.path for spec in CATALOG.values()}
    # Endpoints whose rows a cheaper API of the same stream reads instead.
    cheaper = {path for spec in CATALOG.values() for path in spec.alternatives.values()}
    left_out = {entry["path"] for entry in json.loads(OUTPUT.read_text())["excluded"]}
    assert gettable - read - cheaper - left_out == set()
    assert read & left_out == set()
    # An endpoint of another service counts as "read by a cheaper API" only if that API serves
    # the same rows: nearly the same fields.
    for spec in CATALOG.values():
        service = endpoints[spec.path]["service"].lower()
        for path in spec.alternatives.values():
            if endpoints[path]["service"].lower() != service:
                fields = {p["name"] for p in endpoints[path]["properties"]}
                shared = fields & set(spec.fields)
                assert len(shared) >= 0.9 * max(len(fields), len(spec.fields)), path


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_stream_is_well_formed(name: str):
    spec = CATALOG[name]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name), "stream names become table names"
    assert spec.keys and all(key in spec.record_fields for key in spec.keys)
    columns = Counter(snake_case(field) for field in spec.record_fields)
    assert [c for c, n in columns.items() if n > 1] == [], "two fields share a column name"
    # Exact's own Division field is the only thing that may become the `division` column.
    assert "division" not in columns or "Division" in spec.fields
    assert {edm for field, edm in spec.fields.items() if field != "Division"} - {"Edm.String"}


def test_cheapest_api_is_chosen():
    assert CATALOG["transaction_lines"].api == "sync"
    assert CATALOG["transaction_lines"].page_size == 1000
    assert CATALOG["sales_orders"].api == "bulk"  # sync/SalesOrder/SalesOrders is deprecated
    assert CATALOG["reporting_balance"].api == "standard"
    assert CATALOG["receivables_list"].api == "read"
    assert CATALOG["item_extra_fields"].child_of is not None
    # Services that share an entity name get a prefix each.
    assert {"hrm_divisions", "system_divisions"} <= set(CATALOG)
    # One entity name, two services, different rows: employees' and accounts' bank accounts.
    assert CATALOG["payroll_bank_accounts"].path == "sync/Payroll/BankAccounts"
    assert CATALOG["crm_bank_accounts"].path == "crm/BankAccounts"
    assert "bank_accounts" not in CATALOG
    # A sync endpoint without an `ID` field is keyed like its standard twin.
    assert CATALOG["goods_deliveries"].keys == ("EntryID",)


def test_readme_stream_tables_are_generated_from_the_catalog():
    readme = README.read_text()
    beta = sum(spec.api == "beta" for spec in CATALOG.values())
    offered = len(CATALOG) - beta
    assert f"**{offered} streams**, plus {beta} beta ones" in readme
    assert f"{offered} streams ({len(CATALOG)} with beta endpoints)" in readme
    assert f"each of the {len(CATALOG)} streams" in readme
    assert readme == readme_with_table(readme), (
        "README stream table is stale: run `uv run python scripts/generate_catalog.py`"
    )
    excluded = json.loads(OUTPUT.read_text())["excluded"]
    assert excluded
    for entry in excluded:
        assert f"| {entry['name']} | `{entry['path']}` | {entry['reason']} |" in readme


def _discover(tmp_path: Path, **config: object) -> list[dict]:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({"client_id": "x", "client_secret": "y", **config}))
    return discover(config_path)["streams"]


def test_discover_lists_every_stream_keyed_and_typed(tmp_path: Path):
    streams = _discover(tmp_path)
    beta = {name for name, spec in CATALOG.items() if spec.api == "beta"}
    assert {s["tap_stream_id"] for s in streams} == set(CATALOG) - beta
    assert len(streams) >= 300
    for stream in streams:
        name = stream["tap_stream_id"]
        root = next(m["metadata"] for m in stream["metadata"] if m["breadcrumb"] == [])
        assert stream["key_properties"][0] == "division", name
        assert root["table-key-properties"] == stream["key_properties"], name
        assert stream["replication_method"] in ("INCREMENTAL", "FULL_TABLE"), name
        if stream["replication_method"] == "INCREMENTAL":
            assert root["valid-replication-keys"] == [stream["replication_key"]], name
        # Typed: a number, integer or boolean, or a string with a format (date-time, uuid).
        typed = [
            column
            for column, prop in stream["schema"]["properties"].items()
            if column != "division" and ("string" not in prop["type"] or "format" in prop)
        ]
        assert typed, f"{name}: every property is a plain string"
        for key in stream["key_properties"]:
            assert "null" not in stream["schema"]["properties"][key]["type"], (name, key)


def test_beta_streams_are_opt_in(tmp_path: Path):
    with_beta = {s["tap_stream_id"] for s in _discover(tmp_path, beta_endpoints=True)}
    assert with_beta == set(CATALOG)
    assert "indicator_balances" in with_beta  # beta/{division}/continuousmonitoring/...
    assert len(with_beta) >= 300
