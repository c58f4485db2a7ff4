"""The base stream: one Exact entity, read per division, through the run's session.

Streams are data: `streams.stream_classes` makes one class per catalog entity on one of the
generic kinds in `streams.py` and `sync_streams.py`; this module holds what all of them share
(`$select`, paging through `__next`, the page checks, refusals, rows to records).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime, timezone
from functools import cached_property
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import ParseResult, quote

import requests
from singer_sdk import Tap
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.types import Context
from singer_sdk.singerlib import RecordMessage
from singer_sdk.streams.rest import HTTPRequest, PageContext
from typing_extensions import override

from tap_exactonline.auth import ExactAuthenticator
from tap_exactonline.catalog import EntitySpec
from tap_exactonline.errors import (
    RUN_ENDING_ERRORS,
    RUN_WIDE_ERRORS,
    ChildReadFailedError,
    DailyBudgetSpentError,
    EntityRefusedError,
    refused_field_name,
)
from tap_exactonline.http import ODataNextLinkPaginator, division_of
from tap_exactonline.odata import DIVISION_FIELD, RecordPlan
from tap_exactonline.pages import (
    GarbledPageError,
    PageGuard,
    RowShape,
    rows_with_replacements,
    value_of,
    was_repaired,
)
from tap_exactonline.run_report import (
    DONE,
    FAILED,
    INACCESSIBLE,
    NOT_DUE,
    REFUSED,
    SKIPPED_FOR_BUDGET,
    STOPPED_FOR_BUDGET,
    described,
)
from tap_exactonline.sdk_compat import CompatStream
from tap_exactonline.session import RunSession
from tap_exactonline.settings import DEFAULT_FULL_TABLE_HOURS

# OData punctuation stays readable in the query; spaces become %20 (not "+").
ODATA_SAFE = "$,'():"
# In the state of a stream read in full, per division: when (ISO 8601, UTC) it was last read
# completely; `full_table_interval` hours later it is read again.
FULL_READ_KEY = "last_full_read_at"
# ... or when Exact last refused it there (a refusal is not retried before the interval).
REFUSED_READ_KEY = "last_refused_at"
# Fields dropped from one stream's `$select` in one division before the stream is refused:
# each drop costs a refused call, and Exact allows 10 errors an hour per endpoint.
MAX_DROPPED_FIELDS = 5


class ExactStream(CompatStream):
    """One Exact entity, read per division. Subclasses are generated from catalog specs."""

    spec: ClassVar[EntitySpec]
    # Records are built to match the schema exactly (RecordPlan), so the SDK's per-value
    # conformance pass would only cost CPU.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    # A redirect is never followed: another host's answer is not Exact's data (and our bearer
    # token stays with Exact). ExactHttp.check turns a 3xx into a retried failure.
    allow_redirects = False

    # Incremental on Exact's Timestamps (the sync API): see `Divisions` for moved databases.
    uses_timestamps = False

    def __init__(self, tap: Tap, session: RunSession) -> None:
        self.session = session
        rename = tap.config.get("column_names", "snake_case") == "snake_case"
        self.plan = RecordPlan(self.spec.record_fields, rename=rename, clock=session.clock)
        super().__init__(
            tap, name=self.spec.name, schema=self.spec.schema(self.plan), path=self.spec.url_path
        )
        keys = [self.plan.division_column, *(self.plan.column_for[k] for k in self.spec.keys)]
        self.primary_keys = list(dict.fromkeys(keys))
        self._division: int | None = None
        self._stopped_short = False
        # Per division, the fields Exact no longer accepts in `$select` (found in this run).
        self._dropped_fields: dict[int | None, set[str]] = {}
        # Divisions this run did not read completely (budget spent, refused, inaccessible).
        self.incomplete_divisions: set[int | None] = set()
        self._not_due: set[int | None] = set()  # of those, the ones not due (full_table_interval)
        # The checks of the read in progress (made anew for each division and parent row).
        self._guard = PageGuard(read_page=self.read_page, keys=())
        # (what, division) warnings already given in this run.
        self._warned: set[tuple[str, int | None]] = set()

    @property
    @override
    def url_base(self) -> str:
        return self.session.api_base

    @property
    @override
    def requests_session(self) -> requests.Session:
        return self.session.http.session  # prepares requests exactly as ExactHttp sends them

    @property
    @override
    def authenticator(self) -> ExactAuthenticator:
        # The SDK applies this when it prepares a request; its default authenticator would
        # re-encode Exact's OData query (`$filter=Modified ge datetime'...'`).
        return self.session.authenticator

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    @property
    @override
    def partitions(self) -> list[dict[str, Any]] | None:
        if not self.spec.division_in_path or self.parent_stream_type is not None:
            return None
        try:
            divisions = self.session.divisions.to_read
        except RUN_ENDING_ERRORS as error:
            self.session.stop_with_error(error)
        return [{"division": division} for division in divisions]

    @override
    def before_first_read(self, context: Context | None) -> None:
        self._forget_bookmark_of_another_api(context)

    def _forget_bookmark_of_another_api(self, context: Context | None) -> None:
        """A bookmark on another replication key was written while `stream_api` read this stream
        from another API: a Timestamp is a row version, not a Modified date, and the other way
        round. The SDK would only skip it for this run's start and keep it in the state; drop
        it, so the read starts from start_date or the start, and say why."""
        state = self.get_context_state(context)
        kept, current = state.get("replication_key"), self.replication_key
        if state.get("replication_key_value") is None or not isinstance(kept, str):
            return
        if current is not None and kept.lower() == current.lower():
            return  # the same field (`column_names` may have changed its case): not ours
        start_date = self.config.get("start_date")
        if current is None:
            how = "in full"
        else:
            how = f"from start_date {start_date}" if start_date else "from the start"
        self.logger.warning(
            "%s: its bookmark is on `%s`, written while `stream_api` read it from another API; "
            "reading it %s instead.",
            self.describe(context.get("division") if context else None),
            kept,
            how,
        )
        state.pop("replication_key", None)
        state.pop("replication_key_value", None)

    def describe(self, division: int | None) -> str:
        return described(self.name, division)

    @override
    def request_decorator(self, func: Any) -> Any:
        # Not the SDK's own request (`func`): every request goes out through ExactHttp.send,
        # the tap's one request path (budgets, token, deadline, checks, retries).
        def send(prepared: requests.PreparedRequest, context: Context | None) -> requests.Response:
            what = self.describe(division_of(prepared.url or ""))
            self.session.flush_output()  # the target works on the records while Exact answers
            http = self.session.http
            calls_before = http.calls
            try:
                return http.send(prepared, what=what, validate=self.validate_response)
            finally:
                self.session.report.calls(self.name, self._division, http.calls - calls_before)

        return send

    @override
    def validate_response(self, response: requests.Response) -> None:
        """The page checks of this read (`PageGuard`); a page that fails them is read again."""
        try:
            self._guard.check(response)
        except GarbledPageError as garbled:
            what = self.describe(division_of(response.url))
            raise GarbledPageError(f"{what}: {garbled}", response) from None

    def row_keys(self) -> list[str]:
        """The key fields every row of a page must carry (the division comes from the URL)."""
        return [key for key in self.spec.keys if key != DIVISION_FIELD]

    def new_page_guard(self) -> PageGuard:
        # A read that ends in ACTIVATE_VERSION believes an empty first page only when Exact
        # says so twice: once from a proxy or a hiccup would mark a whole division deleted.
        return PageGuard(
            read_page=self.read_page,
            keys=self.row_keys(),
            recheck_empty_first_page=self.versioned,
        )

    @cached_property
    def row_shape(self) -> RowShape:
        """The selected fields, as the struct this stream's pages decode into."""
        self.plan.select(self.selected_fields)
        return RowShape(self.plan)

    def read_page(self, response: requests.Response) -> tuple[list[Any], str | None]:
        """A page's rows (structs of `row_shape`) and its `__next` link."""
        return self.row_shape.page(response)

    def warn_once(self, what: str, division: int | None, message: str, *args: object) -> None:
        if (what, division) not in self._warned:
            self._warned.add((what, division))
            self.logger.warning(message, *args)

    @cached_property
    def essential_fields(self) -> frozenset[str]:
        """Keys and bookmarks: always read, and never read without."""
        return frozenset({*self.spec.keys, "Timestamp", "Modified", DIVISION_FIELD})

    @cached_property
    def selected_fields(self) -> list[str]:
        """Exact fields whose columns are selected in the catalog (keys and bookmarks always)."""
        return [
            name
            for name in self.spec.fields
            if name in self.essential_fields
            or self.mask[("properties", self.plan.column_for[name])]
        ]

    def asked_fields(self) -> list[str]:
        """The `$select` of this division: the selected fields Exact still accepts here."""
        dropped = self._dropped_fields.get(self._division, set())
        return [name for name in self.selected_fields if name not in dropped]

    def query_params(self, context: Context | None) -> dict[str, str]:
        """Options for the first page; later pages follow Exact's `__next` link as given."""
        return {"$select": ",".join(self.asked_fields())}

    @override
    def request_records(self, context: Context | None) -> Iterable[Any]:
        """Read; a field Exact no longer accepts is dropped from `$select` and asked again."""
        while True:
            read_any = False
            self._guard = self.new_page_guard()
            try:
                for row in super().request_records(context):
                    read_any = True
                    yield row
            except EntityRefusedError as error:
                field = None if read_any else self._droppable_field(error)
                if field is None:
                    raise
                self._drop_field(field, error)
            else:
                return

    def _droppable_field(self, error: EntityRefusedError) -> str | None:
        """The field Exact's 400 names, if reading on without it loses only that column: one we
        asked for, not a key or bookmark, within MAX_DROPPED_FIELDS."""
        named = refused_field_name(str(error)) if error.status == HTTPStatus.BAD_REQUEST else None
        if named is None:
            return None
        if len(self._dropped_fields.get(self._division, ())) >= MAX_DROPPED_FIELDS:
            return None
        asked = {name.lower(): name for name in self.asked_fields()}
        field = asked.get(named.lower())
        return None if field is None or field in self.essential_fields else field

    def _drop_field(self, field: str, error: EntityRefusedError) -> None:
        # The column stays in the schema (null here), so the target's table keeps its shape.
        self._dropped_fields.setdefault(self._division, set()).add(field)
        self.logger.warning(
            "%s: Exact no longer accepts the field %s (%s); reading without it, so column %s "
            "stays empty (null) there. A newer tap-exactonline may know its new name.",
            self.describe(self._division),
            field,
            str(error).split(": ", 1)[-1],
            self.plan.column_for[field],
        )

    @override
    def get_http_request(self, *, page: PageContext[ParseResult]) -> HTTPRequest:
        if page.next_page_token:
            # The SDK hands the `__next` link back parsed; Exact's link already carries every
            # query option, so it is sent exactly as given.
            return HTTPRequest(url=page.next_page_token.geturl(), headers=self.http_headers)
        url = self.get_url(page.stream_context)
        params = self.query_params(page.stream_context)
        if params:
            url += "?" + "&".join(f"{k}={quote(v, safe=ODATA_SAFE)}" for k, v in params.items())
        return HTTPRequest(url=url, headers=self.http_headers)

    @override
    def get_new_paginator(self) -> ODataNextLinkPaginator:
        return ODataNextLinkPaginator(
            origin=self.session.origin, read_page=self.read_page, may_continue=self._may_continue
        )

    def _may_continue(self) -> bool:
        if self.session.limiter.daily_budget_spent(self._division):
            self._stopped_short = True
            return False
        return True

    @override
    def parse_response(self, response: requests.Response) -> Iterable[Any]:
        rows, _ = self.read_page(response)
        if was_repaired(response):
            self._report_repaired_rows(rows)
        self.session.report.page(self.name, self._division, len(rows))
        return rows

    def _report_repaired_rows(self, rows: list[Any]) -> None:
        """Text that was not valid UTF-8 (or a lone surrogate) became U+FFFD: say which rows,
        by key; the rows load, so one bad value does not block every later run."""
        for row in rows_with_replacements(rows):
            key = ", ".join(f"{name}={value_of(row, name)}" for name in self.row_keys())
            self.logger.warning(
                "%s: the row %s holds text that is not valid UTF-8; loaded with U+FFFD in its "
                "place. Correct it in Exact to load the original.",
                self.describe(self._division),
                key,
            )

    def to_record(self, row: Any, context: Context | None) -> dict[str, Any]:
        """The record of a row (a struct of `row_shape`, from parse_response). Made inside the
        read (`get_records`), not in the SDK's `post_process`: a row that cannot be made a record
        fails this read, not the whole run."""
        return self.plan.apply(row, self._division)

    def division_of_records(self, context: Context | None) -> int | None:
        """The division every record of this read carries (part of every key)."""
        if context and "division" in context:
            return int(context["division"])
        # system/Users has no division in its URL: its rows belong to the login, so they carry
        # the login's current division.
        try:
            return self.session.current_division
        except RUN_ENDING_ERRORS as error:
            self.session.stop_with_error(error)

    # --- versioned reads: the target marks the rows a complete read did not return ----------

    @cached_property
    def versioned(self) -> bool:
        """Records carry this run's version, and a complete read of every division ends with
        ACTIVATE_VERSION: target-postgres then marks every row of the table the read did not
        return as deleted. Here: streams read in full (no bookmark, so a row that leaves Exact
        is never seen again), unless a child stream (read per parent row, never whole) or
        switched off."""
        return (
            self.replication_key is None
            and self.parent_stream_type is None
            and self.session.retracts_vanished_rows
        )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if context is None and self.partitions == []:
            return  # no division to read in this job (a `division_shard` share can be empty)
        if self.versioned and self.stream_version is None:
            self.stream_version = self.session.table_version
        yield from self._read_division(context)
        if self.versioned and self._last_partition(context):
            self._activate_version_if_complete()

    def _last_partition(self, context: Context | None) -> bool:
        if not context or "division" not in context:
            return True  # one read for the whole login
        return bool(context["division"] == self.session.divisions.to_read[-1])

    def _activate_version_if_complete(self) -> None:
        """ACTIVATE_VERSION is table-wide: sent only when every division of the run was read
        completely in this run, so a division that failed, was refused, ran out of budget or
        was not due cannot make its rows look deleted."""
        unread = sorted(self.incomplete_divisions, key=lambda division: division or 0)
        if unread:
            if not self.incomplete_divisions <= self._not_due:  # a stream not due says so
                self.no_activate_version(", ".join(str(division) for division in unread))
            return
        assert self.stream_version is not None
        self.activate_version(self.stream_version)
        self.after_activate_version()

    def no_activate_version(self, unread: str) -> None:
        """Said when a division was not read completely (overridden for resyncs)."""
        self.logger.info(
            "%s: not every division was read completely in this run (%s), so no rows are "
            "marked deleted.",
            self.name,
            unread,
        )

    def after_activate_version(self) -> None:
        """Said once the target was told which rows are current (overridden for resyncs)."""
        self.logger.debug(
            "%s was read in full in every division: rows it no longer returned are marked "
            "deleted (ACTIVATE_VERSION %d).",
            self.name,
            self.stream_version,
        )

    def _skipped(self, context: Context | None, division: int | None, *, tell: bool) -> bool:
        """Whether this division is not read in this run; if so, the report says why."""
        if self.session.limiter.daily_budget_spent(division):
            self.logger.info("Skipping %s: the daily budget is spent.", self.describe(division))
            status = SKIPPED_FOR_BUDGET
        elif self.session.refusals.is_refused(self.name, division):
            status = REFUSED  # a child stream refused once is not asked again per parent row
        elif self.session.failed(self.name, division):
            status = FAILED  # nor is one that failed: each try would cost its retries again
        elif self.replication_key is None and tell and not self._full_read_due(context):
            status, tell = NOT_DUE, False
            self._not_due.add(division)
        else:
            return False
        self.incomplete_divisions.add(division)
        self.session.report.finish(self.name, division, status, tell=tell)
        return True

    def _read_division(self, context: Context | None) -> Iterable[dict[str, Any]]:
        division = self.division_of_records(context)
        self._division, self._stopped_short = division, False
        self.row_shape  # noqa: B018 - the fields are chosen once the catalog is known
        report = self.session.report
        # A child stream reads once per parent row: its line comes with its parent's.
        tell = not (context and "parent_id" in context)
        read_in_full = self.replication_key is None and tell
        if self._skipped(context, division, tell=tell):
            return
        report.start(self.name, division)
        status = DONE
        failure: Exception | None = None
        bookmark_at_start = self._bookmark(context)
        try:
            for row in super().get_records(context):
                yield self.to_record(row, context)
                # The SDK has read this record's children by now (before it moved the bookmark
                # to this record): one that failed stops this read.
                self._stop_if_a_child_failed(division)
        except ChildReadFailedError as error:
            # The bookmark may already be past parent rows whose children were not read: back
            # to where this read began, so the next run reads them and their children again.
            failure, status = error, FAILED
            self._stopped_short = True
            self._restore_bookmark(context, bookmark_at_start)
        except DailyBudgetSpentError:
            self._stopped_short = True
        except EntityRefusedError as error:
            if self.session.divisions.forbids(division, error):
                status = INACCESSIBLE
            else:
                self.session.refusals.report(self.name, division, error)
                status = REFUSED
            self._stopped_short = True
        except RUN_WIDE_ERRORS as error:  # every later call would fail alike
            self.session.stop_with_error(error)
        except Exception as error:  # anything else: this read fails; the run goes on
            failure, status = error, FAILED
            self._stopped_short = True
        if self._stopped_short:
            self.incomplete_divisions.add(division)
            status = STOPPED_FOR_BUDGET if status == DONE else status
            if not self.is_sorted:
                # Unsorted rows: the bookmark may only move after a complete read, so keep the
                # old one and let the next run read this window again. (A sorted stream's
                # bookmark is that of its last row, from a page that passed its checks.)
                self.get_context_state(context).pop("progress_markers", None)
        if read_in_full and (not self._stopped_short or status in (REFUSED, INACCESSIBLE)):
            # Text, not a number: a target parses the state's numbers as Decimal and may then
            # fail to write the state back (target-postgres does). A refusal counts as a read
            # for `full_table_interval`: asked again every run, it would make every division's
            # read due every run.
            key = FULL_READ_KEY if not self._stopped_short else REFUSED_READ_KEY
            self.get_context_state(context)[key] = datetime.now(timezone.utc).isoformat()
        if failure is not None:
            self.session.failures.report(self.name, division, failure)
        report.finish(self.name, division, status, tell=tell)
        if tell:
            for child in self.child_streams:
                report.tell(child.name, division)

    def _stop_if_a_child_failed(self, division: int | None) -> None:
        for child in self.child_streams:
            if self.session.failed(child.name, division):
                raise ChildReadFailedError(
                    f"{child.name} failed for one of its rows, so its read stops there and its "
                    "bookmark stays where it began (the next run reads those rows and their "
                    f"{child.name} again)"
                )

    _BOOKMARK_KEYS = ("replication_key", "replication_key_value", "progress_markers")

    def _bookmark(self, context: Context | None) -> dict[str, Any]:
        state = self.get_context_state(context)
        return {key: copy.deepcopy(state[key]) for key in self._BOOKMARK_KEYS if key in state}

    def _restore_bookmark(self, context: Context | None, bookmark: dict[str, Any]) -> None:
        state = self.get_context_state(context)
        for key in self._BOOKMARK_KEYS:
            state.pop(key, None)
        state.update(bookmark)

    @cached_property
    def _full_read_due_now(self) -> bool:
        """A stream read in full (no bookmark) is read again once `full_table_interval` hours
        have passed since its last complete read in any division of the run; a run without
        state (a first run, `--full-refresh`) reads it. Every division is then read, also one
        read more recently: divisions read together can end in one ACTIVATE_VERSION, where
        divisions read in turn (one added later, one that failed once) never would."""
        interval = float(self.config.get("full_table_interval", DEFAULT_FULL_TABLE_HOURS))
        if interval <= 0:
            return True
        contexts: list[Context | None] = [*self.partitions] if self.partitions else [None]
        now = datetime.now(timezone.utc)
        for context in contexts:
            state = self.get_context_state(context)
            try:
                last = max(
                    datetime.fromisoformat(str(state[key]))
                    for key in (FULL_READ_KEY, REFUSED_READ_KEY)
                    if key in state
                )
            except ValueError:  # never read, or not a time we wrote
                return True
            age = (now - last).total_seconds()
            if age >= interval * 3600 or age < 0:
                return True
        return False

    def _full_read_due(self, context: Context | None) -> bool:
        return self._full_read_due_now

    @override
    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterable[Context | None]:
        # The SDK asks every stream for every record; only parents have anything to say.
        if self.child_streams:
            yield self.get_child_context(record, context)

    @override
    def get_child_context(self, record: dict[str, Any], context: Context | None) -> dict[str, Any]:
        key_column = self.plan.column_for[self.spec.keys[0]]
        return {"division": record[self.plan.division_column], "parent_id": record[key_column]}

    @override
    def record_messages(self, record: dict[str, Any]) -> Iterable[RecordMessage]:
        # The SDK would walk every record to pop deselected columns and conform types; the
        # RecordPlan already built exactly the selected, typed columns. Skipping that walk is
        # about a fifth of the tap's CPU.
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self.stream_version,
                    time_extracted=datetime.now(timezone.utc),
                )
