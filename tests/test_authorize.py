"""`tap-exactonline-auth` end to end against the fake server's authorize and token endpoints."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from fake_exact import FakeExact
from tap_exactonline.callback import AuthorizationFailed, code_from_callback
from tests.conftest import _free_port, run_meltano, set_plugin_config
from tests.tap_runner import AUTH, fake_config, run_auth, run_tap, state_tokens, stored_tokens


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
        # Encrypted like the state, with a key derived from the client secret.
        assert set(json.loads(store.read_text())) == {"encrypted"}
        assert stored_tokens(store.read_text())["refresh_token"] in fake.issued_secrets()

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


def authorize_in(work: Path, fake: FakeExact) -> dict[str, Any]:
    """Run the auth command (paste mode, no store) in `work`; the settings, without any
    refresh token, that the tap then runs with."""
    settings = fake_config(fake, redirect_uri="https://example.invalid/exact/callback")
    del settings["refresh_token"]
    process, url = start_auth(work, settings, "--paste")
    returncode, _, stderr = paste(process, callback_of(url))
    assert returncode == 0, stderr
    return settings


def test_the_tap_takes_the_auth_commands_token_file_without_being_told(tmp_path: Path):
    work = tmp_path / "project"
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        settings = authorize_in(work, fake)
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
        assert stored_tokens(token_file.read_text())["refresh_token"] == newest
        assert_no_secret(fake, first.stderr, second.stderr)

        # A `token_store` that is set wins over the file.
        elsewhere = settings | {"token_store": str(tmp_path / "elsewhere.json")}
        third = run_tap(tmp_path / "3", elsewhere, streams={"gl_accounts"}, cwd=work)
        assert "`token_store` is not set" not in third.stderr
        assert "No refresh token" in third.stderr  # that store is empty, and no setting
        assert stored_tokens(token_file.read_text())["refresh_token"] == newest


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
        process, url = start_auth(tmp_path / "d", settings, "--paste")
        other = fake.issue_authorization_code("https://other.invalid/cb")
        state = parse_qs(urlsplit(url).query)["state"][0]
        returncode, _, stderr = paste(
            process, f"https://other.invalid/cb?code={other}&state={state}"
        )
        assert returncode == 1 and "refused the redirect URI" in stderr

        # A URL with a code but without the state Exact sends back: not made by this login.
        process, _ = start_auth(tmp_path / "d2", settings, "--paste")
        calls_before_d2 = fake.token_calls
        code = fake.issue_authorization_code(redirect)
        returncode, _, stderr = paste(process, f"{redirect}?code={code}")
        assert returncode == 1 and "not from this authorization (a URL without a state)" in stderr
        assert fake.token_calls == calls_before_d2

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
        result = run_auth(tmp_path, settings, "--paste")
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
        assert stored_tokens(store.read_text())["refresh_token"] in fake.issued_secrets()
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


def test_an_old_token_file_in_the_folder_does_not_win_over_the_states_chain(tmp_path: Path):
    work = tmp_path / "project"
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        settings = authorize_in(work, fake)
        first = run_tap(tmp_path / "1", settings, streams={"gl_accounts"}, cwd=work)
        assert first.returncode == 0, first.stderr[-3000:]

        # The folder's file is later replaced by a copy of another, long-spent chain (a backup
        # restored, a checkout of an old project folder). The state, never named in the
        # settings' `token_store`, carries the live chain: it must win.
        token_file = work / ".exactonline" / "tokens.json"
        old = stored_tokens(token_file.read_text()) | {
            "refresh_token": "a-refresh-token-spent-long-ago",
            "access_token": None,
            "expires_at": 0,
            "origin": "0123456789abcdef",
            "replaces": "",
            "lineage": [],
        }
        token_file.write_text(json.dumps(old))
        second = run_tap(
            tmp_path / "2", settings, streams={"gl_accounts"}, state=first.final_state, cwd=work
        )
        assert second.returncode == 0, second.stderr[-3000:]
        assert "Using the refresh token from the incoming state" in second.stderr
        assert fake.refresh_count == 0  # the state's access token is still valid


# --------------------------------------------------------------------- the callback listener


def wait_until_listening(port: int, seconds: float = 30) -> None:
    """Until the command accepts connections on 127.0.0.1 (it binds [::1] first, if at all)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        else:
            return


def unspent(fake: FakeExact, code: str, redirect: str) -> bool:
    """Is this authorization code still unused? (Exchanging it tells.)"""
    answer = requests.post(
        f"{fake.base_url}/api/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": "fake-client-id",
            "client_secret": "fake-client-secret",
        },
        timeout=10,
    )
    return answer.status_code == 200


