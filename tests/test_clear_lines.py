"""Clear lines instead of tracebacks (issue 11 §4).

Bad input ends the run with one line naming the setting, stream or division, before any request
where it can be known before one. A row with text that is not valid UTF-8 loads (with U+FFFD
in its place) and is named, so it cannot block every later run. A JSON body that is a list or
null is covered by tests/test_garbled_pages.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fake_exact import FakeExact
from tests.tap_runner import (
    TAP,
    TapRun,
    discover,
    fake_config,
    parse_messages,
    run_auth,
    run_tap,
    select,
)

DIVISION = 1001


@pytest.fixture(scope="module")
def fake():
    with FakeExact(rows={"gl_accounts": 5, "journals": 5}, minutely_limit=10**6) as server:
        yield server


def assert_one_line_and_no_request(
    fake: FakeExact, returncode: int, stderr: str, *words: str
) -> None:
    assert returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if all(w in line for w in words)]
    assert len(lines) == 1, f"want one line with {words}:\n{stderr[-3000:]}"


def run_with_state_text(fake: FakeExact, tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    (tmp_path / "config.json").write_text(json.dumps(fake_config(fake)))
    catalog = select(discover(tmp_path / "config.json"), {"gl_accounts", "journals"})
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    (tmp_path / "state.json").write_text(text)
    return subprocess.run(
        [
            TAP,
            "--config",
            str(tmp_path / "config.json"),
            "--catalog",
            str(tmp_path / "catalog.json"),
            "--state",
            str(tmp_path / "state.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", ("state file", "is empty")),
        ("{'bookmarks': {}}", ("state file", "is not JSON")),
        ("[1, 2]", ("state file", "not an object")),
        ('{"bookmarks": []}', ("`bookmarks` is not an object",)),
        ('{"bookmarks": {"journals": ["x"]}}', ("stream journals", "not an object")),
        ('{"bookmarks": {"journals": {"partitions": ["1001"]}}}', ("stream journals",)),
        (
            json.dumps(
                {
                    "bookmarks": {
                        "journals": {
                            "partitions": [
                                {
                                    "context": {"division": DIVISION},
                                    "replication_key": "modified",
                                    "replication_key_value": "last tuesday",
                                }
                            ]
                        }
                    }
                }
            ),
            ("stream journals, division 1001", "not a date-time"),
        ),
        (
            json.dumps(
                {
                    "bookmarks": {
                        "gl_accounts": {
                            "partitions": [
                                {
                                    "context": {"division": DIVISION},
                                    "replication_key": "timestamp",
                                    "replication_key_value": [12],
                                }
                            ]
                        }
                    }
                }
            ),
            ("stream gl_accounts, division 1001", "not a Timestamp"),
        ),
    ],
    ids=[
        "empty",
        "not-json",
        "a-list",
        "bookmarks-a-list",
        "bookmark-a-list",
        "partitions-strings",
        "modified-not-a-date",
        "timestamp-not-a-number",
    ],
)
def test_a_state_that_cannot_be_read_is_one_line_before_any_request(
    fake: FakeExact, tmp_path: Path, text: str, words: tuple[str, ...]
):
    calls = len(fake.calls)
    done = run_with_state_text(fake, tmp_path, text)
    assert_one_line_and_no_request(fake, done.returncode, done.stderr, *words)
    assert len(fake.calls) == calls


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("start_date", "2024-02-30", ("`start_date`", "2024-02-30")),
        ("start_date", "yesterday", ("`start_date`", "yesterday")),
        ("start_date", "0099-01-01", ("`start_date`", "1900 or later")),
        ("retry_base_seconds", -1, ("`retry_base_seconds`", "must not be negative")),
        ("base_url", "ftp://start.exactonline.nl", ("`base_url`", "http(s)")),
        ("base_url", "start.exactonline.nl", ("`base_url`", "http(s)")),
        # 0.0.0.0 reaches the fake on this machine, so before the check the client secret went
        # out in clear text; an address other than loopback is refused before any call.
        ("base_url", "http://0.0.0.0:{port}", ("`base_url`", "https://", "clear text")),
    ],
    ids=["impossible-day", "not-a-date", "year-99", "negative", "ftp", "no-scheme", "clear-text"],
)
def test_a_setting_no_request_could_use_is_one_line_before_any_request(
    fake: FakeExact, tmp_path: Path, setting: str, value: Any, words: tuple[str, ...]
):
    if isinstance(value, str):
        value = value.format(port=urlsplit(fake.base_url).port)
    calls = len(fake.calls)
    run = run_tap(tmp_path, fake_config(fake, **{setting: value}), with_catalog=False)
    assert_one_line_and_no_request(fake, run.returncode, run.stderr, *words)
    assert len(fake.calls) == calls


@pytest.mark.parametrize(
    ("raw", "readable"),
    [
        (b"Fietsen Jansen \xff\xfe B.V.", "Fietsen Jansen \ufffd\ufffd B.V."),
        (b"Caf\\ud800 Jansen", "Caf\ufffd Jansen"),  # a lone UTF-16 surrogate escape
    ],
    ids=["invalid-utf8", "lone-surrogate"],
)
def test_a_row_with_text_that_is_not_utf8_loads_and_is_named(
    tmp_path: Path, raw: bytes, readable: str
):
    key = "00000000-0000-4000-8000-00000000abcd"
    with FakeExact(rows={"journals": 3}, minutely_limit=10**6) as fake:
        rows = [
            b'{"ID":"' + key.encode() + b'","Code":"BNK","Description":"' + raw + b'",'
            b'"Modified":"/Date(1700000000000)/"}',
            b'{"ID":"00000000-0000-4000-8000-000000000002","Code":"VRK",'
            b'"Description":"Verkoop","Modified":"/Date(1700000000000)/"}',
        ]
        body = b'{"d":{"results":[' + b",".join(rows) + b"]}}"
        fake.replay_next("/financial/Journals", body)
        run: TapRun = run_tap(tmp_path, fake_config(fake), streams={"journals"})
    assert run.returncode == 0, run.stderr[-3000:]
    records = {r["id"]: r for r in run.records("journals")}
    assert records[key]["description"] == readable
    assert records["00000000-0000-4000-8000-000000000002"]["description"] == "Verkoop"
    warnings = [line for line in run.stderr.splitlines() if "not valid UTF-8" in line]
    assert len(warnings) == 1
    assert "journals (division 1001)" in warnings[0] and key in warnings[0]
    # The row does not block later runs: the bookmark moved past it.
    assert run.bookmark("journals", DIVISION) is not None
    assert parse_messages(run.stdout)


def test_the_auth_command_refuses_a_clear_text_base_url_before_any_request(
    fake: FakeExact, tmp_path: Path
):
    settings = fake_config(fake, base_url=fake.base_url.replace("127.0.0.1", "0.0.0.0"))
    calls = len(fake.calls)
    done = run_auth(tmp_path, settings, "--paste", cwd=tmp_path)
    assert_one_line_and_no_request(fake, done.returncode, done.stderr, "`base_url`", "clear text")
    assert len(fake.calls) == calls


def test_discovery_names_a_wrong_setting_in_one_line_and_needs_no_credentials(tmp_path: Path):
    def discover_with(settings: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "config.json"
        config.write_text(json.dumps(settings))
        return subprocess.run(
            [TAP, "--config", str(config), "--discover"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # Meltano discovers before every run: a typo there was a traceback, printed twice.
    wrong = discover_with({"time_zone": "Europe/Amsterdm"})
    assert wrong.returncode == 1
    assert "Traceback" not in wrong.stderr, wrong.stderr[-3000:]
    [line] = [s for s in wrong.stderr.splitlines() if "`time_zone`" in s]
    assert "Europe/Amsterdm" in line
    # `meltano select --list` before the first login: no credentials, yet the streams.
    listed = discover_with({})
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert len(json.loads(listed.stdout)["streams"]) > 300


@pytest.mark.parametrize(
    ("store", "words"),
    [
        ("/proc/nope/tokens.json", ("token_store /proc/nope/tokens.json", "cannot be written")),
        ("{tmp}/new/tokens.json", ("token_store {tmp}/new/tokens.json", "tap-exactonline-auth")),
    ],
    ids=["unusable", "not-filled-yet"],
)
def test_a_store_without_tokens_and_no_setting_names_the_store(
    fake: FakeExact, tmp_path: Path, store: str, words: tuple[str, ...]
):
    settings = fake_config(fake, token_store=store.format(tmp=tmp_path))
    del settings["refresh_token"]
    run = run_tap(tmp_path / "run", settings, streams={"gl_accounts"})
    assert_one_line_and_no_request(
        fake, run.returncode, run.stderr, *(w.format(tmp=tmp_path) for w in words)
    )
    assert fake.token_calls == 0


def test_the_words_a_person_writes_for_yes_and_no_switch_a_setting(tmp_path: Path):
    """Meltano hands every setting over as text: `beta_endpoints: "no"` must mean no (as text
    it was once taken for yes, and discovery offered the beta streams)."""

    def stream_count(value: Any) -> int:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"beta_endpoints": value}))
        done = subprocess.run(
            [TAP, "--config", str(config), "--discover"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return len(json.loads(done.stdout)["streams"])

    without, with_beta = stream_count(False), stream_count(True)
    assert with_beta > without
    for word in ("yes", "Yes", "on", "true", "1"):
        assert stream_count(word) == with_beta, word
    for word in ("no", "off", "false", "0"):
        assert stream_count(word) == without, word
