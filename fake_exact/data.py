"""Deterministic, lazily generated Exact Online rows for the fake server.

Nothing here materialises a whole table. A row is a pure function of (seed, stream, division,
row index, version); per (stream, division) the only state is which rows changed or were deleted.
Non-key values repeat every `RESIDUES` rows so a page is mostly cached string lookups, which keeps
a 1,000-row page well under the time budget of the tap's throughput benchmark.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import heapq
import itertools
import json
import math
import random
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, cast

from fake_exact.book_tables import (
    COMPUTED,
    INVOICE_TABLES,
    KEY_OF,
    ROW_VALUES,
    ROW_VALUES_ON_API,
    ROWS_PER_HEADER,
    SIZED_LIKE,
    Computed,
    Refs,
    Values,
)
from fake_exact.books import LINES_PER_ENTRY, Books, Sizes
from fake_exact.clock import (
    AUDIT_STAMPS,
    instant_ms,
    midnight_ms,
    representable,
    to_wire,
    wall_ms,
)

CATALOG_PATH = Path(__file__).resolve().parents[1] / "tap_exactonline" / "catalog.json"

# Base Timestamp of row i in stream number s: TS_BASE + i * TS_STRIDE + s. The stride exceeds the
# number of catalog streams, so timestamps are unique per division like a SQL rowversion, and
# larger than 2**31 so 32-bit parsing bugs show.
TS_BASE = 50_000_000_000
TS_STRIDE = 1024
# Base Modified of row i: increasing with i, so a Modified range is an index range (O(1) lookup).
MODIFIED_BASE_MS = 1_609_459_200_000  # 2021-01-01T00:00:00Z
MODIFIED_STEP_MS = 37_000
# Non-key values depend on (row index % RESIDUES): few enough to cache, a prime so columns vary.
RESIDUES = 251
# `spread_dates`: date-times of each row of their own, over ten years, as Exact's audit stamps and
# dates are (the benchmark's realistic mode: a value every row, not one of RESIDUES).
SPREAD_FROM_S = 1_451_606_400  # 2016-01-01T00:00:00Z
SPREAD_SECONDS = 10 * 365 * 86_400
_MASK64 = 2**64 - 1
MAX_SELECT_CACHE = 64
HEADER_LINE_STREAMS = frozenset({"sales_invoices", "purchase_orders", "transaction_lines"})
NAV_CANDIDATES = ("Attachments", "Notes", "ChangeLog", "Links")
INT_TYPES = frozenset({"Edm.Int16", "Edm.Int32", "Edm.Byte"})
NO_BOUND = 2**63

_WORDS = (
    "Huur kantoor",
    "Omzet hoog",
    "Café Müller",
    "Ünïcødé € test",
    'Quote "Q" \\ back',
    "Inkoop",
    "Debiteuren",
    "Crediteuren",
    "Bank ING",
    "Kas",
    "Voorraad",
    "Afschrijving",
    "Rente",
    "Lonen en salarissen",
    "",
)
_COUNTRIES = ("NL ", "BE ", "DE ", "GB ", "FR ")
_CURRENCIES = ("EUR", "USD", "GBP")

DELETED_PATH = "sync/Deleted"


@dataclass(frozen=True, eq=False)
class StreamSpec:
    """One catalog stream (see scripts/generate_catalog.py).

    Read independently of the tap's own catalog loader, so that a bug there cannot hide itself
    by shaping the fake's answers too.
    """

    name: str
    entity: str
    api: str
    path: str
    division_in_path: bool
    keys: tuple[str, ...]
    fields: Mapping[str, str]
    modified: bool
    page_size: int
    select_required: bool
    select_star_refused: bool
    number: int
    child_of: Mapping[str, Any] | None
    deleted_entity_type: int | None = None

    @property
    def is_sync(self) -> bool:
        return self.api == "sync"


def _spec(number: int, entry: Mapping[str, Any]) -> StreamSpec:
    return StreamSpec(
        name=entry["name"],
        entity=entry["entity"],
        api=entry["api"],
        path=entry["path"],
        division_in_path=entry["division_in_path"],
        keys=tuple(entry["keys"]),
        fields=dict(entry["fields"]),
        modified=bool(entry["modified"]),
        page_size=int(entry["page_size"]),
        select_required=bool(entry["select_required"]),
        select_star_refused=bool(entry["select_star_refused"]),
        number=number,
        child_of=entry.get("child_of"),
        deleted_entity_type=entry.get("deleted_entity_type"),
    )


def odata_date(ms: int) -> str:
    return f"/Date({ms})/"


def value_json(value: object) -> str:
    """JSON for one value; dates use WCF's escaped `\\/Date(..)\\/` form (same after decoding).

    Plain ints and plain strings skip json.dumps: this runs for every dynamic field of every row.
    """
    if value is None:
        return "null"
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is float and math.isfinite(cast(float, value)):
        return repr(value)  # what json.dumps writes for a finite float
    if kind is str:
        text = str(value)
        if text.startswith("/Date("):
            # Canonical values are instants; Exact serves its own wall clock.
            return '"\\/' + to_wire(text)[1:-1] + '\\/"'
        if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
            return '"' + text + '"'
    return json.dumps(value)


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_WIRE_DATE = re.compile(r'"/Date\((-?\d+(?:[+-]\d{4})?)\)/"')


def _wire_date(match: re.Match[str]) -> str:
    return '"\\/' + to_wire("/Date(" + match.group(1) + ")/")[1:-1] + '\\/"'


def dynamic_json(values: Mapping[str, object]) -> str:
    """`"Name":value,...` of many values at once (the C encoder), dates as `value_json` writes
    them: the same bytes as joining `field_json` of each, several times faster."""
    body = _ENCODE(values)[1:-1]
    return _WIRE_DATE.sub(_wire_date, body) if "/Date(" in body else body


def field_json(name: str, value: object) -> str:
    return '"' + name + '":' + value_json(value)


# --- static values ------------------------------------------------------------------------------


def _string(name: str, rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.08:
        return None
    if name == "Currency" or name.endswith("Currency") or name == "CurrencyCode":
        return rng.choice(_CURRENCIES)
    if "Country" in name:
        return rng.choice(_COUNTRIES)  # Exact pads country codes to 3 chars: "NL "
    if name.endswith("Code"):
        # Exact's codes are right-aligned in 18 chars: "                 8".
        return f"{rng.randint(1, 99999):>18}"
    if name.endswith("Url"):
        return f"https://start.exactonline.nl/docs/SysImage.aspx?ID={uuid.UUID(int=rng.getrandbits(128))}"
    if name in ("Notes", "Remarks") and roll < 0.3:
        return "Line one\r\nLine two\twith tab"
    return rng.choice(_WORDS)


def _int(name: str, edm: str, rng: random.Random) -> int | None:
    if rng.random() < 0.05:
        return None
    if "Year" in name:
        return rng.randint(2015, 2025)
    if "Period" in name:
        return rng.randint(1, 12)
    if edm == "Edm.Byte":
        return rng.randint(0, 3)
    if edm == "Edm.Int16":
        return rng.randint(0, 500)
    return rng.randint(-10, 250_000)


def _double(rng: random.Random) -> float | int | None:
    roll = rng.random()
    if roll < 0.05:
        return None
    if roll < 0.15:
        return rng.randint(-100, 1000)  # Exact writes whole amounts as JSON integers: `6`
    return round(rng.uniform(-10_000, 10_000), 2)


def _datetime(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.10:
        return None
    if roll < 0.15:
        ms = rng.randint(-2_208_988_800_000, -86_400_000)  # before 1970
    else:
        ms = rng.randint(1_420_070_400, 1_767_225_600) * 1000  # 2015..2025
        if rng.random() < 0.5:
            ms = midnight_ms(ms)  # a date: midnight on Exact's clock
    if not representable(ms):
        ms -= 3_600_000  # Exact's wall clock cannot tell the second pass of the autumn hour
    if roll < 0.18:
        return f"/Date({ms}+0100)/"
    return odata_date(ms)


def _mix(value: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash, far cheaper than a seeded Random."""
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    value = (value ^ (value >> 27)) * 0x94D049BB133111EB & _MASK64
    return value ^ (value >> 31)