@pytest.mark.parametrize(
    "forged_query",
    [
        "code={planted}",  # no state: used to be taken
        "code={planted}&state=another-login",
        "error=access_denied&state=another-login",  # used to end the flow
    ],
)
def test_a_callback_not_from_this_login_is_ignored_and_the_real_one_taken(
    tmp_path: Path, forged_query: str
):
    """Any local process, or a web page sending the browser to localhost, can call the
    listener: only the callback with this authorization's state counts."""
    redirect = f"http://127.0.0.1:{_free_port()}/callback"
    with FakeExact(divisions=(1001,)) as fake:
        settings = fake_config(fake, token_store=str(tmp_path / "t.json"), redirect_uri=redirect)
        process, url = start_auth(tmp_path / "auth", settings, "--listen")
        # The attacker's own login to the same app gives a valid code to plant.
        planted = fake.issue_authorization_code(redirect)
        forged = browse(f"{redirect}?{forged_query.format(planted=quote(planted))}")
        assert forged.status_code == 400 and "ignored" in forged.text
        page = browse(url)
        assert page.status_code == 200 and "Exact Online is authorized" in page.text
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        [ignored] = stderr.splitlines()
        assert "ignored a request to /callback" in ignored and "not from this login" in ignored
        assert fake.token_calls == 1  # the real code's exchange only
        assert unspent(fake, planted, redirect)
        assert_no_secret(fake, stdout, stderr)


