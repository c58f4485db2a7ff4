"""Run the real `tap-exactonline` CLI and read what it wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TAP = shutil.which("tap-exactonline") or str(Path(sys.executable).with_name("tap-exactonline"))
AUTH = str(Path(TAP).with_name("tap-exactonline-auth"))


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def record_counts(self) -> Counter[str]:
        return Counter(m["stream"] for m in self.messages if m["type"] == "RECORD")

    def by_division(self, stream: str) -> dict[int, list[dict[str, Any]]]:
        grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for record in self.records(stream):
            grouped[record["division"]].append(record)
        return grouped

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, Any]:
        return self.states[-1]

    def bookmark(self, stream: str, division: int) -> Any:
        for partition in self.final_state["bookmarks"][stream].get("partitions", []):
            if partition["context"].get("division") == division:
                return partition.get("replication_key_value")
        return None


def fake_config(fake: Any, **extra: Any) -> dict[str, Any]:
    """Tap settings for the fake server's login, reading division 1001 unless told otherwise."""
    return {
        "client_id": "fake-client-id",
        "client_secret": "fake-client-secret",
        "refresh_token": "fake-initial-refresh-token",
        "base_url": fake.base_url,
        "divisions": [1001],
        **extra,
    }


# Discovery asks Exact nothing, so runs with the same settings share one (a second each).
_discovered: dict[tuple[str, str], str] = {}


def discover(config_path: Path, tap: str = TAP) -> dict[str, Any]:
    """The `--discover` catalog of the `tap` executable for these settings (a fresh copy each
    call)."""
    key = (tap, config_path.read_text())
    if key not in _discovered:
        result = subprocess.run(
            [tap, "--config", str(config_path), "--discover"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        _discovered[key] = result.stdout
    return json.loads(_discovered[key])


def select(catalog: dict[str, Any], streams: set[str] | None) -> dict[str, Any]:
    """Select the named streams (all when None)."""
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = (
                    streams is None or stream["tap_stream_id"] in streams
                )
    return catalog


def run_tap(
    work: Path,
    config: dict[str, Any],
    *,
    streams: set[str] | None = None,
    state: dict[str, Any] | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    with_catalog: bool = True,
    cwd: Path | None = None,
    command_prefix: list[str] | None = None,
    tap: str = TAP,
) -> TapRun:
    """Run one sync with the given config, stream selection and incoming state, in the folder
    `cwd` (default: `work`); `command_prefix` runs the tap through another program (e.g. as
    another user: `hostile.as_nobody()`); `tap` is the executable (another install's).

    Without a catalog the tap syncs every stream it offers, as selected by default. Settings
    that discovery refuses (any wrong value) need `with_catalog=False`: the run's own check is
    what such a test is about.
    """
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "config.json"
    config_path.write_text(json.dumps(config))
    args = [*(command_prefix or []), tap, "--config", str(config_path)]
    if with_catalog:
        catalog_path = work / "catalog.json"
        catalog_path.write_text(json.dumps(select(discover(config_path, tap), streams)))
        args += ["--catalog", str(catalog_path)]
    if state is not None:
        state_path = work / "state.json"
        state_path.write_text(json.dumps(state))
        args += ["--state", str(state_path)]
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd or work
    )
    return TapRun(result.returncode, result.stdout, result.stderr, parse_messages(result.stdout))


def start_tap(
    work: Path, config: dict[str, Any], streams: set[str], *, text: bool = True
) -> subprocess.Popen[Any]:
    """Start one sync with the given streams selected, its output on pipes (for a test that
    reads while the tap runs, or signals it)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.json").write_text(json.dumps(config))
    catalog = select(discover(work / "config.json"), streams)
    (work / "catalog.json").write_text(json.dumps(catalog))
    return subprocess.Popen(
        [TAP, "--config", str(work / "config.json"), "--catalog", str(work / "catalog.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
    )


def parse_messages(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def state_tokens(
    state: dict[str, Any], client_secret: str = "fake-client-secret", key: str | None = None
) -> dict[str, Any]:
    """The tokens a STATE carries (always encrypted there: with `token_encryption_key`, else
    with a key derived from the client secret)."""
    return stored_tokens(state["exactonline_tokens"], client_secret, key)


def stored_tokens(
    at_rest: str | bytes | dict[str, Any],
    client_secret: str = "fake-client-secret",
    key: str | None = None,
) -> dict[str, Any]:
    """The tokens a copy at rest holds (a token store's file or object, a PostgreSQL row, a
    state's `exactonline_tokens`), decrypted as the tap does: with `token_encryption_key` (its
    keys), else with a key derived from the client secret; in clear from earlier versions."""
    from tap_exactonline.tokens import codec_for  # noqa: PLC0415

    data = at_rest if isinstance(at_rest, dict) else json.loads(at_rest)
    codec = codec_for({"client_secret": client_secret, "token_encryption_key": key})
    tokens = codec.load(data, "the copy at rest")
    assert tokens is not None
    return tokens.to_dict()


def run_auth(
    work: Path,
    settings: dict[str, Any],
    *args: str,
    cwd: Path | None = None,
    command_prefix: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `tap-exactonline-auth` to its end with these settings (in `work/config.json`) and
    nothing pasted: for the runs that must stop before anyone logs in."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "config.json"
    config.write_text(json.dumps(settings))
    return subprocess.run(
        [*(command_prefix or []), AUTH, "--config", str(config), *args],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )
