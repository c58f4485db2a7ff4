"""tap-exactonline: settings, the shared authenticator and HTTP rules, and the stream list."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from functools import cached_property
from typing import IO, Any, NoReturn, cast

import click
import requests
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.tap_base import CliTestOptionValue
from typing_extensions import override

from tap_exactonline.auth import (
    TOKEN_STATE_KEY,
    ExactAuthenticator,
    TokenCodec,
    TokenSet,
    TokenStore,
    choose_tokens,
    open_token_store,
    token_store_problem,
)
from tap_exactonline.catalog import stream_specs
from tap_exactonline.client import RUN_ENDING_ERRORS, ExactHttp, RateLimiter, odata_rows
from tap_exactonline.streams import DeletedStream, stream_classes

REGIONS = {
    "nl": "https://start.exactonline.nl",
    "be": "https://start.exactonline.be",
    "de": "https://start.exactonline.de",
    "uk": "https://start.exactonline.co.uk",
    "us": "https://start.exactonline.com",
    "es": "https://start.exactonline.es",
    "fr": "https://start.exactonline.fr",
}


# Exact revokes a refresh token unused for 30 days; warn well before.
STALE_REFRESH_TOKEN_DAYS = 25


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class TapExactOnline(Tap):
    """Singer tap for Exact Online."""

    name = "tap-exactonline"
    message_writer_class = MsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property("client_id", th.StringType, required=True, description="OAuth client ID."),
        th.Property(
            "client_secret",
            th.StringType,
            required=True,
            secret=True,
            description="OAuth client secret.",
        ),
        th.Property(
            "refresh_token",
            th.StringType,
            secret=True,
            description="Refresh token from the first authorization. Rotated tokens kept in the "
            "state or token_store supersede it until you put a new one here.",
        ),
        th.Property(
            "region",
            th.StringType,
            default="nl",
            allowed_values=sorted(REGIONS),
            description="Exact Online country site: nl, be, de, uk, us, es or fr.",
        ),
        th.Property(
            "base_url",
            th.URIType,
            description="Overrides `region` for the API and the token endpoint (sandbox, proxy, "
            "tests), e.g. https://start.exactonline.nl.",
        ),
        th.Property(
            "divisions",
            th.ArrayType(th.IntegerType),
            description="Division (administration) codes to read. Default: the user's current "
            "division from current/Me.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Earliest Modified date for incremental standard endpoints.",
        ),
        th.Property(
            "beta_endpoints",
            th.BooleanType,
            default=False,
            description="Also offer the streams Exact serves only from beta endpoints "
            "(`/api/v1/beta/...`); Exact may change or drop these without notice.",
        ),
        th.Property(
            "token_store",
            th.StringType,
            secret=True,  # a PostgreSQL URL carries a password
            description="Where the newest tokens are kept, written before a new access token "
            "is used and shared (under a lock) by parallel jobs: a local file path or a "
            "PostgreSQL URL (postgresql://user:password@host:5432/db).",
        ),
        th.Property(
            "token_encryption_key",
            th.StringType,
            secret=True,
            description="Encrypts the tokens in the token store and in the state (Fernet key: "
            "`python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`).",
        ),
        th.Property(
            "redirect_uri",
            th.StringType,
            description="The app's registered redirect URI; used only by tap-exactonline-auth.",
        ),
        th.Property(
            "request_timeout",
            th.IntegerType,
            default=60,
            description="Seconds to wait for one HTTP response.",
        ),
        th.Property(
            "column_names",
            th.StringType,
            default="snake_case",
            allowed_values=["snake_case", "original"],
            description="`snake_case` (amount_dc) or Exact's `original` names (AmountDC).",
        ),
        th.Property(
            "daily_budget_reserve",
            th.IntegerType,
            default=25,
            description="Stop a division cleanly when fewer daily API calls than this remain.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType,
            default=5,
            description="Retries of a request after a 5xx, timeout or dropped connection.",
        ),
        th.Property(
            "retry_base_seconds",
            th.NumberType,
            default=2.0,
            description="First retry wait; doubles per retry, with jitter.",
        ),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._incoming_token_state: object = None
        self.token_source = "nowhere yet"
        # (stream, division) pairs Exact refused: reported once, summed up at the end.
        self.refused: set[tuple[str, int | None]] = set()
        super().__init__(*args, **kwargs)

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        state: IO[str] | None = None,
        catalog: IO[str] | None = None,
    ) -> None:
        """The SDK's sync invocation, plus a verdict on the streams Exact refused."""
        super(Tap, cls).invoke(about=about, about_format=about_format)
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        tap = cls(
            config=config.config,
            state=None if state is None else json.loads(state.read()),
            catalog=None if catalog is None else json.loads(catalog.read()),
            parse_env_config=config.parse_env,
            validate_config=True,
        )
        tap.sync_all()
        tap.judge_refused_streams()

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        errors = super()._validate_config(raise_errors=raise_errors)
        for setting in ("max_retries", "daily_budget_reserve", "request_timeout"):
            value = self.config.get(setting)
            if isinstance(value, int) and value < 0:
                errors.append(f"Setting `{setting}` must not be negative (got {value}).")
        store = self.config.get("token_store")
        if store and (problem := token_store_problem(str(store))):
            errors.append(problem)
        key = self.config.get("token_encryption_key")
        if key:
            try:
                TokenCodec(key)
            except ValueError:
                errors.append(
                    "Setting `token_encryption_key` is not a Fernet key (32 url-safe "
                    "base64-encoded bytes); generate one with Fernet.generate_key()."
                )
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        return errors

    @override
    def load_streams(self) -> list[Stream]:
        # The SDK syncs streams by name; the deletion log goes last, after the rows it marks.
        return sorted(super().load_streams(), key=lambda stream: isinstance(stream, DeletedStream))

    @override
    def discover_streams(self) -> list[Stream]:
        specs = stream_specs(include_beta=bool(self.config.get("beta_endpoints")))
        return [stream_class(tap=self) for stream_class in stream_classes(specs)]

    # Shared by all streams: one authenticator (rotation), one HTTP policy, one budget.

    @cached_property
    def origin(self) -> str:
        return str(
            self.config.get("base_url") or REGIONS[self.config.get("region") or "nl"]
        ).rstrip("/")

    @cached_property
    def api_base(self) -> str:
        return f"{self.origin}/api/v1"

    @cached_property
    def token_store(self) -> TokenStore | None:
        location = self.config.get("token_store")
        if not location:
            return None
        return open_token_store(
            location, client_id=self.config["client_id"], codec=self.token_codec
        )

    @cached_property
    def token_codec(self) -> TokenCodec:
        return TokenCodec(self.config.get("token_encryption_key"))

    @cached_property
    def authenticator(self) -> ExactAuthenticator:
        incoming = self.token_codec.load(self._incoming_token_state, "the incoming state")
        stored = [incoming, self.token_store.read() if self.token_store else None]
        tokens, source = choose_tokens(self.config.get("refresh_token"), stored)
        self.token_source = (
            "the `refresh_token` setting"
            if source == "config"
            else "the incoming state"
            if tokens is incoming
            else "the token store"
        )
        self._report_token(tokens)
        # Outgoing state always carries the newest tokens, even if this run never refreshes.
        self.mutable_state[TOKEN_STATE_KEY] = self.token_codec.dump(tokens)
        return ExactAuthenticator(
            token_url=f"{self.origin}/api/oauth2/token",
            client_id=self.config["client_id"],
            client_secret=self.config["client_secret"],
            tokens=tokens,
            store=self.token_store,
            on_rotate=self._save_rotated_tokens,
            timeout=float(self.config.get("request_timeout") or 60),
        )

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

    def check_connection(self) -> bool:
        """`--test`: one token check and one current/Me call (neither costs API budget)."""
        try:
            division = self.current_division  # needs a valid access token first
        except RUN_ENDING_ERRORS as error:
            self.logger.error("Connection test failed: %s", error)  # noqa: TRY400 - one line
            return False
        tokens = self.authenticator.tokens
        self.logger.info(
            "Connection test passed: token from %s, access token valid until %s; the login's "
            "current division is %d.",
            self.token_source,
            _utc(tokens.expires_at),
            division,
        )
        return True

    @classmethod
    @override
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        # The SDK's test syncs a record of every stream: hundreds of calls for 307 streams.
        if value != CliTestOptionValue.All.value:
            super().cb_test(ctx, param, value)
            return
        config: _ConfigInput = ctx.params.get("config", _ConfigInput())
        tap = cls(config=config.config, parse_env_config=config.parse_env, validate_config=True)
        ctx.exit(0 if tap.check_connection() else 1)

    @property
    def mutable_state(self) -> dict[str, Any]:
        """The state dict, which the SDK emits whole: top-level keys besides bookmarks included."""
        return cast("dict[str, Any]", self.state)

    def _save_rotated_tokens(self, tokens: TokenSet) -> None:
        self.mutable_state[TOKEN_STATE_KEY] = self.token_codec.dump(tokens)
        self.state_writer.write_state(self.state)

    def report_refused(self, stream: str, division: int | None, error: Exception) -> None:
        """Exact refuses this stream in this division: say so once; the rest of the run goes on."""
        if (stream, division) in self.refused:
            return
        self.refused.add((stream, division))
        self.logger.error("%s. Skipping it; the other streams and divisions go on.", error)

    def is_refused(self, stream: str, division: int | None) -> bool:
        return (stream, division) in self.refused

    def explicitly_selected(self, stream: str) -> bool:
        """Selected by name in the input catalog, not by default or by selecting everything."""
        catalog = self.input_catalog
        entry = catalog.get(stream) if catalog else None
        if catalog is None or entry is None or entry.metadata.root.selected is not True:
            return False
        # Meltano's default `select: ["*.*"]` marks every stream: nothing chosen in particular.
        return not all(other.metadata.root.selected is True for other in catalog.values())

    def judge_refused_streams(self) -> None:
        """Fail the run only for refused streams the user asked for by name."""
        if not self.refused:
            return
        described = ", ".join(
            stream if division is None else f"{stream} (division {division})"
            for stream, division in sorted(self.refused, key=lambda key: (key[0], key[1] or 0))
        )
        wanted = sorted({stream for stream, _ in self.refused if self.explicitly_selected(stream)})
        if wanted:
            self.logger.error(
                "Exact refused streams you selected: %s. Failing the run; everything else was "
                "synced and its state saved.",
                ", ".join(wanted),
            )
            raise SystemExit(1)
        self.logger.warning(
            "Skipped because Exact refused them: %s. They were not selected by name, so the run "
            "succeeds.",
            described,
        )

    def stop_with_error(self, error: Exception) -> NoReturn:
        """End the run with one clear line, keeping every bookmark reached so far."""
        self.state_writer.write_state(self.state)
        self.logger.error("%s", error)
        raise SystemExit(1)

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
        )

    @cached_property
    def current_division(self) -> int:
        """The login's current division, from current/Me (a call Exact does not count)."""
        url = f"{self.api_base}/current/Me?$select=CurrentDivision"

        def send() -> requests.Response:
            request = requests.Request("GET", url, headers={"Accept": "application/json"})
            prepared = self.http.session.prepare_request(request)
            response = self.http.session.send(self.authenticator(prepared), timeout=60)
            self.http.check(response, "current/Me")
            return response

        rows = list(odata_rows(self.http.execute(send, division=None, what="current/Me")))
        if not rows or not rows[0].get("CurrentDivision"):
            raise FatalAPIError("current/Me returned no CurrentDivision; set `divisions`.")
        return int(rows[0]["CurrentDivision"])

    @cached_property
    def divisions(self) -> list[int]:
        configured = self.config.get("divisions")
        if configured:
            return [int(division) for division in configured]
        division = self.current_division
        self.logger.info("No `divisions` set: reading the current division %d.", division)
        return [division]

    # State: the SDK keeps only `bookmarks` from incoming state; we also keep our tokens.

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        # Decoded (and, if encrypted, decrypted) when the authenticator is made, where a
        # wrong key ends the run with one line instead of a traceback.
        self._incoming_token_state = state.get(TOKEN_STATE_KEY)


if __name__ == "__main__":
    TapExactOnline.cli()