@contextmanager
def listening_with_an_idle_connection(
    tmp_path: Path, fake: FakeExact, timeout: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The command listening (--timeout `timeout`), and a connection to it that sends nothing;
    the command and its authorize URL."""
    port = _free_port()
    redirect = f"http://127.0.0.1:{port}/callback"
    settings = fake_config(fake, token_store=str(tmp_path / "t.json"), redirect_uri=redirect)
    process, url = start_auth(tmp_path / "auth", settings, "--listen", "--timeout", timeout)
    wait_until_listening(port)
    with socket.create_connection(("127.0.0.1", port)):
        yield process, url


def test_an_idle_connection_does_not_hold_the_listener(tmp_path: Path):
    with FakeExact(divisions=(1001,)) as fake:
        with listening_with_an_idle_connection(tmp_path, fake, "60") as (process, url):
            try:
                page: requests.Response | None = requests.get(url, timeout=15)
            except requests.Timeout:
                page = None
            assert page is not None, "the idle connection held the listener"
            assert page.status_code == 200
            _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr


def test_the_listeners_deadline_holds_with_an_idle_connection_open(tmp_path: Path):
    with FakeExact(divisions=(1001,)) as fake:
        with listening_with_an_idle_connection(tmp_path, fake, "2") as (process, _):
            try:
                _, stderr = process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                stderr = "still listening after 15 s"
        assert stderr.splitlines() == ["tap-exactonline-auth: No callback within 2 s."]
        assert process.returncode == 1


def test_exacts_refusal_reaches_the_terminal_without_control_characters(tmp_path: Path):
    redirect = f"http://127.0.0.1:{_free_port()}/callback"
    with FakeExact(divisions=(1001,)) as fake:
        settings = fake_config(fake, token_store=str(tmp_path / "t.json"), redirect_uri=redirect)
        process, url = start_auth(tmp_path / "auth", settings, "--listen")
        state = parse_qs(urlsplit(url).query)["state"][0]
        error = quote("access_denied\x1b[2J\x1b]0;pwned\x07")
        description = quote("The user\r\n\x1b[31mdenied\x1b[0m \u202eit\x9b")
        page = browse(f"{redirect}?error={error}&error_description={description}&state={state}")
        assert page.status_code == 400
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 1
        assert stderr.splitlines() == [
            "tap-exactonline-auth: Exact did not authorize the app: access_denied[2J]0;pwned"
            " (The user[31mdenied[0m it)."
        ]
        assert fake.token_calls == 0


def test_the_token_endpoints_refusal_reaches_the_terminal_without_control_characters(
    tmp_path: Path,
):
    with FakeExact(divisions=(1001,), default_rows=5) as fake:
        settings = fake_config(fake, token_store=str(tmp_path / "t.json"))
        process, url = start_auth(tmp_path / "auth", settings, "--paste")
        fake.replay_next("/api/oauth2/token", '{"error": "server_error\\u001b[2J\\u009b"}', 400)
        code, _, stderr = paste(process, callback_of(url))
        assert code == 1
        assert stderr.splitlines() == [
            "tap-exactonline-auth: Exact's token endpoint answered server_error[2J."
        ]


def ipv6_loopback() -> bool:
    with socket.socket(socket.AF_INET6) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            return False
    return True


needs_ipv6_loopback = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")


@needs_ipv6_loopback
def test_a_localhost_redirect_is_listened_on_both_loopback_addresses(tmp_path: Path):
    """Browsers resolve `localhost` to ::1 first on many systems: another local user must not
    be able to listen there and receive the code."""
    port = _free_port()
    redirect = f"http://localhost:{port}/callback"
    with FakeExact(divisions=(1001,)) as fake:
        settings = fake_config(fake, token_store=str(tmp_path / "t.json"), redirect_uri=redirect)
        process, url = start_auth(tmp_path / "auth", settings, "--listen")
        wait_until_listening(port)
        with socket.socket(socket.AF_INET6) as other, pytest.raises(OSError) as refused:
            other.bind(("::1", port))
        assert refused.value.errno == errno.EADDRINUSE
        page = browse(url)
        assert page.status_code == 200
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr


@needs_ipv6_loopback
def test_a_localhost_redirect_whose_ipv6_port_is_taken_is_refused_at_once(tmp_path: Path):
    port = _free_port()
    redirect = f"http://localhost:{port}/callback"
    with FakeExact(divisions=(1001,)) as fake, socket.socket(socket.AF_INET6) as other:
        other.bind(("::1", port))
        other.listen()
        settings = fake_config(fake, token_store=str(tmp_path / "t.json"), redirect_uri=redirect)
        done = run_auth(tmp_path, settings, "--listen", "--timeout", "5")
        assert done.returncode == 1
        [line] = done.stderr.splitlines()
        assert f"Cannot listen on [::1]:{port}" in line and "use --paste" in line
        assert "http" not in done.stdout  # no login URL that could not finish


def test_the_auth_command_does_not_show_a_password_in_the_token_store_url(tmp_path: Path):
    store = "memory://user:secretpw@bucket/tokens.json"  # an fsspec URL with credentials
    with FakeExact(divisions=(1001,)) as fake:
        settings = fake_config(
            fake, token_store=store, redirect_uri="https://example.invalid/exact/callback"
        )
        process, url = start_auth(tmp_path / "auth", settings, "--paste")
        returncode, stdout, stderr = paste(process, callback_of(url))
        assert returncode == 0, stderr
        assert "secretpw" not in stdout + stderr
        assert "memory://user:***@bucket/tokens.json" in stdout


def test_the_login_url_is_shown_only_once_the_redirect_uri_answers(tmp_path: Path):
    """A browser may follow the URL the instant it appears (the README's test does): the
    command must listen before it shows it. Its stdout is a pipe kept full, so the command
    stops at its first line until the test reads: the port must already answer then."""
    port = _free_port()
    redirect = f"http://127.0.0.1:{port}/callback"
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"#" * 512)  # fill the pipe
    os.set_blocking(write_end, True)
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        config = tmp_path / "config.json"
        settings = fake_config(fake, token_store=str(tmp_path / "t.json"), redirect_uri=redirect)
        config.write_text(json.dumps(settings))
        process = subprocess.Popen(
            [AUTH, "--config", str(config), "--listen"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        os.close(write_end)
        try:
            with os.fdopen(read_end) as output:
                try:
                    wait_until_listening(port, seconds=20)  # its first line waits for the pipe
                    answered = True
                except AssertionError:
                    answered = False
                url = next(ln.lstrip("#") for ln in output if ln.lstrip("#").startswith("http"))
                assert answered, "the login URL came before the redirect URI answered"
                assert browse(url.strip()).status_code == 200
                _, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr
        finally:
            if process.poll() is None:
                process.kill()


def test_a_store_on_a_server_that_does_not_answer_is_one_line_from_the_auth_command(
    tmp_path: Path,
):
    port = _free_port()
    with FakeExact(divisions=(1001,), default_rows=5) as fake:
        settings = fake_config(fake, token_store=f"ftp://exact:pw@127.0.0.1:{port}/tokens.json")
        done = run_auth(tmp_path, settings, "--paste")
        assert done.returncode == 1
        [line] = done.stderr.splitlines()
        assert "token_store" in line and "cannot be opened" in line, line
        assert ":pw@" not in done.stdout + done.stderr
        assert "http" not in done.stdout  # refused before the login, not after it
        assert fake.token_calls == 0


STATE = "the-state-this-login-sent"
CALLBACK = "https://example.invalid/exact/callback"


@pytest.mark.parametrize(
    ("pasted", "outcome"),
    [
        (f"{CALLBACK}?code=abc&state={STATE}", "abc"),
        ("abc", "abc"),  # a bare code the user copied
        (f"{CALLBACK}?code=abc", "a URL without a state"),
        (f"{CALLBACK}?code=abc&state=", "a URL without a state"),
        (f"{CALLBACK}?code=abc#state={STATE}", "a URL without a state"),  # not in the query
        (f"{CALLBACK}?code=abc&state=other", "a URL with another state"),
        (f"{CALLBACK}?code=abc&state={STATE}&state={STATE}", "a URL with more than one state"),
        (f"{CALLBACK}?error=access_denied", "Exact did not authorize the app: access_denied."),
    ],
)
def test_a_pasted_callback_gives_its_code_only_with_this_logins_state(pasted: str, outcome: str):
    if outcome == "abc":
        assert code_from_callback(pasted, STATE) == "abc"
        return
    with pytest.raises(AuthorizationFailed) as refused:
        code_from_callback(pasted, STATE)
    assert outcome in str(refused.value)
