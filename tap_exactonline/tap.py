"""tap-exactonline: settings, the shared authenticator and HTTP rules, and the stream list."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timezone
from functools import cached_property
from http import HTTPStatus
from types import FrameType
from typing import IO, Any, NoReturn, cast
from urllib.parse import urlsplit

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
    TokensOnlyInStateError,
    TokenStore,
    choose_tokens,
    open_token_store,
    token_store_problem,
)
from tap_exactonline.catalog import parse_stream_api, stream_specs
from tap_exactonline.client import (
    DIVISION_WIDE_REASONS,
    RUN_ENDING_ERRORS,
    EntityRefusedError,
    ExactHttp,
    ODataNextLinkPaginator,
    RateLimiter,
    division_of,
    odata_rows,
)
from tap_exactonline.exact_clock import DEFAULT_TIME_ZONE, ExactClock, UnknownTimeZoneError
from tap_exactonline.pages import GarbledPageError, odata_page
from tap_exactonline.redact import install_scrubbing, scrub
from tap_exactonline.settings import (
    REGIONS,
    json_kind,
    parse_divisions,
    settings_problems,
    site_of,
    token_url,
)
from tap_exactonline.state import (
    DIVISION_MOVES_STATE_KEY,
    STATE_VERSION,
    STATE_VERSION_KEY,
    StateFileError,
    check_state,
    read_state_file,
    upgrade_state,
)
from tap_exactonline.streams import DeletedStream, SyncStream, stream_classes
from tap_exactonline.termination import GUARD

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
            th.CustomType({"type": ["array", "string"], "items": {"type": "integer"}}),
            description="Divisions (administrations) to read: a list of division codes, `all` "
            "(every division system/Divisions lists for the user) or `current` (the user's "
            "current division, the default).",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Where a first read starts: the earliest Modified on standard "
            "endpoints; on sync streams the Timestamp Exact's SyncTimestamp gives for this date. "
            "Without an offset it is read on Exact's clock (`time_zone`).",
        ),
        th.Property(
            "time_zone",
            th.StringType,
            default=DEFAULT_TIME_ZONE,
            description="The IANA zone of Exact's clock: Exact sends date-times as wall-clock "
            "time in it (CET/CEST on the Dutch site, per Exact's FAQ) and filters on it. Records "
            "carry true instants; dates at midnight keep their day.",
        ),
        th.Property(
            "resync_streams",
            th.ArrayType(th.StringType),
            description="Sync streams to read again from the start in this run, marking every "
            "row the fresh read does not return as deleted (ACTIVATE_VERSION): for deletions "
            "older than Exact's two-month deletion log. Remove them again afterwards.",
        ),
        th.Property(
            "stream_api",
            # An object; Meltano passes one set on the command line or in an env var as a string.
            th.CustomType({"type": ["object", "string"]}),
            description="Per stream, the API to read it from instead of the cheapest, e.g. "
            '{"items": "standard"}: for the columns only that API has (more calls). The first '
            "run after a switch between the sync API and another reads the stream from "
            "start_date or the start.",
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
        # Divisions Exact answered 403 for, checked once: skipped for every stream.
        self._division_access: dict[int, bool] = {}
        # (stream, division) pairs that arrived with a bookmark.
        self._incoming_bookmarks: set[tuple[str, int | None]] = set()
        super().__init__(*args, **kwargs)
        self.mutable_state.setdefault(STATE_VERSION_KEY, STATE_VERSION)
        GUARD.install(self._stop_for_signal)
        install_scrubbing(self._secret_values)

    def _secret_values(self) -> list[str]:
        """Everything secret this run knows: masked in every log line, in every encoding."""
        values = [
            str(self.config[name])
            for name, schema in self.config_jsonschema["properties"].items()
            if schema.get("secret") and self.config.get(name) and name != "token_store"
        ]
        # The store's location is shown (which file, which server); a password in it is not.
        store = str(self.config.get("token_store") or "")
        if (password := urlsplit(store).password) is not None:
            values.append(password)
        if "authenticator" in self.__dict__:  # made: it knows every token of this run
            values += self.authenticator.secrets
        return values

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        # SIGTERM/SIGINT: the SDK would exit 0 at once, even mid token refresh.
        GUARD.handle(signum)

    def _stop_for_signal(self, signum: int) -> NoReturn:
        self.state_writer.write_state(self.state)
        self.logger.error(
            "Stopped by %s before the run was complete; the state up to here is saved and the "
            "next run continues from it.",
            signal.Signals(signum).name,
        )
        raise SystemExit(128 + signum)

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
        try:
            tap = cls(
                config=config.config,
                state=None if state is None else read_state_file(state),
                catalog=None if catalog is None else json.loads(catalog.read()),
                parse_env_config=config.parse_env,
                validate_config=True,
            )
        except StateFileError as error:
            cls.logger.error("%s", error)  # noqa: TRY400 - one line, no traceback
            raise SystemExit(1) from None
        tap.sync_all()
        tap.judge_refused_streams()

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        try:
            errors = super()._validate_config(raise_errors=True)
        except ConfigValidationError as failure:
            errors = list(failure.errors)
        errors = self._without_secret_values(errors)
        for setting in ("max_retries", "daily_budget_reserve", "request_timeout"):
            value = self.config.get(setting)
            if isinstance(value, int) and value < 0:
                errors.append(f"Setting `{setting}` must not be negative (got {value}).")
        retry_base = self.config.get("retry_base_seconds")
        if isinstance(retry_base, int | float) and retry_base < 0:
            errors.append(f"Setting `retry_base_seconds` must not be negative (got {retry_base}).")
        errors += settings_problems(self.config)
        try:
            parse_divisions(self.config.get("divisions"))
        except ValueError as exc:
            errors.append(str(exc))
        apis, problems = parse_stream_api(self.config.get("stream_api"))
        errors += problems
        specs = stream_specs(include_beta=True, apis=apis)
        sync_streams = {spec.name for spec in specs if spec.api == "sync"}
        unknown = sorted(set(self.config.get("resync_streams") or []) - sync_streams)
        if unknown:
            moved = [name for name in unknown if name in apis]
            errors.append(
                f"Setting `resync_streams` names streams that are not sync streams: "
                f"{', '.join(unknown)}"
                + (f" (`stream_api` reads {', '.join(moved)} from another API)." if moved else ".")
            )
        try:
            self.clock  # noqa: B018 - made here so a bad zone is a settings error
        except UnknownTimeZoneError:
            errors.append(
                f"Setting `time_zone` must be an IANA time zone such as {DEFAULT_TIME_ZONE} (got "
                f"{self.config.get('time_zone')!r})."
            )
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

    def _without_secret_values(self, errors: list[str]) -> list[str]:
        """The SDK's schema errors quote the value ("12345 is not of type 'string'"): for a
        secret setting, say what is wrong without it."""
        secret_names = [
            name
            for name, schema in self.config_jsonschema["properties"].items()
            if schema.get("secret")
        ]
        values = [str(self.config[name]) for name in secret_names if self.config.get(name)]
        kept = [scrub(error, values) for error in errors]
        for name in secret_names:
            value = self.config.get(name)
            if value is not None and not isinstance(value, str):
                kept = [error for error in kept if f"config['{name}']" not in error]
                kept.append(
                    f"Setting `{name}` must be text, not {json_kind(value)} (its value is not "
                    "shown: it is a secret)."
                )
        return kept

    @property
    @override
    def streams(self) -> dict[str, Stream]:
        streams = super().streams
        # The SDK syncs streams by name; the deletion log goes last, after the rows it marks.
        if streams and not isinstance(next(reversed(streams.values())), DeletedStream):
            ordered = sorted(streams.items(), key=lambda item: isinstance(item[1], DeletedStream))
            streams.clear()
            streams.update(ordered)
        return streams

    @override
    def discover_streams(self) -> list[Stream]:
        # Bad `stream_api` entries stop a sync in _validate_config; discovery skips them.
        apis, _ = parse_stream_api(self.config.get("stream_api"))
        specs = stream_specs(include_beta=bool(self.config.get("beta_endpoints")), apis=apis)
        return [stream_class(tap=self) for stream_class in stream_classes(specs)]

    # Shared by all streams: one authenticator (rotation), one HTTP policy, one budget, one clock.

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
        # The shared store first: it wins unless the state holds a later link of its chain.
        stored = [self.token_store.read() if self.token_store else None, incoming]
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
            token_url=token_url(self.origin),
            client_id=self.config["client_id"],
            client_secret=self.config["client_secret"],
            tokens=tokens,
            store=self.token_store,
            on_rotate=self._save_rotated_tokens,
            timeout=float(self.config.get("request_timeout") or 60),
            superseded=[t for t in stored if t is not None] if source == "config" else (),
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
        # The SDK's test syncs a record of every stream: hundreds of calls for 300-odd streams.
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
        # Asked for every parent row of a child stream: set and dict lookups only.
        if (stream, division) in self.refused:
            return True
        return division is not None and self._division_access.get(division) is False

    @property
    def forbidden_divisions(self) -> list[int]:
        return sorted(d for d, ok in self._division_access.items() if not ok)

    def division_forbidden(self, division: int | None, error: EntityRefusedError) -> bool:
        """Is a 403 about the whole division rather than this entity? Exact's `Reason` header
        says so when it names a division-wide reason; without one, ask once per division with a
        request every user with access to it may make."""
        if division is None or error.status != HTTPStatus.FORBIDDEN:
            return False
        if division not in self._division_access:
            closed: EntityRefusedError | None
            if error.reason in DIVISION_WIDE_REASONS:
                closed = error  # Exact said why: a probe would only cost another counted error
            else:
                closed = self._probe_division(division)
            self._division_access[division] = closed is None
            if closed is not None:
                self._report_closed_division(division, error, closed.reason)
        return not self._division_access[division]

    def _probe_division(self, division: int) -> EntityRefusedError | None:
        """The 403 a cheap request into the division gets, or None if the division is open."""
        try:
            self.get(f"{self.api_base}/{division}/system/Divisions?$select=Code&$top=1")
        except EntityRefusedError as probe:
            return probe if probe.status == HTTPStatus.FORBIDDEN else None
        except RUN_ENDING_ERRORS as failure:  # the probe may find the user blocked, say
            self.stop_with_error(failure)
        return None

    def _report_closed_division(
        self, division: int, error: EntityRefusedError, reason: str | None
    ) -> None:
        advice = DIVISION_WIDE_REASONS.get(reason or "")
        if advice is not None:
            self.logger.error(
                "Division %d cannot be read: Exact answers HTTP 403 (Reason: %s): %s. Skipping "
                "it for every stream; the other divisions go on.",
                division,
                reason,
                advice,
            )
            return
        self.logger.error(
            "Division %d is not accessible to this login (%s): skipping it for every stream; "
            "the other divisions go on. Check the user's rights to it in Exact and the "
            "divisions granted when the app was authorized.",
            division,
            error,
        )

    def had_bookmark(self, stream: str, division: int | None) -> bool:
        """Did this stream arrive with a bookmark for this division (loaded before)?"""
        return (stream, division) in self._incoming_bookmarks

    def explicitly_selected(self, stream: str) -> bool:
        """Selected by name in the input catalog, not by default or by selecting everything."""
        catalog = self.input_catalog
        entry = catalog.get(stream) if catalog else None
        if catalog is None or entry is None or entry.metadata.root.selected is not True:
            return False
        # Meltano's default `select: ["*.*"]` marks every stream, and `*.*` with a few
        # `!stream.*` exclusions nearly every one: nothing chosen in particular. Nobody names
        # half of the 300-odd streams one by one.
        selected = sum(other.metadata.root.selected is True for other in catalog.values())
        return selected * 2 <= len(self.streams)

    def judge_refused_streams(self) -> None:
        """Fail the run only for refused streams, or divisions, the user asked for by name."""
        named = [d for d in self.forbidden_divisions if d in self._configured_divisions]
        if named:
            self.logger.error(
                "Divisions you listed in `divisions` could not be read: %s. Failing the run; "
                "everything else was synced and its state saved.",
                ", ".join(map(str, named)),
            )
            raise SystemExit(1)
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
        if isinstance(error, TokensOnlyInStateError):
            self.logger.critical("%s", error)  # a login is at stake
        else:
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

    def get(self, url: str) -> requests.Response:
        """One GET outside the streams (current/Me, system/Divisions), by the same HTTP rules."""
        what = url.removeprefix(self.api_base + "/").split("?")[0]

        def send() -> requests.Response:
            request = requests.Request("GET", url, headers={"Accept": "application/json"})
            prepared = self.http.session.prepare_request(request)
            timeout = int(self.config.get("request_timeout") or 60)
            response = self.http.session.send(
                self.authenticator(prepared), timeout=timeout, allow_redirects=False
            )
            self.http.check(response, what)
            try:
                odata_page(response)  # the shape of a page, or a retried GarbledPageError
            except GarbledPageError as garbled:
                raise GarbledPageError(f"{what}: {garbled}", response) from None
            return response

        return self.http.execute(send, division=division_of(url), what=what)

    @cached_property
    def current_division(self) -> int:
        """The login's current division, from current/Me (a call Exact does not count)."""
        rows = list(odata_rows(self.get(f"{self.api_base}/current/Me?$select=CurrentDivision")))
        if not rows or not rows[0].get("CurrentDivision"):
            raise FatalAPIError("current/Me returned no CurrentDivision; set `divisions`.")
        return int(rows[0]["CurrentDivision"])

    @cached_property
    def login_divisions(self) -> dict[int, str | None]:
        """Every division system/Divisions lists for the user -> its DivisionMoveDate."""
        url: str | None = (
            f"{self.api_base}/{self.current_division}/system/Divisions"
            "?$select=Code,DivisionMoveDate"
        )
        found: dict[int, str | None] = {}
        # The streams' paginator: it follows `__next` only to our own host (it carries the token).
        next_page = ODataNextLinkPaginator(origin=self.origin, may_continue=lambda: True)
        while url:
            response = self.get(url)
            for row in odata_rows(response):
                moved = row.get("DivisionMoveDate")
                found[int(row["Code"])] = moved and str(self.clock.read_instant(moved))
            url = next_page.get_next_url(response)
        return found

    @cached_property
    def _division_choice(self) -> list[int] | str:
        return parse_divisions(self.config.get("divisions"))  # validated with the config

    @property
    def _configured_divisions(self) -> list[int]:
        choice = self._division_choice
        return choice if isinstance(choice, list) else []

    @cached_property
    def divisions(self) -> list[int]:
        choice = self._division_choice
        divisions: list[int]
        if choice == "all":
            divisions = sorted(self.login_divisions)
            self.logger.info(
                "`divisions: all`: reading the %d divisions system/Divisions lists: %s.",
                len(divisions),
                ", ".join(map(str, divisions)),
            )
        elif choice == "current":
            divisions = [self.current_division]
            self.logger.info("Reading the login's current division %d.", divisions[0])
        else:
            divisions = self._configured_divisions
        self._resync_moved_divisions(divisions)
        return divisions

    def _resync_moved_divisions(self, divisions: list[int]) -> None:
        """Exact renumbers every Timestamp of a division that moves database: when a division's
        DivisionMoveDate differs from the one in the state, its sync bookmarks are void."""
        sync_streams = [s for s in self.streams.values() if isinstance(s, SyncStream)]
        if not any(stream.selected for stream in sync_streams):
            return  # nothing here depends on Timestamps: no call for it
        try:
            self.login_divisions  # noqa: B018 - fetched here so a refusal is only a warning
        except EntityRefusedError as error:
            self.logger.warning(
                "Cannot check whether a division moved database (%s); sync streams continue "
                "from their bookmarks.",
                error,
            )
            return
        known: dict[str, str | None] = self.mutable_state.setdefault(DIVISION_MOVES_STATE_KEY, {})
        for division in divisions:
            if division not in self.login_divisions:
                continue  # not listed for this user: its streams will say so
            moved = self.login_divisions[division]
            if str(division) in known and known[str(division)] != moved:
                self.logger.warning(
                    "Division %d moved to another Exact database (DivisionMoveDate %s, was %s): "
                    "Exact renumbered its Timestamps, so its sync streams are read again from "
                    "the start.",
                    division,
                    moved,
                    known[str(division)],
                )
                for stream in sync_streams:
                    stream.get_context_state({"division": division}).pop(
                        "replication_key_value", None
                    )
            known[str(division)] = moved

    # State: the SDK keeps only `bookmarks` from incoming state; we also keep our tokens.

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        check_state(state)
        if state.get(STATE_VERSION_KEY, 1) < STATE_VERSION:
            state, moved = upgrade_state(state, self.clock.instant_of_wall_labelled_utc)
            if moved:
                self.logger.info(
                    "State from an earlier version: %d date-time bookmarks were on Exact's "
                    "clock labelled UTC; moved back to the true instants (rows changed in the "
                    "last 1-2 hours before them are read again).",
                    moved,
                )
        super().load_state(state)
        self.mutable_state[STATE_VERSION_KEY] = STATE_VERSION
        # Decoded (and, if encrypted, decrypted) when the authenticator is made, where a
        # wrong key ends the run with one line instead of a traceback.
        self._incoming_token_state = state.get(TOKEN_STATE_KEY)
        self._incoming_bookmarks = {
            (stream, partition.get("context", {}).get("division"))
            for stream, bookmark in (state.get("bookmarks") or {}).items()
            for partition in (bookmark or {}).get("partitions") or []
            if partition.get("replication_key_value")
        }
        if isinstance(state.get(DIVISION_MOVES_STATE_KEY), dict):
            self.mutable_state[DIVISION_MOVES_STATE_KEY] = dict(state[DIVISION_MOVES_STATE_KEY])


if __name__ == "__main__":
    TapExactOnline.cli()
