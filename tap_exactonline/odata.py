"""Exact's OData v2 JSON: names, Edm types, `/Date(ms)/` values, and turning rows into records.

Everything here runs once per field per row, so the per-row work is a dict lookup and at most one
small conversion; all decisions are made once per stream in `RecordPlan`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

_CAMEL_BOUNDARY_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_BOUNDARY_2 = re.compile(r"([a-z\d])([A-Z])")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

DIVISION_FIELD = "Division"


def snake_case(name: str) -> str:
    """AmountDC -> amount_dc, GLAccount -> gl_account, ID -> id, ItemID -> item_id."""
    name = _CAMEL_BOUNDARY_1.sub(r"\1_\2", name)
    name = _CAMEL_BOUNDARY_2.sub(r"\1_\2", name)
    return name.replace("__", "_").lower()


@lru_cache(maxsize=65536)  # dates repeat a lot (booking dates, batch imports); memory stays bounded
def parse_odata_datetime(value: object) -> object:
    """`/Date(1382667872203)/` -> '2013-10-25T02:24:32.203000+00:00'.

    The number is the UTC instant; an offset suffix (`/Date(ms+0100)/`) only says which zone
    the server displayed it in, so it does not move the instant. Anything else passes unchanged.
    """
    if not isinstance(value, str) or not value.startswith("/Date(") or not value.endswith(")/"):
        return value
    number = value[6:-2]
    sign_at = max(number.rfind("+"), number.rfind("-"))
    if sign_at > 0:  # an offset suffix, not a leading minus
        number = number[:sign_at]
    try:
        milliseconds = int(number)
    except ValueError:
        return value
    return (_EPOCH + timedelta(milliseconds=milliseconds)).isoformat()


def parse_int64(value: object) -> object:
    """Edm.Int64 arrives as a JSON string ("1234") or a number; the schema says integer."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def odata_datetime_literal(iso_value: str) -> str:
    """An ISO date-time from our records or config -> `datetime'2024-01-31T13:45:00'` for $filter.

    Seconds are floored so a `ge` filter never skips a row modified within the same second.
    """
    moment = datetime.fromisoformat(iso_value.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return f"datetime'{moment.replace(microsecond=0).isoformat()}'"


CONVERTERS: dict[str, Callable[[object], object]] = {
    "Edm.DateTime": parse_odata_datetime,
    "Edm.Int64": parse_int64,
}


class RecordPlan:
    """How one stream turns an Exact row into a Singer record."""

    def __init__(self, fields: Mapping[str, str], *, rename: bool) -> None:
        self.fields = dict(fields)
        self.column_for = {name: snake_case(name) if rename else name for name in fields}
        self.division_column = self.column_for.get(DIVISION_FIELD) or (
            "division" if rename else DIVISION_FIELD
        )
        self.select(fields)

    def select(self, names: Iterable[str]) -> None:
        """Emit only these Exact fields (the ones selected in the catalog, in `$select`)."""
        chosen = [name for name in names if name in self.fields]
        self.selected = chosen
        self._plain = [
            (name, self.column_for[name]) for name in chosen if self.fields[name] not in CONVERTERS
        ]
        self._converted = [
            (name, self.column_for[name], CONVERTERS[self.fields[name]])
            for name in chosen
            if self.fields[name] in CONVERTERS
        ]

    def apply(self, row: Mapping[str, Any], division: int | None) -> dict[str, Any]:
        """Build the record from the selected fields only, which also drops Exact's
        `__metadata` and `__deferred` links. Exact sends every `$select`-ed field (null when
        empty), so a field it leaves out is null too.
        """
        get = row.get
        record = {column: get(name) for name, column in self._plain}
        for name, column, convert in self._converted:
            value = get(name)
            record[column] = None if value is None else convert(value)
        if division is not None:
            # Many divisions share a table: the record must say which one it came from.
            record[self.division_column] = division
        return record
