"""The sync API: 1,000 rows a call in Timestamp order, incremental on Exact's rowversion
`Timestamp`, with `start_date` through SyncTimestamp, resyncs, and Exact's deletion log
(`sync/Deleted`) turned into tombstones in the streams of its entities."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any
from urllib.parse import quote

import requests
from singer_sdk import Tap
from singer_sdk.helpers.types import Context
from singer_sdk.singerlib import RecordMessage, SchemaMessage
from typing_extensions import override

from tap_exactonline.catalog import SOFT_DELETE_COLUMN
from tap_exactonline.client import ODATA_SAFE, ExactStream
from tap_exactonline.odata import parse_int64
from tap_exactonline.pages import IMPOSSIBLE_TIMESTAMP, PageGuard, odata_rows, value_of
from tap_exactonline.session import RunSession

FIRST_SYNC_TIMESTAMP = 1
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


class SyncStream(ExactStream):
    """`/sync/...`: 1,000 rows a call, incremental on Exact's rowversion `Timestamp`.

    Rows come in Timestamp order, so the bookmark advances with every record and an
    interrupted run resumes mid-stream.
    """

    is_sorted = True
    uses_timestamps = True
    # Exact does not document the order across pages; each page is sorted below, and a
    # bookmark that steps back only means re-reading a few rows, never losing any.
    check_sorted = False

    def __init__(self, tap: Tap, session: RunSession) -> None:
        super().__init__(tap, session)
        self.replication_key = self.plan.column_for["Timestamp"]
        self._start = 0  # the Timestamp this partition's read starts after
        self.resync = self.name in (self.config.get("resync_streams") or [])

    @cached_property
    @override
    def versioned(self) -> bool:
        # A resync reads the stream from the start: a read as complete as a full-table one.
        return self.resync

    @override
    def no_activate_version(self, unread: str) -> None:
        self.logger.warning(
            "Resync of %s: not every division was read completely (%s), so no rows are "
            "marked deleted; run again.",
            self.name,
            unread,
        )

    @override
    def after_activate_version(self) -> None:
        divisions = self.session.divisions.to_read
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
                "start_date: Exact's SyncTimestamp does not serve %s, so %s is read from its "
                "first row on (one call per 1,000 rows) until it has a bookmark (a row read).",
                entity,
                self.describe(division),
            )
            return 0
        url = (
            f"{self.url_base}/{division}/{SYNC_TIMESTAMP_PATH}"
            f"?modified={quote(self.session.clock.literal(start_date), safe=ODATA_SAFE)}"
            f"&endPoint=%27{entity}%27"
        )
        rows = list(odata_rows(self.session.get(url)))
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
    def request_records(self, context: Context | None) -> Iterable[Any]:
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
            read_page=self.read_page,
            keys=self.row_keys(),
            timestamp_after=self._start or FIRST_SYNC_TIMESTAMP,
            recheck_empty_first_page=self.versioned,
        )

    @override
    def parse_response(self, response: requests.Response) -> Iterable[Any]:
        rows = list(super().parse_response(response))
        rows.sort(key=_row_timestamp)
        return rows


def _row_timestamp(row: object) -> int:
    value = parse_int64(value_of(row, "Timestamp"))
    return value if isinstance(value, int) else 0


class DeletedStream(SyncStream):
    """`sync/Deleted`, Exact's deletion log: the raw `deleted` stream, and the source of the
    tombstones that mark deleted rows in the streams of their entities.

    One read per division serves every entity (1,000 deletions a call). It runs when the raw
    stream or any stream whose deletions it carries is selected, and last of all streams, so
    tombstones follow the rows they mark. A tombstone is sent under a SCHEMA of only the key and
    `_sdc_deleted_at`: an upserting target (target-postgres) then updates only those columns and
    keeps the row's other values.
    """

    def __init__(self, tap: Tap, session: RunSession) -> None:
        super().__init__(tap, session)
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
        if getattr(target, "resync", False) or not self.session.had_bookmark(target.name, division):
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
        return self.catalog_selected

    @property
    @override
    def selected(self) -> bool:
        return self.raw_selected or bool(self.targets)

    @selected.setter
    def selected(self, value: bool | None) -> None:
        self.set_catalog_selected(value)

    @cached_property
    def targets(self) -> dict[int, ExactStream]:
        """Entity type code -> the selected stream its deletions go to (others are skipped)."""
        return {
            stream.spec.deleted_entity_type: stream
            for stream in self.session.streams().values()
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
    def send_schema(self) -> None:
        if self.raw_selected:
            super().send_schema()

    @override
    def send_record(self, record: dict[str, Any]) -> None:
        self._write_tombstone(record)
        if self.raw_selected:
            super().send_record(record)

    def _write_tombstone(self, record: dict[str, Any]) -> None:
        column = self.plan.column_for
        target = self.targets.get(record.get(column["EntityType"]))  # type: ignore[arg-type]
        entity_key = record.get(column["EntityKey"])
        if target is None or entity_key is None:
            return
        division_column, key_column = target.primary_keys
        if target.name not in self._tombstone_schema_sent:
            properties = target.schema["properties"]
            columns = [*target.primary_keys, SOFT_DELETE_COLUMN]
            self.session.write_message(
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
        self.session.write_message(
            RecordMessage(
                stream=target.name, record=tombstone, time_extracted=datetime.now(timezone.utc)
            )
        )
