"""Exact Online OAuth tokens: choosing, refreshing, persisting.

Exact refresh tokens are single-use: every refresh returns a new one and kills the old. A new
access token may only be requested 570 s after the previous one. So the whole tap shares ONE
authenticator, refreshes ~30 s before expiry (or once on a 401), and persists every rotation
before using the new access token.
"""

from __future__ import annotations

import email.utils
import errno
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from cryptography.fernet import Fernet, InvalidToken

from tap_exactonline.deadline import CallDeadlineExceeded, DeadlineSession
from tap_exactonline.redact import scrub
from tap_exactonline.termination import GUARD

LOGGER = logging.getLogger("tap_exactonline.auth")

ACCESS_TOKEN_MARGIN_SECONDS = 30
MIN_REFRESH_INTERVAL_SECONDS = 570
TOO_EARLY_DESCRIPTION = "access_token not expired"
REAUTHORIZE_ERRORS = {"invalid_grant", "invalid_request", "unauthorized_client"}
# `invalid_client`: Exact does not know this client_id/client_secret pair. A new authorization
# would be refused the same way, so the message points at the settings instead.
INVALID_CLIENT_MESSAGE = (
    "Exact rejected the app's credentials (invalid_client): the `client_secret` setting (or "
    "`client_id`) is wrong. Copy both from the app's registration in the Exact App Center "
    "(Manage apps)"
)
TOKEN_STATE_KEY = "exactonline_tokens"
# A run holds the store's lock only for one token call (bounded by request_timeout).
LOCK_WAIT_SECONDS = 180.0
LOCK_POLL_SECONDS = 0.05


class AuthorizationRequiredError(Exception):
    """Exact refused our refresh token: a person has to authorize the app again."""


class ClientRejectedError(Exception):
    """Exact refused our client_id/client_secret (`invalid_client`): a setting is wrong."""


class TokenRefreshError(Exception):
    """The token endpoint could not be reached or answered unexpectedly."""


class TokenStoreError(TokenRefreshError):
    """A token store or the state holds tokens we cannot read, or the store cannot be used."""


class FreshTokenRefusedError(TokenRefreshError):
    """Exact refuses (401) an access token this run has just refreshed itself."""


class TokensOnlyInStateError(TokenStoreError):
    """Exact rotated the tokens but the store refused the new ones: the state has them."""


