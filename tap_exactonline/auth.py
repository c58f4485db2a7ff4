"""Exact Online OAuth tokens: choosing, refreshing, persisting.

Exact refresh tokens are single-use: every refresh returns a new one and kills the old. A new
access token may only be requested 570 s after the previous one. So the whole tap shares ONE
authenticator, refreshes ~30 s before expiry (or once on a 401), and persists every rotation
before using the new access token.
"""

from __future__ import annotations

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from cryptography.fernet import Fernet, InvalidToken

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


def fingerprint(secret: str) -> str:
    """A short, irreversible identifier of a token, to recognise it without storing it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TokenSet:
    """One link of a refresh-token chain; `origin` fingerprints its configured first token."""

    refresh_token: str
    access_token: str | None
    expires_at: float
    obtained_at: float
    origin: str
    # Fingerprint of the configured refresh token this chain superseded (set by
    # tap-exactonline-auth), so that stale setting does not win over the new chain.
    replaces: str = ""

    def __repr__(self) -> str:  # never show a token, even in a debugger or traceback
        return (
            f"TokenSet(obtained_at={self.obtained_at:.0f}, expires_at={self.expires_at:.0f}, "
            f"origin={self.origin})"
        )

    __str__ = __repr__

    def access_token_valid(self, now: float, margin: float = ACCESS_TOKEN_MARGIN_SECONDS) -> bool:
        return bool(self.access_token) and self.expires_at - margin > now

    def to_dict(self) -> dict[str, Any]:
        # Whole seconds: SDK targets read JSON floats as Decimal and then cannot write the
        # state back out (target-postgres fails on it).
        data = asdict(self)
        data["expires_at"] = int(self.expires_at)
        data["obtained_at"] = int(self.obtained_at)
        return data

    @classmethod
    def from_token_response(
        cls, body: dict[str, Any], *, now: float, origin: str, replaces: str, previous: str = ""
    ) -> TokenSet:
        """Exact's token answer -> the new link (`previous`: refresh token kept if none came)."""
        return cls(
            refresh_token=str(body.get("refresh_token") or previous),
            access_token=str(body["access_token"]),
            expires_at=now + token_lifetime(body),
            obtained_at=now,
            origin=origin,
            replaces=replaces,
        )

    @classmethod
    def from_dict(cls, data: object) -> TokenSet | None:
        """Read a stored token set; anything malformed counts as absent."""
        if not isinstance(data, dict) or not isinstance(data.get("refresh_token"), str):
            return None
        try:
            return cls(
                refresh_token=data["refresh_token"],
                access_token=data.get("access_token") or None,
                expires_at=float(data.get("expires_at") or 0),
                obtained_at=float(data.get("obtained_at") or 0),
                origin=str(data.get("origin") or ""),
                replaces=str(data.get("replaces") or ""),
            )
        except (TypeError, ValueError):
            return None


class TokenStoreError(TokenRefreshError):
    """A token store or the state holds tokens we cannot read."""


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
        """Read tokens back; plain ones (kept before encryption was turned on) are accepted."""
        if not isinstance(data, dict) or "encrypted" not in data:
            return TokenSet.from_dict(data)
        if self._fernet is None:
            raise TokenStoreError(
                f"The tokens in {where} are encrypted: set `token_encryption_key`."
            )
        try:
            plain = self._fernet.decrypt(str(data["encrypted"]).encode())
        except InvalidToken:
            raise TokenStoreError(
                f"`token_encryption_key` does not decrypt the tokens in {where}: it is not the "
                "key they were written with."
            ) from None
        return TokenSet.from_dict(json.loads(plain))


