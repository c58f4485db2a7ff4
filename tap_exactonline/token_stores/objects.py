"""Tokens in one object on an object store (S3, GCS, Azure, ...) through fsspec, locked by a
lease object created with a conditional write."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from tap_exactonline.redact import without_password
from tap_exactonline.token_stores.common import first_line, wait_for_lock
from tap_exactonline.token_stores.logins import StoreOwner, login_key
from tap_exactonline.tokens import TokenCodec, TokenSet, TokenStoreError

LOGGER = logging.getLogger("tap_exactonline.token_stores")


class ObjectStoreTokenStore:
    """Tokens in one object on an object store (S3, GCS, Azure, ...) through fsspec.

    Object stores have no locks, so the lock is a lease object next to the tokens, created with
    fsspec's exclusive mode (`"xb"`: S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`, Azure
    `If-None-Match`), which exactly one of several racing jobs wins. A lease names its holder and
    an expiry, so a job killed while holding it blocks the others for LEASE_SECONDS at most.
    Writes are single PUTs, which object stores apply whole or not at all.

    Each Exact login of the app keeps its tokens in its own object beside the named one,
    `<name>.<client_id>.<UserID>.json` (see logins.py); the named object, where earlier versions
    kept them, is still read, and removed once its chain is kept under its login.
    """

    # Longer than one token call (request_timeout, 60 s by default), shorter than LOCK_WAIT_SECONDS.
    LEASE_SECONDS = 120.0
    LEASE_SETTLE_SECONDS = 2.0

    def __init__(
        self, url: str, codec: TokenCodec | None = None, owner: StoreOwner | None = None
    ) -> None:
        import fsspec  # noqa: PLC0415 - only needed by users of this store

        self.codec = codec or TokenCodec(None)
        self.owner = owner or StoreOwner("")
        self.url = without_password(url)  # as messages show it
        try:
            self.fs, self.path = fsspec.core.url_to_fs(url)
        except ImportError as exc:
            scheme = urlsplit(url).scheme
            raise TokenStoreError(
                f"token_store {scheme}:// cannot be opened: {first_line(exc)} (install the "
                "filesystem package for it, e.g. `pip install tap-exactonline-rest[s3]`)"
            ) from None
        except Exception as exc:
            raise self._fail("opened", exc) from None
        self.lease_path = self.path + ".lease"  # one for every login: see PostgresTokenStore
        self._stem, self._suffix = os.path.splitext(self.path)
        self._object_read = ""  # the path of the object the last read took
        self._lease_id = ""
        self._broke_a_lease = False
        self._found_empty = False

    def __repr__(self) -> str:
        return f"ObjectStoreTokenStore({self.url})"

    def _fail(self, action: str, exc: Exception) -> TokenStoreError:
        return TokenStoreError(
            f"token_store {self.url} cannot be {action} ({type(exc).__name__}: {first_line(exc)})"
        )

    def found_empty(self) -> bool:
        return self._found_empty

    def _login_path(self, login: str) -> str:
        return f"{self._stem}.{login_key(self.owner.app, login).replace('/', '.')}{self._suffix}"

    def _login_paths(self) -> list[str]:
        """The objects of the app's logins: this run's login's, when it knows it; else all."""
        if self.owner.login:
            return [self._login_path(self.owner.login)]
        prefix = self._login_path("").removesuffix(self._suffix) + "."
        folder = os.path.dirname(self.path)
        try:
            self.fs.invalidate_cache(folder)  # another job may have added one since (s3fs)
            names = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise self._fail("read (listing the objects beside it)", exc) from None
        paths = [str(name) for name in names]  # in the form url_to_fs gave self.path
        return sorted(p for p in paths if p.startswith(prefix) and p.endswith(self._suffix))

    def read(self) -> TokenSet | None:
        self._found_empty = False
        found: list[tuple[str, TokenSet]] = []
        for path in [*self._login_paths(), self.path]:
            tokens = self._read_object(path)
            if tokens is not None:
                found.append((path, tokens))
        chosen = self.owner.pick([tokens for _, tokens in found], f"token_store {self.url}")
        self._object_read = next((path for path, tokens in found if tokens is chosen), "")
        return chosen

    def _read_object(self, path: str) -> TokenSet | None:
        try:
            raw = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fail("read", exc) from None
        if not raw.strip():
            self._found_empty = self._found_empty or path == self.path
            return None
        where = f"token_store {self.url}" + ("" if path == self.path else f" ({path})")
        try:
            data = json.loads(raw)
        except ValueError:
            raise TokenStoreError(
                f"{where} does not hold JSON. Restore it from a backup, or delete it and "
                "authorize again (tap-exactonline-auth)."
            ) from None
        return self.codec.load(data, where)

    def write(self, tokens: TokenSet) -> None:
        self.owner.learn(tokens)
        path = self._login_path(tokens.login) if tokens.login else self.path
        self._put(json.dumps(self.codec.dump(tokens)).encode(), path)
        self._object_read = path
        if path != self.path:
            try:
                self._retire_app_object()
            except TokenStoreError as error:  # the tokens are saved; this only tidies
                LOGGER.warning("%s", error)

    def _retire_app_object(self) -> None:
        """The object earlier versions kept (or kept while the login was unknown) goes once its
        chain is kept under the login; another login's stays."""
        try:
            tokens = self._read_object(self.path)
        except TokenStoreError:
            return  # not readable with this run's key: not known to be this run's
        if tokens is not None and self.owner.owns(tokens):
            try:
                self.fs.rm_file(self.path)
            except Exception as exc:
                raise self._fail("written (removing the copy kept before logins)", exc) from None

    def _put(self, data: bytes, path: str) -> None:
        try:
            self.fs.pipe_file(path, data)
        except Exception as exc:
            raise self._fail("written", exc) from None

    def exposure(self) -> str | None:
        return None  # not a file in anyone's work tree

    def prove_writable(self) -> None:
        """Put the current object again (a single PUT, like `write`); without one, put and
        remove a probe object beside it."""
        path = self._object_read or self.path
        try:
            current = self.fs.cat_file(path)
        except FileNotFoundError:
            current = None
        except Exception as exc:
            raise self._fail("read", exc) from None
        if current is not None:
            self._put(current, path)
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
        wait_for_lock(self._try_lease, f"token_store {self.url}")
        # Removing an expired lease cannot be made conditional on every store: a job that read
        # the same expired lease may remove ours just after we created it, then create its own.
        # Only after a break, wait for such a job to show itself, and queue again if it did.
        while self._broke_a_lease:
            time.sleep(self.LEASE_SETTLE_SECONDS)
            lease = self._current_lease()
            if lease is not None and lease.get("holder") == self._lease_id:
                return
            self._broke_a_lease = False
            wait_for_lock(self._try_lease, f"token_store {self.url}")

    @contextmanager
    def locked(self) -> Iterator[None]:
        self._acquire()
        try:
            yield
        finally:
            lease = self._current_lease()
            if lease is not None and lease.get("holder") == self._lease_id:
                self.fs.rm_file(self.lease_path)