def spread_datetime(salt: int, index: int, *, audit_stamp: bool) -> str | None:
    """Row `index`'s value of a date-time field (`salt` names it) anywhere in ten years: 10 %
    null, of the rest half dates (midnight on Exact's clock), half instants; audit stamps are
    always instants."""
    bits = _mix(salt + index * 0x9E3779B97F4A7C15 & _MASK64)
    roll = bits % 20
    if roll < 2:
        return None
    ms = (SPREAD_FROM_S + (bits >> 8) % SPREAD_SECONDS) * 1000 + (bits >> 48) % 1000
    if roll < 11 and not audit_stamp:
        ms = midnight_ms(ms)
    elif not representable(ms):
        ms -= 3_600_000  # Exact's wall clock cannot tell the second pass of the autumn hour
    return odata_date(ms)


def _guid(rng: random.Random) -> str | None:
    if rng.random() < 0.2:
        return None
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def static_value(name: str, edm: str, rng: random.Random) -> object:
    if edm == "Edm.String":
        return _string(name, rng)
    if edm in INT_TYPES:
        return _int(name, edm, rng)
    if edm == "Edm.Int64":
        return str(rng.randint(1, 10**12))  # OData v2 JSON quotes Int64
    if edm == "Edm.Double":
        return _double(rng)
    if edm == "Edm.Boolean":
        return rng.random() < 0.5
    if edm == "Edm.DateTime":
        return _datetime(rng)
    if edm == "Edm.Guid":
        return _guid(rng)
    if edm == "Edm.Binary":
        if rng.random() < 0.5:
            return None
        return f"https://start.exactonline.nl/docs/SysAttachment.aspx?ID={_guid(rng) or 'x'}"
    return None


# --- one stream in one division ------------------------------------------------------------------


@dataclass
class RowOverride:
    """What `mutate`/insert changed about one row; everything else is generated."""

    version: int = 0
    timestamp: int | None = None
    modified_ms: int | None = None
    values: dict[str, object] | None = None  # fields a test set explicitly


