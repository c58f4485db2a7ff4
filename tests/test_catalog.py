"""The committed catalog is exactly what the generator makes from Exact's endpoint reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.generate_catalog import DEFAULT_SOURCE, OUTPUT, README, build, readme_with_table
from tap_exactonline.catalog import ENABLED_STREAMS, load_catalog


def test_catalog_matches_generator():
    if not DEFAULT_SOURCE.exists():
        pytest.skip(f"{DEFAULT_SOURCE} is not next to the repository")
    expected = build(json.loads(DEFAULT_SOURCE.read_text()))
    committed = json.loads(Path(OUTPUT).read_text())
    assert committed == json.loads(json.dumps(expected)), (
        "catalog.json is stale: run `uv run python scripts/generate_catalog.py`"
    )


def test_enabled_streams_exist_with_keys():
    catalog = load_catalog()
    for name in ENABLED_STREAMS:
        spec = catalog[name]
        assert spec.keys, name
        assert all(key in spec.fields for key in spec.keys), name


def test_cheapest_api_is_chosen():
    catalog = load_catalog()
    assert catalog["transaction_lines"].api == "sync"
    assert catalog["transaction_lines"].page_size == 1000
    assert catalog["sales_orders"].api == "bulk"  # sync/SalesOrder/SalesOrders is deprecated
    assert catalog["reporting_balance"].api == "standard"
    assert catalog["receivables_list"].api == "read"
    assert catalog["item_extra_fields"].child_of is not None


def test_readme_stream_table_is_generated_from_the_catalog():
    readme = README.read_text()
    assert readme == readme_with_table(readme), (
        "README stream table is stale: run `uv run python scripts/generate_catalog.py`"
    )
