"""One generic stream per Exact API kind; `stream_classes` makes a class per catalog entity."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any
from urllib.parse import quote

import requests
from singer_sdk import Stream, Tap
from singer_sdk.helpers.types import Context
from singer_sdk.singerlib import RecordMessage, SchemaMessage
from typing_extensions import override

from tap_exactonline.catalog import SOFT_DELETE_COLUMN, EntitySpec
from tap_exactonline.client import ODATA_SAFE, EntityRefusedError, ExactStream
from tap_exactonline.odata import parse_int64
from tap_exactonline.pages import IMPOSSIBLE_TIMESTAMP, PageGuard, odata_rows
from tap_exactonline.settings import parse_moment

FIRST_SYNC_TIMESTAMP = 1
# A bookmark or Modified further ahead than this is in the future, not a clock's drift.
FUTURE_TOLERANCE = timedelta(days=1)
DELETED_PATH = "sync/Deleted"
DELETION_LOG_DAYS = 60  # Exact keeps sync/Deleted entries for two months
SYNC_TIMESTAMP_PATH = "read/sync/Sync/SyncTimestamp"
# Above any Timestamp: asks for nothing (SyncTimestamp found no row since start_date).
NO_ROWS_TIMESTAMP = 2**63 - 1
# The entities SyncTimestamp serves (Exact's reference page for read/sync/Sync/SyncTimestamp).
SYNC_TIMESTAMP_ENTITIES = frozenset(
    {
        "BillOfMaterialMaterials",
        "BillOfMaterialVersions",
        "GoodsDeliveries",
        "GoodsDeliveryLines",
        "ItemStorageLocations",
        "MaterialIssues",
        "ProjectPlanning",
        "ProjectWBS",
        "Projects",
        "PurchaseOrders",
        "QuotationHeaders",
        "QuotationLines",
        "SalesInvoices",
        "SalesOrderHeaders",
        "SalesOrderLines",
        "ShopOrderMaterialPlans",
        "ShopOrderPurchasePlanning",
        "ShopOrderRoutingStepPlans",
        "ShopOrderSubOrders",
        "ShopOrders",
        "SubscriptionLines",
        "Subscriptions",
        "TimeCostTransactions",
        "TransactionLines",
    }
)
TOMBSTONE_SOURCE_FIELDS = ("EntityKey", "EntityType", "DeletedDate")
# Before any row's Modified: a filter that leaves nothing out.
EARLIEST_MODIFIED = "1900-01-01T00:00:00"
# Exact's 400 for "mandatory filtering" ends with the fields a $filter may name (REFERENCE §5).
MANDATORY_FILTER_FIELDS = re.compile(
    r"mandatory filtering applied.*fields in the url:\s*([^\r\n]+)", re.IGNORECASE
)


class ApiStream(ExactStream):
    """A stream on the API the catalog, or the user's `stream_api`, chose for its entity."""

    @override
    def _write_starting_replication_value(self, context: Context | None) -> None:
        self._forget_bookmark_of_another_api(context)
        super()._write_starting_replication_value(context)

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