def choose_tokens(
    config_refresh_token: str | None, stored: Iterable[TokenSet | None]
) -> tuple[TokenSet, str]:
    """Pick the token set to start from, and say where it came from.

    The newest stored token wins, unless the configured refresh token is one we have never seen:
    then the user authorized again and the configured token starts a new chain.
    """
    candidates = [t for t in stored if t is not None]
    newest = max(candidates, key=lambda t: t.obtained_at, default=None)
    if config_refresh_token:
        config_print = fingerprint(config_refresh_token)
        known = {t.origin for t in candidates} | {t.replaces for t in candidates}
        known |= {fingerprint(t.refresh_token) for t in candidates}
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
    skips the refresh when another job has already rotated the chain.
    """

    def read(self) -> TokenSet | None: ...

    def write(self, tokens: TokenSet) -> None: ...

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


class FileTokenStore:
    """Tokens in a local JSON file, replaced atomically so a crash never leaves half a file.

    The lock is an flock on a sibling `.lock` file, which (unlike the token file) is never
    replaced, so every process locks the same inode.
    """

    def __init__(self, path: str | os.PathLike[str], codec: TokenCodec | None = None) -> None:
        self.path = Path(path).expanduser()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.codec = codec or TokenCodec(None)

    def __repr__(self) -> str:
        return f"FileTokenStore({self.path})"

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
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

    def read(self) -> TokenSet | None:
        try:
            return self.codec.load(json.loads(self.path.read_text()), f"token_store {self.path}")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise TokenRefreshError(
                f"token_store {self.path} cannot be read ({type(exc).__name__})"
            ) from None

    def write(self, tokens: TokenSet) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(self.codec.dump(tokens), handle)
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
            raise TokenRefreshError(
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
        rows = self._run("SELECT tokens FROM {table} WHERE key = %s", self.key)
        return self.codec.load(rows[0][0], f"token_store {self._where}") if rows else None

    def write(self, tokens: TokenSet) -> None:
        self._run(
            "INSERT INTO {table} (key, tokens) VALUES (%s, %s::jsonb) ON CONFLICT (key) DO "
            "UPDATE SET tokens = EXCLUDED.tokens, updated_at = now() RETURNING key",
            self.key,
            json.dumps(self.codec.dump(tokens)),
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
        try:
            return self.codec.load(json.loads(raw), f"token_store {self.url}")
        except ValueError:
            raise TokenStoreError(f"token_store {self.url} does not hold JSON") from None

    def write(self, tokens: TokenSet) -> None:
        data = json.dumps(self.codec.dump(tokens)).encode()
        try:
            self.fs.pipe_file(self.path, data)
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
    ) -> None:
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._tokens = tokens
        self._store = store
        self._on_rotate = on_rotate
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        # A plain session: no urllib3 retries, because replaying a consumed refresh token
        # can make Exact revoke the whole chain.
        self._session = requests.Session()
        self.refresh_count = 0

    def __repr__(self) -> str:
        return f"ExactAuthenticator({self._tokens!r})"

    @property
    def tokens(self) -> TokenSet:
        return self._tokens

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret this authenticator holds, to scrub from any text we show."""
        values = (
            self._client_secret,
            self._tokens.refresh_token,
            self._tokens.access_token or "",
        )
        return tuple(v for v in values if v)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def access_token(self) -> str:
        with self._lock:
            if not self._tokens.access_token_valid(self._clock()):
                self._refresh_shared(rejected=None)
            assert self._tokens.access_token is not None  # _refresh raises otherwise
            return self._tokens.access_token

    def refresh_after_unauthorized(self, rejected_token: str | None) -> None:
        """Exact said 401: refresh once, unless another caller already replaced that token."""
        with self._lock:
            if rejected_token is not None and rejected_token != self._tokens.access_token:
                return
            self._refresh_shared(rejected=rejected_token or "")

    def _refresh_shared(self, *, rejected: str | None) -> None:
        """Lock the store, reload it, skip if another job already refreshed, else refresh.

        Jobs sharing one login would otherwise each spend the single-use refresh token, and
        all but the first would be refused (or be refused by the 570 s rule).
        """
        force = rejected is not None
        if self._store is None:
            self._refresh(force=force)
            return
        with self._store.locked():
            latest = self._store.read()
            current = self._tokens
            # Same chain (same first authorization), newer link: another job refreshed. A
            # different chain is an older authorization that a new `refresh_token` replaced.
            if (
                latest is not None
                and latest.origin == current.origin
                and latest.obtained_at > current.obtained_at
            ):
                self._tokens = latest
                self._on_rotate(latest)  # the state carries the newest link of the chain
                usable = latest.access_token_valid(self._clock())
                if usable and latest.access_token != rejected:
                    LOGGER.info("Another run already refreshed the Exact token; using it.")
                    return
            self._refresh(force=force)

    def _refresh(self, *, force: bool = False) -> None:
        now = self._clock()
        current = self._tokens
        too_soon = now - current.obtained_at < MIN_REFRESH_INTERVAL_SECONDS
        if too_soon and current.access_token_valid(now, margin=0) and not force:
            return  # Exact would refuse the refresh; the current token still works
        response = self._post_refresh(current.refresh_token)
        body = json_or_empty(response)
        if response.status_code == 200 and body.get("access_token"):
            self._rotate(body, now, current.origin)
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
            return self._session.post(
                self._token_url,
                data=data,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise TokenRefreshError(
                f"Exact's token endpoint could not be reached ({type(exc).__name__})."
            ) from None

    def _rotate(self, body: dict[str, Any], now: float, origin: str) -> None:
        new = TokenSet.from_token_response(
            body,
            now=now,
            origin=origin,
            replaces=self._tokens.replaces,
            previous=self._tokens.refresh_token,
        )
        # Durable first: if we crash after this line, the next run still has the new token.
        if self._store is not None:
            self._store.write(new)
        self._tokens = new
        self.refresh_count += 1
        self._on_rotate(new)
        LOGGER.info("Refreshed the Exact access token (valid %.0f s).", new.expires_at - now)

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


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
