"""The private singer-sdk names the tap relies on (all in `tap_exactonline/sdk_compat.py`) are
still there, with the parameters we pass. An SDK upgrade that renames or reshapes one fails here,
naming it, instead of somewhere in a sync."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

import pytest
from singer_sdk import Tap
from singer_sdk.plugin_base import PluginBase

from fake_exact import FakeExact
from tap_exactonline.sdk_compat import PRIVATE_NAMES, CompatStream, ConfigInput
from tap_exactonline.tap import TapExactOnline
from tests.tap_runner import TAP, TapRun, discover, run_tap
from tests.test_tap_sync import CORE_STREAMS, DIVISIONS, SMALL_ROWS, UNLIMITED, tap_config


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


# Set by `.ci/run` when it runs this module on the newest singer-sdk: the `tap-exactonline` of
# the locked environment, the reference that run is compared with.
REFERENCE_TAP = os.environ.get("SDK_COMPAT_REFERENCE_TAP")


def comparable(run: TapRun) -> dict[str, Any]:
    """What a loader gets from a sync, less what differs between any two runs: when records
    were extracted or read (`…_read_at`), the table versions (the run's clock) and the
    encrypted tokens. What a loader relies on in those is checked here instead: every record
    has its time, and a versioned stream's records carry the version ACTIVATE_VERSION names
    after them."""
    records: dict[str, list[str]] = {}
    order: dict[str, list[str]] = {}
    versions: dict[str, set[int | None]] = {}
    for message in run.messages:
        kind, stream = message["type"], message.get("stream")
        if stream is not None and order.setdefault(stream, [kind])[-1] != kind:
            order[stream].append(kind)  # each run of one kind once: SCHEMA, RECORD, ...
        if kind == "RECORD":
            assert message.get("time_extracted"), message
            versions.setdefault(stream, set()).add(message.get("version"))
            line = {k: v for k, v in message.items() if k not in ("time_extracted", "version")}
            records.setdefault(stream, []).append(json.dumps(line, sort_keys=True))
        elif kind == "ACTIVATE_VERSION":
            assert versions.get(stream) in (None, {message["version"]}), (stream, versions)
    versioned = sorted({m["stream"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"})
    return {
        "schemas": [m for m in run.messages if m["type"] == "SCHEMA"],
        "records": {stream: sorted(lines) for stream, lines in records.items()},
        "order": order,
        "versioned": versioned,
        "bookmarks": json.loads(
            json.dumps(run.final_state["bookmarks"]),
            object_hook=lambda d: {k: v for k, v in d.items() if not k.endswith("_read_at")},
        ),
    }


@pytest.mark.skipif(REFERENCE_TAP is None, reason="runs in .ci/run's step on the newest singer-sdk")
def test_a_sync_on_this_sdk_matches_the_locked_sdk_record_for_record(tmp_path: Path):
    assert REFERENCE_TAP is not None
    with FakeExact(divisions=DIVISIONS, rows=SMALL_ROWS, **UNLIMITED) as fake:
        # One token store for both runs: each run takes up the chain the other one rotated.
        config = tap_config(fake, token_store=str(tmp_path / "tokens.json"))
        runs = {}
        for name, tap in (("locked", REFERENCE_TAP), ("this", TAP)):
            run = run_tap(tmp_path / name, config, streams=set(CORE_STREAMS), tap=tap)
            assert run.returncode == 0, run.stderr[-3000:]
            runs[name] = comparable(run)
            # Each discovers its own catalog (which the run above used): they must agree.
            runs[name]["catalog"] = discover(tmp_path / name / "config.json", tap)
    assert sum(map(len, runs["this"]["records"].values())) > 10_000
    assert "receivables_list" in runs["this"]["versioned"]
    for part in runs["this"]:
        assert runs["this"][part] == runs["locked"][part], f"{part} differ between the SDKs"