class SyncStream(ApiStream):
    """`/sync/...`: 1,000 rows a call, incremental on Exact's rowversion `Timestamp`.

    Rows come in Timestamp order, so the bookmark advances with every record and an
    interrupted run resumes mid-stream.
    """

    is_sorted = True
    # Exact does not document the order across pages; each page is sorted below, and a
    # bookmark that steps back only means re-reading a few rows, never losing any.
    check_sorted = False

    def __init__(self, tap: Tap) -> None:
        super().__init__(tap)
        self.replication_key = self.plan.column_for["Timestamp"]
        self._start = 0  # the Timestamp this partition's read starts after
        self.resync = self.name in (self.config.get("resync_streams") or [])
        if self.resync:
            # Records carry this version; ACTIVATE_VERSION after the read makes the target mark
            # every older row, i.e. every row this read did not return, as deleted.
            self._stream_version = int(time.time() * 1000)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        yield from super().get_records(context)
        divisions = self.exact.divisions
        if self.resync and context and context.get("division") == divisions[-1]:
            self._finish_resync(divisions)

    def _finish_resync(self, divisions: list[int]) -> None:
        if self.incomplete_divisions:
            self.logger.warning(
                "Resync of %s: not every division was read completely (%s), so no rows are "
                "marked deleted; run again.",
                self.name,
                ", ".join(map(str, sorted(d for d in self.incomplete_divisions if d))),
            )
            return
        assert self._stream_version is not None
        self._write_activate_version_message(self._stream_version)
        self.logger.warning(
            "Resync of %s read divisions %s from the start; the target now marks every other row "
            "of its table as deleted. Remove it from `resync_streams` so later runs are "
            "incremental again.",
            self.name,
            ", ".join(map(str, divisions)),
        )

    def starting_timestamp(self, context: Context | None) -> int:
        if self.resync:
            return 0
        # Without a bookmark the SDK offers start_date here; a Timestamp is a row version, not a
        # date, so Exact's SyncTimestamp translates it where it can.
        value = parse_int64(self.get_starting_replication_key_value(context))
        if isinstance(value, int) and value >= IMPOSSIBLE_TIMESTAMP:
            division = context.get("division") if context else None
            self.warn_once(
                "future bookmark",
                division,
                "%s: its bookmark Timestamp %d is beyond any real one (a damaged state); "
                "reading from start_date or the start instead of skipping every change.",
                self.describe(division),
                value,
            )
        elif isinstance(value, int) and value > FIRST_SYNC_TIMESTAMP:
            return value
        start_date = self.config.get("start_date")
        if start_date and context and "division" in context:
            return self._timestamp_at(str(start_date), int(context["division"]))
        return 0

    def _timestamp_at(self, start_date: str, division: int) -> int:
        """The Timestamp just below the first row modified at or after start_date (one call per
        entity and division), or 0 (from the start) for entities SyncTimestamp does not serve."""
        entity = self.spec.entity
        if entity not in SYNC_TIMESTAMP_ENTITIES:
            self.logger.info(
                "start_date: Exact's SyncTimestamp does not serve %s; reading %s from the start.",
                entity,
                self.describe(division),
            )
            return 0
        url = (
            f"{self.url_base}/{division}/{SYNC_TIMESTAMP_PATH}"
            f"?modified={quote(self.exact.clock.literal(start_date), safe=ODATA_SAFE)}"
            f"&endPoint=%27{entity}%27"
        )
        rows = list(odata_rows(self.exact.get(url)))
        first = parse_int64(rows[0].get("TimeStampAsBigInt")) if rows else None
        if not isinstance(first, int):
            self.logger.info(
                "start_date: nothing in %s was modified since %s.",
                self.describe(division),
                start_date,
            )
            return NO_ROWS_TIMESTAMP
        self.logger.info(
            "start_date %s: reading %s from Timestamp %d (Exact's SyncTimestamp).",
            start_date,
            self.describe(division),
            first,
        )
        return max(first - 1, FIRST_SYNC_TIMESTAMP)

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        # Worked out once per partition: it may cost a SyncTimestamp call.
        self._start = self.starting_timestamp(context)
        if self._start != NO_ROWS_TIMESTAMP:  # else nothing changed since start_date
            yield from super().request_records(context)

    @override
    def query_params(self, context: Context | None) -> dict[str, str]:
        start = self._start
        condition = f"Timestamp gt {start}L" if start else f"Timestamp gt {FIRST_SYNC_TIMESTAMP}"
        return {"$filter": condition, **super().query_params(context)}

    @override
    def new_page_guard(self) -> PageGuard:
        # Every row must be above the Timestamp the read asked after, and each page above the
        # last; a resync believes an empty first page only when Exact says so twice.
        return PageGuard(
            keys=self.row_keys(),
            timestamp_after=self._start or FIRST_SYNC_TIMESTAMP,
            recheck_empty_first_page=self.resync,
        )

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        rows = list(super().parse_response(response))
        rows.sort(key=_row_timestamp)
        return rows


def _in_the_future(value: str) -> bool:
    try:
        moment = parse_moment(value)
    except ValueError:
        return False  # not a date-time: the state checks say so
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment > datetime.now(timezone.utc) + FUTURE_TOLERANCE


def _row_timestamp(row: dict[str, Any]) -> int:
    value = parse_int64(row.get("Timestamp"))
    return value if isinstance(value, int) else 0