def fingerprint(secret: str) -> str:
    """A short, irreversible identifier of a token, to recognise it without storing it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


# How many earlier links a token remembers. A state is at most a few links ahead of the store
# (only a failed store write leaves it ahead, and that ends the run), so this is plenty; a
# store further ahead than this is simply trusted, as the shared copy.
LINEAGE_LENGTH = 16


@dataclass(frozen=True)
class TokenSet:
    """One link of a refresh-token chain; `origin` fingerprints its configured first token.

    Which of two links is newer is told by the chain itself, never by clocks (a job on a
    machine 15 minutes fast must not prefer its own spent token): `lineage` holds the
    fingerprints of the refresh tokens this link replaced, newest first.
    """

    refresh_token: str
    access_token: str | None
    expires_at: float
    obtained_at: float
    origin: str
    # Fingerprint of the configured refresh token this chain superseded (set by
    # tap-exactonline-auth), so that stale setting does not win over the new chain.
    replaces: str = ""
    lineage: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never show a token, even in a debugger or traceback
        return (
            f"TokenSet(obtained_at={self.obtained_at:.0f}, expires_at={self.expires_at:.0f}, "
            f"origin={self.origin})"
        )

    __str__ = __repr__

    def access_token_valid(self, now: float, margin: float = ACCESS_TOKEN_MARGIN_SECONDS) -> bool:
        return bool(self.access_token) and self.expires_at - margin > now

    def descends_from(self, other: TokenSet) -> bool:
        """Was `other` an earlier link of this token's chain?"""
        return fingerprint(other.refresh_token) in self.lineage

    def known_fingerprints(self) -> set[str]:
        """Every token this link's chain has been: to recognise a configured one."""
        return {self.origin, self.replaces, fingerprint(self.refresh_token), *self.lineage}

    def to_dict(self) -> dict[str, Any]:
        # Whole seconds: SDK targets read JSON floats as Decimal and then cannot write the
        # state back out (target-postgres fails on it).
        data = asdict(self)
        data["expires_at"] = int(self.expires_at)
        data["obtained_at"] = int(self.obtained_at)
        data["lineage"] = list(self.lineage)
        return data

    @classmethod
    def from_token_response(
        cls, body: dict[str, Any], *, now: float, origin: str, replaces: str, previous: str = ""
    ) -> TokenSet:
        """Exact's token answer -> the new link (`previous`: the refresh token it replaced)."""
        refresh_token = body.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            raise TokenRefreshError(
                "Exact's token answer carried no refresh_token, so the chain of tokens ends "
                "here: authorize the app again (tap-exactonline-auth)."
            )
        return cls(
            refresh_token=refresh_token,
            access_token=str(body["access_token"]),
            expires_at=now + token_lifetime(body),
            obtained_at=now,
            origin=origin,
            replaces=replaces,
        )

    def followed_by(self, body: dict[str, Any], *, now: float) -> TokenSet:
        """The link Exact's answer to refreshing this one makes."""
        new = TokenSet.from_token_response(
            body, now=now, origin=self.origin, replaces=self.replaces
        )
        lineage = (fingerprint(self.refresh_token), *self.lineage)[:LINEAGE_LENGTH]
        return replace(new, lineage=lineage)

    @classmethod
    def from_dict(cls, data: object) -> TokenSet | None:
        """Read stored tokens; None if they are not a token set of ours (see `problem_of`)."""
        if cls.problem_of(data) is not None:
            return None
        assert isinstance(data, dict)
        return cls(
            refresh_token=data["refresh_token"],
            access_token=data.get("access_token") or None,
            expires_at=float(data.get("expires_at") or 0),
            obtained_at=float(data.get("obtained_at") or 0),
            origin=str(data.get("origin") or ""),
            replaces=str(data.get("replaces") or ""),
            lineage=tuple(data.get("lineage") or ()),
        )

    @staticmethod
    def problem_of(data: object) -> str | None:
        """What is wrong with stored tokens (never quoting them), or None."""
        if not isinstance(data, dict):
            return f"a JSON {type(data).__name__} instead of an object of tokens"
        if not isinstance(data.get("refresh_token"), str) or not data["refresh_token"]:
            return "no refresh_token text"
        if data.get("access_token") is not None and not isinstance(data["access_token"], str):
            return "an access_token that is not text"
        for name in ("expires_at", "obtained_at"):
            value = data.get(name)
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not is_number:
                return f"an {name} that is not a number"
        lineage = data.get("lineage")
        if lineage is not None and (
            not isinstance(lineage, list) or not all(isinstance(f, str) for f in lineage)
        ):
            return "a lineage that is not a list of fingerprints"
        return None


class TokenCodec:
    """How tokens are kept at rest (token store and Singer state): plain JSON, or encrypted
    with Fernet (AES-128-CBC + HMAC-SHA256) when `token_encryption_key` is set."""

    def __init__(self, key: str | None) -> None:
        self._fernet = Fernet(key.encode()) if key else None

    def dump(self, tokens: TokenSet) -> dict[str, Any]:
        data = tokens.to_dict()
        if self._fernet is None:
            return data
        return {"encrypted": self._fernet.encrypt(json.dumps(data).encode()).decode()}

    def load(self, data: object, where: str) -> TokenSet | None:
        """Read tokens back (None when there are none); plain ones, kept before encryption was
        turned on, are accepted. Anything else is refused: treating a damaged copy as empty
        would replay a spent refresh token."""
        if data is None:
            return None
        if isinstance(data, dict) and "encrypted" in data:
            if self._fernet is None:
                raise TokenStoreError(
                    f"The tokens in {where} are encrypted: set `token_encryption_key`."
                )
            try:
                data = json.loads(self._fernet.decrypt(str(data["encrypted"]).encode()))
            except InvalidToken:
                raise TokenStoreError(
                    f"`token_encryption_key` does not decrypt the tokens in {where}: it is not "
                    "the key they were written with."
                ) from None
        problem = TokenSet.problem_of(data)
        if problem is not None:
            raise TokenStoreError(
                f"{where} does not hold valid tokens ({problem}). Restore it from a backup, or "
                "delete it and authorize again (tap-exactonline-auth)."
            )
        return TokenSet.from_dict(data)


def newest_link(candidates: Iterable[TokenSet | None]) -> TokenSet | None:
    """The newest of several copies of the chain, by the chain itself: a copy wins over
    another only if it descends from it. Unrelated copies (a new authorization, or links too
    far apart to tell) go by the order given: the most trusted first."""
    newest: TokenSet | None = None
    for tokens in candidates:
        if tokens is None:
            continue
        if newest is None or tokens.descends_from(newest):
            newest = tokens
    return newest


