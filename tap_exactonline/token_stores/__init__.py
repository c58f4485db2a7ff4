"""Where the newest tokens live between runs, shared by every job on one Exact login: a local
file, a PostgreSQL table or an object-store object (`token_store`)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from tap_exactonline.token_stores.common import first_line
from tap_exactonline.token_stores.logins import StoreOwner
from tap_exactonline.tokens import TokenCodec, TokenSet


class TokenStore(Protocol):
    """Where the newest tokens live between runs, shared by every job on one Exact login.

    `locked()` is held around a refresh: the authenticator re-reads the store inside it and
    skips the refresh when another job has already rotated the chain. Before it spends a
    refresh token it calls `prove_writable()`, which writes the way `write` will (the current
    contents again), so a full disk or a read-only mount is found while the old token still
    works.
    """

    def read(self) -> TokenSet | None: ...

    def found_empty(self) -> bool:
        """Did the last `read` find the store there but blank (a file made by `touch`, an empty
        object)? A run then starts from the `refresh_token` setting, and a refusal of that
        token should point at the store."""
        ...

    def write(self, tokens: TokenSet) -> None: ...

    def prove_writable(self) -> None: ...

    def locked(self) -> AbstractContextManager[None]: ...

    def exposure(self) -> str | None:
        """Why the tokens could end up in a git commit (a file in a work tree that does not
        ignore it), if they could."""
        ...


POSTGRES_SCHEMES = ("postgresql", "postgres")
# Where `tap-exactonline-auth` keeps the tokens when no `token_store` is set, relative to the
# folder of its `.env`: by default the folder it runs in (Meltano runs it, and the tap, in the
# folder `meltano` is started in, usually the project root).
DEFAULT_TOKEN_FILE = Path(".exactonline") / "tokens.json"


def token_store_problem(location: str) -> str | None:
    """Why a `token_store` value cannot be used, if it cannot (checked before any request)."""
    scheme = urlsplit(location).scheme.lower().split("+")[0]
    if scheme in POSTGRES_SCHEMES:
        try:
            import psycopg  # noqa: F401, PLC0415
        except ImportError:
            return (
                f"Setting `token_store`: {scheme}:// needs psycopg; install the tap with its "
                "`postgres` extra, e.g. `pip install tap-exactonline-rest[postgres]`, or use a "
                "file path or an object-store URL."
            )
        return None
    if scheme in ("", "file") or len(scheme) == 1:  # "C:\\..." on Windows
        return None
    import fsspec  # noqa: PLC0415

    try:
        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as exc:
        return (
            f"Setting `token_store`: {scheme}:// needs its fsspec filesystem package "
            f"({first_line(exc)}); install it, e.g. `pip install tap-exactonline-rest[s3]`, or "
            "use a file path or a PostgreSQL URL."
        )
    return None


def open_token_store(
    location: str,
    *,
    client_id: str,
    codec: TokenCodec,
    known: Iterable[TokenSet | None] = (),
    configured: str | None = None,
) -> TokenStore:
    """`token_store` setting -> store: a PostgreSQL URL, an fsspec URL, or a local path.

    A PostgreSQL table or an object store may be shared by several Exact logins of the app:
    there, a run finds its own tokens by the chain it knows (`known`: the incoming state's
    tokens) and the `configured` refresh token (see logins.py)."""
    owner = StoreOwner(client_id, known, configured)
    parts = urlsplit(location)
    scheme = parts.scheme.lower().split("+")[0]
    # Imported here: each backend loads only what it needs (psycopg, fsspec).
    if scheme in POSTGRES_SCHEMES:
        from tap_exactonline.token_stores.postgres import PostgresTokenStore  # noqa: PLC0415

        return PostgresTokenStore(location, default_key=client_id, codec=codec, owner=owner)
    from tap_exactonline.token_stores.file import FileTokenStore  # noqa: PLC0415

    if scheme == "file":
        return FileTokenStore(parts.path, codec=codec)
    if len(scheme) > 1:
        from tap_exactonline.token_stores.objects import ObjectStoreTokenStore  # noqa: PLC0415

        return ObjectStoreTokenStore(location, codec=codec, owner=owner)
    return FileTokenStore(location, codec=codec)


def tells_logins_apart(store: TokenStore) -> bool:
    """Does the store keep each Exact login's tokens apart (so the tokens must know their
    login)? A PostgreSQL table without a fixed `key=`, and an object store; a file holds one
    chain."""
    from tap_exactonline.token_stores.objects import ObjectStoreTokenStore  # noqa: PLC0415
    from tap_exactonline.token_stores.postgres import PostgresTokenStore  # noqa: PLC0415

    if isinstance(store, PostgresTokenStore):
        return store.owner is not None
    return isinstance(store, ObjectStoreTokenStore)
