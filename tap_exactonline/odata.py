"""Exact's OData v2 JSON: names, Edm types, `/Date(ms)/` values, and turning rows into records.

Everything here runs once per field per row, so the per-row work is a dict lookup and at most one
small conversion; all decisions are made once per stream in `RecordPlan`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from msgspec.structs import asdict

from tap_exactonline.exact_clock import INSTANT_FIELDS, ExactClock

_CAMEL_BOUNDARY_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_BOUNDARY_2 = re.compile(r"([a-z\d])([A-Z])")

DIVISION_FIELD = "Division"


def snake_case(name: str) -> str:
    """AmountDC -> amount_dc, GLAccount -> gl_account, ID -> id, ItemID -> item_id."""
    name = _CAMEL_BOUNDARY_1.sub(r"\1_\2", name)
    name = _CAMEL_BOUNDARY_2.sub(r"\1_\2", name)
    return name.replace("__", "_").lower()


def parse_int64(value: object) -> object:
    """Edm.Int64 arrives as a JSON string ("1234") or a number; the schema says integer."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def converters(clock: ExactClock) -> dict[str, Callable[[object], object]]:
    return {"Edm.DateTime": clock.read, "Edm.Int64": parse_int64}


class RecordPlan:
    """How one stream turns an Exact row into a Singer record."""

    def __init__(
        self, fields: Mapping[str, str], *, rename: bool, clock: ExactClock | None = None
    ) -> None:
        self.fields = dict(fields)
        self.clock = clock or ExactClock()
        self._converters = converters(self.clock)
        self.column_for = {name: snake_case(name) if rename else name for name in fields}
        self.division_column = self.column_for.get(DIVISION_FIELD) or (
            "division" if rename else DIVISION_FIELD
        )
        self.select(fields)

    def select(self, names: Iterable[str]) -> None:
        """Emit only these Exact fields (the ones selected in the catalog, in `$select`)."""
        chosen = [name for name in dict.fromkeys(names) if name in self.fields]
        self.selected = chosen
        # The order of a row's fields (`pages.RowShape`) and of the record's columns: plain
        # fields first, then those converted; `columns` are the row struct's attribute names.
        self.order = [name for name in chosen if not self._convert(name)]
        self.order += [name for name in chosen if self._convert(name)]
        self.columns = [self.column_for[name] for name in self.order]
        self._converted = [
            (self.column_for[name], convert) for name in chosen if (convert := self._convert(name))
        ]

    def _convert(self, name: str) -> Callable[[object], object] | None:
        if name in INSTANT_FIELDS and self.fields[name] == "Edm.DateTime":
            return self.clock.read_instant
        return self._converters.get(self.fields[name])

    def apply(self, row: Any, division: int | None) -> dict[str, Any]:
        """The record of a row: a struct of `RowShape(plan)`, whose attributes are the record's
        columns, in order, and which holds only the selected fields: no `__metadata`, no
        `__deferred` links. Exact sends every `$select`-ed field (null when empty), so a field
        it leaves out is null too.
        """
        record = asdict(row)
        for column, convert in self._converted:
            value = record[column]
            if value is not None:
                record[column] = convert(value)
        if division is not None:
            # Many divisions share a table: the record must say which one it came from.
            record[self.division_column] = division
        return record