class RowFactory:
    """Generates and serialises rows of one stream in one division (no mutable state)."""

    def __init__(
        self,
        spec: StreamSpec,
        division: int,
        seed: int,
        constants: Mapping[str, object],
        *,
        spread_dates: bool = False,
        book_values: Callable[[int], Values] | None = None,
        book_fields: frozenset[str] = frozenset(),
        book_constants: Mapping[str, object] | None = None,
    ) -> None:
        self.spec = spec
        self.division = division
        self.seed = seed
        self.constants = dict(constants)
        # What the division's books say about a row (fake_exact/books.py), per row index.
        self.book_values = book_values
        self.book_fields = book_fields & set(spec.fields)
        # Fields the books give one value in every row: served with the static part.
        self.book_constants = {k: v for k, v in (book_constants or {}).items() if k in spec.fields}
        fields = spec.fields
        self.key_fields = [k for k in spec.keys if k in fields and k != "Division"]
        self.guid_key = next((k for k in self.key_fields if fields[k] == "Edm.Guid"), None)
        self.book_keys = [k for k in self.key_fields if k in self.book_fields]
        self._guid_prefix = {k: _guid_prefix(seed, spec.name, division, k) for k in self.key_fields}
        # Date-times generated per row (not Modified: its order is what incremental reads use).
        self.spread_fields = {
            name: int(_guid_prefix(seed, spec.name, division, name)[:8], 16)
            for name, edm in fields.items()
            if spread_dates and edm == "Edm.DateTime" and name not in (*spec.keys, "Modified")
        }
        self.dynamic = self._dynamic_fields()
        self.static_fields = [(f, t) for f, t in fields.items() if f not in self.dynamic]
        self.changed_field = (
            "Description"  # also where the books write it
            if fields.get("Description") == "Edm.String" and "Description" not in spec.keys
            else _changed_field(self.static_fields, spec.keys)
        )
        self.nav = next((n for n in NAV_CANDIDATES if n not in fields), "Navigation")
        self.type_name = f"Exact.Web.Api.Models.{spec.entity}"
        self._static_rows: list[dict[str, object]] | None = None
        self._static_json: OrderedDict[tuple[str, ...], list[str]] = OrderedDict()

    def _dynamic_fields(self) -> set[str]:
        spec = self.spec
        names = set(self.key_fields) | set(self.constants) | set(self.spread_fields)
        names |= self.book_fields
        if "Division" in spec.fields:
            names.add("Division")
        if spec.is_sync and "Timestamp" in spec.fields:
            names.add("Timestamp")
        if spec.modified:
            names.add("Modified")
        if spec.name in HEADER_LINE_STREAMS and "LineNumber" in spec.fields:
            names.add("LineNumber")
        return names

    # keys
    def key_value(self, name: str, index: int) -> object:
        edm = self.spec.fields[name]
        if edm == "Edm.Guid":
            return self._guid_prefix[name] + f"{index:012x}"
        if edm == "Edm.Int64":
            return str(index + 1)
        if edm in INT_TYPES:
            return index + 1
        return f"C{index:06d}"

    def index_of_guid(self, name: str, value: str) -> int | None:
        """Row index encoded in a key guid (last 12 hex digits), if it is one of ours."""
        prefix = self._guid_prefix.get(name)
        value = value.lower()
        if prefix is None or len(value) != 36 or not value.startswith(prefix):
            return None
        try:
            return int(value[24:], 16)
        except ValueError:
            return None

    def key_literal(self, index: int) -> str:
        """The `(...)` part of an entity URI."""
        parts = []
        for name in self.key_fields:
            value = self.key_value(name, index)
            if self.spec.fields[name] == "Edm.Guid":
                parts.append(f"guid'{value}'")
            elif isinstance(value, int):
                parts.append(str(value))
            else:
                parts.append(f"'{value}'")
        if not parts:
            return str(index)
        if len(parts) == 1:
            return parts[0]
        return ",".join(f"{k}={v}" for k, v in zip(self.key_fields, parts, strict=True))

    # static part
    def static_row(self, index: int) -> dict[str, object]:
        if self._static_rows is None:
            self._static_rows = [self._make_static(res) for res in range(RESIDUES)]
        return self._static_rows[index % RESIDUES]

    def _make_static(self, residue: int) -> dict[str, object]:
        rng = random.Random(f"{self.seed}|{self.spec.name}|{self.division}|{residue}")
        row = {name: static_value(name, edm, rng) for name, edm in self.static_fields}
        row.update(self.book_constants)
        return row

    def static_json(self, select: tuple[str, ...]) -> list[str]:
        """Per residue, the pre-serialised `"Name":value,...` of the selected static fields."""
        cached = self._static_json.get(select)
        if cached is not None:
            self._static_json.move_to_end(select)
            return cached
        wanted = [name for name in select if name not in self.dynamic]
        self.static_row(0)
        assert self._static_rows is not None
        cached = [",".join(field_json(n, row[n]) for n in wanted) for row in self._static_rows]
        self._static_json[select] = cached
        if len(self._static_json) > MAX_SELECT_CACHE:
            self._static_json.popitem(last=False)
        return cached

    def changed_value(self, index: int, version: int) -> object:
        """The value `mutate` gives `changed_field` at `version` (deterministic)."""
        assert self.changed_field is not None
        if self.spec.fields[self.changed_field] == "Edm.Double":
            return round(version * 10.25 + index % 97, 2)
        return f"Changed v{version} row {index}"


def _guid_prefix(seed: int, stream: str, division: int, field: str) -> str:
    digest = hashlib.md5(f"{seed}|{stream}|{division}|{field}".encode()).hexdigest()
    return f"{digest[0:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-"


def _changed_field(static_fields: list[tuple[str, str]], keys: tuple[str, ...]) -> str | None:
    candidates = [
        f for f, t in static_fields if t in ("Edm.String", "Edm.Double") and f not in keys
    ]
    if "Description" in candidates:
        return "Description"
    return candidates[0] if candidates else None


