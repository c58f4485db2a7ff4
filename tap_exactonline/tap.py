"""tap-exactonline: the settings, the stream list, the state, and the command line."""

from __future__ import annotations

import gc
import json
import signal
from functools import cached_property
from typing import IO, Any, ClassVar, NoReturn, cast

import click
from singer_sdk import Stream
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities, TapCapabilities
from singer_sdk.tap_base import CliTestOptionValue
from typing_extensions import override

from tap_exactonline.catalog import parse_stream_api, stream_specs
from tap_exactonline.client import ExactStream
from tap_exactonline.logs import quiet_sdk_detail
from tap_exactonline.output import BatchingWriter
from tap_exactonline.redact import install_scrubbing
from tap_exactonline.sdk_compat import CompatTap, ConfigInput
from tap_exactonline.session import RunSession
from tap_exactonline.settings import (
    DEFAULT_FULL_TABLE_HOURS,
    SETTINGS_SCHEMA,
    typed_values,
    validate,
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
from tap_exactonline.streams import stream_classes
from tap_exactonline.sync_streams import DeletedStream
from tap_exactonline.termination import GUARD
from tap_exactonline.tokens import TOKEN_STATE_KEY


class TapExactOnline(CompatTap):
    """Singer tap for Exact Online."""

    name = "tap-exactonline"
    package_name = "tap-exactonline-rest"  # the distribution's name (`--about`, version)
    message_writer_class = BatchingWriter
    message_writer: BatchingWriter
    config_jsonschema = SETTINGS_SCHEMA
    # BATCH is left out: no test shows a batch run loading (records come from our own path).
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        quiet_sdk_detail()  # before the SDK's own start-up lines
        super().__init__(*args, **kwargs)
        self.mutable_state.setdefault(STATE_VERSION_KEY, STATE_VERSION)
        GUARD.install(self._stop_for_signal)
        install_scrubbing(self.session.secrets)

    @cached_property
    def session(self) -> RunSession:
        """What every stream of this run shares (made at the first use, after the settings
        were checked)."""
        return RunSession(
            config=self.config,
            state=self.mutable_state,
            write_state=lambda: self.state_writer.write_state(self.state),
            write_message=self.write_message,
            flush_output=self.message_writer.flush,
            logger=self.logger,
            streams=lambda: cast("dict[str, ExactStream]", self.streams),
            input_catalog=lambda: self.input_catalog,
            table_version=self.initialized_at // 1000,
        )

    @property
    def mutable_state(self) -> dict[str, Any]:
        """The state dict, which the SDK emits whole: top-level keys besides bookmarks included."""
        return cast("dict[str, Any]", self.state)

    # Discovery needs no credentials (`meltano select --list` before the first login), but a
    # value that is set and wrong is named there too, before anything uses it.
    discovering: ClassVar[bool] = False

    @override
    def check_settings(self, schema_errors: list[str]) -> list[str]:
        if self.discovering:
            schema_errors = [e for e in schema_errors if "is a required property" not in e]
        return validate(self.config, schema_errors)

    @override
    def typed_settings(self, schema: dict[str, Any]) -> dict[str, Any]:
        return typed_values(self.config, schema)

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: ConfigInput | None = None,
        state: IO[str] | None = None,
        catalog: IO[str] | None = None,
    ) -> None:
        """The SDK's sync invocation, with a state file checked first and a verdict on the
        streams that failed or that Exact refused at the end."""
        cls.invoke_plugin(about=about, about_format=about_format)
        cls.print_version(print_fn=cls.logger.info)
        config = config or ConfigInput()
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
        # What start-up built (the catalog, schemas, the SDK) lives as long as the run: moved
        # out of the garbage collector's sight, the full collections that page decoding
        # triggers no longer walk it again and again.
        gc.freeze()
        try:
            tap.sync_all()  # final in the SDK: the last batch of RECORD lines is flushed here
        finally:
            tap.message_writer.flush()
            report = tap.session.report
            report.tell_not_due(
                float(tap.config.get("full_table_interval", DEFAULT_FULL_TABLE_HOURS))
            )
            report.summary(calls_in_all=tap.session.calls_answered)
        tap.session.judge()

    @classmethod
    @override
    def get_singer_command(cls) -> click.Command:
        command = super().get_singer_command()
        for option in command.params:
            if option.name == "test":  # the SDK's words: a sync of one record per stream
                cast("click.Option", option).help = (
                    "Check the connection: the token, the login and every division the run "
                    "would read (two calls, no data). --test=schema prints the schemas."
                )
        return command

    @classmethod
    @override
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        if not value:
            return
        config: ConfigInput = ctx.params.get("config", ConfigInput())
        cls.discovering = True
        try:
            tap = cls(
                config=config.config,
                parse_env_config=config.parse_env,
                validate_config=True,
                setup_mapper=False,
            )
        except ConfigValidationError as failure:
            for error in failure.errors:
                cls.logger.error("%s", error)  # noqa: TRY400 - one line, no traceback
            ctx.exit(1)
        tap.run_discovery()
        ctx.exit()

    @classmethod
    @override
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        # Click runs this while it parses the options, outside the SDK's handling of bad
        # settings: without this they would end in a traceback.
        try:
            # The SDK's test syncs a record of every stream: hundreds of calls for 300-odd
            # streams.
            if value != CliTestOptionValue.All.value:
                super().cb_test(ctx, param, value)
                return
            config: ConfigInput = ctx.params.get("config", ConfigInput())
            tap = cls(config=config.config, parse_env_config=config.parse_env, validate_config=True)
        except ConfigValidationError as failure:
            for error in failure.errors:
                cls.logger.error("%s", error)  # noqa: TRY400 - one line, no traceback
            ctx.exit(1)
        ctx.exit(0 if tap.session.check_connection() else 1)

    @override
    def on_termination_signal(self, signum: int) -> None:
        GUARD.handle(signum)  # waits while a refreshed token is being saved

    def _stop_for_signal(self, signum: int) -> NoReturn:
        self.state_writer.write_state(self.state)
        self.logger.error(
            "Stopped by %s before the run was complete; the state up to here is saved and the "
            "next run continues from it.",
            signal.Signals(signum).name,
        )
        raise SystemExit(128 + signum)

    # --- streams ------------------------------------------------------------------------------

    @override
    def discover_streams(self) -> list[Stream]:
        # The settings were checked first, in discovery too (`cb_discover`): `stream_api` is valid.
        apis, _ = parse_stream_api(self.config.get("stream_api"))
        specs = stream_specs(include_beta=bool(self.config.get("beta_endpoints")), apis=apis)
        return [cls(tap=self, session=self.session) for cls in stream_classes(specs)]

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

    # --- state: the SDK keeps only `bookmarks` from the incoming state; we keep more ----------

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        check_state(state)
        if state.get(STATE_VERSION_KEY, 1) < STATE_VERSION:
            state, moved = upgrade_state(state, self.session.clock.instant_of_wall_labelled_utc)
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
        self.session.incoming_tokens = state.get(TOKEN_STATE_KEY)
        self.session.incoming_bookmarks = {
            (stream, partition.get("context", {}).get("division"))
            for stream, bookmark in (state.get("bookmarks") or {}).items()
            for partition in (bookmark or {}).get("partitions") or []
            if partition.get("replication_key_value")
        }
        if isinstance(state.get(DIVISION_MOVES_STATE_KEY), dict):
            self.mutable_state[DIVISION_MOVES_STATE_KEY] = dict(state[DIVISION_MOVES_STATE_KEY])


if __name__ == "__main__":
    TapExactOnline.cli()
