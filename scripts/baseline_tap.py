"""The benchmark's baseline: a minimal singer-sdk tap, as the cookiecutter makes one, with the
same schema as the tap's stream and the msgspec writer, that emits the same records from memory
(no HTTP, no decoding): what any singer-sdk tap pays per record to write it.

Usage (scripts/benchmark.py runs it): python scripts/baseline_tap.py SCHEMA.json RECORDS.jsonl N
emits N records, cycling through the records in RECORDS.jsonl, on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.helpers.types import Context

SCHEMA_PATH, RECORDS_PATH, COUNT = sys.argv[1], sys.argv[2], int(sys.argv[3])
del sys.argv[1:]  # the SDK's command line sees no arguments


class MemoryStream(Stream):
    name = "transaction_lines"
    schema = json.loads(Path(SCHEMA_PATH).read_text())
    primary_keys = ("division", "id")

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        records = [json.loads(line) for line in Path(RECORDS_PATH).read_text().splitlines()]
        for index in range(COUNT):
            yield dict(records[index % len(records)])


class BaselineTap(Tap):
    name = "baseline-tap"
    config_jsonschema = {"type": "object", "properties": {}}  # noqa: RUF012
    message_writer_class = MsgSpecWriter

    def discover_streams(self) -> list[Stream]:
        return [MemoryStream(self)]


if __name__ == "__main__":
    BaselineTap(config={}).sync_all()
