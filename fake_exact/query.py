"""OData query options as Exact takes them: $select, $filter, $skiptoken, $top, read parameters."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

from fake_exact.data import NO_BOUND, StreamSpec

FILTER_UNSUPPORTED = "This $filter parameter is not supported for this resource"
SELECT_REQUIRED = "Please add a $select or a $top=1 statement to the query string."
MANDATORY_FILTER = (
    "This endpoint has mandatory filtering applied. A GET request for this endpoint must have a "
    "$filter parameter with one of the following fields in the url:"
)

_SYNC_FILTER = re.compile(r"\s*Timestamp\s+gt\s+(\d+)L?\s*")
_AND = re.compile(r"\s+and\s+")
_CLAUSE = re.compile(r"\s*\(?\s*([A-Za-z_]\w*)\s+(\w+)\s+(.+?)\s*\)?\s*")
_DATETIME = re.compile(
    r"datetime'(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?'"
)
_GUID_LITERAL = re.compile(r"guid'([0-9A-Fa-f-]{36})'")
_INT_TOKEN = re.compile(r"(-?\d+)L?")


class ODataError(Exception):
    """An Exact-style error: HTTP status plus the text for error.message.value."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Query:
    params: dict[str, str]  # decoded names and values; `$select` and `%24select` are the same
    raw_parts: list[str]  # the client's own `name=value` pieces, minus $skiptoken, for __next

    def next_query(self, skiptoken: str) -> str:
        # Exact leaves the quotes of `guid'..'` unencoded in __next.
        return "&".join([*self.raw_parts, f"$skiptoken={skiptoken}"])


def parse_query(raw: str) -> Query:
    params = dict(parse_qsl(raw, keep_blank_values=True))
    parts = [p for p in raw.split("&") if p and unquote_plus(p.split("=", 1)[0]) != "$skiptoken"]
    return Query(params, parts)


def parse_select(spec: StreamSpec, query: Query) -> tuple[str, ...]:
    """The selected fields in catalog order (all of them without $select)."""
    value = query.params.get("$select")
    if value is None or not value.strip():
        if spec.select_required and query.params.get("$top", "").strip() != "1":
            raise ODataError(400, SELECT_REQUIRED)
        return tuple(spec.fields)
    names = [name.strip() for name in value.split(",")]
    if "*" in names:
        if spec.select_star_refused:
            raise ODataError(400, "The query option $select=* is not supported for this resource.")
        return tuple(spec.fields)
    for name in names:
        if name not in spec.fields:
            raise ODataError(400, f"'{name}' is not a valid property of {spec.entity}.")
    wanted = set(names)
    return tuple(name for name in spec.fields if name in wanted)


def check_mandatory_filter(query: Query, fields: tuple[str, ...]) -> None:
    """REFERENCE.md §5: some endpoints answer 400 unless `$filter` names one of `fields`."""
    condition = query.params.get("$filter", "")
    named = {match.group(1) for match in _CLAUSE.finditer(condition)}
    if not named & set(fields):
        raise ODataError(400, MANDATORY_FILTER + ",".join(fields))


def parse_sync_filter(query: Query) -> int | None:
    """`Timestamp gt <n>[L]` is the only filter sync endpoints take."""
    value = query.params.get("$filter")
    if value is None:
        return None
    match = _SYNC_FILTER.fullmatch(value)
    if match is None:
        raise ODataError(400, FILTER_UNSUPPORTED)
    return int(match.group(1))


def parse_modified_filter(spec: StreamSpec, query: Query) -> tuple[int, int] | None:
    """`Modified gt|ge|lt|le|eq datetime'..'` clauses joined by `and` -> inclusive ms bounds."""
    value = query.params.get("$filter")
    if value is None or not value.strip():
        return None
    clauses = [_CLAUSE.fullmatch(part) for part in _AND.split(value.strip())]
    if any(match is None for match in clauses):
        raise ODataError(400, FILTER_UNSUPPORTED)
    matches = [m for m in clauses if m is not None]
    others = sorted({m.group(1) for m in matches if m.group(1) != "Modified" or not spec.modified})
    if others:
        raise ODataError(400, f"Filtering on these fields is not supported: {', '.join(others)}")
    low, high = -NO_BOUND, NO_BOUND
    for match in matches:
        moment = datetime_literal_ms(match.group(3))
        low, high = _narrow(low, high, match.group(2), moment)
    return low, high


def _narrow(low: int, high: int, operator: str, moment: int) -> tuple[int, int]:
    if operator == "gt":
        return max(low, moment + 1), high
    if operator == "ge":
        return max(low, moment), high
    if operator == "lt":
        return low, min(high, moment - 1)
    if operator == "le":
        return low, min(high, moment)
    if operator == "eq":
        return max(low, moment), min(high, moment)
    raise ODataError(400, FILTER_UNSUPPORTED)


def datetime_literal_ms(text: str) -> int:
    """`datetime'2024-01-31T13:45:00[.fff]'` -> Exact's Amsterdam wall clock in epoch-style
    milliseconds. Exact compares it with the rows' wall clocks (`clock.wall_ms`), which is not the
    same as comparing instants in the repeated autumn hour."""
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        raise ODataError(400, f"Unrecognized 'Edm.DateTime' literal '{text}'.")
    year, month, day, hour, minute, second = (int(g or 0) for g in match.groups()[:6])
    fraction = (match.group(7) or "0").ljust(3, "0")[:3]
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds * 1000 + int(fraction)


def parse_guid_literal(text: str | None, name: str) -> str:
    if text is None:
        raise ODataError(400, f"The parameter '{name}' is mandatory.")
    match = _GUID_LITERAL.fullmatch(text.strip())
    if match is None:
        raise ODataError(400, f"The parameter '{name}' is not a valid Edm.Guid literal.")
    return match.group(1).lower()


def parse_mandatory_datetime(text: str | None, name: str) -> int:
    if text is None:
        raise ODataError(400, f"The parameter '{name}' is mandatory.")
    return datetime_literal_ms(text)


def parse_int_token(text: str) -> int:
    """`123L` or `123` (sync skiptokens and index skiptokens)."""
    match = _INT_TOKEN.fullmatch(text.strip())
    if match is None:
        raise ODataError(400, "The $skiptoken is not valid.")
    return int(match.group(1))


def parse_top(query: Query) -> int | None:
    value = query.params.get("$top")
    if value is None:
        return None
    try:
        top = int(value)
    except ValueError:
        raise ODataError(400, "The $top query option must be a non-negative integer.") from None
    if top < 0:
        raise ODataError(400, "The $top query option must be a non-negative integer.")
    return top
