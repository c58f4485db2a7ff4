"""The catalog: generated from Exact's endpoint reference, one well-formed stream per entity."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from fake_exact.data import page_size
from scripts.generate_catalog import (
    DEFAULT_SOURCE,
    OUTPUT,
    STREAMS_PAGE,
    _relative_path,
    build,
    page_with_tables,
)
from tap_exactonline.catalog import load_catalog
from tap_exactonline.odata import snake_case
from tests.conftest import REPO_ROOT
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
    # Endpoints whose rows a cheaper API of the same stream reads instead (`stream_api` may
    # choose them).
    cheaper = {other.path for spec in CATALOG.values() for other in spec.alternatives.values()}
    left_out = {entry["path"] for entry in json.loads(OUTPUT.read_text())["excluded"]}
    assert gettable - read - cheaper - left_out == set()
    assert read & left_out == set()
    # An endpoint of another service counts as "read by a cheaper API" only if that API serves
    # the same rows: nearly the same fields.
    for spec in CATALOG.values():
        service = endpoints[spec.path]["service"].lower()
        for other in spec.alternatives.values():
            if endpoints[other.path]["service"].lower() != service:
                fields = {p["name"] for p in endpoints[other.path]["properties"]}
                shared = fields & set(spec.fields)
                assert len(shared) >= 0.9 * max(len(fields), len(spec.fields)), other.path


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
    assert page_size("transaction_lines", CATALOG["transaction_lines"].api) == 1000
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


def test_decommissioned_endpoints_are_left_out_with_where_their_data_is():
    # Exact's release note rn-2209: GET PriceLists and SalesPriceListDetails are gone since
    # 1 June 2023; a stream on them would spend a refused call per division every run.
    assert not {"price_lists", "sales_price_list_details"} & set(CATALOG)
    excluded = {e["path"]: e for e in json.loads(OUTPUT.read_text())["excluded"]}
    for path, successors in (
        ("sales/PriceLists", ["sales_price_lists"]),
        ("sales/SalesPriceListDetails", ["sales_price_list_volume_discounts"]),
    ):
        assert excluded[path]["reason"].startswith("decommissioned by Exact on 1 June 2023")
        for successor in successors:
            assert f"`{successor}`" in excluded[path]["reason"] and successor in CATALOG


@pytest.mark.parametrize("name", sorted(n for n, spec in CATALOG.items() if spec.alternatives))
def test_each_other_api_of_a_stream_is_a_whole_stream(name: str):
    """What `stream_api` builds the stream from: the endpoint's own fields, key and paging."""
    spec = CATALOG[name]
    assert spec.child_of is None
    for api, other in spec.alternatives.items():
        assert (other.name, other.entity, other.api) == (name, spec.entity, api)
        assert other.division_in_path == spec.division_in_path and not other.alternatives
        assert other.keys and all(key in other.fields for key in other.keys)
        assert page_size(other.name, other.api) == (1000 if api in ("sync", "bulk") else 60)
        assert other.modified == (other.fields.get("Modified") == "Edm.DateTime")
        if other.keys == spec.keys:  # the deletion log's keys fit
            assert other.deleted_entity_type == spec.deleted_entity_type
        assert spec.on_api(api) is other
    assert spec.on_api(spec.api) is spec


def test_columns_only_another_api_has_are_counted_from_exacts_reference():
    if not DEFAULT_SOURCE.exists():
        pytest.skip(f"{DEFAULT_SOURCE} is not next to the repository")
    endpoints = {
        _relative_path(uri)[0]: e
        for uri, e in json.loads(DEFAULT_SOURCE.read_text())["endpoints"].items()
    }
    only_elsewhere = {}
    for name, spec in CATALOG.items():
        fields = {p["name"] for p in endpoints[spec.path]["properties"]}
        other = {
            p["name"]
            for alternative in spec.alternatives.values()
            for p in endpoints[alternative.path]["properties"]
        }
        if other - fields:
            only_elsewhere[name] = other - fields
    # Issue 10 counted 67 columns on 19 streams that the cheaper endpoint lacks.
    assert (len(only_elsewhere), sum(map(len, only_elsewhere.values()))) == (19, 67)
    assert {"IsBatchNumberItem", "IsSerialNumberItem"} <= only_elsewhere["items"]
    assert (len(only_elsewhere["item_warehouses"]), len(only_elsewhere["project_wbs"])) == (14, 9)
    assert len(only_elsewhere["sales_invoices"]) == 6


def test_the_docs_count_the_streams_the_catalog_has():
    beta = sum(spec.api == "beta" for spec in CATALOG.values())
    offered = len(CATALOG) - beta

    def words(page: str) -> str:  # the page's text as one line: a count may wrap
        return " ".join((REPO_ROOT / page).read_text().split())

    assert f"{offered} streams ({len(CATALOG)} with beta endpoints)" in words("README.md")
    assert f"**{offered} streams**, plus {beta} beta ones" in words("docs/streams.md")
    assert f"each of the {len(CATALOG)} streams" in words("docs/development.md")
    assert f"the tap's {len(CATALOG)} stream definitions" in words("docs/benchmark.md")


def test_the_suggested_selections_name_streams_the_tap_has():
    selected = re.findall(
        r"^meltano select tap-exactonline (\w+) '\*'$", STREAMS_PAGE.read_text(), flags=re.M
    )
    assert len(selected) >= 15
    assert {"gl_accounts", "transaction_lines", "sales_invoices", "receivables_list"} <= set(
        selected
    )
    assert [name for name in selected if name not in CATALOG] == []


def test_the_streams_page_tables_are_generated_from_the_catalog():
    readme = STREAMS_PAGE.read_text()
    # The streams with a choice of API: how many, and the columns only another API has.
    with_choice = {name: spec for name, spec in CATALOG.items() if spec.alternatives}
    extra = {
        name: {f for other in spec.alternatives.values() for f in other.fields} - set(spec.fields)
        for name, spec in with_choice.items()
    }
    richer = [fields for fields in extra.values() if fields]
    assert (
        f"{len(with_choice)} streams can be read from more than one API. On {len(richer)} of "
        f"them another API has columns the default one lacks, {sum(map(len, richer))} columns "
        "in all." in readme
    )
    for name, spec in with_choice.items():
        (row,) = [
            line for line in readme.splitlines() if line.startswith(f"| `{name}` | {spec.api}:")
        ]
        for api, other in spec.alternatives.items():
            assert f"{api}: {page_size(other.name, other.api):,} a call" in row, name
        assert all(f"`{snake_case(f)}`" in row for f in extra[name]), name
    assert readme == page_with_tables(readme), (
        "docs/streams.md stream tables are stale: run `uv run python scripts/generate_catalog.py`"
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
