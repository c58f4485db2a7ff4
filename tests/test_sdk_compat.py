"""The private singer-sdk names the tap relies on (all in `tap_exactonline/sdk_compat.py`) are
still there, with the parameters we pass. An SDK upgrade that renames or reshapes one fails here,
naming it, instead of somewhere in a sync."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from singer_sdk import Tap
from singer_sdk.plugin_base import PluginBase

from tap_exactonline.sdk_compat import PRIVATE_NAMES, CompatStream, ConfigInput
from tap_exactonline.tap import TapExactOnline


def parameters(function: object) -> tuple[str, ...]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return tuple(name for name in signature.parameters if name != "self")


@pytest.mark.parametrize("name", sorted(PRIVATE_NAMES))
def test_each_private_name_is_still_there_with_its_parameters(name: str):
    owner, expected = PRIVATE_NAMES[name]
    assert hasattr(owner, name), f"singer-sdk no longer has {owner.__name__}.{name}"
    assert parameters(getattr(owner, name)) == expected


def test_the_config_input_carries_the_config_and_the_env_flag():
    given = ConfigInput(config={"client_id": "x"}, parse_env=True)
    assert given.config == {"client_id": "x"}
    assert given.parse_env is True
    assert ConfigInput().config is None or ConfigInput().config == {}


def test_the_plugin_invoke_the_tap_calls_takes_about_and_its_format():
    assert parameters(PluginBase.invoke)[:2] == ("about", "about_format")
    # The Tap's own invoke, which ours replaces, still reads the state and catalog itself.
    assert {"state", "catalog", "config"} <= set(parameters(Tap.invoke))


def test_a_stream_keeps_its_version_in_stream_version_and_selection_in_a_property():
    tap = TapExactOnline(
        config={
            "client_id": "x",
            "client_secret": "y",
            "refresh_token": "z",
            "divisions": [1],
        },
        validate_config=True,
    )
    stream = tap.streams["gl_accounts"]
    assert isinstance(stream, CompatStream)
    assert "_stream_version" in vars(stream), "Stream._stream_version is gone"
    stream.stream_version = 7
    assert stream.stream_version == 7
    stream.set_catalog_selected(False)
    assert stream.catalog_selected is False
    stream.set_catalog_selected(True)
    assert stream.catalog_selected is True


def test_no_module_but_sdk_compat_uses_a_private_sdk_name():
    root = Path(inspect.getfile(TapExactOnline)).parent
    names = [*PRIVATE_NAMES, "_ConfigInput", "_stream_version", "._tap", ".fget", ".fset"]
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "sdk_compat.py":
            continue
        text = path.read_text()
        offenders += [f"{path.name}: {name}" for name in names if name in text]
    assert offenders == []
