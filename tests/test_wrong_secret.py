"""A wrong `client_secret`: Exact's token endpoint answers `invalid_client`. Authorizing again
would not help, so the tap run, `--test` and the auth command each say which setting is wrong
and where the right one is, and keep the refresh token they have."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from fake_exact import FakeExact
from tests.tap_runner import TAP, fake_config, run_tap, stored_tokens
from tests.test_authorize import callback_of, paste, start_auth

WRONG = "not-the-secret-0123"
REAUTHORIZE = re.compile(r"authori[sz]e (the app )?again", re.IGNORECASE)


# A token store is encrypted with a key derived from the right secret: it tells a wrong one
# before Exact is asked.
UNDECRYPTABLE_STORE = "do not decrypt with the key derived from `client_secret`"


def assert_says_the_secret_is_wrong(
    fake: FakeExact, output: str, marker: str = "invalid_client"
) -> str:
    """Exactly one line names the setting and the App Center; no advice to authorize again."""
    lines = [line for line in output.splitlines() if marker in line]
    assert len(lines) == 1, output[-3000:]
    assert "`client_secret`" in lines[0] and "App Center" in lines[0]
    assert not REAUTHORIZE.search(output), output[-3000:]
    assert "Traceback" not in output
    for secret in [*fake.issued_secrets(), WRONG]:
        assert secret not in output
    return lines[0]


def stored_refresh_token(store: Path) -> str:
    return str(stored_tokens(store.read_text())["refresh_token"])


def good_first_run(fake: FakeExact, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    store = tmp_path / "tokens.json"
    config = fake_config(fake, token_store=str(store))
    first = run_tap(tmp_path / "first", config, streams={"gl_accounts"})
    assert first.returncode == 0, first.stderr[-3000:]
    fake.advance_clock(601)  # its access token expired: the next run must refresh
    return config, store


def test_the_tap_run_says_the_secret_is_wrong_and_keeps_the_refresh_token(tmp_path: Path):
    with FakeExact(divisions=(1001,), default_rows=3) as fake:
        config, store = good_first_run(fake, tmp_path)
        kept = stored_refresh_token(store)
        token_calls = fake.token_calls
        run = run_tap(
            tmp_path / "wrong", config | {"client_secret": WRONG}, streams={"gl_accounts"}
        )
        assert run.returncode == 1
        line = assert_says_the_secret_is_wrong(fake, run.stderr, UNDECRYPTABLE_STORE)
        assert "ERROR" in line
        assert stored_refresh_token(store) == kept
        assert fake.token_calls == token_calls  # no refresh token was sent anywhere

        # Once the setting is right, the next run continues from that same token.
        fixed = run_tap(tmp_path / "fixed", config, streams={"gl_accounts"}, state=run.final_state)
        assert fixed.returncode == 0, fixed.stderr[-3000:]
        assert fake.refresh_count == 2
        assert stored_refresh_token(store) != kept


def test_without_a_store_exact_says_the_secret_is_wrong_and_the_token_is_kept(tmp_path: Path):
    """Nothing at rest to tell it: Exact's `invalid_client` does, before spending the token."""
    with FakeExact(divisions=(1001,), default_rows=3) as fake:
        config = fake_config(fake)
        run = run_tap(
            tmp_path / "wrong", config | {"client_secret": WRONG}, streams={"gl_accounts"}
        )
        assert run.returncode == 1
        assert "ERROR" in assert_says_the_secret_is_wrong(fake, run.stderr)
        fixed = run_tap(tmp_path / "fixed", config, streams={"gl_accounts"}, state=run.final_state)
        assert fixed.returncode == 0, fixed.stderr[-3000:]
        assert fake.refresh_count == 1  # the configured token was still good
        # The state the wrong run saved cannot be read under the right secret: said as what
        # happened, not as if the secret were still wrong.
        [line] = [s for s in fixed.stderr.splitlines() if "incoming state's tokens" in s]
        assert "Nothing needs doing" in line and "wrong" not in line


def test_the_connection_test_says_the_secret_is_wrong(tmp_path: Path):
    with FakeExact(divisions=(1001,), default_rows=3) as fake:
        config, store = good_first_run(fake, tmp_path)
        kept = stored_refresh_token(store)
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config | {"client_secret": WRONG}))
        checked = subprocess.run(
            [TAP, "--config", str(config_path), "--test"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert checked.returncode == 1
        output = checked.stderr + checked.stdout
        line = assert_says_the_secret_is_wrong(fake, output, UNDECRYPTABLE_STORE)
        assert "Connection test failed" in line
        assert stored_refresh_token(store) == kept


def test_the_auth_command_says_the_secret_is_wrong_and_keeps_the_stored_tokens(tmp_path: Path):
    redirect = "https://example.invalid/exact/callback"
    with FakeExact(divisions=(1001,), default_rows=3) as fake:
        config, store = good_first_run(fake, tmp_path)
        kept = stored_refresh_token(store)
        wrong = config | {"client_secret": WRONG, "redirect_uri": redirect}
        process, url = start_auth(tmp_path / "auth", wrong, "--paste")
        returncode, stdout, stderr = paste(process, callback_of(url))
        assert returncode == 1
        assert_says_the_secret_is_wrong(fake, stdout + stderr)
        assert stored_refresh_token(store) == kept
