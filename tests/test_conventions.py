"""What the ecosystem expects of a tap, checked against what the tap reports about itself:
meltano.yml and the settings page agree with `--about`, a bad setting in Meltano reads as one
line from the tap (no Meltano traceback), the tap loads where `fcntl` does not exist (Windows), and
every install line names our distribution, not the other `tap-exactonline` on PyPI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fake_exact import FakeExact
from scripts.generate_settings import (
    about,
    meltano_yml_with_settings,
    page_with_settings,
    plugin_definition,
)
from tests.conftest import REPO_ROOT, run_meltano, set_plugin_config, write_test_meltano_yml

MELTANO_YML = REPO_ROOT / "meltano.yml"
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
SETTINGS_PAGE = DOCS / "settings.md"
STREAMS_PAGE = DOCS / "streams.md"
PYPROJECT = (REPO_ROOT / "pyproject.toml").read_text()
DISTRIBUTION = re.search(r'^name = "([^"]+)"', PYPROJECT, flags=re.M)[1]  # type: ignore[index]
# Modules that exist only on POSIX systems: the tap must load without them.
POSIX_ONLY = ("fcntl", "termios", "pwd", "grp", "resource")


@pytest.fixture(scope="module")
def reported() -> dict[str, Any]:
    return about()


def tap_definition() -> dict[str, Any]:
    project = yaml.safe_load(MELTANO_YML.read_text())
    return next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-exactonline")


def test_meltano_yml_declares_every_capability_the_tap_reports(reported: dict[str, Any]):
    assert tap_definition()["capabilities"] == reported["capabilities"]
    # `batch` only with a test that a BATCH run loads: the tap does not offer it.
    assert "batch" not in reported["capabilities"]
    # Without it Meltano shows every tap error as [info].
    assert "structured-logging" in reported["capabilities"]


def test_settings_page_and_meltano_yml_show_the_settings_the_tap_reports(
    reported: dict[str, Any],
):
    settings = reported["settings"]
    page = SETTINGS_PAGE.read_text()
    assert page == page_with_settings(page, settings), (
        "docs/settings.md is stale: run `uv run python scripts/generate_settings.py`"
    )
    meltano_yml = MELTANO_YML.read_text()
    assert meltano_yml == meltano_yml_with_settings(meltano_yml, settings), (
        "meltano.yml settings are stale: run `uv run python scripts/generate_settings.py`"
    )
    assert (REPO_ROOT / "meltano-plugin.yml").read_text() == plugin_definition(meltano_yml), (
        "meltano-plugin.yml is stale: run `uv run python scripts/generate_settings.py`"
    )
    declared = {s["name"]: s for s in tap_definition()["settings"]}
    assert list(declared) == list(settings["properties"])
    for name, schema in settings["properties"].items():
        assert declared[name].get("value") == schema.get("default"), name
        assert declared[name].get("sensitive", False) == schema.get("secret", False), name


def test_settings_page_defaults_are_the_tap_defaults(reported: dict[str, Any]):
    rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", SETTINGS_PAGE.read_text(), flags=re.M)
    defaults = {name: cell.strip().strip("`") for name, cell in rows}
    assert defaults["divisions"] == "current"
    assert defaults["redirect_uri"] == "http://localhost:8765/callback"
    for name, schema in reported["settings"]["properties"].items():
        if "default" in schema:
            assert defaults[name] == json.dumps(schema["default"]).strip('"'), name


def test_no_key_in_the_stream_table_names_the_division_twice():
    # Where Exact's key includes `Division`, the column is listed once.
    rows = [line for line in STREAMS_PAGE.read_text().splitlines() if line.startswith("| `")]
    assert rows
    assert not [row for row in rows if " division, division" in row]


def test_every_install_line_names_our_distribution():
    assert DISTRIBUTION == "tap-exactonline-rest"
    docs = "".join(page.read_text() for page in sorted(DOCS.glob("*.md")))
    text = README.read_text() + docs + MELTANO_YML.read_text()
    # `pip install tap-exactonline`, `tap-exactonline[s3]`, `pip_url: tap-exactonline` would all
    # install the other project of that name.
    wrong = re.findall(r"(?:install|pip_url:)\s+['\"]?tap-exactonline(?![-\w])", text)
    wrong += re.findall(r"(?<![-\w])tap-exactonline\[", text)
    assert not wrong
    assert f"{DISTRIBUTION}[" in text


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("region", "xx", "Setting `region`: 'xx' is not one of"),
        ("request_timeout", "soon", "Setting `request_timeout`: 'soon' is not of type"),
        ("beta_endpoints", "maybe", "Setting `beta_endpoints`: must be true or false (true/1/yes"),
        ("stream_api", "{items", "Setting `stream_api` must be an object"),
    ],
)
def test_a_bad_setting_in_meltano_is_one_line_from_the_tap(
    tmp_path: Path, setting: str, value: str, expected: str
):
    """Meltano used to stop these with its own traceback (FileNotFoundError on the config file
    it never wrote) before the tap ran, for every `kind` it converts itself."""
    write_test_meltano_yml(tmp_path)
    set_plugin_config(tmp_path, "tap-exactonline", client_id="x", client_secret="y")
    result = run_meltano(
        tmp_path,
        "invoke",
        "tap-exactonline",
        "--test",  # arguments: Meltano runs no discovery first
        env={f"TAP_EXACTONLINE_{setting.upper()}": value},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output
    assert "FileNotFoundError" not in output
    errors = [line for line in output.splitlines() if "[error" in line]
    assert expected in errors[0], output[-3000:]


def test_settings_given_as_text_work_in_meltano(tmp_path: Path):
    """Every setting reaches the tap as Meltano passes it from .env or `meltano config set`:
    numbers, true/false and objects as text."""
    write_test_meltano_yml(tmp_path)
    with FakeExact(rows={"items": 3}) as fake:
        text_settings = {
            "client_id": "fake-client-id",
            "client_secret": "fake-client-secret",
            "refresh_token": "fake-initial-refresh-token",
            "base_url": fake.base_url,
            "divisions": "1001",
            "request_timeout": "30",
            "retry_base_seconds": "0.01",
            "max_retries": "2",
            "beta_endpoints": "true",
            "stream_api": '{"items": "standard"}',
        }
        env = {f"TAP_EXACTONLINE_{k.upper()}": v for k, v in text_settings.items()}
        env["TAP_EXACTONLINE__SELECT"] = '["items.*"]'
        result = run_meltano(tmp_path, "invoke", "tap-exactonline", env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        records = [
            json.loads(line)
            for line in result.stdout.splitlines()
            if line.startswith('{"type":"RECORD"') or line.startswith('{"type": "RECORD"')
        ]
        assert len(records) == 3
        assert any("/logistics/Items" in call[1] for call in fake.calls)  # the standard API


def test_the_tap_loads_and_discovers_without_posix_only_modules():
    """As on Windows: `fcntl` and friends cannot be imported (the tap once imported `fcntl`
    at the top of auth.py and could not even start there)."""
    script = f"""