class Table:
    """Current state of one stream in one division: generated rows plus their changes."""

    def __init__(self, factory: RowFactory, n_base: int) -> None:
        self.factory = factory
        self.spec = factory.spec
        self.division = factory.division
        self.n_base = n_base
        self.n = n_base
        self.overrides: dict[int, RowOverride] = {}
        self.override_order: list[int] = []  # sorted indices present in `overrides`
        self.deleted: set[int] = set()
        # Rows whose Timestamp moved past the generated range, in Timestamp order (append-only;
        # an entry is stale when the row has moved again since).
        self.tail_ts: list[int] = []
        self.tail_idx: list[int] = []

    # per-row facts
    def exists(self, index: int) -> bool:
        return 0 <= index < self.n and index not in self.deleted

    def timestamp(self, index: int) -> int:
        override = self.overrides.get(index)
        if override is not None and override.timestamp is not None:
            return override.timestamp
        return TS_BASE + index * TS_STRIDE + self.spec.number

    def modified_ms(self, index: int) -> int:
        override = self.overrides.get(index)
        if override is not None and override.modified_ms is not None:
            return override.modified_ms
        return MODIFIED_BASE_MS + index * MODIFIED_STEP_MS

    def version(self, index: int) -> int:
        override = self.overrides.get(index)
        return 0 if override is None else override.version

    def existing(self) -> Iterator[int]:
        return (i for i in range(self.n) if i not in self.deleted)

    def count(self) -> int:
        return self.n - len(self.deleted)

    def dynamic_values(self, index: int) -> dict[str, object]:
        factory = self.factory
        values: dict[str, object] = {k: factory.key_value(k, index) for k in factory.key_fields}
        dynamic = factory.dynamic
        if "Division" in dynamic:
            values["Division"] = self.division
        if "Timestamp" in dynamic:
            ts = self.timestamp(index)
            # Int64 is a JSON string, but some rows carry a plain number: clients take both.
            values["Timestamp"] = ts if ts % 7 == 0 else str(ts)
        if "Modified" in dynamic:
            values["Modified"] = odata_date(self.modified_ms(index))
        if "LineNumber" in dynamic:
            values["LineNumber"] = index % 4  # 0 = header row, like Exact's header+line syncs
        for name, salt in factory.spread_fields.items():
            values[name] = spread_datetime(salt, index, audit_stamp=name in AUDIT_STAMPS)
        if factory.book_values is not None:
            values.update(factory.book_values(index))
            # A row keeps its own key: where a table goes round the books' rows, the link the
            # books give (an invoice's OrderID) names the first of them.
            for name in factory.book_keys:
                values[name] = factory.key_value(name, index)
        values.update(factory.constants)
        return values

    def raw_row(self, index: int) -> dict[str, object]:
        """All catalog fields of a row, as a full unfiltered read decodes it (no __metadata)."""
        factory = self.factory
        merged = {**factory.static_row(index), **self.dynamic_values(index)}
        version = self.version(index)
        if version and factory.changed_field is not None:
            merged[factory.changed_field] = factory.changed_value(index, version)
        override = self.overrides.get(index)
        if override is not None and override.values:
            merged.update(override.values)
        return {name: merged.get(name) for name in self.spec.fields}

    # changes
    def override(self, index: int) -> RowOverride:
        override = self.overrides.get(index)
        if override is None:
            override = self.overrides[index] = RowOverride()
            bisect.insort(self.override_order, index)
        return override

    def touch(self, index: int, *, new_ts: int | None, now_ms: int, bump_version: bool) -> None:
        override = self.override(index)
        if bump_version:
            override.version += 1
        if self.spec.modified:
            override.modified_ms = now_ms
        if new_ts is not None and "Timestamp" in self.factory.dynamic:
            override.timestamp = new_ts
            self.tail_ts.append(new_ts)
            self.tail_idx.append(index)

    # paging
    def sync_indices(self, after: int | None, limit: int) -> list[int]:
        """Up to `limit` rows with Timestamp > after, in Timestamp order."""
        out: list[int] = []
        overrides, deleted = self.overrides, self.deleted
        start = 0
        if after is not None:
            start = max(0, (after - TS_BASE - self.spec.number) // TS_STRIDE + 1)
        index = start
        while index < self.n_base and len(out) < limit:
            override = overrides.get(index)
            if index not in deleted and (override is None or override.timestamp is None):
                out.append(index)
            index += 1
        if len(out) < limit:
            position = 0 if after is None else bisect.bisect_right(self.tail_ts, after)
            while position < len(self.tail_ts) and len(out) < limit:
                index = self.tail_idx[position]
                if index not in deleted and overrides[index].timestamp == self.tail_ts[position]:
                    out.append(index)
                position += 1
        return out

    def index_indices(self, start: int, bounds: tuple[int, int] | None, limit: int) -> list[int]:
        """Up to `limit` rows from index `start` on, in index order, with lo <= Modified <= hi."""
        if bounds is None:
            candidates: Iterator[int] = (i for i in range(start, self.n) if i not in self.deleted)
        else:
            candidates = heapq.merge(self._base_in(start, bounds), self._changed_in(start, bounds))
        out: list[int] = []
        for index in candidates:
            out.append(index)
            if len(out) >= limit:
                break
        return out

    def _base_in(self, start: int, bounds: tuple[int, int]) -> Iterator[int]:
        # Bounds are Exact's wall clock; generated rows' Modified never reach an autumn change,
        # where wall clock and instant order differ, so an index range still fits.
        low, high = instant_ms(bounds[0]), instant_ms(bounds[1])
        first = max(start, -((MODIFIED_BASE_MS - low) // MODIFIED_STEP_MS))  # ceil division
        last = min(self.n_base - 1, (high - MODIFIED_BASE_MS) // MODIFIED_STEP_MS)
        overrides, deleted = self.overrides, self.deleted
        return (i for i in range(first, last + 1) if i not in overrides and i not in deleted)

    def _changed_in(self, start: int, bounds: tuple[int, int]) -> Iterator[int]:
        low, high = bounds
        order = self.override_order
        for position in range(bisect.bisect_left(order, start), len(order)):
            index = order[position]
            if index not in self.deleted and low <= wall_ms(self.modified_ms(index)) <= high:
                yield index

    # serialisation
    def rows_json(self, indices: list[int], select: tuple[str, ...], uri_base: str) -> list[str]:
        factory = self.factory
        static = factory.static_json(select)
        dynamic = [name for name in select if name in factory.dynamic]
        head = '{"__metadata":{"uri":"' + uri_base + "("
        type_part = ')","type":"' + factory.type_name + '"},'
        nav_open = ',"' + factory.nav + '":{"__deferred":{"uri":"' + uri_base + "("
        nav_close = ")/" + factory.nav + '"}}}'
        out = []
        for index in indices:
            key = factory.key_literal(index)
            if self.version(index):
                body = self._slow_body(index, select)
            else:
                values = self.dynamic_values(index)
                body = dynamic_json({n: values[n] for n in dynamic})
                static_part = static[index % RESIDUES]
                if static_part:
                    body = body + "," + static_part if body else static_part
            out.append(head + key + type_part + body + nav_open + key + nav_close)
        return out

    def _slow_body(self, index: int, select: tuple[str, ...]) -> str:
        row = self.raw_row(index)
        return ",".join(field_json(name, row[name]) for name in select)


class ComputedTable(Table):
    """An aggregate of the books (ReportingBalance, ReceivablesList, ...): one slot per row the
    aggregate could have, present while the entries give it a value, so a row keeps its key."""

    def __init__(self, factory: RowFactory, compute: Callable[[], Computed]) -> None:
        super().__init__(factory, 0)
        self._compute = compute
        self._cached: tuple[Computed, list[int]] | None = None

    def _now(self) -> tuple[Computed, list[int]]:
        computed = self._compute()
        if self._cached is not None and self._cached[0] is computed:
            return self._cached
        self._cached = (computed, sorted(computed.rows))
        return self._cached

    @property
    def n(self) -> int:
        return self._now()[0].slots

    @n.setter
    def n(self, value: int) -> None:
        pass  # the books decide

    @property
    def n_base(self) -> int:
        return self.n

    @n_base.setter
    def n_base(self, value: int) -> None:
        pass

    def exists(self, index: int) -> bool:
        return index in self._now()[0].rows

    def existing(self) -> Iterator[int]:
        return iter(self._now()[1])

    def count(self) -> int:
        return len(self._now()[1])

    def index_indices(self, start: int, bounds: tuple[int, int] | None, limit: int) -> list[int]:
        present = self._now()[1]
        position = bisect.bisect_left(present, start)
        return present[position : position + limit]

    def dynamic_values(self, index: int) -> dict[str, object]:
        values: dict[str, object] = dict.fromkeys(self.spec.fields)
        values.update((k, self.factory.key_value(k, index)) for k in self.factory.key_fields)
        if "Division" in self.spec.fields:
            values["Division"] = self.division
        values.update(self._now()[0].rows.get(index, {}))
        return values


class ChildTable:
    """A read function called per parent row (`ItemExtraField?itemId=..`): 0-3 rows per parent.

    Rows are generated like any table's, from the child's own index `parent * 4 + n`; the field
    holding the parent's ID (the catalog's `link_field`) carries it. `Modified` follows the
    parent's, so a `modified` parameter selects the rows of recently changed parents.
    """

    def __init__(self, spec: StreamSpec, parent: Table, seed: int) -> None:
        assert spec.child_of is not None
        self.spec = spec
        self.parent = parent
        self.seed = seed
        self.link = str(spec.child_of["link_field"])
        self.link_in_row = bool(spec.child_of["link_in_row"])
        self.factory = RowFactory(spec, parent.division, seed, {})
        # Keyed by the parent alone (StockPosition?itemId=..): at most one row per parent.
        self.per_parent = 2 if set(spec.keys) <= {self.link} else 4

    def count_for(self, parent: int) -> int:
        return ((parent * 2_654_435_761 + self.seed * 40_503) >> 7) % self.per_parent

    def rows_for(self, parent: int, since_ms: int | None = None) -> list[dict[str, object]]:
        """Rows as Exact sends them (every catalog field), in key order."""
        if not self.parent.exists(parent):
            return []
        modified = self.parent.modified_ms(parent)
        if since_ms is not None and wall_ms(modified) < since_ms:  # on Exact's clock
            return []
        parent_id = self.parent.factory.key_value("ID", parent)
        rows = []
        for number in range(1, self.count_for(parent) + 1):
            index = parent * 4 + number
            row = dict(self.factory.static_row(index))
            row.update({k: self.factory.key_value(k, index) for k in self.factory.key_fields})
            if "Division" in self.spec.fields:
                row["Division"] = self.parent.division
            if "Modified" in self.spec.fields:
                row["Modified"] = odata_date(modified)
            if self.link_in_row:
                row[self.link] = parent_id
            rows.append({name: row.get(name) for name in self.spec.fields})
        return rows

    def expected_rows(self) -> Iterator[dict[str, object]]:
        """Every row as the tap should emit it: with the parent's ID even where Exact omits it."""
        for parent in self.parent.existing():
            parent_id = self.parent.factory.key_value("ID", parent)
            for row in self.rows_for(parent):
                yield {self.link: parent_id, **row}

    def count(self) -> int:
        return sum(self.count_for(parent) for parent in self.parent.existing())


# --- all tables -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    streams: list[StreamSpec]
    deleted_entity_types: dict[str, int]  # entity name -> sync/Deleted EntityType code
    # The other endpoints of a stream's entity (the tap's `stream_api` may choose one): specs of
    # the same name, each served at its own path with its own fields.
    alternatives: tuple[StreamSpec, ...] = ()


def read_catalog(path: Path = CATALOG_PATH) -> Catalog:
    raw = json.loads(path.read_text(encoding="utf-8"))
    streams = [_spec(number, entry) for number, entry in enumerate(raw["streams"])]
    others = [
        {**other, "name": entry["name"], "entity": entry["entity"]}
        for entry in raw["streams"]
        for other in (entry.get("alternatives") or {}).values()
    ]
    # Numbered after the streams: every endpoint's Timestamps stay distinct.
    alternatives = tuple(_spec(len(streams) + n, other) for n, other in enumerate(others))
    types = {name: int(code) for code, name in raw.get("deleted_entity_types", {}).items()}
    return Catalog(streams, types, alternatives)


@functools.cache
def _page_sizes() -> dict[tuple[str, str], int]:
    catalog = read_catalog()
    return {
        (spec.name, spec.api): spec.page_size for spec in (*catalog.streams, *catalog.alternatives)
    }


def page_size(name: str, api: str) -> int:
    """Rows a page of this stream holds on this API (Exact's, as the catalog records it)."""
    return _page_sizes()[(name, api)]


class Dataset:
    """Every (stream, division) table, created on first use; the caller holds the lock."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        current_division: int,
        rows: Mapping[str, int] | None,
        default_rows: int | None,
        seed: int,
        spread_dates: bool = False,
        today: date | None = None,
    ) -> None:
        self.spread_dates = spread_dates
        # The books run up to this day (ageing and ProfitLossOverview count from it).
        self.today = today or datetime.now(timezone.utc).date()
        self._books: dict[int, tuple[Books, Refs]] = {}
        self.specs = {spec.name: spec for spec in catalog.streams}
        self.alternatives = {(spec.name, spec.api): spec for spec in catalog.alternatives}
        unknown = sorted(set(rows or {}) - set(self.specs))
        if unknown:
            raise ValueError(f"unknown streams in rows: {unknown}")
        self.entity_types = catalog.deleted_entity_types
        self.current_division = current_division
        self.seed = seed
        self._rows = dict(rows or {})
        self._default_rows = default_rows
        self._tables: dict[tuple[str, str, int], Table] = {}
        self._me_tables: dict[tuple[str, str], Table] = {}
        # Changed rows get Timestamps above every generated one, per division (rowversion).
        largest = max((self.rows_for(spec) for spec in catalog.streams), default=0)
        self._ts_start = TS_BASE + (largest + 1) * TS_STRIDE
        self._next_ts: dict[int, int] = {}
        self.deletions: list[dict[str, object]] = []
        self.deletion_log_kept_from_ms = 0

    def spec(self, name: str, api: str | None = None) -> StreamSpec:
        """A stream's spec: on its default API, or on `api` (one of its alternatives)."""
        spec = self.specs.get(name)
        if spec is None:
            raise KeyError(f"unknown stream {name!r}")
        if api is None or api == spec.api:
            return spec
        other = self.alternatives.get((name, api))
        if other is None:
            raise KeyError(f"stream {name!r} has no API {api!r}")
        return other

    def rows_for(self, spec: StreamSpec) -> int:
        if spec.path == DELETED_PATH:
            return 0  # the deletion log holds only what tests delete
        if spec.name == "me" or set(spec.keys) <= {"Division"}:
            return 1  # one row per division (settings)
        if spec.name in self._rows:
            return self._rows[spec.name]
        if spec.name in SIZED_LIKE:  # sized by another stream (the books' rule)
            other, rows = SIZED_LIKE[spec.name]
            return rows(self.rows_for(self.specs[other]))
        if self._default_rows is not None:
            return self._default_rows
        return 1500 if spec.api in ("sync", "bulk") else 130

    def table(self, spec: StreamSpec, division: int) -> Table:
        division = division if spec.division_in_path else 0
        # One table per endpoint: an alternative serves its own fields, as many rows as the
        # stream's default endpoint (the same entity), with the same keys where they match.
        table = self._tables.get((spec.name, spec.api, division))
        if table is None:
            table = self._tables[(spec.name, spec.api, division)] = self._new_table(spec, division)
        return table

    def _new_table(self, spec: StreamSpec, division: int) -> Table:
        constants = {"CurrentDivision": self.current_division} if spec.name == "me" else {}
        if division and spec.name in COMPUTED:
            refs = self.books(division)[1]
            factory = RowFactory(spec, division, self.seed, {}, book_fields=frozenset(spec.fields))
            for field_name, stream in KEY_OF.get(spec.name, {}).items():
                factory._guid_prefix[field_name] = refs.prefix(stream)
            return ComputedTable(factory, self._computed(spec.name, division))
        values = None
        fields: frozenset[str] = frozenset()
        same_in_every_row: Values = {}
        book_rows = ROW_VALUES_ON_API.get((spec.name, spec.api)) or ROW_VALUES.get(spec.name)
        if division and book_rows:
            refs = self.books(division)[1]
            row_values, same_in_every_row = book_rows
            fields = frozenset(row_values(refs, 0))

            def values(index: int) -> Values:
                return row_values(refs, index)

        factory = RowFactory(
            spec,
            division,
            self.seed,
            constants,
            spread_dates=self.spread_dates,
            book_values=values,
            book_fields=fields,
            book_constants=same_in_every_row,
        )
        return Table(factory, self.base_rows(spec))

    def base_rows(self, spec: StreamSpec) -> int:
        """Rows a table is made with: its stream's size (an alternative endpoint's too, but for
        a header-only one, which has a row per invoice where sync has a row per line)."""
        rows = self.rows_for(self.specs[spec.name])
        if spec.api != self.specs[spec.name].api and spec.name in ROWS_PER_HEADER:
            rows = -(-rows // ROWS_PER_HEADER[spec.name])
        return rows

    def books(self, division: int) -> tuple[Books, Refs]:
        """The division's books and the guids of what they point at (made on first use)."""
        found = self._books.get(division)
        if found is None:
            sizes = Sizes(
                gl_accounts=self.rows_for(self.specs["gl_accounts"]),
                accounts=self.rows_for(self.specs["accounts"]),
                items=self.rows_for(self.specs["items"]),
                lines=self.rows_for(self.specs["transaction_lines"]),
            )
            books = Books(self.seed, division, sizes, self.today)
            invoice_rows = {
                (name, api): self.base_rows(self.spec(name, api)) for name, api in INVOICE_TABLES
            }
            refs = Refs(self.seed, division, books, invoice_rows)
            found = self._books[division] = (books, refs)
        return found

    def _computed(self, name: str, division: int) -> Callable[[], Computed]:
        books, refs = self.books(division)
        make = COMPUTED[name]
        cache: list[tuple[int, Computed]] = []

        def compute() -> Computed:
            generation = books.changes.generation
            if not cache or cache[0][0] != generation:
                cache[:] = [(generation, make(refs))]
            return cache[0][1]

        return compute

    def me_table(self, spec: StreamSpec, user_id: str, current_division: int) -> Table:
        """current/Me of another login (see FakeExact.add_login): its own UserID and division."""
        table = self._me_tables.get((spec.api, user_id))
        if table is None:
            constants = {"CurrentDivision": current_division, "UserID": user_id}
            factory = RowFactory(spec, 0, self.seed, constants)
            table = self._me_tables[(spec.api, user_id)] = Table(factory, 1)
        return table

    def child_table(self, spec: StreamSpec, division: int) -> ChildTable:
        assert spec.child_of is not None
        parent = self.spec(str(spec.child_of["parent"]))
        return ChildTable(spec, self.table(parent, division), self.seed)

    def new_timestamp(self, division: int) -> int:
        value = self._next_ts.get(division, self._ts_start)
        self._next_ts[division] = value + 1
        return value

    def mutate(
        self,
        name: str,
        division: int,
        *,
        update: int,
        insert: int,
        now_ms: int,
        start: int = 0,
        values: Mapping[str, object] | None = None,
    ) -> list[dict[str, object]]:
        spec = self.spec(name)
        if spec.child_of is not None or spec.name == "me":
            raise ValueError(f"{name} cannot be mutated")
        if spec.name in COMPUTED:
            raise ValueError(f"{name} is computed from the entries: change transaction_lines")
        if insert and division and spec.name in {stream for stream, _ in INVOICE_TABLES}:
            raise ValueError(f"{name} lists what is behind the entries: insert transaction_lines")
        table = self.table(spec, division)
        if spec.name == "transaction_lines" and division:
            return self._mutate_entries(
                table, update=update, insert=insert, now_ms=now_ms, start=start, values=values
            )
        existing = itertools.islice(table.existing(), start, start + update)
        changed = list(existing)
        for index in changed:
            table.touch(index, new_ts=self._ts_for(table), now_ms=now_ms, bump_version=True)
        for _ in range(insert):
            index = table.n
            table.n += 1
            table.touch(index, new_ts=self._ts_for(table), now_ms=now_ms, bump_version=False)
            changed.append(index)
        if values:
            for index in changed:
                table.override(index).values = dict(values)
                table.override(index).version = max(table.version(index), 1)  # served slowly
        return [table.raw_row(index) for index in changed]

    def _mutate_entries(
        self,
        table: Table,
        *,
        update: int,
        insert: int,
        now_ms: int,
        start: int,
        values: Mapping[str, object] | None,
    ) -> list[dict[str, object]]:
        """`update` and `insert` count entries: all lines of an entry change together (Exact
        gives header and lines new Timestamps together), and an entry is added whole."""
        books = self.books(table.division)[0]
        updated = list(itertools.islice(books.existing(), start, start + update))
        day = datetime.fromtimestamp(now_ms / 1000, timezone.utc).date()
        inserted = []
        for _ in range(insert):
            inserted.append(books.append_generated(day).index)
            table.n += LINES_PER_ENTRY
        self._follow_invoices(table.division, changed=updated, added=inserted, now_ms=now_ms)
        changed = []
        for entry in updated + inserted:
            first = books.first_row(entry)
            for index in range(first, first + books.line_count(entry)):
                table.touch(
                    index,
                    new_ts=self._ts_for(table),
                    now_ms=now_ms,
                    bump_version=entry not in inserted,
                )
                if values:
                    table.override(index).values = dict(values)
                    table.override(index).version = max(table.version(index), 1)
                changed.append(index)
        return [table.raw_row(index) for index in changed]

    def pay(self, name: str, division: int, count: int, *, now_ms: int) -> list[object]:
        """Pay the first `count` open items of ReceivablesList or PayablesList in full: a bank
        entry per item (its lines in TransactionLines); the items leave the lists."""
        books = self.books(division)[0]
        lines = self.table(self.spec("transaction_lines"), division)
        kind = "sales" if name.startswith("receivables") else "purchase"
        items = [
            e for e, item in sorted(books.aggregates().open_items.items()) if item.kind == kind
        ]
        day = datetime.fromtimestamp(now_ms / 1000, timezone.utc).date()
        keys: list[object] = []
        for invoice in items[:count]:
            payment = books.append_payment(invoice, day)
            lines.n += LINES_PER_ENTRY
            first = books.first_row(payment.index)
            for index in range(first, first + LINES_PER_ENTRY):
                lines.touch(index, new_ts=self._ts_for(lines), now_ms=now_ms, bump_version=False)
            keys.append(str(invoice + 1))  # the item's HID
        return keys

    def close_years(self, division: int, through: int, *, now_ms: int) -> list[int]:
        """Exact's year-end closing up to `through`: its entries arrive in TransactionLines."""
        books = self.books(division)[0]
        lines = self.table(self.spec("transaction_lines"), division)
        entries = books.close_years(through)
        for entry in entries:
            lines.n += LINES_PER_ENTRY
            first = books.first_row(entry.index)
            for index in range(first, first + LINES_PER_ENTRY):
                lines.touch(index, new_ts=self._ts_for(lines), now_ms=now_ms, bump_version=False)
        return [entry.index for entry in entries]

    def _ts_for(self, table: Table) -> int | None:
        return self.new_timestamp(table.division) if table.spec.is_sync else None

    def delete(self, name: str, division: int, count: int, *, now_ms: int) -> list[object]:
        spec = self.spec(name)
        if spec.name in ("receivables_list", "payables_list") and division:
            return self.pay(name, division, count, now_ms=now_ms)
        if spec.name in COMPUTED:
            raise ValueError(f"{name} is computed from the entries: change transaction_lines")
        table = self.table(spec, division)
        victims = [index for _, index in zip(range(count), table.existing(), strict=False)]
        if spec.name == "transaction_lines" and division:
            # `count` entries, each with all its lines (an entry is deleted whole).
            books = self.books(division)[0]
            entries = list(itertools.islice(books.existing(), count))
            victims = []
            for entry in entries:
                books.delete(entry)
                first = books.first_row(entry)
                victims.extend(range(first, first + books.line_count(entry)))
            self._follow_invoices(division, deleted=entries, now_ms=now_ms)
        return self._delete_rows(table, victims, now_ms)

    def _delete_rows(self, table: Table, victims: Iterable[int], now_ms: int) -> list[object]:
        keys = []
        # Exact's deletion log knows only its documented entity types: an open item that
        # leaves ReceivablesList (the invoice was paid) is just no longer listed. An other
        # endpoint of a logged entity is not: the log's keys are its default endpoint's.
        logged = (
            table.spec is self.specs[table.spec.name]
            and (table.spec.deleted_entity_type or self.entity_types.get(table.spec.entity))
            is not None
        )
        for index in victims:
            key = _key_of(table, index)
            table.deleted.add(index)
            keys.append(key)
            if logged:
                self.deletions.append(self._deletion(table, key, now_ms))
        return keys

    def _follow_invoices(
        self,
        division: int,
        *,
        now_ms: int,
        changed: Sequence[int] = (),
        added: Sequence[int] = (),
        deleted: Sequence[int] = (),
    ) -> None:
        """Exact keeps an invoice with its entry: a sales or purchase entry added to the books
        adds its invoice's rows to every invoice table, a changed one changes them (new
        Timestamps, Modified now), a deleted one deletes them."""
        refs = self.books(division)[1]
        for name, api in refs.invoice_tables:
            table = self.table(self.spec(name, api), division)
            for index in refs.rows_behind((name, api), added):
                table.n = max(table.n, index + 1)
            for index in refs.rows_behind((name, api), [*added, *changed]):
                if table.exists(index):  # (re-)stamped; its values are the entry's
                    table.touch(
                        index, new_ts=self._ts_for(table), now_ms=now_ms, bump_version=False
                    )
            gone = [i for i in refs.rows_behind((name, api), deleted) if table.exists(i)]
            self._delete_rows(table, gone, now_ms)

    def _deletion(self, table: Table, key: object, now_ms: int) -> dict[str, object]:
        """An entry of the division's deletion log, as sync/Deleted serves it (plus `stream`)."""
        ts = self.new_timestamp(table.division)
        digest = hashlib.md5(f"{self.seed}|deleted|{table.division}|{ts}".encode()).hexdigest()
        return {
            "stream": table.spec.name,
            "division": table.division,
            "DeletedBy": str(uuid.UUID(hashlib.md5(digest.encode()).hexdigest())),
            "DeletedDate": odata_date(now_ms),
            "Division": table.division,
            "EntityKey": key,
            "EntityType": table.spec.deleted_entity_type
            or self.entity_types.get(table.spec.entity),
            "ID": str(uuid.UUID(digest)),
            # Int64 is a JSON string (mostly; see Table.dynamic_values)
            "Timestamp": ts if ts % 7 == 0 else str(ts),
        }

    def deletion_log(self, division: int, after: int) -> list[dict[str, object]]:
        """sync/Deleted: the division's deletions with Timestamp > after, oldest first, kept
        for two months as on Exact (`keep_from_ms` drops older entries)."""
        return sorted(
            (
                entry
                for entry in self.deletions
                if entry["division"] == division
                and int(str(entry["Timestamp"])) > after
                and _ms_of(str(entry["DeletedDate"])) >= self.deletion_log_kept_from_ms
            ),
            key=lambda entry: int(str(entry["Timestamp"])),
        )

    def expected_rows(
        self, name: str, division: int, api: str | None = None
    ) -> Iterator[dict[str, object]]:
        spec = self.spec(name, api)
        if spec.path == DELETED_PATH:
            log = self.deletion_log(division, 0)
            return ({field: entry[field] for field in spec.fields} for entry in log)
        if spec.child_of is not None:
            return self.child_table(spec, division).expected_rows()
        table = self.table(spec, division)
        return (table.raw_row(index) for index in table.existing())

    def row_count(self, name: str, division: int, api: str | None = None) -> int:
        spec = self.spec(name, api)
        if spec.path == DELETED_PATH:
            return len(self.deletion_log(division, 0))
        if spec.child_of is not None:
            return self.child_table(spec, division).count()
        return self.table(spec, division).count()


def _ms_of(odata: str) -> int:
    return int(odata[len("/Date(") : -len(")/")])


def _key_of(table: Table, index: int) -> object:
    keys = [table.factory.key_value(k, index) for k in table.factory.key_fields]
    if not keys:
        return index
    return keys[0] if len(keys) == 1 else tuple(keys)
