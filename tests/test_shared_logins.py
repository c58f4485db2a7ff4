"""Two Exact logins that authorized the same app share one token store (a PostgreSQL table, an
object store): each keeps its own chain, under the app and its login (current/Me's UserID), and
reads its own administrations; a store written by an earlier version, under the app alone, is
still read and moved under the login."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import s3fs

from fake_exact import FakeExact
from tests.conftest import Postgres
from tests.tap_runner import TapRun, fake_config, run_tap, state_tokens
from tests.test_authorize import paste, start_auth

LOGIN_B_TOKEN = "login-b-first-refresh-token"


@pytest.fixture(params=["postgresql", "s3"])
def shared_store(request: pytest.FixtureRequest) -> str:
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('s3_bucket')}/exact/tokens.json"
    db: Postgres = request.getfixturevalue("pg_database")
    return f"postgresql://{db.user}:{db.password}@{db.host}:{db.port}/{db.database}"


def synced(work: Path, config: dict[str, Any], state: dict[str, Any] | None = None) -> TapRun:
    run = run_tap(work, config, streams={"gl_accounts"}, state=state)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_two_logins_keep_their_own_chains_and_divisions_in_one_store(
    shared_store: str, tmp_path: Path
):
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        login_b = fake.add_login(refresh_token=LOGIN_B_TOKEN, divisions=(2002,))
        config_a = fake_config(fake, token_store=shared_store, divisions="all")
        config_b = config_a | {"refresh_token": LOGIN_B_TOKEN}

        a1 = synced(tmp_path / "a1", config_a)
        b1 = synced(tmp_path / "b1", config_b)
        fake.advance_clock(601)  # every access token expired: each chain is refreshed
        # The state's tokens only, without bookmarks: every run reads its divisions in full.
        tokens_only = {"exactonline_tokens": a1.final_state["exactonline_tokens"]}
        a2 = synced(tmp_path / "a2", config_a, state=tokens_only)
        # (Kept under the app alone, b1 had replaced a1's chain: a2 read login B's division.)
        assert set(a2.by_division("gl_accounts")) == {1001}
        b2 = synced(tmp_path / "b2", config_b)  # no state: its refresh token names its chain
        a3 = synced(tmp_path / "a3", config_a)  # nor here

        for run in (a1, a3):
            assert set(run.by_division("gl_accounts")) == {1001}
        for run in (b1, b2):
            assert set(run.by_division("gl_accounts")) == {2002}
        assert fake.refresh_count == 4  # a1, b1, a2, b2; a3 took a2's access token
        assert state_tokens(a3.final_state)["login"] == fake.user_id
        assert state_tokens(b2.final_state)["login"] == login_b
        assert "Using the refresh token from the token store" in a3.stderr

        # Neither a state nor a `refresh_token` tells which login a job is: no guess.
        unknown = dict(config_a)
        del unknown["refresh_token"]
        refused = run_tap(tmp_path / "who", unknown, streams={"gl_accounts"})
        assert refused.returncode == 1
        [line] = [line for line in refused.stderr.splitlines() if "2 Exact logins" in line]
        assert "token_store" in line and "Traceback" not in refused.stderr


class EarlierVersionStore:
    """A shared store as an earlier version kept it: the app's tokens in clear, in one row keyed
    by client_id (PostgreSQL), or in the object the URL names."""

    def __init__(self, request: pytest.FixtureRequest, url: str) -> None:
        self.url = url
        self.s3 = None
        if url.startswith("s3://"):
            self.s3 = s3fs.S3FileSystem(
                endpoint_url=request.getfixturevalue("s3_emulator"), skip_instance_cache=True
            )
        else:
            self.db: Postgres = request.getfixturevalue("pg_database")

    def keep(self, tokens: dict[str, Any]) -> None:
        if self.s3 is not None:
            self.s3.pipe_file(self.url.removeprefix("s3://"), json.dumps(tokens).encode())
            return
        with self.db.connect() as connection:
            connection.execute(
                "CREATE TABLE tap_exactonline_tokens (key text PRIMARY KEY, tokens jsonb NOT "
                "NULL, updated_at timestamptz NOT NULL DEFAULT now())"
            )
            connection.execute(
                "INSERT INTO tap_exactonline_tokens (key, tokens) VALUES (%s, %s::jsonb)",
                ("fake-client-id", json.dumps(tokens)),
            )

    def copies(self) -> list[str]:
        """Where tokens are kept now: row keys, or object names."""
        if self.s3 is not None:
            folder = self.url.removeprefix("s3://").rsplit("/", 1)[0]
            self.s3.invalidate_cache()
            return sorted(name.rsplit("/", 1)[1] for name in self.s3.ls(folder, detail=False))
        with self.db.connect() as connection:
            rows = connection.execute("SELECT key FROM tap_exactonline_tokens").fetchall()
        return [row[0] for row in rows]


def test_tokens_kept_under_the_app_alone_are_read_and_moved_under_the_login(
    shared_store: str, request: pytest.FixtureRequest, tmp_path: Path
):
    earlier = EarlierVersionStore(request, shared_store)
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        first = synced(tmp_path / "1", fake_config(fake))  # the chain, in the state only
        tokens = state_tokens(first.final_state)
        tokens.pop("login", None)
        earlier.keep(tokens)
        fake.advance_clock(601)
        # No state: the configured (spent) refresh token is the first link of the kept chain.
        second = synced(tmp_path / "2", fake_config(fake, token_store=shared_store))
        assert "Using the refresh token from the token store" in second.stderr
        assert fake.refresh_count == 2
        if earlier.s3 is not None:
            assert earlier.copies() == [f"tokens.fake-client-id.{fake.user_id}.json"]
        else:
            assert earlier.copies() == [f"fake-client-id/{fake.user_id}"]


def test_the_auth_command_keeps_a_logins_tokens_under_its_login(
    pg_database: Postgres, tmp_path: Path
):
    db = pg_database
    store = f"postgresql://{db.user}:{db.password}@{db.host}:{db.port}/{db.database}"
    redirect = "https://example.invalid/exact/callback"
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        login_b = fake.add_login(refresh_token=LOGIN_B_TOKEN, divisions=(2002,))
        settings = fake_config(fake, token_store=store, divisions="all", redirect_uri=redirect)
        del settings["refresh_token"]
        process, _ = start_auth(tmp_path / "auth", settings, "--paste")
        # Login B logs in at Exact: the code the browser brings back is for B.
        returncode, _, stderr = paste(process, fake.issue_authorization_code(redirect, login_b))
        assert returncode == 0, stderr
        with db.connect() as connection:
            keys = [row[0] for row in connection.execute("SELECT key FROM tap_exactonline_tokens")]
        assert keys == [f"fake-client-id/{login_b}"]
        run = synced(tmp_path / "run", settings)  # the store's only login: B's
        assert set(run.by_division("gl_accounts")) == {2002}
        assert fake.refresh_count == 0  # the authorization's access token
