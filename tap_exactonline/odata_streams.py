"""The streams of the standard, bulk, read and beta APIs: `__next` paging, incremental on
`Modified` where the entity has it; the signed-in user; read functions fed by a parent row."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from singer_sdk import Tap
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_exactonline.client import ExactStream
from tap_exactonline.errors import EntityRefusedError
from tap_exactonline.pages import value_of
from tap_exactonline.session import RunSession
from tap_exactonline.settings import parse_moment

# A bookmark or Modified further ahead than this is in the future, not a clock's drift.
FUTURE_TOLERANCE = timedelta(days=1)
# Before any row's Modified: a filter that leaves nothing out.
EARLIEST_MODIFIED = "1900-01-01T00:00:00"
# Exact's 400 for "mandatory filtering" ends with the fields a $filter may name (REFERENCE §5).
MANDATORY_FILTER_FIELDS = re.compile(
    r"mandatory filtering applied.*fields in the url:\s*([^\r\n]+)", re.IGNORECASE
)


def _in_the_future(value: str) -> bool:
    try:
        moment = parse_moment(value)
    except ValueError:
        return False  # not a date-time: the state checks say so
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment > datetime.now(timezone.utc) + FUTURE_TOLERANCE


class ODataStream(ExactStream):
    """Standard, bulk, read and beta endpoints: `__next` paging; incremental on `Modified`.

    Exact returns these in key order, not by Modified, so the bookmark moves only after a
    complete read (the SDK's progress markers).
    """

    def __init__(self, tap: Tap, session: RunSession) -> None:
        super().__init__(tap, session)
        if self.spec.modified:
            self.replication_key = self.plan.column_for["Modified"]
        # Divisions where Exact insists on a $filter ("mandatory filtering") that `Modified`
        # satisfies: a read without bookmark or start_date filters from EARLIEST_MODIFIED there.
        self._filter_required: set[int | None] = set()

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if self.replication_key and context is not None:
            # The signpost (this run's start) caps the bookmark, so a row that says it changed
            # in the future cannot carry it there. The SDK writes it only at the stream level,
            # which per-division bookmarks never see: write it to the division's state too.
            signpost = self.get_replication_key_signpost(context)
            if signpost is not None:
                self.write_signpost(context, signpost)
        yield from super().get_records(context)

    @override
    def get_starting_replication_key_value(self, context: Context | None) -> Any | None:
        """The bookmark, unless it lies in the future: then every change until that day would
        be skipped, so it is reported and the read starts from start_date (or the start)."""
        start = super().get_starting_replication_key_value(context)
        if not (isinstance(start, str) and start) or not _in_the_future(start):
            return start
        division = context.get("division") if context else None
        fallback = self.config.get("start_date")
        self.warn_once(
            "future bookmark",
            division,
            "%s: its bookmark %s is in the future (a damaged state, or a clock far ahead); "
            "reading from %s instead of skipping every change until then.",
            self.describe(division),
            start,
            f"start_date {fallback}" if fallback else "the start",
        )
        return fallback

    @override
    def to_record(self, row: Any, context: Context | None) -> dict[str, Any]:
        record = super().to_record(row, context)
        if self.replication_key:
            modified = record.get(self.replication_key)
            if isinstance(modified, str) and modified > self._future_from:
                self.warn_once(
                    "future row",
                    self._division,
                    "%s: a row (%s) says it was modified on %s, in the future; the bookmark "
                    "stays at the start of this run so no later change is skipped.",
                    self.describe(self._division),
                    ", ".join(f"{k}={value_of(row, k)}" for k in self.row_keys()),
                    modified,
                )
        return record

    @cached_property
    def _future_from(self) -> str:
        """An instant a day from now, formatted as records carry them (compared as text)."""
        return (datetime.now(timezone.utc) + FUTURE_TOLERANCE).isoformat()

    @override
    def query_params(self, context: Context | None) -> dict[str, str]:
        params = super().query_params(context)
        if self.replication_key:
            start = self.get_starting_replication_key_value(context)
            if not (isinstance(start, str) and start) and self._division in self._filter_required:
                start = EARLIEST_MODIFIED
            if isinstance(start, str) and start:
                params["$filter"] = f"Modified ge {self.session.clock.literal(start)}"
        return params

    @override
    def request_records(self, context: Context | None) -> Iterable[Any]:
        read_any = False
        try:
            for row in super().request_records(context):
                read_any = True
                yield row
        except EntityRefusedError as error:
            # Refused before any row and without a filter: ask again once, with a filter on
            # Modified, if that is one of the fields Exact accepts.
            if read_any or not self._modified_filter_helps(error, context):
                raise
            self._filter_required.add(self._division)
            self.logger.info(
                "%s: Exact requires a $filter here; reading with Modified ge %s instead.",
                self.describe(self._division),
                EARLIEST_MODIFIED,
            )
            yield from super().request_records(context)

    def _modified_filter_helps(self, error: EntityRefusedError, context: Context | None) -> bool:
        match = MANDATORY_FILTER_FIELDS.search(str(error))
        if match is None or self.replication_key is None:
            return False
        if self._division in self._filter_required:
            return False  # already asked with the filter
        if self.get_starting_replication_key_value(context):
            return False  # the refused request already filtered on Modified
        accepted = {field.strip(" .") for field in match.group(1).split(",")}
        return "Modified" in accepted


class CurrentUserStream(ODataStream):
    """`current/Me`: the signed-in user, once per run; its division is `CurrentDivision`."""

    @override
    def division_of_records(self, context: Context | None) -> int | None:
        return None  # each row says it: CurrentDivision

    @override
    def to_record(self, row: Any, context: Context | None) -> dict[str, Any]:
        return self.plan.apply(row, value_of(row, "CurrentDivision"))


class ChildReadStream(ODataStream):
    """A read function that needs a parent's key, e.g. ItemExtraField?itemId=..&modified=..

    Called once per parent row the run emits, so it is as incremental as its parent. A call per
    row adds up (a first run over 10,000 accounts is 10,000 calls), so children marked
    `on_request` run only when selected by name, not through "select everything".
    """

    state_partitioning_keys = ("division",)

    def __init__(self, tap: Tap, session: RunSession) -> None:
        super().__init__(tap, session)
        assert self.spec.child_of is not None
        self.child = self.spec.child_of
        self.replication_key = None  # the parent's bookmark decides what is read
        self._schema_sent = False
        self._link_column = self.plan.column_for[self.child.link_field]

    @property
    @override
    def selected(self) -> bool:
        return self.catalog_selected and self._wanted

    @selected.setter
    def selected(self, value: bool | None) -> None:
        self.set_catalog_selected(value)

    @cached_property
    def _wanted(self) -> bool:
        if not self.child.on_request or self.session.refusals.explicitly_selected(self.name):
            return True
        self.logger.info(
            "Not reading %s: it costs one API call per `%s` row; select it by name to read it.",
            self.name,
            self.child.parent,
        )
        return False

    @override
    def send_schema(self) -> None:
        # The SDK syncs a child once per parent row and would repeat the SCHEMA each time;
        # many targets flush a batch on every SCHEMA, loading one row at a time.
        if not self._schema_sent:
            super().send_schema()
            self._schema_sent = True

    @override
    def row_keys(self) -> list[str]:
        child = self.spec.child_of
        assert child is not None
        keys = super().row_keys()
        return keys if child.link_in_row else [k for k in keys if k != child.link_field]

    @override
    def query_params(self, context: Context | None) -> dict[str, str]:
        params = super().query_params(context)
        start = self.config.get("start_date") or EARLIEST_MODIFIED
        for name, source in self.child.parameters.items():
            kind, _, _ = source.partition(":")
            if kind == "guid":
                params[name] = f"guid'{context['parent_id'] if context else ''}'"
            elif kind == "datetime":
                params[name] = self.session.clock.literal(start)
        return params

    @override
    def to_record(self, row: Any, context: Context | None) -> dict[str, Any]:
        record = self.plan.apply(row, self._division)
        if not self.child.link_in_row and context:
            record[self._link_column] = context["parent_id"]
        return record
