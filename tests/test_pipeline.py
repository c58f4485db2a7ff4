"""`meltano run tap-exactonline target-postgres` against the fake Exact server, into PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from fake_exact import FakeExact
from tests.conftest import Postgres, run_meltano, select_streams, set_plugin_config

pytestmark = pytest.mark.pipeline

DIVISIONS = (1001, 1002)
# One stream of each API kind: sync, bulk, standard (incremental and full table), read, a read
# fed per parent row, beta, system (no division in the URL) and current.
STREAMS = {
    "accounts": 1100,
    "sales_orders": 1100,
    "purchase_invoices": 75,
    "reporting_balance": 75,
    "receivables_list": 75,
    "items": 20,
    "item_extra_fields": 0,  # 0-3 per item
    "indicator_balances": 75,
    "users": 75,
    "me": 1,
}
SCHEMA = "exactonline"


def configure(
    project: Path, fake: FakeExact, streams: Iterable[str] = STREAMS, **extra: Any
) -> None:
    select_streams(project, streams)
    set_plugin_config(
        project,
        "tap-exactonline",
        client_id="fake-client-id",
        client_secret="fake-client-secret",
        refresh_token="fake-initial-refresh-token",
        base_url=fake.base_url,
        divisions=list(DIVISIONS),
        retry_base_seconds=0.01,
        beta_endpoints=True,
        **extra,
    )


def meltano_run(project: Path, database: Postgres, *flags: str) -> str:
    result = run_meltano(
        project,
        "run",
        *flags,
        "tap-exactonline",
        "target-postgres",
        env=database.target_env(SCHEMA),
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


def counts(database: Postgres, table: str) -> dict[int, int]:
    with database.connect() as connection:
        rows = connection.execute(
            f'SELECT division, count(*) FROM {SCHEMA}."{table}" GROUP BY division'
        ).fetchall()
    return dict(rows)


def fetch(database: Postgres, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with database.connect() as connection:
        return connection.execute(sql, params).fetchall()


def test_pipeline_into_postgres(meltano_project: Path, pg_database: Postgres, tmp_path: Path):
    unlimited = {"minutely_limit": 1_000_000, "daily_limit": 1_000_000}
    with FakeExact(divisions=DIVISIONS, rows=STREAMS, **unlimited) as fake:
        configure(meltano_project, fake)
        outputs = [meltano_run(meltano_project, pg_database)]

        # Every row of every division, with Exact's values.
        for stream in STREAMS:
            if stream in ("me", "users"):
                continue
            expected = {d: fake.row_count(stream, d) for d in DIVISIONS}
            assert counts(pg_database, stream) == expected, stream
        # Without a division in the URL, rows carry the login's current division.
        assert counts(pg_database, "me") == {fake.current_division: 1}
        assert counts(pg_database, "users") == {fake.current_division: 75}
        account = next(fake.expected_rows("accounts", 1001))
        name, credit_line = fetch(
            pg_database,
            f"SELECT name, credit_line_sales FROM {SCHEMA}.accounts WHERE id = %s",
            account["ID"],
        )[0]
        assert name == account["Name"]
        assert (credit_line is None) == (account["CreditLineSales"] is None)
        if credit_line is not None:
            assert float(credit_line) == pytest.approx(account["CreditLineSales"])
        assert fake.refresh_count == 1
        # What `meltano state get` prints holds no usable token (no token_encryption_key set).
        shown = run_meltano(
            meltano_project, "state", "get", "dev:tap-exactonline-to-target-postgres"
        )
        assert shown.returncode == 0, shown.stderr[-3000:]
        assert '"encrypted"' in shown.stdout
        assert all(secret not in shown.stdout for secret in fake.issued_secrets())

        # Second run right after: only the changes are fetched, the access token is reused.
        updated = fake.mutate("accounts", 1001, update=3, insert=2)
        fake.mutate("purchase_invoices", 1002, update=2)
        calls_before = len(fake.calls)
        outputs.append(meltano_run(meltano_project, pg_database))
        second_calls = fake.calls[calls_before:]
        account_calls = [c for c in second_calls if "sync/CRM/Accounts" in c[1]]
        assert len(account_calls) == len(DIVISIONS)  # one page per division: nothing else new
        assert all("Timestamp%20gt%20" in c[2] and "L" in c[2] for c in account_calls)
        assert counts(pg_database, "accounts") == {1001: 1102, 1002: 1100}
        for row in updated:
            assert fetch(
                pg_database, f"SELECT name FROM {SCHEMA}.accounts WHERE id = %s", row["ID"]
            ) == [(row["Name"],)]
        assert fake.refresh_count == 1

        # Later (Exact's clock): the rotated refresh token kept in Meltano's state works.
        fake.advance_clock(601)
        store = tmp_path / "tokens" / "exactonline.json"
        set_plugin_config(meltano_project, "tap-exactonline", token_store=str(store))
        outputs.append(meltano_run(meltano_project, pg_database))
        assert fake.refresh_count == 2
        assert store.exists()

        # --full-refresh ignores the state; the token store keeps the token chain alive.
        fake.advance_clock(601)
        outputs.append(meltano_run(meltano_project, pg_database, "--full-refresh"))
        assert fake.refresh_count == 3
        assert counts(pg_database, "accounts") == {1001: 1102, 1002: 1100}  # upserted, no dupes

        # `meltano state clear` drops Meltano's state, tokens included; the store keeps them.
        state_ids = run_meltano(meltano_project, "state", "list").stdout.split()
        [state_id] = [i for i in state_ids if "tap-exactonline-to-target-postgres" in i]
        cleared = run_meltano(meltano_project, "state", "clear", "--force", state_id)
        assert cleared.returncode == 0, cleared.stderr[-2000:]
        fake.advance_clock(601)
        outputs.append(meltano_run(meltano_project, pg_database))
        assert fake.refresh_count == 4

        for secret in fake.issued_secrets():
            for output in outputs:
                assert secret not in output


def snapshot(
    database: Postgres, table: str, key: str = "id"
) -> dict[tuple[int, str], dict[str, Any]]:
    """Every row of a table, by (division, key), all columns."""
    with database.connect() as connection:
        cursor = connection.execute(f'SELECT * FROM {SCHEMA}."{table}"')
        names = [column.name for column in cursor.description or []]
        return {
            (row["division"], str(row[key])): row
            for row in map(dict, (zip(names, r, strict=True) for r in cursor.fetchall()))
        }


def test_deletions_mark_rows_and_keep_their_values(meltano_project: Path, pg_database: Postgres):
    streams = {"accounts": 50, "transaction_lines": 1200}
    with FakeExact(divisions=DIVISIONS, rows=streams) as fake:
        configure(meltano_project, fake, streams=streams)
        meltano_run(meltano_project, pg_database)
        before = {table: snapshot(pg_database, table) for table in streams}
        assert all(row["_sdc_deleted_at"] is None for row in before["accounts"].values())

        gone = {(1001, str(key)) for key in fake.delete("accounts", 1001, 3)}
        gone_lines = {(1002, str(key)) for key in fake.delete("transaction_lines", 1002, 2)}
        meltano_run(meltano_project, pg_database)
        after = {table: snapshot(pg_database, table) for table in streams}
        for table, deleted in (("accounts", gone), ("transaction_lines", gone_lines)):
            assert after[table].keys() == before[table].keys()  # soft delete: rows stay
            for key, row in after[table].items():
                if key in deleted:
                    assert row["_sdc_deleted_at"] is not None, (table, key)
                else:
                    assert row["_sdc_deleted_at"] is None, (table, key)
                # Exact's values are untouched, the deleted rows' included.
                exact_columns = {c for c in row if not c.startswith("_sdc_")}
                assert {c: row[c] for c in exact_columns} == {
                    c: before[table][key][c] for c in exact_columns
                }, (table, key)
        deleted_at = {after["accounts"][key]["_sdc_deleted_at"] for key in gone}
        assert len(deleted_at) == 1  # Exact's DeletedDate, not the load time

        # The same run again: no new deletions, no new rows, nothing changes.
        meltano_run(meltano_project, pg_database)
        assert {table: snapshot(pg_database, table) for table in streams} == after


def test_a_resync_marks_rows_whose_deletions_exact_no_longer_lists(
    meltano_project: Path, pg_database: Postgres
):
    streams = {"accounts": 50}
    with FakeExact(divisions=DIVISIONS, rows=streams) as fake:
        configure(meltano_project, fake, streams=streams)
        meltano_run(meltano_project, pg_database)
        before = snapshot(pg_database, "accounts")

        gone = {(1001, str(key)) for key in fake.delete("accounts", 1001, 3)}
        fake.expire_deletion_log()  # too late: the deletion log has forgotten them
        meltano_run(meltano_project, pg_database)
        assert all(
            row["_sdc_deleted_at"] is None for row in snapshot(pg_database, "accounts").values()
        )

        set_plugin_config(meltano_project, "tap-exactonline", resync_streams=["accounts"])
        output = meltano_run(meltano_project, pg_database)
        assert "Resync of accounts read divisions 1001, 1002 from the start" in output
        after = snapshot(pg_database, "accounts")
        assert after.keys() == before.keys()
        assert {key for key, row in after.items() if row["_sdc_deleted_at"] is not None} == gone
        for key, row in after.items():
            exact_columns = {c for c in row if not c.startswith("_sdc_")}
            assert {c: row[c] for c in exact_columns} == {c: before[key][c] for c in exact_columns}


def test_a_receivable_that_leaves_exact_is_marked_after_the_next_complete_read(
    meltano_project: Path, pg_database: Postgres
):
    # receivables_list has no Timestamp and no Modified: a paid invoice is simply not listed
    # any more. Only ACTIVATE_VERSION after a complete read tells target-postgres so.
    with FakeExact(divisions=DIVISIONS) as fake:
        open_items = sum(fake.row_count("receivables_list", d) for d in DIVISIONS)
        configure(meltano_project, fake, streams={"receivables_list"}, full_table_interval=0)
        meltano_run(meltano_project, pg_database)
        before = snapshot(pg_database, "receivables_list", key="hid")
        assert len(before) == open_items > 0
        assert all(row["_sdc_deleted_at"] is None for row in before.values())

        paid = {(d, str(key)) for d in DIVISIONS for key in fake.delete("receivables_list", d, 2)}
        # The next run cannot read division 1002 (Exact fails every try): no row may look
        # deleted, not 1002's, whose rows were not read, and not 1001's either.
        fake.fail_next(10_000, status=503, path_contains="/1002/read/financial/ReceivablesList")
        failed = run_meltano(
            meltano_project,
            "run",
            "tap-exactonline",
            "target-postgres",
            env=pg_database.target_env(SCHEMA),
            timeout=600,
        )
        assert failed.returncode != 0
        assert "ACTIVATE_VERSION" not in failed.stderr
        unread = snapshot(pg_database, "receivables_list", key="hid")
        assert all(row["_sdc_deleted_at"] is None for row in unread.values())

        # Exact is well again: the next complete read marks exactly the paid ones.
        fake.clear_faults()
        meltano_run(meltano_project, pg_database)
        after = snapshot(pg_database, "receivables_list", key="hid")
        assert after.keys() == before.keys()
        assert {key for key, row in after.items() if row["_sdc_deleted_at"] is not None} == paid
        for key, row in after.items():
            exact_columns = {c for c in row if not c.startswith("_sdc_")}
            assert {c: row[c] for c in exact_columns} == {c: before[key][c] for c in exact_columns}
