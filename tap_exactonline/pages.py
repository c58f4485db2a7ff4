"""Exact's pages: decoding a body, its OData shape, and the checks a page passes before its rows
count.

A proxy, a cache or a cut connection can hand back something that parses but is not the page
asked for: `{}`, the previous page again, an empty page in the middle of a read, a `__next` link
that leads back. Taken as data, each ends a read early and the bookmark moves past rows never
read. `PageGuard` refuses such a page with `GarbledPageError`, and the page is read again (twice
at most, `http.MAX_REREADS_OF_A_WRONG_PAGE`); if it persists, that stream fails in that division
with one line, its bookmark stays where its rows are, and the run goes on (`failures.py`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_exactonline.odata import RecordPlan, parse_int64

_PAYLOAD_ATTRIBUTE = "_exact_payload"
_REPAIRED_ATTRIBUTE = "_exact_repaired"
_ROWS_ATTRIBUTE = "_exact_rows"
# On a row struct's class: Exact's field names -> the struct's attribute names.
_ATTRIBUTES = "_exact_attributes"
_NOT_DECODED = object()
# What decoding a body that is not JSON text raises (a proxy page, a cut-off answer, bad bytes).
UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError)
# In JSON text: an escaped backslash (kept), a surrogate pair (kept), or a lone surrogate.
_SURROGATE_ESCAPES = re.compile(
    r"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|\\u([dD][89a-fA-F][0-9a-fA-F]{2})"
)


# Timestamps are SQL Server rowversions, counted up by every write in an Exact database; even
# a million writes a second would take 146,000 years to reach this. A value this high is
# damage, and as a bookmark it would make every later read return nothing.
IMPOSSIBLE_TIMESTAMP = 2**62


class GarbledPageError(RetriableAPIError):
    """A page that is not what was asked for: read again, a few times at most."""


def _without_lone_surrogates(match: re.Match[str]) -> str:
    return "\\ufffd" if match.group(1) else match.group(0)


def payload_of(response: requests.Response) -> Any:
    """The decoded JSON body, decoded once per response.

    Invalid UTF-8 or a lone UTF-16 surrogate in one value would make the whole page unreadable,
    on every run: such text is read with U+FFFD in place of what cannot be text, and the page
    is marked (`was_repaired`) so the stream can name the rows.
    """
    payload = getattr(response, _PAYLOAD_ATTRIBUTE, _NOT_DECODED)
    if payload is _NOT_DECODED:
        try:
            payload = msgspec.json.decode(response.content)
        except UNDECODABLE as undecodable:
            text = response.content.decode("utf-8", "replace")
            try:
                payload = msgspec.json.decode(
                    _SURROGATE_ESCAPES.sub(_without_lone_surrogates, text)
                )
            except msgspec.DecodeError:
                raise undecodable from None  # not JSON at all (a proxy page, cut off)
            setattr(response, _REPAIRED_ATTRIBUTE, True)
        setattr(response, _PAYLOAD_ATTRIBUTE, payload)
    return payload


def was_repaired(response: requests.Response) -> bool:
    return bool(getattr(response, _REPAIRED_ATTRIBUTE, False))


def odata_page(response: requests.Response) -> tuple[list[dict[str, Any]], str | None]:
    """The rows and the `__next` link of an OData v2 answer, or GarbledPageError.

    Collections are `{"d": {"results": [...], "__next": "..."}}`, or `{"d": [...]}` in OData's
    V1 form; a single entity is `{"d": {...}}`.
    """
    payload = payload_of(response)
    if not isinstance(payload, dict) or "d" not in payload:
        kind = "an object without `d`" if isinstance(payload, dict) else _json_kind(payload)
        raise GarbledPageError(f"the answer is {kind}, not an OData page", response)
    body = payload["d"]
    if isinstance(body, list):
        rows: Any = body
        next_link = None
    elif isinstance(body, dict) and "results" in body:
        rows = body["results"]
        next_link = body.get("__next")
        if not isinstance(rows, list):
            raise GarbledPageError(f"`d.results` is {_json_kind(rows)}, not a list", response)
        if next_link is not None and not isinstance(next_link, str):
            raise GarbledPageError("`d.__next` is not a link", response)
    elif isinstance(body, dict) and any(not name.startswith("__") for name in body):
        return [body], None  # a single entity
    else:
        raise GarbledPageError(f"`d` is {_json_kind(body)}, neither rows nor an entity", response)
    if not all(isinstance(row, dict) for row in rows):
        raise GarbledPageError("`d.results` holds something other than rows", response)
    return rows, next_link or None


def odata_rows(response: requests.Response) -> list[dict[str, Any]]:
    return odata_page(response)[0]


# A stream's page: its rows (a `RowShape`'s structs) and the `__next` link.
Page = tuple[list[Any], str | None]


class RowShape:
    """The fields a stream selects, as a msgspec Struct its pages decode straight into.

    Per row this skips what a dict would cost: Exact's `__metadata`, every field not asked for,
    a hash table, and the garbage collector's attention (rows hold only JSON values, never a
    cycle). A page in any other form (OData's V1 list, a single entity, repaired text) or one
    that is garbled takes the general path (`odata_page`) and its rows become the same structs,
    so everything after this sees one kind of row.
    """

    def __init__(self, plan: RecordPlan) -> None:
        """The struct carries Exact's names on the wire and the plan's column names as its
        attributes, so `msgspec.structs.asdict` gives the record's columns at C speed."""
        names, columns = plan.order, plan.columns
        unusable = [column for column in columns if not column.isidentifier() or column[0] == "_"]
        if unusable or len(set(columns)) < len(columns):
            # A catalog change would otherwise merge two columns or fail deep inside msgspec.
            raise ValueError(f"columns a row struct cannot hold: {unusable or 'duplicates'}")
        fields = [
            (column, Any, msgspec.field(default=None, name=name))
            for column, name in zip(columns, names, strict=True)
        ]
        namespace = {_ATTRIBUTES: dict(zip(names, columns, strict=True))}
        self.row = msgspec.defstruct("ExactRow", fields, gc=False, namespace=namespace)
        results = msgspec.defstruct(
            "ODataResults",
            [
                ("results", list[self.row]),  # type: ignore[name-defined]
                ("next_link", str | None, msgspec.field(default=None, name="__next")),
            ],
        )
        self._decoder = msgspec.json.Decoder(msgspec.defstruct("ODataPage", [("d", results)]))

    def page(self, response: requests.Response) -> Page:
        """The rows and `__next` link of a stream's page (decoded once per response), or
        GarbledPageError."""
        cached = getattr(response, _ROWS_ATTRIBUTE, None)
        if cached is not None and cached[0] is self:
            return cached[1], cached[2]
        try:
            decoded: Any = self._decoder.decode(response.content)
            rows, next_link = decoded.d.results, decoded.d.next_link or None
        except UNDECODABLE:  # another form, or text that is not valid: the general path
            plain_rows, next_link = odata_page(response)
            rows = self.rows_of(plain_rows)
        setattr(response, _ROWS_ATTRIBUTE, (self, rows, next_link))
        return rows, next_link

    def rows_of(self, plain_rows: list[dict[str, Any]]) -> list[Any]:
        """Rows decoded as dicts (the general path) as this shape's structs."""
        return msgspec.convert(plain_rows, list[self.row])  # type: ignore[name-defined]


def value_of(row: object, name: str) -> Any:
    """The Exact field `name` of a stream's row (a `RowShape` struct); None if not asked for."""
    attribute = getattr(row, _ATTRIBUTES).get(name)
    return None if attribute is None else getattr(row, attribute)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an empty object" if not value else "an object"
    if isinstance(value, list):
        return "a list"
    return f"a JSON {type(value).__name__}"


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()


class PageGuard:
    """The checks of one read (one stream, one division), page after page.

    - the page has OData's shape, and every row its key;
    - its `__next` link is one this read has not followed before (A -> B -> A never ends);
    - its rows are not a page this read already had (a cache replaying a page under a new link);
    - on the sync API, its Timestamps are above everything read so far (rows come in Timestamp
      order, so a page at or below them is a stale copy);
    - an empty page in the middle of a read, or the empty first page of a read that may mark
      rows deleted (a resync), is asked for again once: only a second empty answer is believed.

    Memory stays small: a 16-byte digest per page, not the rows.
    """

    def __init__(
        self,
        *,
        read_page: Callable[[requests.Response], Page],
        keys: Sequence[str],
        timestamp_after: int | None = None,
        recheck_empty_first_page: bool = False,
    ) -> None:
        self._read_page = read_page
        self._keys = list(keys)
        self._timestamp_after = timestamp_after
        self._recheck_empty_first_page = recheck_empty_first_page
        self._links: set[bytes] = set()
        self._pages: set[bytes] = set()
        self._empty_asked_again: str | None = None
        self.pages = 0
        self.rows = 0

    def check(self, response: requests.Response) -> None:
        """Raise GarbledPageError unless the page can count; on success, remember it."""
        rows, next_link = self._read_page(response)
        url = response.request.url if response.request is not None else response.url
        if next_link is not None and _digest(next_link) in self._links:
            raise GarbledPageError("its `__next` link leads back to a page already read", response)
        if not rows:
            self._check_empty(response, str(url), next_link)
        else:
            self._check_rows(response, rows)
        if next_link is not None:
            self._links.add(_digest(next_link))
        self.pages += 1
        self.rows += len(rows)

    def _check_empty(self, response: requests.Response, url: str, next_link: str | None) -> None:
        if next_link is not None:
            raise GarbledPageError("an empty page that says more pages follow", response)
        if self.pages == 0 and not self._recheck_empty_first_page:
            return  # nothing changed: the common answer of an incremental read
        if self._empty_asked_again != url:
            self._empty_asked_again = url
            where = "in the middle of the read" if self.pages else "for a read that marks rows"
            raise GarbledPageError(f"an empty page {where}; asking once more", response)

    def _check_rows(self, response: requests.Response, rows: list[Any]) -> None:
        for row in rows:
            missing = [key for key in self._keys if value_of(row, key) is None]
            if missing:
                raise GarbledPageError(f"a row without its key ({', '.join(missing)})", response)
        if self._timestamp_after is not None:
            stamps = [parse_int64(value_of(row, "Timestamp")) for row in rows]
            whole = [stamp for stamp in stamps if isinstance(stamp, int)]
            if len(whole) != len(stamps):
                raise GarbledPageError("a row without a whole-number Timestamp", response)
            if max(whole) >= IMPOSSIBLE_TIMESTAMP:
                raise GarbledPageError(
                    f"an impossible Timestamp ({max(whole)}): taken as a bookmark it would "
                    "skip every later change",
                    response,
                )
            if min(whole) <= self._timestamp_after:
                raise GarbledPageError(
                    f"Timestamps that do not move forward (a row at {min(whole)}, after "
                    f"{self._timestamp_after} was read): a repeated or stale page",
                    response,
                )
            self._timestamp_after = max(whole)
            return
        digest = _digest(*(tuple(value_of(row, key) for key in self._keys) for row in rows))
        if digest in self._pages:
            raise GarbledPageError("the same rows as a page already read", response)
        self._pages.add(digest)


def rows_with_replacements(rows: Iterable[Any]) -> Iterable[Any]:
    """Rows of a repaired page that carry U+FFFD (text Exact sent that was not valid)."""
    for row in rows:
        values = msgspec.structs.astuple(row)
        if any(isinstance(value, str) and "\ufffd" in value for value in values):
            yield row
