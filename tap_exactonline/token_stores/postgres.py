"""Tokens in a PostgreSQL table, locked with a session advisory lock."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tap_exactonline.token_stores.common import first_line, wait_for_lock
from tap_exactonline.token_stores.logins import StoreOwner, login_key
from tap_exactonline.tokens import TokenCodec, TokenRefreshError, TokenSet, TokenStoreError

LOGGER = logging.getLogger("tap_exactonline.token_stores")


class PostgresTokenStore:
    """Tokens in a small PostgreSQL table (created on first use), one row per login.

    `token_store: postgresql://user:password@host:5432/db?table=...&key=...`. A row's key is
    `<client_id>/<UserID>`: the app and the Exact login (see logins.py); `key=` fixes one row
    instead. The lock is a session advisory lock on the app (one token call of one of its
    logins at a time: a run may learn its login only from the row it reads under the lock):
    PostgreSQL releases it when a crashed job's connection drops, so a dead job never blocks
    the others. Writes commit at once.
    """

    DEFAULT_TABLE = "tap_exactonline_tokens"

    def __init__(
        self,
        url: str,
        *,
        default_key: str,
        codec: TokenCodec | None = None,
        owner: StoreOwner | None = None,
    ) -> None:
        self.codec = codec or TokenCodec(None)
        parts = urlsplit(url)
        options = dict(parse_qsl(parts.query))
        self.table = options.pop("table", self.DEFAULT_TABLE)
        self.key = options.pop("key", default_key)
        # Without `key=`, each login of the app has its own row.
        self.owner = (owner or StoreOwner(default_key)) if self.key == default_key else None
        self._row_read = ""  # the key of the row the last read took
        scheme = "postgresql"  # SQLAlchemy-style `postgresql+psycopg://` works too
        self._conninfo = urlunsplit((scheme, parts.netloc, parts.path, urlencode(options), ""))
        self._where = f"{parts.hostname}:{parts.port or 5432}{parts.path} table {self.table}"
        self._locked_connection: Any = None
        self._table_ready = False

    def __repr__(self) -> str:  # no password
        return f"PostgresTokenStore({self._where}, key {self.key})"

    def _connect(self) -> Any:
        import psycopg  # noqa: PLC0415 - only needed by users of this store

        try:
            connection = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=30)
        except psycopg.Error as exc:
            raise TokenStoreError(
                f"token_store PostgreSQL {self._where} cannot be reached ({type(exc).__name__})"
            ) from None
        if not self._table_ready:
            self._create_table(connection)
            self._table_ready = True
        return connection

    def _create_table(self, connection: Any) -> None:
        from psycopg import sql  # noqa: PLC0415

        # Parallel jobs may all create it on first use: serialise that under a fixed lock.
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(hashtext('tap_exactonline_ddl'))")
            connection.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, tokens jsonb NOT NULL, "
                    "updated_at timestamptz NOT NULL DEFAULT now())"
                ).format(sql.Identifier(self.table))
            )

    def _run(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        from psycopg import sql  # noqa: PLC0415

        statement = sql.SQL(query).format(table=sql.Identifier(self.table))
        if self._locked_connection is not None:
            return list(self._locked_connection.execute(statement, params).fetchall())
        with self._connect() as connection:
            return list(connection.execute(statement, params).fetchall())

    def _select(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        try:
            return self._run(query, *params)
        except TokenRefreshError:
            raise
        except Exception as exc:  # psycopg.Error: no privilege on the table, say
            raise self._fail("read", exc) from None

    def read(self) -> TokenSet | None:
        where = f"token_store {self._where}"
        if self.owner is None:
            rows = self._select("SELECT key, tokens FROM {table} WHERE key = %s", self.key)
            self._row_read = self.key if rows else ""
            return self.codec.load(rows[0][1], where) if rows else None
        # The app's rows: each login's (`<app>/<login>`), then the one earlier versions kept
        # under the app alone.
        rows = self._select(
            "SELECT key, tokens FROM {table} WHERE key = %s OR left(key, %s) = %s "
            "ORDER BY key = %s, key",
            self.key,
            len(self.key) + 1,
            self.key + "/",
            self.key,
        )
        found: list[tuple[str, TokenSet]] = []
        failure: TokenStoreError | None = None
        for key, data in rows:
            mine_for_sure = key in (self.key, login_key(self.key, self.owner.login))
            try:
                tokens = self.codec.load(data, f"{where} (row {key})")
            except TokenStoreError as error:
                if mine_for_sure:
                    raise
                failure = failure or error  # another login's, unless no row is this run's
                continue
            if tokens is not None:
                found.append((key, tokens))
        chosen = self.owner.pick([tokens for _, tokens in found], where)
        if chosen is None and failure is not None and not self.owner.login:
            raise failure
        self._row_read = next((key for key, tokens in found if tokens is chosen), "")
        return chosen

    _UPSERT = (
        "INSERT INTO {table} (key, tokens) VALUES (%s, %s::jsonb) ON CONFLICT (key) DO "
        "UPDATE SET tokens = EXCLUDED.tokens, updated_at = now() RETURNING key"
    )

    def write(self, tokens: TokenSet) -> None:
        key = self.key
        if self.owner is not None:
            self.owner.learn(tokens)
            key = self.owner.key(tokens)
        try:
            self._run(self._UPSERT, key, json.dumps(self.codec.dump(tokens)))
        except TokenStoreError:
            raise
        except Exception as exc:  # psycopg.Error: read-only database, no privilege, disk full
            raise self._fail("written", exc) from None
        self._row_read = key
        if key != self.key:
            try:
                self._retire_app_row()
            except Exception as exc:  # the tokens are saved; the old row is only read first
                LOGGER.warning("%s", self._fail("tidied (its row kept before logins)", exc))

    def _retire_app_row(self) -> None:
        """The row kept under the app alone, by an earlier version (or while the login was
        unknown), goes once its chain is kept under the login; another login's stays."""
        assert self.owner is not None
        rows = self._run("SELECT tokens FROM {table} WHERE key = %s", self.key)
        try:
            tokens = self.codec.load(rows[0][0], f"token_store {self._where}") if rows else None
        except TokenStoreError:
            return  # not readable with this run's key: not known to be this run's
        if tokens is not None and self.owner.owns(tokens):
            self._run("DELETE FROM {table} WHERE key = %s RETURNING key", self.key)

    def exposure(self) -> str | None:
        return None  # not a file in anyone's work tree

    def found_empty(self) -> bool:
        return False  # a row holds tokens (checked when read) or there is none

    def prove_writable(self) -> None:
        """The same upsert with the row's current tokens, committed (nothing changes), or
        rolled back when there is no row yet. Called inside `locked()`."""
        from psycopg import Rollback, sql  # noqa: PLC0415

        connection = self._locked_connection
        if connection is None:
            raise TokenStoreError(f"token_store {self._where}: prove_writable outside the lock")
        table = sql.Identifier(self.table)
        key = self._row_read or self.key
        try:
            with connection.transaction():
                rows = connection.execute(
                    sql.SQL("SELECT tokens FROM {} WHERE key = %s FOR UPDATE").format(table),
                    (key,),
                ).fetchall()
                current = json.dumps(rows[0][0]) if rows else "{}"
                connection.execute(sql.SQL(self._UPSERT).format(table=table), (key, current))
                if not rows:
                    raise Rollback()  # noqa: TRY301 - psycopg's way to roll back the block
        except Exception as exc:  # psycopg.Error: read-only database, no privilege, disk full
            raise self._fail("written", exc) from None

    def _fail(self, action: str, exc: Exception) -> TokenStoreError:
        return TokenStoreError(
            f"token_store PostgreSQL {self._where} cannot be {action} ({type(exc).__name__}: "
            f"{first_line(exc)})"
        )

    @contextmanager
    def locked(self) -> Iterator[None]:
        connection = self._connect()
        try:
            lock = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"
            name = f"{self.table}/{self.key}"
            wait_for_lock(
                lambda: bool(connection.execute(lock, (name,)).fetchone()[0]),
                f"token_store {self._where}",
            )
            self._locked_connection = connection
            yield
        finally:
            self._locked_connection = None
            connection.close()  # ends the session, and with it the advisory lock
