"""Every private singer-sdk name the tap relies on, and only here.

The rest of the tap overrides and calls the public names below. When an SDK upgrade renames or
reshapes one of these, `tests/test_sdk_compat.py` fails and names it; nothing else needs a hunt.
Each is used for a reason given where it is.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from types import FrameType
from typing import Any, ClassVar
from urllib.parse import ParseResult

from singer_sdk import Stream, Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.types import Context
from singer_sdk.plugin_base import PluginBase
from singer_sdk.plugin_base import _ConfigInput as ConfigInput
from singer_sdk.singerlib import RecordMessage
from singer_sdk.streams.rest import RESTStream
from typing_extensions import override

__all__ = ["CompatStream", "CompatTap", "ConfigInput"]

# name -> (class, parameters besides self): what tests/test_sdk_compat.py holds the SDK to.
PRIVATE_NAMES: dict[str, tuple[type, tuple[str, ...]]] = {
    "_write_schema_message": (Stream, ()),
    "_write_record_message": (Stream, ("record",)),
    "_generate_record_messages": (Stream, ("record",)),
    "_write_activate_version_message": (Stream, ("full_table_version",)),
    "_write_replication_key_signpost": (Stream, ("context", "value")),
    "_write_starting_replication_value": (Stream, ("context",)),
    "_validate_config": (PluginBase, ("raise_errors",)),
    "_handle_termination": (Tap, ("signum", "frame")),
}
# The settings the SDK parsed, as a dict: `config` is a read-only view of it. The tap converts
# settings given as text before the SDK checks them against the schema.
PRIVATE_CONFIG_ATTRIBUTE = "_config"


class CompatStream(RESTStream[ParseResult]):
    """A REST stream whose SDK internals are reached through public names."""

    # Overridden by streams: each private hook calls its public counterpart.

    def send_schema(self) -> None:
        """Write the SCHEMA message (the SDK calls this once per partition)."""
        super()._write_schema_message()

    def send_record(self, record: dict[str, Any]) -> None:
        super()._write_record_message(record)

    def record_messages(self, record: dict[str, Any]) -> Iterable[RecordMessage]:
        """The RECORD messages of one record (after stream maps)."""
        return super()._generate_record_messages(record)

    def before_first_read(self, context: Context | None) -> None:
        """Called once per partition, before the SDK notes where its read starts."""

    @override
    def _write_schema_message(self) -> None:
        self.send_schema()

    @override
    def _write_record_message(self, record: dict[str, Any]) -> None:
        self.send_record(record)

    @override
    def _generate_record_messages(self, record: dict[str, Any]) -> Any:
        return self.record_messages(record)

    @override
    def _write_starting_replication_value(self, context: Context | None) -> None:
        self.before_first_read(context)
        super()._write_starting_replication_value(context)

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        """Never for the SDK: its final `sync` (0.54 and 0.55) writes ACTIVATE_VERSION when it
        starts a full-table stream and again for every parent row of a child stream, before a
        row is read. A read that then stops short, is not due or is refused would have the
        target mark every row of the table deleted. The tap writes its own (`activate_version`)
        only after a complete read, switched by the setting of this name (which singer-sdk 0.55
        also declares, default false: the tap's declaration, default true, wins)."""
        return False

    # Called by streams.

    def activate_version(self, version: int) -> None:
        """ACTIVATE_VERSION: the target drops every row of an older version."""
        self._write_activate_version_message(version)

    @property
    def stream_version(self) -> int | None:
        """The version RECORD messages carry (None: the SDK's default)."""
        return self._stream_version

    @stream_version.setter
    def stream_version(self, version: int) -> None:
        self._stream_version = version

    def write_signpost(self, context: Context | None, value: Any) -> None:
        """The most a bookmark may advance to in this partition."""
        self._write_replication_key_signpost(context, value)

    @property
    def catalog_selected(self) -> bool:
        """Selected in the catalog, whatever a subclass's `selected` adds to that."""
        return bool(Stream.selected.fget(self))  # type: ignore[attr-defined]

    def set_catalog_selected(self, value: bool | None) -> None:
        Stream.selected.fset(self, value)  # type: ignore[attr-defined]


class CompatTap(Tap):
    """A tap whose SDK internals are reached through public names."""

    # The SDK's CLI reads `config_jsonschema` from the class.
    config_jsonschema: ClassVar[dict[str, Any]]

    def check_settings(self, schema_errors: list[str]) -> list[str]:
        """Every problem with the settings, given the schema's; overridden by the tap."""
        return schema_errors

    def typed_settings(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Settings given as text, converted to what `schema` wants; overridden by the tap."""
        return {}

    def on_termination_signal(self, signum: int) -> None:
        """SIGTERM or SIGINT arrived; overridden by the tap."""
        raise SystemExit(128 + signum)

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        schema = copy.deepcopy(self.config_jsonschema)
        self.append_builtin_config(schema)
        getattr(self, PRIVATE_CONFIG_ATTRIBUTE).update(self.typed_settings(schema))
        try:
            schema_errors = super()._validate_config(raise_errors=True)
        except ConfigValidationError as failure:
            schema_errors = list(failure.errors)
        errors = self.check_settings(schema_errors)
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        return errors

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        # The SDK's handler writes the state and exits 0 at once, even mid token refresh.
        self.on_termination_signal(signum)

    @classmethod
    def invoke_plugin(cls, *, about: bool, about_format: str | None) -> None:
        """What every plugin's `invoke` does first (`--about`, logging); the Tap's own
        `invoke`, which the tap replaces, is skipped."""
        PluginBase.invoke.__func__(cls, about=about, about_format=about_format)  # type: ignore[attr-defined]
