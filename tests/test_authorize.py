"""`tap-exactonline-auth` end to end against the fake server's authorize and token endpoints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from fake_exact import FakeExact
from tests.conftest import _free_port, run_meltano, set_plugin_config
from tests.tap_runner import fake_config, run_tap, state_tokens

AUTH = shutil.which("tap-exactonline-auth") or str(
    Path(sys.executable).with_name("tap-exactonline-auth")
)


def start_auth(
    work: Path, settings: dict[str, Any], *args: str
) -> tuple[subprocess.Popen[str], str]:
    """Start the command; return it and the authorize URL it printed."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "config.json"
    config.write_text(json.dumps(settings))
    process = subprocess.Popen(
        [AUTH, "--config", str(config), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=work,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("http"):
            return process, line.strip()
    raise AssertionError(process.communicate()[1])


def callback_of(url: str) -> str:
    """What the browser is sent to after logging in: the redirect URI with code and state."""
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    return response.headers["Location"]


def browse(url: str) -> requests.Response:
    """The browser: log in (the fake server redirects at once) and land on the redirect URI,
    once the command listens there."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return requests.get(url, timeout=30)
        except requests.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def paste(process: subprocess.Popen[str], callback: str) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(callback + "\n", timeout=60)
    return process.returncode, stdout, stderr


def assert_no_secret(fake: FakeExact, *texts: str) -> None:
    for secret in fake.issued_secrets():
        assert all(secret not in text for text in texts)


def test_listen_mode_writes_the_token_store_and_the_tap_continues_from_it(tmp_path: Path):
    redirect = f"http://127.0.0.1:{_free_port()}/callback"
    store = tmp_path / "tokens.json"
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        settings = fake_config(fake, token_store=str(store), redirect_uri=redirect)
        process, url = start_auth(tmp_path / "auth", settings, "--listen")
        assert url.startswith(f"{fake.base_url}/api/oauth2/auth?client_id=fake-client-id")
        page = browse(url)
        assert page.status_code == 200 and "Exact Online is authorized" in page.text
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert "Saved the new tokens to the token store" in stdout
        assert_no_secret(fake, stdout, stderr)
        assert "refresh_token" in store.read_text()

        # The tap continues the new chain although config still holds the old refresh token
        # (here: already spent by nobody, but superseded); and it can refresh it later.
        first = run_tap(tmp_path / "1", settings, streams={"gl_accounts"})
        assert first.returncode == 0, first.stderr[-3000:]
        assert fake.refresh_count == 0  # the access token from the authorization is reused
        fake.advance_clock(601)
        second = run_tap(tmp_path / "2", settings, streams={"gl_accounts"})
        assert second.returncode == 0, second.stderr[-3000:]
        assert fake.refresh_count == 1


def git_ignores(work_tree: Path, path: str | Path) -> bool:
    answer = subprocess.run(
        ["git", "-C", str(work_tree), "check-ignore", "--quiet", str(path)], check=False
    )
    assert answer.returncode in (0, 1)
    return answer.returncode == 0


def test_paste_mode_without_a_store_keeps_the_tokens_in_a_file_named_in_env(tmp_path: Path):
    redirect = "https://example.invalid/exact/callback"
    work = tmp_path / "auth"
    work.mkdir()
    # A project in git whose .gitignore knows nothing of the tap (as `meltano init` writes it).
    subprocess.run(["git", "init", "--quiet", str(work)], check=True)
    (work / ".gitignore").write_text(".meltano/\n.env\noutput/\n")
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        settings = fake_config(fake, redirect_uri=redirect)
        del settings["refresh_token"]
        process, url = start_auth(work, settings, "--paste")
        returncode, stdout, stderr = paste(process, callback_of(url))
        assert returncode == 0, stderr
        assert_no_secret(fake, stdout, stderr)
        env = work / ".env"
        assert oct(env.stat().st_mode & 0o777) == "0o600"
        [line] = env.read_text().splitlines()
        name, _, store = line.partition("=")
        assert name == "TAP_EXACTONLINE_TOKEN_STORE"
        assert oct(Path(store).stat().st_mode & 0o777) == "0o600"
        assert_no_secret(fake, env.read_text())
        # Neither the token file nor its lock file can be committed by a `git add .`.
        assert git_ignores(work, store)
        assert git_ignores(work, store + ".lock")
        assert "warning" not in stderr

        # Right away (Exact would refuse a refresh for 570 s): the authorization's access token.
        run = run_tap(tmp_path / "1", settings | {"token_store": store}, streams={"gl_accounts"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert fake.refresh_count == 0


def test_the_tap_takes_the_auth_commands_token_file_without_being_told(tmp_path: Path):
    work = tmp_path / "project"
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        settings = fake_config(fake, redirect_uri="https://example.invalid/exact/callback")
        del settings["refresh_token"]
        process, url = start_auth(work, settings, "--paste")
        returncode, _, stderr = paste(process, callback_of(url))
        assert returncode == 0, stderr
        token_file = work / ".exactonline" / "tokens.json"

        # Outside Meltano nothing reads the .env naming the file: the tap, run in the same
        # folder, takes it itself and says so.
        first = run_tap(tmp_path / "1", settings, streams={"gl_accounts"}, cwd=work)
        assert first.returncode == 0, first.stderr[-3000:]
        [line] = [s for s in first.stderr.splitlines() if "`token_store` is not set" in s]
        assert f"using {token_file}, the token file tap-exactonline-auth wrote" in line
        assert "No `token_store` is set" not in first.stderr
        assert fake.refresh_count == 0  # the authorization's access token, from the file
        # Without any state, the next run continues the chain from the file, and keeps it there.
        fake.advance_clock(601)
        second = run_tap(tmp_path / "2", settings, streams={"gl_accounts"}, cwd=work)
        assert second.returncode == 0, second.stderr[-3000:]
        assert fake.refresh_count == 1
        newest = state_tokens(second.final_state)["refresh_token"]
        assert json.loads(token_file.read_text())["refresh_token"] == newest
        assert_no_secret(fake, first.stderr, second.stderr)

        # A `token_store` that is set wins over the file.
        elsewhere = settings | {"token_store": str(tmp_path / "elsewhere.json")}
        third = run_tap(tmp_path / "3", elsewhere, streams={"gl_accounts"}, cwd=work)
        assert "`token_store` is not set" not in third.stderr
        assert "No refresh token" in third.stderr  # that store is empty, and no setting
        assert json.loads(token_file.read_text())["refresh_token"] == newest


def test_clear_errors_for_reused_and_expired_codes_redirects_and_secrets(tmp_path: Path):
    redirect = "https://example.invalid/exact/callback"
    with FakeExact(divisions=(1001,)) as fake:
        settings = fake_config(fake, redirect_uri=redirect, token_store=str(tmp_path / "t.json"))

        process, url = start_auth(tmp_path / "a", settings, "--paste")
        callback = callback_of(url)
        assert paste(process, callback)[0] == 0
        # That callback again: it belongs to another authorization (its state differs)...
        process, _ = start_auth(tmp_path / "b", settings, "--paste")
        returncode, _, stderr = paste(process, callback)
        assert returncode == 1 and "not from this authorization" in stderr
        # ...and its code alone is refused by Exact: single use.
        process, _ = start_auth(tmp_path / "b2", settings, "--paste")
        returncode, _, stderr = paste(process, parse_qs(urlsplit(callback).query)["code"][0])
        assert returncode == 1 and "valid for 3 minutes and only once" in stderr

        # A code older than 3 minutes.
        process, url = start_auth(tmp_path / "c", settings, "--paste")
        callback = callback_of(url)
        fake.advance_clock(181)
        returncode, _, stderr = paste(process, callback)
        assert returncode == 1 and "valid for 3 minutes and only once" in stderr

        # A code issued for another redirect URI than the one we exchange it with.
        process, _ = start_auth(tmp_path / "d", settings, "--paste")
        other = fake.issue_authorization_code("https://other.invalid/cb")
        returncode, _, stderr = paste(process, f"https://other.invalid/cb?code={other}")
        assert returncode == 1 and "refused the redirect URI" in stderr

        # A wrong client secret.
        wrong = settings | {"client_secret": "not-the-secret"}
        process, url = start_auth(tmp_path / "e", wrong, "--paste")
        returncode, _, stderr = paste(process, callback_of(url))
        assert returncode == 1 and "the `client_secret` setting (or `client_id`)" in stderr
        assert "App Center" in stderr

        assert "Traceback" not in stderr
        assert_no_secret(fake, stderr)


def test_a_setting_that_cannot_keep_the_tokens_fails_before_the_login(tmp_path: Path):
    # Found only after the exchange, Exact would have spent the code and the tokens be lost.
    with FakeExact(divisions=(1001,)) as fake:
        settings = fake_config(
            fake, token_store=str(tmp_path / "t.json"), token_encryption_key="not-a-fernet-key"
        )
        (tmp_path / "config.json").write_text(json.dumps(settings))
        result = subprocess.run(
            [AUTH, "--config", str(tmp_path / "config.json"), "--paste"],
            input="",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert "http" not in result.stdout  # no authorize URL: nobody is sent to log in
        assert "`token_encryption_key` is not a Fernet key" in result.stderr
        assert "Traceback" not in result.stderr
        assert fake.token_calls == 0


def test_meltano_invoke_runs_the_auth_command(meltano_project: Path, tmp_path: Path):
    redirect = "https://example.invalid/exact/callback"
    store = tmp_path / "tokens.json"
    with FakeExact(divisions=(1001,)) as fake:
        set_plugin_config(
            meltano_project,
            "tap-exactonline",
            client_id="fake-client-id",
            client_secret="fake-client-secret",
            base_url=fake.base_url,
            redirect_uri=redirect,
            token_store=str(store),
        )
        code = fake.issue_authorization_code(redirect)  # as if pasted from the browser
        result = run_meltano(
            meltano_project, "invoke", "tap-exactonline:auth", "--paste", input=code + "\n"
        )
        assert result.returncode == 0, result.stderr[-3000:]
        # With an argument Meltano runs no discovery first: the URL comes at once.
        assert "catalog discovery" not in result.stderr
        assert "Saved the new tokens to the token store" in result.stdout
        assert json.loads(store.read_text())["refresh_token"] in fake.issued_secrets()
        assert_no_secret(fake, result.stdout, result.stderr)


def test_the_browser_shows_a_failed_exchange_as_failed(tmp_path: Path):
    """The page used to say "authorized" as soon as the code arrived, before the exchange."""
    redirect = f"http://127.0.0.1:{_free_port()}/callback"
    with FakeExact(divisions=(1001,)) as fake:
        settings = fake_config(
            fake,
            token_store=str(tmp_path / "tokens.json"),
            redirect_uri=redirect,
            client_secret="not-the-secret",
        )
        process, url = start_auth(tmp_path / "auth", settings, "--listen")
        page = browse(url)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 1
        assert page.status_code == 400
        assert "Not authorized" in page.text and "is authorized" not in page.text
        assert "App Center" in page.text  # the same reason as in the terminal
        assert "App Center" in stderr
        assert_no_secret(fake, page.text, stdout, stderr)
        assert "not-the-secret" not in page.text + stdout + stderr
        assert not (tmp_path / "tokens.json").exists()


def test_nothing_pasted_is_a_clear_line_without_a_call(tmp_path: Path):
    with FakeExact(divisions=(1001,)) as fake:
        settings = fake_config(fake, token_store=str(tmp_path / "t.json"))
        process, _ = start_auth(tmp_path / "auth", settings, "--paste")
        returncode, _, stderr = paste(process, "")
        assert returncode == 1
        assert "Nothing was pasted" in stderr
        assert fake.token_calls == 0


def test_a_token_store_git_would_commit_is_named_by_the_auth_command_and_the_tap(
    tmp_path: Path,
):
    work = tmp_path / "project"
    work.mkdir()
    subprocess.run(["git", "init", "--quiet", str(work)], check=True)
    store = work / "secrets" / "tokens.json"
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        settings = fake_config(fake, token_store=str(store))
        process, url = start_auth(work / "auth", settings, "--paste")
        returncode, _, stderr = paste(process, callback_of(url))
        assert returncode == 0, stderr
        assert f"token_store {store} is in the git work tree {work}" in stderr
        run = run_tap(tmp_path / "run", settings, streams={"gl_accounts"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"token_store {store} is in the git work tree {work}" in run.stderr
        # Ignored: no warning.
        (work / ".gitignore").write_text("secrets/\n")
        again = run_tap(tmp_path / "again", settings, streams={"gl_accounts"})
        assert again.returncode == 0
        assert "git work tree" not in again.stderr