def choose_tokens(
    config_refresh_token: str | None, stored: Iterable[TokenSet | None]
) -> tuple[TokenSet, str]:
    """Pick the token set to start from, and say where it came from.

    `stored` lists the kept copies, most trusted first (the shared token store, then the
    state). The newest link wins, unless the configured refresh token is one the chain has
    never been: then the user authorized again and the configured token starts a new chain.
    """
    candidates = [t for t in stored if t is not None]
    newest = newest_link(candidates)
    if config_refresh_token:
        config_print = fingerprint(config_refresh_token)
        known: set[str] = set()
        for tokens in candidates:
            known |= tokens.known_fingerprints()
        if newest is None or config_print not in known:
            fresh = TokenSet(config_refresh_token, None, 0.0, 0.0, config_print)
            return fresh, "config"
    if newest is None:
        raise AuthorizationRequiredError(
            "No refresh token: set `refresh_token` (from the first authorization of the app)."
        )
    return newest, "stored"


class TokenStore(Protocol):
    """Where the newest tokens live between runs, shared by every job on one Exact login.

    `locked()` is held around a refresh: the authenticator re-reads the store inside it and
    skips the refresh when another job has already rotated the chain. Before it spends a
    refresh token it calls `prove_writable()`, which writes the way `write` will (the current
    contents again), so a full disk or a read-only mount is found while the old token still
    works.
    """

    def read(self) -> TokenSet | None: ...

    def write(self, tokens: TokenSet) -> None: ...

    def prove_writable(self) -> None: ...

    def locked(self) -> AbstractContextManager[None]: ...


