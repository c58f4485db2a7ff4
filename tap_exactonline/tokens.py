"""Exact Online OAuth tokens: one link of a refresh-token chain, kept at rest, and choosing
which copy to start from.

Exact refresh tokens are single-use: every refresh returns a new one and kills the old. Copies
of the chain live in the token store, the Singer state and the `refresh_token` setting; which
is newest is told by the chain itself (`TokenSet.lineage`), never by clocks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import requests
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

LOGGER = logging.getLogger("tap_exactonline.tokens")

# Refresh this long before the access token expires (Exact's advice: 30 s).
ACCESS_TOKEN_MARGIN_SECONDS = 30
TOKEN_STATE_KEY = "exactonline_tokens"
# What to do when the store lost the chain (found empty) and the setting cannot stand in.
RESTORE_OR_AUTHORIZE = (
    "put the tokens back in the store (from a backup), or authorize the app again "
    "(tap-exactonline-auth)"
)


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


class TokensFromAnotherSecretError(TokenStoreError):
    """State tokens encrypted with a key derived from a different client secret."""


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
    # The Exact user the chain belongs to (UserID of current/Me), once known: a token store
    # shared by several logins of one app keeps each login's chain apart by it.
    login: str = ""

    def __repr__(self) -> str:  # never show a token, even in a debugger or traceback
        return (
            f"TokenSet(obtained_at={self.obtained_at:.0f}, expires_at={self.expires_at:.0f}, "
            f"origin={self.origin}, login={self.login or '?'})"
        )

    __str__ = __repr__

    def access_token_valid(self, now: float, margin: float = ACCESS_TOKEN_MARGIN_SECONDS) -> bool:
        return bool(self.access_token) and self.expires_at - margin > now

    def descends_from(self, other: TokenSet) -> bool:
        """Was `other` an earlier link of this token's chain?"""
        return fingerprint(other.refresh_token) in self.lineage

    def known_fingerprints(self) -> set[str]:
        """Every token this link's chain has been: to recognise a configured one."""
        known = {self.origin, self.replaces, fingerprint(self.refresh_token), *self.lineage}
        return known - {""}

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
        cls, body: dict[str, Any], *, now: float, origin: str, replaces: str
    ) -> TokenSet:
        """Exact's token answer -> the new link."""
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
        """The link Exact's answer to refreshing this one makes. An answer without a
        refresh_token renews only the access token: the client keeps its refresh token
        (RFC 6749 section 6), and the chain stays where it is."""
        if body.get("refresh_token") in (None, ""):
            return replace(
                self,
                access_token=str(body["access_token"]),
                expires_at=now + token_lifetime(body),
                obtained_at=now,
            )
        new = TokenSet.from_token_response(
            body, now=now, origin=self.origin, replaces=self.replaces
        )
        lineage = (fingerprint(self.refresh_token), *self.lineage)[:LINEAGE_LENGTH]
        return replace(new, lineage=lineage, login=self.login)

    @classmethod
    def from_dict(cls, data: object) -> TokenSet | None:
        """Read stored tokens; None if they are not a token set of ours (see `problem_of`)."""
        if cls.problem_of(data) is not None:
            return None
        assert isinstance(data, dict)
        return cls(
            refresh_token=data["refresh_token"],
            access_token=data.get("access_token") or None,
            # A time that is not a number: the access token counts as expired, so the refresh
            # token renews it (see `junk_times`).
            expires_at=_time_or_zero(data.get("expires_at")),
            obtained_at=_time_or_zero(data.get("obtained_at")),
            origin=str(data.get("origin") or ""),
            replaces=str(data.get("replaces") or ""),
            lineage=tuple(data.get("lineage") or ()),
            login=str(data.get("login") or ""),
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
        lineage = data.get("lineage")
        if lineage is not None and (
            not isinstance(lineage, list) or not all(isinstance(f, str) for f in lineage)
        ):
            return "a lineage that is not a list of fingerprints"
        return None

    @staticmethod
    def junk_times(data: dict[str, Any]) -> list[str]:
        """The times of stored tokens that are not finite numbers. They do not stop a run: the
        refresh token, not the access token's expiry, is what the chain needs."""
        return [
            name
            for name in ("expires_at", "obtained_at")
            if data.get(name) is not None and _epoch(data[name]) is None
        ]


def _epoch(value: object) -> float | None:
    """A stored epoch time, or None when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _time_or_zero(value: object) -> float:
    """A stored epoch time; 0 (long past) for anything that is not a finite number."""
    return _epoch(value) or 0.0


def derived_key(client_secret: str) -> str:
    """A Fernet key derived from the client secret (HKDF-SHA256): what encrypts the tokens in
    the state and the token store when no `token_encryption_key` is set."""
    raw = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"tap-exactonline state tokens"
    ).derive(client_secret.encode())
    return base64.urlsafe_b64encode(raw).decode()


def fernet_keys(setting: object) -> list[str]:
    """`token_encryption_key` -> its keys. Several, separated by commas, rotate a key: the
    first encrypts, every one decrypts (Meltano passes a setting as text, so not a list)."""
    return [key.strip() for key in str(setting or "").split(",") if key.strip()]


def codec_for(settings: Mapping[str, Any]) -> TokenCodec:
    """How the state and the token store keep tokens: always encrypted, so neither `meltano
    state get` nor a reader of the store alone sees a usable token. With the
    `token_encryption_key` keys; without one, with a key derived from the client secret, which
    still decrypts once a key is set (tokens written before it)."""
    derived = derived_key(str(settings["client_secret"]))
    keys = fernet_keys(settings.get("token_encryption_key"))
    if keys:
        return TokenCodec(",".join(keys), also=(derived,))
    return TokenCodec(derived, derived=True)


class TokenCodec:
    """How tokens are kept at rest (token store and Singer state): plain JSON, or encrypted
    with Fernet (AES-128-CBC + HMAC-SHA256) when there are keys: the first encrypts, the others
    (`key` may list several, comma-separated, and `also`) only decrypt. `derived`: the key
    comes from the client secret, not from `token_encryption_key`."""

    def __init__(self, key: str | None, *, derived: bool = False, also: Sequence[str] = ()) -> None:
        self._fernets = [Fernet(k.encode()) for k in [*fernet_keys(key), *also]]
        self._derived = derived
        self._warned: set[str] = set()  # a store is read again under its lock: warn once
        # Did a read find tokens in clear, or encrypted with a key that no longer encrypts?
        # Then the copy is written again with the first key (see RunSession.authenticator).
        self.read_outdated = False

    def dump(self, tokens: TokenSet) -> dict[str, Any]:
        data = tokens.to_dict()
        if not self._fernets:
            return data
        return {"encrypted": self._fernets[0].encrypt(json.dumps(data).encode()).decode()}

    def _decrypt(self, token: bytes) -> tuple[object, bool]:
        """The tokens, and whether a key other than the first one decrypted them."""
        try:
            return json.loads(self._fernets[0].decrypt(token)), False
        except InvalidToken:
            if len(self._fernets) == 1:
                raise
        return json.loads(MultiFernet(self._fernets[1:]).decrypt(token)), True

    def load(self, data: object, where: str) -> TokenSet | None:
        """Read tokens back (None when there are none); plain ones, kept before encryption was
        turned on, are accepted. Anything else is refused: treating a damaged copy as empty
        would replay a spent refresh token."""
        if data is None:
            return None
        outdated = bool(self._fernets)  # tokens in clear, while there is a key
        if isinstance(data, dict) and "encrypted" in data:
            if not self._fernets:
                raise TokenStoreError(
                    f"The tokens in {where} are encrypted: set `token_encryption_key`."
                )
            try:
                data, outdated = self._decrypt(str(data["encrypted"]).encode())
            except InvalidToken:
                if self._derived:
                    raise TokensFromAnotherSecretError(
                        f"The tokens in {where} do not decrypt with the key derived from "
                        "`client_secret`: the `client_secret` setting is wrong (copy it from "
                        "the app's registration in the Exact App Center) or was another when "
                        "they were written, or they were written with `token_encryption_key` "
                        "set (set it again)"
                    ) from None
                raise TokenStoreError(
                    f"`token_encryption_key` does not decrypt the tokens in {where}: it is not "
                    "the key they were written with (to change keys, set `new,old` until every "
                    "copy is rewritten)."
                ) from None
        problem = TokenSet.problem_of(data)
        if problem is not None:
            raise TokenStoreError(
                f"{where} does not hold valid tokens ({problem}). Restore it from a backup, or "
                "delete it and authorize again (tap-exactonline-auth)."
            )
        assert isinstance(data, dict)  # problem_of says so
        if (junk := TokenSet.junk_times(data)) and where not in self._warned:
            self._warned.add(where)
            LOGGER.warning(
                "%s holds an %s that is not a number: its access token is taken as expired and "
                "the refresh token renews it.",
                where,
                " and an ".join(junk),
            )
        self.read_outdated = self.read_outdated or outdated
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
