"""The pipeline harness itself: hand-made Singer messages through `meltano invoke target-postgres`.

No tap involved: this proves the loader definition in meltano.yml, the shared plugin install,
the pgserver database and the upsert behaviour the tap relies on (same key -> update).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Postgres, run_meltano

pytestmark = pytest.mark.pipeline

STREAM = "gl_accounts"
SCHEMA = {
    "type": "SCHEMA",
    "stream": STREAM,
    "key_properties": ["ID"],
    "bookmark_properties": ["Modified"],
    "schema": {
        "type": "object",
        "properties": {
            "ID": {"type": "string", "format": "uuid"},
            "Code": {"type": ["string", "null"]},
            "Description": {"type": ["string", "null"]},
            "Balance": {"type": ["number", "null"]},
            "Modified": {"type": ["string", "null"], "format": "date-time"},
            "Division": {"type": "integer"},
        },
    },
}
ID1 = "0b6e1f5e-1c2d-4a5b-9c8d-000000000001"
ID2 = "0b6e1f5e-1c2d-4a5b-9c8d-000000000002"
ID3 = "0b6e1f5e-1c2d-4a5b-9c8d-000000000003"


def record(
    id_: str, code: str, description: str | None, balance: Any, modified: str | None
) -> dict:
    return {
        "type": "RECORD",
        "stream": STREAM,
        "record": {
            "ID": id_,
            "Code": code,
            "Description": description,
            "Balance": balance,
            "Modified": modified,
            "Division": 12345,
        },
    }


def state(modified: str) -> dict:
    value = {
        "bookmarks": {STREAM: {"replication_key": "Modified", "replication_key_value": modified}}
    }
    return {"type": "STATE", "value": value}


def singer(*messages: dict) -> str:
    return "".join(json.dumps(m) + "\n" for m in messages)


def load(project: Path, db: Postgres, messages: str) -> list[dict[str, Any]]:
    """Pipe messages into target-postgres through Meltano; return the STATE lines it printed."""
    result = run_meltano(
        project, "invoke", "target-postgres", env=db.target_env("raw"), input=messages
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def rows(db: Postgres) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        cur = conn.execute(
            'SELECT "ID"::text, "Code", "Description", "Balance", "Modified", "Division"'
            ' FROM raw.gl_accounts ORDER BY "ID", "Modified"'
        )
        return cur.fetchall()


def test_target_postgres_loads_and_upserts(meltano_project: Path, pg_database: Postgres) -> None:
    first = singer(
        SCHEMA,
        record(ID1, "1000", "Kas", 1234.56, "2024-01-02T03:04:05.123Z"),
        record(ID2, "1100", "Bank", -0.01, "2024-01-03T00:00:00+01:00"),
        record(ID3, "1300", None, None, None),
        state("2024-01-03T00:00:00+01:00"),
    )
    states = load(meltano_project, pg_database, first)
    assert states == [state("2024-01-03T00:00:00+01:00")["value"]]
    assert rows(pg_database) == [
        (ID1, "1000", "Kas", Decimal("1234.56"), dt.datetime(2024, 1, 2, 3, 4, 5, 123000), 12345),
        # date-time is stored as timestamp without time zone, converted to UTC
        (ID2, "1100", "Bank", Decimal("-0.01"), dt.datetime(2024, 1, 2, 23, 0), 12345),
        (ID3, "1300", None, None, None, 12345),
    ]

    # Second run: ID1 changed (twice in the batch: the last one wins), ID3 untouched, ID4 new.
    id4 = "0b6e1f5e-1c2d-4a5b-9c8d-000000000004"
    second = singer(
        SCHEMA,
        record(ID1, "1000", "Kas (old)", 1, "2024-02-01T00:00:00Z"),
        record(ID1, "1000", "Kas (renamed)", 99.5, "2024-02-02T00:00:00Z"),
        record(id4, "1400", "Debiteuren", 0, "2024-02-02T00:00:00Z"),
        state("2024-02-02T00:00:00Z"),
    )
    assert load(meltano_project, pg_database, second) == [state("2024-02-02T00:00:00Z")["value"]]
    assert rows(pg_database) == [
        (ID1, "1000", "Kas (renamed)", Decimal("99.5"), dt.datetime(2024, 2, 2), 12345),
        (ID2, "1100", "Bank", Decimal("-0.01"), dt.datetime(2024, 1, 2, 23, 0), 12345),
        (ID3, "1300", None, None, None, 12345),
        (id4, "1400", "Debiteuren", Decimal("0"), dt.datetime(2024, 2, 2), 12345),
    ]
    with pg_database.connect() as conn:
        pkeys = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'raw.gl_accounts'::regclass AND contype = 'p'"
        ).fetchall()
    assert pkeys == [('PRIMARY KEY ("ID")',)]