import importlib, pkgutil, sys
for name in {POSIX_ONLY!r}:
    sys.modules[name] = None  # `import fcntl` now raises ImportError
import tap_exactonline
for module in pkgutil.walk_packages(tap_exactonline.__path__, "tap_exactonline."):
    importlib.import_module(module.name)
from tap_exactonline.tap import TapExactOnline
sys.argv = ["tap-exactonline", "--about", "--format=json"]
TapExactOnline.cli()
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["name"] == "tap-exactonline"


def test_a_postgresql_token_store_without_psycopg_is_one_line(tmp_path: Path):
    """psycopg is the `postgres` extra: without it, a postgresql:// store names the extra."""
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "client_id": "x",
                "client_secret": "y",
                "refresh_token": "z",
                "token_store": "postgresql://loader:pg-password-1@127.0.0.1:9/db",
            }
        )
    )
    script = f"""
import sys
sys.modules["psycopg"] = None  # not installed
from tap_exactonline.tap import TapExactOnline
sys.argv = ["tap-exactonline", "--config", {str(config)!r}]
TapExactOnline.cli()
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 1
    assert "needs psycopg; install the tap with its `postgres` extra" in result.stderr
    assert "tap-exactonline-rest[postgres]" in result.stderr
    assert "Traceback" not in result.stderr
    assert "pg-password-1" not in result.stderr


def test_a_wrong_time_zone_is_one_line_in_meltanos_discovery(tmp_path: Path):
    """`meltano select --list` (and `meltano run`) discover first: a typo in `time_zone` gave
    164 lines there, the tap's traceback twice. Meltano still frames a failed discovery in its
    own traceback; what the tap says in it is one line."""
    write_test_meltano_yml(tmp_path)
    result = run_meltano(
        tmp_path,
        "select",
        "tap-exactonline",
        "--list",
        env={"TAP_EXACTONLINE_TIME_ZONE": "Europe/Amsterdm"},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "UnknownTimeZoneError" not in output and "tap_exactonline/" not in output, output
    # Meltano quotes the tap's stderr after "with stderr:" (and again in its traceback); on
    # Python 3.10 the SDK's end-of-life warning comes first.
    quoted = output.split("with stderr:\n", 1)[1].split("\n\n", 1)[0].strip()
    [line] = [text for text in quoted.splitlines() if '"logger_name":"tap-exactonline"' in text]
    assert "Setting `time_zone` must be an IANA time zone" in line
    assert "'Europe/Amsterdm'" in line
