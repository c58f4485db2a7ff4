"""Generate tap_exactonline/catalog.json from Exact's endpoint reference.

Usage: uv run python scripts/generate_catalog.py [path/to/endpoints.json]

The input defaults to ../shared/exact-api/endpoints.json (next to the repository). The output is
committed; tests/test_catalog.py fails when it and this generator disagree.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tap_exactonline.odata import snake_case  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "exact-api" / "endpoints.json"
OUTPUT = REPO / "tap_exactonline" / "catalog.json"

# Cheapest first: sync and bulk return 1,000 rows a call, the others 60.
API_PREFERENCE = ("sync", "bulk", "standard", "read", "current", "system", "beta-standard")
PAGE_SIZE = {"sync": 1000, "bulk": 1000}
STANDARD_PAGE_SIZE = 60

# REFERENCE.md §6: Exact is removing these sync endpoints; the entity is served by another API.
DEPRECATED_URIS = {
    "/api/v1/{division}/sync/SalesOrder/SalesOrders",
    "/api/v1/{division}/sync/CRM/Quotations",
}

# Exact names a few entities in the singular; our users know the tables by plural names.
NAME_OVERRIDES = {"SupplierItem": "supplier_items", "ItemExtraField": "item_extra_fields"}

# Endpoints documented without a key field: the fields that identify a row.
KEY_OVERRIDES = {"ItemExtraField": ["ItemID", "Number"]}

# Read functions that need parameters taken from a parent stream's records.
CHILDREN = {
    "ItemExtraField": {
        "parent": "items",
        "parameters": {"itemId": "guid:ID", "modified": "datetime:start"},
    },
}


def _relative_path(uri: str) -> tuple[str, bool, bool]:
    """Return (path after the division, whether a division is in the URL, whether beta)."""
    beta = uri.startswith("/api/v1/beta/")
    rest = uri.removeprefix("/api/v1/beta/" if beta else "/api/v1/")
    if rest.startswith("{division}/"):
        return rest.removeprefix("{division}/"), True, beta
    return rest, False, beta


def _owner_service(endpoint: dict) -> str:
    """Sync and bulk services are CamelCase forms of the standard service names."""
    return endpoint["service"].lower()


def build(source: dict) -> dict:
    gettable = [
        e
        for e in source["endpoints"].values()
        if "GET" in e["methods"] and e["uri"] not in DEPRECATED_URIS
    ]
    by_entity: dict[str, list[dict]] = defaultdict(list)
    for endpoint in gettable:
        entity = endpoint["entity"] or endpoint["uri"].rsplit("/", 1)[-1]
        by_entity[entity].append(endpoint)

    streams = []
    for entity, endpoints in sorted(by_entity.items()):
        # One stream per service that serves the entity through a standard or read endpoint;
        # sync and bulk endpoints join the stream of the same service (or the only one).
        owners = sorted({_owner_service(e) for e in endpoints if e["api"] not in ("sync", "bulk")})
        groups: dict[str, list[dict]] = defaultdict(list)
        for endpoint in endpoints:
            service = _owner_service(endpoint)
            if endpoint["api"] in ("sync", "bulk") and service not in owners:
                service = owners[0] if len(owners) == 1 else service
            groups[service].append(endpoint)

        undeprecated = [s for s, g in groups.items() if not all(e.get("deprecated") for e in g)]
        for service, group in sorted(groups.items()):
            if service not in undeprecated and undeprecated:
                continue  # deprecated endpoints only when nothing else serves the entity
            base_name = NAME_OVERRIDES.get(entity, snake_case(entity))
            name = base_name if len(groups) == 1 else f"{snake_case(service)}_{base_name}"
            streams.append(_stream(name, entity, group))

    names = [s["name"] for s in streams]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SystemExit(f"stream names collide: {sorted(duplicates)}")
    return {
        "generated_from": "shared/exact-api/endpoints.json",
        "deleted_entity_types": {int(k): v for k, v in source["deleted_entity_types"].items()},
        "streams": sorted(streams, key=lambda s: s["name"]),
    }


def _stream(name: str, entity: str, group: list[dict]) -> dict:
    group = sorted(group, key=lambda e: API_PREFERENCE.index(e["api"]))
    chosen = group[0]
    path, division_in_path, beta = _relative_path(chosen["uri"])
    fields = {p["name"]: p["type"] for p in chosen["properties"]}
    if chosen["api"] == "sync":
        keys = ["ID"]
    else:
        keys = KEY_OVERRIDES.get(entity) or [p["name"] for p in chosen["properties"] if p["key"]]
    stream: dict = {
        "name": name,
        "entity": entity,
        "api": "beta" if beta else chosen["api"],
        "path": path,
        "division_in_path": division_in_path,
        "keys": keys,
        "fields": fields,
        "modified": fields.get("Modified") == "Edm.DateTime",
        "page_size": PAGE_SIZE.get(chosen["api"], STANDARD_PAGE_SIZE),
        "select_required": bool(chosen.get("select_required")),
        "select_star_refused": bool(chosen.get("select_star_refused")),
        "deprecated": bool(chosen.get("deprecated")),
        "alternatives": {e["api"]: _relative_path(e["uri"])[0] for e in group[1:]},
    }
    if entity in CHILDREN:
        stream["child_of"] = CHILDREN[entity]
    return stream


def main() -> None:
    source_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    catalog = build(json.loads(source_path.read_text()))
    OUTPUT.write_text(json.dumps(catalog, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(catalog['streams'])} streams to {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