def _wait_for_lock(try_lock: Callable[[], bool], where: str) -> None:
    """Poll a non-blocking lock; a run holds it only for one token call, so waiting long means
    something is wrong: say so instead of hanging."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not try_lock():
        if time.monotonic() > deadline:
            raise TokenRefreshError(
                f"{where}: another run has held its lock for {LOCK_WAIT_SECONDS:.0f} s"
            )
        time.sleep(LOCK_POLL_SECONDS)


def _os_reason(exc: OSError) -> str:
    """`No space left on device` and the like: what the user can act on."""
    return exc.strerror or type(exc).__name__


# A rename onto the token file that these refuse may still allow writing the file in place:
# a file bind-mounted on its own (`docker run -v tokens.json:/app/tokens.json`: EBUSY), a mount
# point of another filesystem (EXDEV), a directory the job may not write in (EACCES, EPERM).
_RENAME_REFUSALS = {errno.EBUSY, errno.EXDEV, errno.EACCES, errno.EPERM}
# Room a token file may need: an encrypted one is about 1 KiB.
_PROBE_BYTES = 4096


class FileTokenStore:
    """Tokens in a local JSON file, replaced atomically so a crash never leaves half a file.

    The lock is an flock on a sibling `.lock` file, which (unlike the token file) is never
    replaced, so every process locks the same inode. Where the file cannot be replaced (a file
    bind-mounted on its own into a container), it is rewritten in place with one write of at
    least its old length (padded with spaces, which JSON ignores), then fsynced.
    """

    def __init__(self, path: str | os.PathLike[str], codec: TokenCodec | None = None) -> None:
        self.path = Path(path).expanduser()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.codec = codec or TokenCodec(None)
        self._in_place = False

    def __repr__(self) -> str:
        return f"FileTokenStore({self.path})"

    def _fail(self, action: str, exc: OSError, path: Path | None = None) -> TokenStoreError:
        where = path or self.path
        return TokenStoreError(
            f"token_store {self.path} cannot be {action}: {_os_reason(exc)} ({where})"
        )

    @contextmanager
    def locked(self) -> Iterator[None]:
        try:
            if self.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "it is a directory")
            for folder in (self.path.parent, *self.path.parent.parents):
                if folder.exists() and not folder.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, f"Not a directory: {folder}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            where = self.lock_path if self.lock_path.exists() else None
            raise self._fail("locked", exc, where) from None
        try:

            def try_lock() -> bool:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            _wait_for_lock(try_lock, f"token_store {self.path}")
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _read_bytes(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail("read", exc) from None

    def read(self) -> TokenSet | None:
        raw = self._read_bytes()
        if raw is None or not raw.strip():
            return None  # absent, or created empty (by touch, or a mount of an empty file)
        where = f"token_store {self.path}"
        try:
            data = json.loads(raw)
        except ValueError:
            raise TokenStoreError(
                f"{where} does not hold JSON. Restore it from a backup, or delete it and "
                "authorize again (tap-exactonline-auth)."
            ) from None
        return self.codec.load(data, where)

    def write(self, tokens: TokenSet) -> None:
        self._write(json.dumps(self.codec.dump(tokens)).encode())

    def prove_writable(self) -> None:
        """Write the current contents back, the way `write` will write new ones, after
        checking there is room for a token file."""
        current = self._read_bytes()
        if current is None:
            self._probe_new()
        else:
            self._write(current, room=_PROBE_BYTES)

    def _probe_new(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        except OSError as exc:
            raise self._fail("written", exc, self.path.parent) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b" " * _PROBE_BYTES)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise self._fail("written", exc) from None
        finally:
            Path(temp_name).unlink(missing_ok=True)

    def _write(self, data: bytes, room: int = 0) -> None:
        if not self._in_place:
            try:
                self._replace(data, room)
            except OSError as exc:
                if exc.errno not in _RENAME_REFUSALS or not self.path.is_file():
                    raise self._fail("written", exc) from None
                LOGGER.info(
                    "token_store %s cannot be replaced (%s): writing it in place instead "
                    "(a file mounted on its own, or a directory the job may not write in).",
                    self.path,
                    _os_reason(exc),
                )
                self._in_place = True
            else:
                return
        try:
            self._rewrite_in_place(data)
        except OSError as exc:
            raise self._fail("written", exc) from None

    def _replace(self, data: bytes, room: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                if room > len(data):  # claim the room first: a full disk fails here
                    handle.write(b" " * room)
                    handle.flush()
                    os.fsync(handle.fileno())
                    handle.seek(0)
                    handle.truncate()
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # make the rename itself durable
        finally:
            os.close(directory)

    def _rewrite_in_place(self, data: bytes) -> None:
        """One write from the start, padded to the old length so nothing of the old tokens
        stays behind and no truncation is needed: a process killed mid-way leaves the old
        file or the new one (a write of a few KiB is not split)."""
        with self.path.open("r+b") as handle:
            old_length = os.fstat(handle.fileno()).st_size
            handle.write(data.ljust(old_length))
            handle.flush()
            os.fsync(handle.fileno())


class PostgresTokenStore:
    """Tokens in a small PostgreSQL table (created on first use), one row per login.

    `token_store: postgresql://user:password@host:5432/db?table=...&key=...`. The lock is a
    session advisory lock on the row's key: PostgreSQL releases it when a crashed job's
    connection drops, so a dead job never blocks the others. Writes commit at once.
    """

    DEFAULT_TABLE = "tap_exactonline_tokens"

    def __init__(self, url: str, *, default_key: str, codec: TokenCodec | None = None) -> None:
        self.codec = codec or TokenCodec(None)
        parts = urlsplit(url)
        options = dict(parse_qsl(parts.query))
        self.table = options.pop("table", self.DEFAULT_TABLE)
        self.key = options.pop("key", default_key)
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

    def read(self) -> TokenSet | None:
        try:
            rows = self._run("SELECT tokens FROM {table} WHERE key = %s", self.key)
        except TokenRefreshError:
            raise
        except Exception as exc:  # psycopg.Error: no privilege on the table, say
            raise self._fail("read", exc) from None
        return self.codec.load(rows[0][0], f"token_store {self._where}") if rows else None

    _UPSERT = (
        "INSERT INTO {table} (key, tokens) VALUES (%s, %s::jsonb) ON CONFLICT (key) DO "
        "UPDATE SET tokens = EXCLUDED.tokens, updated_at = now() RETURNING key"
    )

    def write(self, tokens: TokenSet) -> None:
        try:
            self._run(self._UPSERT, self.key, json.dumps(self.codec.dump(tokens)))
        except TokenStoreError:
            raise
        except Exception as exc:  # psycopg.Error: read-only database, no privilege, disk full
            raise self._fail("written", exc) from None

    def prove_writable(self) -> None:
        """The same upsert with the row's current tokens, committed (nothing changes), or
        rolled back when there is no row yet. Called inside `locked()`."""
        from psycopg import Rollback, sql  # noqa: PLC0415

        connection = self._locked_connection
        if connection is None:
            raise TokenStoreError(f"token_store {self._where}: prove_writable outside the lock")
        table = sql.Identifier(self.table)
        try:
            with connection.transaction():
                rows = connection.execute(
                    sql.SQL("SELECT tokens FROM {} WHERE key = %s FOR UPDATE").format(table),
                    (self.key,),
                ).fetchall()
                current = json.dumps(rows[0][0]) if rows else "{}"
                connection.execute(sql.SQL(self._UPSERT).format(table=table), (self.key, current))
                if not rows:
                    raise Rollback()  # noqa: TRY301 - psycopg's way to roll back the block
        except Exception as exc:  # psycopg.Error: read-only database, no privilege, disk full
            raise self._fail("written", exc) from None

    def _fail(self, action: str, exc: Exception) -> TokenStoreError:
        return TokenStoreError(
            f"token_store PostgreSQL {self._where} cannot be {action} ({type(exc).__name__}: "
            f"{_first_line(exc)})"
        )

    @contextmanager
    def locked(self) -> Iterator[None]:
        connection = self._connect()
        try:
            lock = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"
            name = f"{self.table}/{self.key}"
            _wait_for_lock(
                lambda: bool(connection.execute(lock, (name,)).fetchone()[0]),
                f"token_store {self._where}",
            )
            self._locked_connection = connection
            yield
        finally:
            self._locked_connection = None
            connection.close()  # ends the session, and with it the advisory lock


class ObjectStoreTokenStore:
    """Tokens in one object on an object store (S3, GCS, Azure, ...) through fsspec.

    Object stores have no locks, so the lock is a lease object next to the tokens, created with
    fsspec's exclusive mode (`"xb"`: S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`, Azure
    `If-None-Match`), which exactly one of several racing jobs wins. A lease names its holder and
    an expiry, so a job killed while holding it blocks the others for LEASE_SECONDS at most.
    Writes are single PUTs, which object stores apply whole or not at all.
    """

    # Longer than one token call (request_timeout, 60 s by default), shorter than LOCK_WAIT_SECONDS.
    LEASE_SECONDS = 120.0
    LEASE_SETTLE_SECONDS = 2.0

    def __init__(self, url: str, codec: TokenCodec | None = None) -> None:
        import fsspec  # noqa: PLC0415 - only needed by users of this store

        self.codec = codec or TokenCodec(None)
        self.url = url
        try:
            self.fs, self.path = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            scheme = urlsplit(url).scheme
            raise TokenStoreError(
                f"token_store {scheme}:// cannot be opened: {_first_line(exc)} (install the "
                "filesystem package for it, e.g. `pip install tap-exactonline[s3]`)"
            ) from None
        self.lease_path = self.path + ".lease"
        self._lease_id = ""
        self._broke_a_lease = False

    def __repr__(self) -> str:
        return f"ObjectStoreTokenStore({self.url})"

    def _fail(self, action: str, exc: Exception) -> TokenStoreError:
        return TokenStoreError(
            f"token_store {self.url} cannot be {action} ({type(exc).__name__}: {_first_line(exc)})"
        )

    def read(self) -> TokenSet | None:
        try:
            raw = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fail("read", exc) from None
        if not raw.strip():
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            raise TokenStoreError(
                f"token_store {self.url} does not hold JSON. Restore it from a backup, or "
                "delete it and authorize again (tap-exactonline-auth)."
            ) from None
        return self.codec.load(data, f"token_store {self.url}")

    def write(self, tokens: TokenSet) -> None:
        self._put(json.dumps(self.codec.dump(tokens)).encode())

    def _put(self, data: bytes) -> None:
        try:
            self.fs.pipe_file(self.path, data)
        except Exception as exc:
            raise self._fail("written", exc) from None

    def prove_writable(self) -> None:
        """Put the current object again (a single PUT, like `write`); without one, put and
        remove a probe object beside it."""
        try:
            current = self.fs.cat_file(self.path)
        except FileNotFoundError:
            current = None
        except Exception as exc:
            raise self._fail("read", exc) from None
        if current is not None:
            self._put(current)
            return
        probe = self.path + ".probe"
        try:
            self.fs.pipe_file(probe, b"{}")
            self.fs.rm_file(probe)
        except Exception as exc:
            raise self._fail("written", exc) from None

    def _try_lease(self) -> bool:
        lease = {"holder": self._lease_id, "expires_at": time.time() + self.LEASE_SECONDS}
        try:
            with self.fs.open(self.lease_path, "xb") as handle:
                handle.write(json.dumps(lease).encode())
        except FileExistsError:
            self._break_expired_lease()
            return False
        except Exception as exc:
            raise self._fail("locked (exclusive create of its .lease object)", exc) from None
        return True

    def _current_lease(self) -> dict[str, Any] | None:
        try:
            lease = json.loads(self.fs.cat_file(self.lease_path))
        except FileNotFoundError:
            return None
        except ValueError:
            return {}  # half-written by a job that died: treat as expired
        except Exception as exc:
            raise self._fail("locked (reading its .lease object)", exc) from None
        return lease if isinstance(lease, dict) else {}

    def _break_expired_lease(self) -> None:
        lease = self._current_lease()
        if lease is not None and float(lease.get("expires_at", 0)) < time.time():
            LOGGER.warning("token_store %s: removing a lease left by a run that died", self.url)
            self._broke_a_lease = True
            try:
                self.fs.rm_file(self.lease_path)
            except FileNotFoundError:
                pass  # another job removed it first
            except Exception as exc:
                raise self._fail("locked (removing an expired .lease object)", exc) from None

    def _acquire(self) -> None:
        self._lease_id = os.urandom(16).hex()
        self._broke_a_lease = False
        _wait_for_lock(self._try_lease, f"token_store {self.url}")
        # Removing an expired lease cannot be made conditional on every store: a job that read
        # the same expired lease may remove ours just after we created it, then create its own.
        # Only after a break, wait for such a job to show itself, and queue again if it did.
        while self._broke_a_lease:
            time.sleep(self.LEASE_SETTLE_SECONDS)
            lease = self._current_lease()
            if lease is not None and lease.get("holder") == self._lease_id:
                return
            self._broke_a_lease = False
            _wait_for_lock(self._try_lease, f"token_store {self.url}")

    @contextmanager
    def locked(self) -> Iterator[None]:
        self._acquire()
        try:
            yield
        finally:
            lease = self._current_lease()
            if lease is not None and lease.get("holder") == self._lease_id:
                self.fs.rm_file(self.lease_path)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


POSTGRES_SCHEMES = ("postgresql", "postgres")


def token_store_problem(location: str) -> str | None:
    """Why a `token_store` value cannot be used, if it cannot (checked before any request)."""
    scheme = urlsplit(location).scheme.lower().split("+")[0]
    if scheme in ("", "file", *POSTGRES_SCHEMES) or len(scheme) == 1:  # "C:\\..." on Windows
        return None
    import fsspec  # noqa: PLC0415

    try:
        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as exc:
        return (
            f"Setting `token_store`: {scheme}:// needs its fsspec filesystem package "
            f"({_first_line(exc)}); install it, e.g. `pip install tap-exactonline[s3]`, or use a "
            "file path or a PostgreSQL URL."
        )
    return None


def open_token_store(location: str, *, client_id: str, codec: TokenCodec) -> TokenStore:
    """`token_store` setting -> store: a PostgreSQL URL, an fsspec URL, or a local path."""
    parts = urlsplit(location)
    scheme = parts.scheme.lower().split("+")[0]
    if scheme in POSTGRES_SCHEMES:
        return PostgresTokenStore(location, default_key=client_id, codec=codec)
    if scheme == "file":
        return FileTokenStore(parts.path, codec=codec)
    if len(scheme) > 1:
        return ObjectStoreTokenStore(location, codec=codec)
    return FileTokenStore(location, codec=codec)


class ServerClock:
    """Exact's clock as seen from this machine: its own clock, corrected by the `Date` header
    of Exact's latest token answer. A machine 15 minutes fast then still sees a token another
    machine got five minutes ago as five minutes old."""

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        self._offset = 0.0

    def __call__(self) -> float:
        return self._local() + self._offset

    def observe(self, headers: Any) -> None:
        date = headers.get("Date") if headers is not None else None
        if not date:
            return
        try:
            server = email.utils.parsedate_to_datetime(str(date)).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        # `Date` has whole seconds: its middle is the best guess.
        self._offset = server + 0.5 - self._local()


class ExactAuthenticator(requests.auth.AuthBase):
    """The tap's single authenticator: adds the bearer token, refreshes and persists rotations."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        tokens: TokenSet,
        store: TokenStore | None,
        on_rotate: Callable[[TokenSet], None],
        timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
        superseded: Iterable[TokenSet] = (),
    ) -> None:
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._tokens = tokens
        self._store = store
        self._on_rotate = on_rotate
        self._timeout = timeout
        # Token times are kept on Exact's clock, so jobs on machines whose clocks disagree
        # judge a shared token alike.
        self._clock = ServerClock(clock)
        self._lock = threading.Lock()
        # No urllib3 retries (replaying a consumed refresh token can make Exact revoke the
        # whole chain), and a deadline on the whole answer, not only on each byte.
        self._session: requests.Session = DeadlineSession()
        self.refresh_count = 0
        # Every secret this process has held (spent ones too), to scrub from what we show.
        self._secrets: set[str] = set()
        # Fingerprints of the access tokens this run got from its own refreshes.
        self._refreshed_here: set[str] = set()
        # Links the run chose not to continue (a newly configured refresh token replaced
        # them): found in the store, they are older, not newer.
        self._superseded = {fingerprint(t.refresh_token) for t in superseded}
        self._remember(tokens)

    def __repr__(self) -> str:
        return f"ExactAuthenticator({self._tokens!r})"

    @property
    def tokens(self) -> TokenSet:
        return self._tokens

    def _remember(self, tokens: TokenSet) -> None:
        self._secrets.update(v for v in (tokens.refresh_token, tokens.access_token) if v)

    def _use(self, tokens: TokenSet) -> None:
        self._tokens = tokens
        self._remember(tokens)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret this authenticator holds or held, to scrub from any text we show."""
        return tuple(v for v in (self._client_secret, *self._secrets) if v)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def access_token(self) -> str:
        with self._lock:
            if not self._tokens.access_token_valid(self._clock()):
                self._refresh_shared(rejected=None)
            assert self._tokens.access_token is not None  # _refresh raises otherwise
            return self._tokens.access_token

    def refresh_after_unauthorized(
        self, rejected_token: str | None, headers: Any = None
    ) -> None:
        """Exact said 401 (its answer's `headers` tell Exact's clock): take the store's newer
        token, or refresh once; nothing if another caller in this process already replaced
        the refused token. Raises FreshTokenRefusedError when the refused token is one this
        run refreshed itself and, by Exact's clock, it is still valid: a new one would be
        refused too."""
        with self._lock:
            self._clock.observe(headers)
            if rejected_token is not None and rejected_token != self._tokens.access_token:
                return
            self._refresh_shared(rejected=rejected_token or "")

    def _refuse_if_fresh(self, rejected: str | None) -> None:
        """Called when nothing newer than the refused token is known."""
        current = self._tokens
        if (
            rejected
            and rejected == current.access_token
            and fingerprint(rejected) in self._refreshed_here
            and current.access_token_valid(self._clock(), margin=0)
        ):
            raise FreshTokenRefusedError(
                "Exact answered HTTP 401 even with a freshly refreshed access token (valid by "
                f"Exact's clock for {current.expires_at - self._clock():.0f} s more). Exact "
                "refuses this app's tokens: check the app in the Exact App Center, or try again "
                "later."
            )

    def _refresh_shared(self, *, rejected: str | None) -> None:
        """Lock the store, reload it, take another job's newer link, else refresh.

        Jobs sharing one login would otherwise each spend the single-use refresh token, and
        all but the first would be refused (or be refused by the 570 s rule).
        """
        force = rejected is not None
        if self._store is None:
            self._refuse_if_fresh(rejected)
            self._refresh(force=force)
            return
        with self._store.locked():
            latest = self._store.read()
            current = self._tokens
            # The store is the shared copy: anything in it that is not this token or an
            # earlier link of its chain is newer (another job refreshed, or a new
            # authorization replaced the chain).
            if (
                latest is not None
                and latest.refresh_token != current.refresh_token
                and not current.descends_from(latest)
                and fingerprint(latest.refresh_token) not in self._superseded
            ):
                self._use(latest)
                self._on_rotate(latest)  # the state carries the newest link of the chain
                usable = latest.access_token_valid(self._clock())
                if usable and latest.access_token != rejected:
                    LOGGER.info("Another run already refreshed the Exact token; using it.")
                    return
            self._refuse_if_fresh(rejected)
            # Before the refresh token is spent: can the store take the new one?
            self._store.prove_writable()
            self._refresh(force=force)

    def _refresh(self, *, force: bool = False) -> None:
        now = self._clock()
        current = self._tokens
        too_soon = now - current.obtained_at < MIN_REFRESH_INTERVAL_SECONDS
        if too_soon and current.access_token_valid(now, margin=0) and not force:
            return  # Exact would refuse the refresh; the current token still works
        # From the POST until the answer is saved, SIGTERM waits: Exact spends the old
        # refresh token as it answers.
        with GUARD.hold():
            response = self._post_refresh(current.refresh_token)
            self._clock.observe(response.headers)
            now = self._clock()
            body = json_or_empty(response)
            if response.status_code == 200 and body.get("access_token"):
                self._rotate(body, now)
                return
        error = str(body.get("error") or "")
        description = str(body.get("error_description") or "")
        if TOO_EARLY_DESCRIPTION in description:
            if current.access_token_valid(now, margin=0):
                LOGGER.info("Exact refused an early token refresh; keeping the current token.")
                return
            raise TokenRefreshError(
                "Exact refused a token refresh because the last one was less than 570 s ago, "
                "and there is no valid access token to continue with; run again in 10 minutes."
            )
        if error == "invalid_client":
            # Exact checks the client before the grant: the refresh token was not spent.
            raise ClientRejectedError(
                f"{INVALID_CLIENT_MESSAGE}. The refresh token is kept for the next run."
            )
        if error in REAUTHORIZE_ERRORS or response.status_code in (400, 401):
            reason = self._scrub(error or str(response.status_code))
            if description:
                reason += f": {self._scrub(description)}"
            raise AuthorizationRequiredError(
                f"Exact rejected the refresh token ({reason}). Authorize the app "
                "again and set the new `refresh_token`."
            )
        raise TokenRefreshError(
            f"Exact's token endpoint answered HTTP {response.status_code}; the refresh token may "
            "still be valid, run again later."
        )

    def _post_refresh(self, refresh_token: str) -> requests.Response:
        data = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        try:
            response = self._session.post(
                self._token_url,
                data=data,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                # A 307 would re-send the secret and the refresh token to wherever it points.
                allow_redirects=False,
            )
        except (requests.RequestException, CallDeadlineExceeded) as exc:
            spent = (
                "; if Exact answered meanwhile, the refresh token is spent and the app must be "
                "authorized again"
                if isinstance(exc, (requests.ReadTimeout, CallDeadlineExceeded))
                else ""
            )
            raise TokenRefreshError(
                f"Exact's token endpoint could not be reached ({self._describe(exc)}){spent}."
            ) from None
        if response.is_redirect:
            where = urlsplit(response.headers.get("Location") or "").netloc or "elsewhere"
            raise TokenRefreshError(
                f"Exact's token endpoint answered HTTP {response.status_code}, a redirect to "
                f"{where}: not followed, so the client secret and refresh token stay here. Check "
                "`base_url` (or `region`), and any proxy in between."
            )
        return response

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, CallDeadlineExceeded):
            return str(exc)
        return type(exc).__name__

    def _rotate(self, body: dict[str, Any], now: float) -> None:
        new = self._tokens.followed_by(body, now=now)
        self._remember(new)
        # Durable first: if we crash after this line, the next run still has the new token.
        if self._store is not None:
            try:
                self._store.write(new)
            except TokenStoreError as failure:
                # The old token is spent: the new one must not be lost with the store.
                self._tokens = new
                self._on_rotate(new)  # the STATE now carries it
                raise TokensOnlyInStateError(
                    f"Exact issued new tokens but {failure}. The new refresh token is in this "
                    "run's last STATE message only (Meltano keeps it in its state backend). Fix "
                    "token_store, then run again: the next run takes the token from the state "
                    "and writes it to the store. Do not clear the state, or the app must be "
                    "authorized again."
                ) from None
        self._tokens = new
        self._refreshed_here.add(fingerprint(str(new.access_token)))
        self.refresh_count += 1
        self._on_rotate(new)
        LOGGER.info("Refreshed the Exact access token (valid %.0f s).", new.expires_at - now)

    def _scrub(self, text: str) -> str:
        return scrub(text, self.secrets)


def token_lifetime(body: dict[str, Any]) -> float:
    """Seconds the access token in Exact's token answer lasts (600 when not said)."""
    try:
        return float(body.get("expires_in") or 600)
    except (TypeError, ValueError):
        return 600.0


def json_or_empty(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
