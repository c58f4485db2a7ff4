"""One run of the tap: what every stream shares, made once from the settings and handed to each
stream (`ExactStream.session`).

- Exact's clock and site;
- the tokens: where they came from (token store, state, setting), the one authenticator, and
  every rotation saved to the state at once;
- the HTTP rules (`ExactHttp`) and budgets, and the tap's own calls (current/Me);
- the divisions to read (`Divisions`), what Exact refused (`Refusals`) and the reads that failed
  (`Failures`, asked through `failed`);
- how a run ends early: one line, the state kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn, Protocol

import requests
from singer_sdk.exceptions import FatalAPIError
from singer_sdk.helpers.types import Context
from singer_sdk.singerlib import Catalog

from tap_exactonline.auth import ExactAuthenticator
from tap_exactonline.divisions import Divisions
from tap_exactonline.errors import RUN_ENDING_ERRORS
from tap_exactonline.exact_clock import DEFAULT_TIME_ZONE, ExactClock
from tap_exactonline.exact_login import login_of
from tap_exactonline.failures import Failures
from tap_exactonline.http import ExactHttp, RateLimiter
from tap_exactonline.pages import odata_rows
from tap_exactonline.refusals import Refusals
from tap_exactonline.run_report import RunReport
from tap_exactonline.settings import (
    RETRACT_SETTING,
    parse_shard,
    secret_values,
    site_of,
    token_url,
)
from tap_exactonline.token_stores import (
    DEFAULT_TOKEN_FILE,
    TokenStore,
    open_token_store,
    tells_logins_apart,
)
from tap_exactonline.tokens import (
    RESTORE_OR_AUTHORIZE,
    TOKEN_STATE_KEY,
    AuthorizationRequiredError,
    TokenCodec,
    TokenSet,
    TokensFromAnotherSecretError,
    TokensOnlyInStateError,
    TokenStoreError,
    choose_tokens,
    codec_for,
)

# Exact revokes a refresh token unused for 30 days; warn well before.
STALE_REFRESH_TOKEN_DAYS = 25
NO_STORE_WARNING = (
    "No `token_store` is set: the refresh token, which every refresh replaces, is kept only in "
    "the Singer state, which Meltano saves when the target commits (every few minutes, or at "
    "the end), so a run stopped before that loses it and the app must be authorized again. "
    "Set `token_store` (e.g. /var/lib/tap-exactonline/tokens.json)."
)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class SessionStream(Protocol):
    """What the session asks of a stream."""

    uses_timestamps: bool  # incremental on Exact's Timestamps (the sync API)

    @property
    def selected(self) -> bool: ...

    def get_context_state(self, context: Context | None) -> dict[str, Any]: ...


class RunSession:
    """The services of one run. The tap makes it; streams read it, never the tap."""

    def __init__(
        self,
        *,
        config: Mapping[str, Any],
        state: dict[str, Any],
        write_state: Callable[[], None],
        write_message: Callable[[Any], None],
        flush_output: Callable[[], None],
        logger: logging.Logger,
        streams: Callable[[], Mapping[str, SessionStream]],
        input_catalog: Callable[[], Catalog | None],
        table_version: int,
    ) -> None:
        self.config = config
        self.state = state  # the dict the SDK emits whole: top-level keys of ours included
        self._write_state = write_state
        self.write_message = write_message  # a Singer message to the target (tombstones)
        self.flush_output = flush_output  # records held back go out (before a wait for Exact)
        self.logger = logger
        self.streams = streams
        self.input_catalog = input_catalog
        # What records of a versioned read carry (full-table reads, resyncs): the run's start in
        # whole seconds, the unit the SDK's own full-table versions use.
        self.table_version = table_version
        self.token_source = "nowhere yet"
        self.token_store_location = ""  # `token_store`, or the auth command's token file
        self.store_found_in_folder = False  # the latter
        # What the incoming state held, read when the tap loads it.
        self.incoming_tokens: object = None
        self.incoming_bookmarks: set[tuple[str, int | None]] = set()
        self.divisions = Divisions(self)
        self.refusals = Refusals(self)
        self.failures = Failures(self)

    # --- settings read once -------------------------------------------------------------------

    @cached_property
    def clock(self) -> ExactClock:
        return ExactClock(str(self.config.get("time_zone") or DEFAULT_TIME_ZONE))

    @cached_property
    def origin(self) -> str:
        return site_of(self.config)

    @cached_property
    def api_base(self) -> str:
        return f"{self.origin}/api/v1"

    @cached_property
    def retracts_vanished_rows(self) -> bool:
        """Complete reads in full end with ACTIVATE_VERSION, which is table-wide: not in a
        shard job, which sees only its share of the divisions in the table."""
        shard = parse_shard(self.config.get("division_shard"))
        sharded = shard is not None and shard[1] > 1
        return bool(self.config.get(RETRACT_SETTING, True)) and not sharded

    @property
    def timeout(self) -> int:
        return int(self.config.get("request_timeout") or 60)

    # --- tokens -------------------------------------------------------------------------------

    @cached_property
    def token_codec(self) -> TokenCodec:
        """How the token store keeps tokens: encrypted (see `codec_for`)."""
        return codec_for(self.config)

    @cached_property
    def state_codec(self) -> TokenCodec:
        """How the state keeps tokens: encrypted, so `meltano state get` never shows a usable
        token (see `codec_for`)."""
        return codec_for(self.config)

    @cached_property
    def token_store(self) -> TokenStore | None:
        location = self.config.get("token_store")
        if not location:
            location = self._auth_command_token_file()
            self.store_found_in_folder = location is not None
        if not location:
            self.logger.warning("%s", NO_STORE_WARNING)
            return None
        self.token_store_location = location
        store = open_token_store(
            location,
            client_id=self.config["client_id"],
            codec=self.token_codec,
            known=[self.incoming],
            configured=self.config.get("refresh_token"),
        )
        if exposure := store.exposure():
            self.logger.warning("%s", exposure)
        return store

    def _auth_command_token_file(self) -> str | None:
        """The token file `tap-exactonline-auth` writes when no `token_store` is set, if it is in
        the folder the tap runs in: used as the store, so a run that does not read the `.env`
        naming it (outside Meltano) keeps its tokens too."""
        try:
            path = Path.cwd() / DEFAULT_TOKEN_FILE
        except OSError:  # the folder the tap runs in was deleted
            return None
        if not path.is_file():
            return None
        self.logger.info(
            "`token_store` is not set: using %s, the token file tap-exactonline-auth wrote.", path
        )
        return str(path)

    @cached_property
    def incoming(self) -> TokenSet | None:
        """The tokens the incoming state carries, if it carries any this run can read."""
        try:
            return self.state_codec.load(self.incoming_tokens, "the incoming state")
        except TokensFromAnotherSecretError:
            # A run with a wrong secret spends no token (Exact refuses it first), so the token
            # store or the setting still holds a usable one. Said as what happened: after a
            # corrected secret, this is the expected first run, not a fault.
            self.logger.warning(
                "The incoming state's tokens were saved under a `client_secret` other than "
                "today's (it was corrected or changed since): the run continues from the token "
                "store or `refresh_token` and saves its tokens under the current secret. "
                "Nothing needs doing."
            )
            return None

    @cached_property
    def authenticator(self) -> ExactAuthenticator:
        incoming = self.incoming
        # The shared store first: it wins unless the state holds a later link of its chain.
        store = self.token_store
        # Most trusted first: a store found only in the folder the tap runs in (never named
        # in the settings) may be an old copy; the state's chain goes before it.
        stored = [store.read() if store else None, incoming]
        if self.store_found_in_folder:
            stored.reverse()
        # A store found empty is named when the setting it leaves is refused or missing: the
        # tokens were lost there, not in the setting.
        empty_store = (
            f"token_store {self.token_store_location} is empty"
            if store is not None and store.found_empty()
            else ""
        )
        try:
            tokens, source = choose_tokens(self.config.get("refresh_token"), stored)
        except AuthorizationRequiredError:
            if empty_store:
                raise AuthorizationRequiredError(
                    f"{empty_store} and no `refresh_token` is set: {RESTORE_OR_AUTHORIZE}."
                ) from None
            if store is None:
                raise
            # A store that holds nothing yet: say whether the auth command could fill it.
            store.prove_writable()
            raise AuthorizationRequiredError(
                f"No refresh token: token_store {self.token_store_location} holds none and "
                "`refresh_token` is not set. Run tap-exactonline-auth (it logs in and fills the "
                "store), or set `refresh_token`."
            ) from None
        self.token_source = (
            "the `refresh_token` setting"
            if source == "config"
            else "the incoming state"
            if tokens is incoming
            else "the token store"
        )
        self._report_token(tokens)
        if store is not None and self.token_codec.read_outdated:
            self._rewrite_store(store)
        # Outgoing state always carries the newest tokens, even if this run never refreshes.
        self.state[TOKEN_STATE_KEY] = self.state_codec.dump(tokens)
        return ExactAuthenticator(
            token_url=token_url(self.origin),
            client_id=self.config["client_id"],
            client_secret=self.config["client_secret"],
            tokens=tokens,
            store=self.token_store,
            on_rotate=self._save_rotated_tokens,
            timeout=float(self.timeout),
            identify=self._login_of if store is not None and tells_logins_apart(store) else None,
            superseded=[t for t in stored if t is not None] if source == "config" else (),
            start_note=f"{empty_store}, so the run started from the `refresh_token` setting"
            if empty_store and source == "config"
            else "",
        )

    def _rewrite_store(self, store: TokenStore) -> None:
        """The store holds tokens in clear (an earlier version) or encrypted with a key that no
        longer encrypts (`token_encryption_key: new,old`): write them again with the current
        key now, not only at the next refresh, so the old key can go after this run. Under the
        lock, as read then, so a newer link another job wrote meanwhile is kept."""
        try:
            with store.locked():
                tokens = store.read()
                if tokens is not None:
                    store.write(tokens)
        except TokenStoreError as error:  # the next refresh writes it, or says why not
            self.logger.warning("%s; it keeps its tokens as they were for now.", error)
            return
        self.logger.info(
            "Rewrote the tokens in token_store %s with the current key.", self.token_store_location
        )

    def _login_of(self, access_token: str) -> str:
        return login_of(self.api_base, access_token)

    def _save_rotated_tokens(self, tokens: TokenSet) -> None:
        self.state[TOKEN_STATE_KEY] = self.state_codec.dump(tokens)
        self._write_state()

    def _report_token(self, tokens: TokenSet) -> None:
        """Say where the token came from and how fresh it is; never the token itself."""
        if not tokens.obtained_at:
            self.logger.info("Using the refresh token from %s (first use).", self.token_source)
            return
        age_days = (time.time() - tokens.obtained_at) / 86400
        self.logger.info(
            "Using the refresh token from %s, issued %s; its access token is valid until %s.",
            self.token_source,
            _utc(tokens.obtained_at),
            _utc(tokens.expires_at),
        )
        if age_days > STALE_REFRESH_TOKEN_DAYS:
            self.logger.warning(
                "The refresh token was last renewed %.0f days ago; Exact revokes refresh tokens "
                "unused for 30 days. Run the tap at least weekly; if Exact refuses it, authorize "
                "again with tap-exactonline-auth.",
                age_days,
            )

    def secrets(self) -> list[str]:
        """Everything secret this run knows: masked in every log line, in every encoding."""
        values = secret_values(self.config)
        if "authenticator" in self.__dict__:  # made: it knows every token of this run
            values += self.authenticator.secrets
        return values

    # --- HTTP ---------------------------------------------------------------------------------

    @cached_property
    def limiter(self) -> RateLimiter:
        return RateLimiter(daily_reserve=int(self.config.get("daily_budget_reserve", 25)))

    @cached_property
    def http(self) -> ExactHttp:
        return ExactHttp(
            authenticator=self.authenticator,
            limiter=self.limiter,
            max_retries=int(self.config.get("max_retries", 5)),
            retry_base_seconds=float(self.config.get("retry_base_seconds", 2.0)),
            timeout=self.timeout,
        )

    @property
    def calls_answered(self) -> int:
        """Calls Exact answered in this run; 0 when the run ended before its first (without
        making the HTTP layer, and so the authenticator, now)."""
        http = self.__dict__.get("http")
        return http.calls if isinstance(http, ExactHttp) else 0

    @property
    def usable_answers(self) -> int:
        """Answers that passed every check in this run (0 before the first call)."""
        http = self.__dict__.get("http")
        return http.usable_answers if isinstance(http, ExactHttp) else 0

    def failed(self, stream: str, division: int | None) -> bool:
        """Did `stream`'s read in `division` fail in this run (after its retries)? Its rows are
        incomplete there: nothing that presumes a complete read (ACTIVATE_VERSION, a resync's
        deletions) may follow it."""
        return self.failures.failed(stream, division)

    @cached_property
    def report(self) -> RunReport:
        def calls_left(division: int | None) -> int | None:
            return None if division is None else self.limiter.budget(division).daily_remaining

        return RunReport(self.logger, calls_left=calls_left)

    def get(self, url: str) -> requests.Response:
        """One GET outside the streams (current/Me, system/Divisions, SyncTimestamp)."""
        return self.http.get(url, what=url.removeprefix(self.api_base + "/").split("?")[0])

    @cached_property
    def current_division(self) -> int:
        """The login's current division, from current/Me (a call Exact does not count)."""
        rows = odata_rows(self.get(f"{self.api_base}/current/Me?$select=CurrentDivision"))
        if not rows or not rows[0].get("CurrentDivision"):
            raise FatalAPIError("current/Me returned no CurrentDivision; set `divisions`.")
        return int(rows[0]["CurrentDivision"])

    def had_bookmark(self, stream: str, division: int | None) -> bool:
        """Did this stream arrive with a bookmark for this division (loaded before)?"""
        return (stream, division) in self.incoming_bookmarks

    # --- ending a run -------------------------------------------------------------------------

    def judge(self) -> None:
        """The verdict at the end: fail the run for a failed read, or for a refusal of what was
        asked for by name; both are told first."""
        refused = self.refusals.judge()
        if self.failures.judge() or refused:
            raise SystemExit(1)

    def stop_with_error(self, error: Exception) -> NoReturn:
        """End the run with one clear line, keeping every bookmark reached so far."""
        self._write_state()
        if isinstance(error, TokensOnlyInStateError):
            self.logger.critical("%s", error)  # a login is at stake
        else:
            self.logger.error("%s", error)
        raise SystemExit(1)

    def check_connection(self) -> bool:
        """`--test`: the token, current/Me (not counted by Exact) and one system/Divisions call
        that shows whether every division the run would read is open to this login."""
        try:
            division = self.current_division  # needs a valid access token first
            listed = self.divisions.of_login
        except RUN_ENDING_ERRORS as error:
            self.logger.error("Connection test failed: %s", error)  # noqa: TRY400 - one line
            return False
        every = self.divisions.every_one_of_login
        wanted = self.divisions.configured or (sorted(listed) if every else [division])
        closed = [code for code in wanted if code not in listed]
        if closed:
            self.logger.error(
                "Connection test failed: division %s of `divisions` is not open to this login "
                "(system/Divisions lists %d divisions for it). Check the user's rights in Exact "
                "and the divisions chosen when the app was authorized.",
                ", ".join(map(str, closed)),
                len(listed),
            )
            return False
        tokens = self.authenticator.tokens
        # Without a refresh, Exact has not seen the client secret in this test.
        secret = (
            "client secret accepted by Exact"
            if self.authenticator.refresh_count
            else "the client secret is checked at the next token refresh"
        )
        self.logger.info(
            "Connection test passed: token from %s, access token valid until %s (%s); the "
            "login's current division is %d; %s open: %s.",
            self.token_source,
            _utc(tokens.expires_at),
            secret,
            division,
            "the division" if len(wanted) == 1 else f"all {len(wanted)} divisions",
            ", ".join(map(str, wanted)),
        )
        return True
