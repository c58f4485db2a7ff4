"""Secrets stay where they belong (issue 11 §3).

The client secret and the tokens never travel to another host, never reach a log line in any
encoding, and a secret setting of the wrong type is named, not quoted. Error lines quote at most
a short excerpt of what a server said, and never the rows of a page.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import pytest

from fake_exact import FakeExact
from tap_exactonline.redact import secret_forms
from tests.tap_runner import TapRun, fake_config, run_tap

# Secrets with characters that encodings change: "+", "/", "=", "&", "!".
CLIENT_SECRET = "s3cr+t/Key=&x!yz"
REFRESH_TOKEN = "Gcp7!IAAAA/seed+token=="
DEBUG = {"LOGLEVEL": "DEBUG", "TAP_EXACTONLINE_LOGLEVEL": "DEBUG"}


@pytest.fixture
def fake():
    with FakeExact(
        client_secret=CLIENT_SECRET,
        initial_refresh_token=REFRESH_TOKEN,
        rows={"gl_accounts": 5, "journals": 5},
        minutely_limit=10**6,
    ) as server:
        yield server


def config(fake: FakeExact, **extra: object) -> dict[str, object]:
    settings = fake_config(fake, retry_base_seconds=0.01, max_retries=1, **extra)
    return settings | {"client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}


def assert_no_form_of_any_secret(fake: FakeExact, run: TapRun) -> None:
    """Not in the log in any encoding (the STATE on stdout carries tokens by design)."""
    for secret in fake.issued_secrets():
        for form in secret_forms(secret):
            assert form not in run.stderr, f"a form of a secret reached the log: {form[:6]}..."


def test_the_token_post_never_follows_a_redirect(fake: FakeExact, tmp_path: Path):
    with FakeExact() as elsewhere:
        fake.replay_next(
            "/api/oauth2/token",
            "",
            status=307,  # 307 tells a client to send the same POST, body and all, there
            headers={"Location": f"{elsewhere.base_url}/api/oauth2/token"},
        )
        run = run_tap(tmp_path, config(fake), streams={"gl_accounts"})
        assert elsewhere.calls == []  # neither the secret nor the refresh token went there
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert any("redirect" in line and "not followed" in line for line in run.stderr.splitlines())
    assert_no_form_of_any_secret(fake, run)


def test_encoded_secrets_in_a_servers_answer_are_masked(fake: FakeExact, tmp_path: Path):
    # A proxy in front of the token endpoint answers 400 and echoes the form it was sent.
    form = urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": REFRESH_TOKEN,
            "client_id": "fake-client-id",
            "client_secret": CLIENT_SECRET,
        }
    )
    echoed = (
        f"bad request: {form} (path-encoded {quote(CLIENT_SECRET)}, "
        f"json {json.dumps(CLIENT_SECRET).replace('/', chr(92) + '/')})"
    )
    body = json.dumps({"error": "invalid_request", "error_description": echoed})
    fake.replay_next("/api/oauth2/token", body, status=400)
    run = run_tap(tmp_path, config(fake), streams={"gl_accounts"}, env=DEBUG)
    assert run.returncode != 0
    assert "DEBUG" in run.stderr
    for secret in (CLIENT_SECRET, REFRESH_TOKEN):
        for form_of in (secret, quote_plus(secret), quote(secret, safe=""), quote(secret)):
            assert form_of not in run.stderr
    assert_no_form_of_any_secret(fake, run)


@pytest.mark.parametrize(
    "value", [12345678, {"value": "hunter2-pasted"}, ["hunter2-pasted"]], ids=str
)
def test_a_secret_setting_of_the_wrong_type_is_named_not_quoted(
    fake: FakeExact, tmp_path: Path, value: object
):
    run = run_tap(tmp_path, config(fake) | {"client_secret": value}, with_catalog=False)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert "`client_secret` must be text" in run.stderr
    assert "12345678" not in run.stderr
    assert "hunter2" not in run.stderr
    assert fake.calls == []


def test_a_cut_off_page_is_not_quoted_into_the_log(fake: FakeExact, tmp_path: Path):
    customer = "Fietsen Jansen Geheim B.V."
    cut = (
        '{"d":{"results":[{"__metadata":{"uri":"x"},"ID":"00000000-0000-4000-8000-000000000001",'
        f'"Code":"                 1","Description":"{customer}","Timestamp":"12'
    )
    fake.replay_next("/sync/Financial/GLAccounts", cut, times=2)
    run = run_tap(tmp_path, config(fake), streams={"gl_accounts"})
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert customer not in run.stderr
    assert any("not complete JSON" in line for line in run.stderr.splitlines())


def test_an_error_page_is_quoted_only_as_a_short_excerpt(fake: FakeExact, tmp_path: Path):
    page = "<html><body><h1>502 Bad Gateway</h1>" + "<p>upstream details</p>" * 200 + "</html>"
    fake.replay_next(
        "/sync/Financial/GLAccounts", page, status=502, content_type="text/html", times=2
    )
    run = run_tap(tmp_path, config(fake), streams={"gl_accounts"})
    assert run.returncode != 0
    # Said when the read fails, and again in the failures named at the end of the run.
    lines = [x for x in run.stderr.splitlines() if "gave up after" in x]
    assert len(lines) == 2
    for line in lines:
        assert "502 Bad Gateway" in line
        assert len(line) < 600