class ODataStream(ApiStream):
    """Standard, bulk, read and beta endpoints: `__next` paging; incremental on `Modified`.

    Exact returns these in key order, not by Modified, so the bookmark moves only after a
    complete read (the SDK's progress markers).
    """

    def __init__(self, tap: Tap) -> None:
        super().__init__(tap)
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
                self._write_replication_key_signpost(context, signpost)
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
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict | None:
        record = super().post_process(row, context)
        if self.replication_key and record is not None:
            modified = record.get(self.replication_key)
            if isinstance(modified, str) and modified > self._future_from:
                self.warn_once(
                    "future row",
                    self._division,
                    "%s: a row (%s) says it was modified on %s, in the future; the bookmark "
                    "stays at the start of this run so no later change is skipped.",
                    self.describe(self._division),
                    ", ".join(f"{k}={row.get(k)}" for k in self.row_keys()),
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
                params["$filter"] = f"Modified ge {self.exact.clock.literal(start)}"
        return params

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
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
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict | None:
        return self.plan.apply(row, row.get("CurrentDivision"))


class ChildReadStream(ODataStream):
    """A read function that needs a parent's key, e.g. ItemExtraField?itemId=..&modified=..

    Called once per parent row the run emits, so it is as incremental as its parent. A call per
    row adds up (a first run over 10,000 accounts is 10,000 calls), so children marked
    `on_request` run only when selected by name, not through "select everything".
    """

    state_partitioning_keys = ("division",)

    def __init__(self, tap: Tap) -> None:
        super().__init__(tap)
        assert self.spec.child_of is not None
        self.child = self.spec.child_of
        self.replication_key = None  # the parent's bookmark decides what is read
        self._schema_sent = False
        self._link_column = self.plan.column_for[self.child.link_field]

    @property
    @override
    def selected(self) -> bool:
        return bool(Stream.selected.fget(self)) and self._wanted  # type: ignore[attr-defined]

    @selected.setter
    def selected(self, value: bool | None) -> None:
        Stream.selected.fset(self, value)  # type: ignore[attr-defined]

    @cached_property
    def _wanted(self) -> bool:
        if not self.child.on_request or self.exact.explicitly_selected(self.name):
            return True
        self.logger.info(
            "Not reading %s: it costs one API call per `%s` row; select it by name to read it.",
            self.name,
            self.child.parent,
        )
        return False

    @override
    def _write_schema_message(self) -> None:
        # The SDK syncs a child once per parent row and would repeat the SCHEMA each time;
        # many targets flush a batch on every SCHEMA, loading one row at a time.
        if not self._schema_sent:
            super()._write_schema_message()
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
                params[name] = self.exact.clock.literal(start)
        return params

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict | None:
        record = self.plan.apply(row, self._division)
        if not self.child.link_in_row and context:
            record[self._link_column] = context["parent_id"]
        return record


class DeletedStream(SyncStream):
    """`sync/Deleted`, Exact's deletion log: the raw `deleted` stream, and the source of the
    tombstones that mark deleted rows in the streams of their entities.

    One read per division serves every entity (1,000 deletions a call). It runs when the raw
    stream or any stream whose deletions it carries is selected, and last of all streams, so
    tombstones follow the rows they mark. A tombstone is sent under a SCHEMA of only the key and
    `_sdc_deleted_at`: an upserting target (target-postgres) then updates only those columns and
    keeps the row's other values.
    """

    def __init__(self, tap: Tap) -> None:
        super().__init__(tap)
        self._tombstone_schema_sent: set[str] = set()

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        division = self.division_of_records(context)
        # When each stream's deletions were last read completely in this division.
        applied: dict[str, str] = self.get_context_state(context).setdefault(
            "deletions_read_at", {}
        )
        now = datetime.now(timezone.utc)
        for target in self.targets.values():
            self._warn_if_deletions_were_lost(target, division, applied.get(target.name), now)
        yield from super().get_records(context)
        if division not in self.incomplete_divisions:
            for target in self.targets.values():
                applied[target.name] = now.isoformat()

    def _warn_if_deletions_were_lost(
        self, target: ExactStream, division: int | None, last_read: str | None, now: datetime
    ) -> None:
        """Exact keeps deletions two months: say so when some of a loaded stream's may be gone."""
        if getattr(target, "resync", False) or not self.exact.had_bookmark(target.name, division):
            return  # read from the start in this run, or never loaded: nothing to miss
        if last_read is not None:
            age = now - datetime.fromisoformat(last_read)
            if age <= timedelta(days=DELETION_LOG_DAYS):
                return
            when = f"last read {age.days} days ago"
        else:
            when = "never read for it"
        self.logger.warning(
            "Deletions of %s in division %s may be missing: Exact keeps its deletion log two "
            "months, and it was %s. To mark the rows Exact no longer has, add %s to "
            "`resync_streams` for one run.",
            target.name,
            division,
            when,
            target.name,
        )

    @property
    def raw_selected(self) -> bool:
        return bool(Stream.selected.fget(self))  # type: ignore[attr-defined]

    @property
    @override
    def selected(self) -> bool:
        return self.raw_selected or bool(self.targets)

    @selected.setter
    def selected(self, value: bool | None) -> None:
        Stream.selected.fset(self, value)  # type: ignore[attr-defined]

    @cached_property
    def targets(self) -> dict[int, ExactStream]:
        """Entity type code -> the selected stream its deletions go to (others are skipped)."""
        return {
            stream.spec.deleted_entity_type: stream
            for stream in self._tap.streams.values()
            if isinstance(stream, ExactStream)
            and stream.spec.deleted_entity_type is not None
            and stream.selected
        }

    @cached_property
    @override
    def selected_fields(self) -> list[str]:
        # Tombstones need these even when the raw stream's columns are not selected.
        return list(dict.fromkeys([*super().selected_fields, *TOMBSTONE_SOURCE_FIELDS]))

    @override
    def _write_schema_message(self) -> None:
        if self.raw_selected:
            super()._write_schema_message()

    @override
    def _write_record_message(self, record: dict) -> None:
        self._write_tombstone(record)
        if self.raw_selected:
            super()._write_record_message(record)

    def _write_tombstone(self, record: dict) -> None:
        column = self.plan.column_for
        target = self.targets.get(record.get(column["EntityType"]))  # type: ignore[arg-type]
        entity_key = record.get(column["EntityKey"])
        if target is None or entity_key is None:
            return
        division_column, key_column = target.primary_keys
        if target.name not in self._tombstone_schema_sent:
            properties = target.schema["properties"]
            columns = [*target.primary_keys, SOFT_DELETE_COLUMN]
            self._tap.write_message(
                SchemaMessage(
                    stream=target.name,
                    schema={
                        "type": "object",
                        "properties": {name: properties[name] for name in columns},
                        "required": list(target.primary_keys),
                    },
                    key_properties=list(target.primary_keys),
                )
            )
            self._tombstone_schema_sent.add(target.name)
        tombstone = {
            division_column: record[self.plan.division_column],
            key_column: entity_key,
            SOFT_DELETE_COLUMN: record.get(column["DeletedDate"]),
        }
        self._tap.write_message(
            RecordMessage(
                stream=target.name, record=tombstone, time_extracted=datetime.now(timezone.utc)
            )
        )


STREAM_KINDS: dict[str, type[ExactStream]] = {
    "sync": SyncStream,
    "bulk": ODataStream,
    "standard": ODataStream,
    "read": ODataStream,
    "beta": ODataStream,
    "system": ODataStream,
    "current": CurrentUserStream,
}


def stream_classes(specs: Iterable[EntitySpec]) -> list[type[ExactStream]]:
    """A class per entity (the SDK links child streams to parents by class)."""
    classes: dict[str, type[ExactStream]] = {}
    # Parents first: a child's class names its parent's. (The deletion log's place among the
    # streams is decided by TapExactOnline.streams.)
    specs = sorted(specs, key=lambda spec: spec.child_of is not None)
    for spec in specs:
        attributes: dict[str, Any] = {"spec": spec, "__module__": __name__}
        base = STREAM_KINDS[spec.api]
        if spec.child_of is not None:
            base = ChildReadStream
            attributes["parent_stream_type"] = classes[spec.child_of.parent]
        elif spec.path == DELETED_PATH:
            base = DeletedStream
        class_name = "".join(part.title() for part in spec.name.split("_")) + "Stream"
        classes[spec.name] = type(class_name, (base,), attributes)
    return list(classes.values())
