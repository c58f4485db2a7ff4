"""The tap's one authenticator: the bearer token on every call, refreshed under the token
store's lock, every rotation saved before the new access token is used.

Exact refresh tokens are single-use: every refresh returns a new one and kills the old. A new
access token may only be requested 570 s after the previous one. So the whole tap shares ONE
authenticator, refreshes ~30 s before expiry (or on a 401), and persists every rotation before
using the new access token.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import requests

from tap_exactonline.deadline import CallDeadlineExceeded, DeadlineSession
from tap_exactonline.redact import scrub
from tap_exactonline.termination import GUARD
from tap_exactonline.token_stores import TokenStore
from tap_exactonline.tokens import (
    RESTORE_OR_AUTHORIZE,
    AuthorizationRequiredError,
    ClientRejectedError,
    FreshTokenRefusedError,
    TokenRefreshError,
    TokenSet,
    TokensOnlyInStateError,
    TokenStoreError,
    fingerprint,
    json_or_empty,
)

LOGGER = logging.getLogger("tap_exactonline.auth")

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
        start_note: str = "",
        identify: Callable[[str], str] | None = None,
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
        # Where the first refresh token came from, when that is worth naming in a refusal of
        # it (an empty token store left only the `refresh_token` setting).
        self._start_note = start_note
        self._first_refresh_token = tokens.refresh_token
        # Access token -> the Exact login (UserID) it acts for: asked once per chain, so that a
        # store shared by several logins keeps each one's tokens apart (token_stores/logins.py).
        self._identify = identify
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

    def refresh_after_unauthorized(self, rejected_token: str | None, headers: Any = None) -> None:
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
        with GUARD.hold("a refreshed Exact token is being saved"):
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
            if self._start_note and current.refresh_token == self._first_refresh_token:
                raise AuthorizationRequiredError(
                    f"{self._start_note}, and Exact rejected that refresh token ({reason}): "
                    f"{RESTORE_OR_AUTHORIZE}."
                )
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
        if new.refresh_token == self._tokens.refresh_token:
            LOGGER.warning(
                "Exact's token answer carried no refresh_token: keeping the current one, as "
                "OAuth 2 (RFC 6749 section 6) has the client do. Should Exact have retired it, "
                "the next refresh is refused and the app must be authorized again."
            )
        self._remember(new)
        if not new.login and self._identify is not None and new.access_token:
            new = replace(new, login=self._identify(new.access_token))
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
