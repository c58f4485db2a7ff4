"""`token_encryption_key`: tokens are encrypted in the token store and in the state."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.fernet import Fernet

from fake_exact import FakeExact
from tap_exactonline.tokens import fingerprint
from tests.tap_runner import fake_config, run_tap, state_tokens, stored_tokens

KEY = Fernet.generate_key().decode()


def config(fake: FakeExact, store: Path, **extra: object) -> dict:
    return fake_config(fake, token_store=str(store), token_encryption_key=KEY) | extra


def test_tokens_are_encrypted_at_rest_and_read_back(tmp_path: Path):
    store = tmp_path / "tokens.json"
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        first = run_tap(tmp_path / "1", config(fake, store), streams={"gl_accounts"})
        assert first.returncode == 0, first.stderr[-3000:]
        # Neither the store nor the state holds a token in clear.
        at_rest = [store.read_text(), json.dumps(first.states)]
        assert set(json.loads(at_rest[0])) == {"encrypted"}
        assert set(first.final_state["exactonline_tokens"]) == {"encrypted"}
        for secret in fake.issued_secrets():
            assert all(secret not in text for text in at_rest)
        # The next run decrypts them: from the state, and from the store alone.
        fake.advance_clock(601)
        second = run_tap(
            tmp_path / "2", config(fake, store), streams={"gl_accounts"}, state=first.final_state
        )
        assert second.returncode == 0, second.stderr[-3000:]
        fake.advance_clock(601)
        third = run_tap(tmp_path / "3", config(fake, store), streams={"gl_accounts"})
        assert third.returncode == 0, third.stderr[-3000:]
        assert fake.refresh_count == 3

        # A wrong key, or none, ends the run with one line naming the setting.
        wrong = config(fake, store, token_encryption_key=Fernet.generate_key().decode())
        refused = run_tap(tmp_path / "4", wrong, streams={"gl_accounts"})
        assert refused.returncode == 1
        assert "`token_encryption_key` does not decrypt the tokens in token_store" in refused.stderr
        missing = config(fake, store, token_encryption_key=None)
        refused = run_tap(tmp_path / "5", missing, streams={"gl_accounts"})
        assert refused.returncode == 1
        assert "were written with `token_encryption_key` set (set it again)" in refused.stderr
        for run in (first, second, third, refused):
            assert "Traceback" not in run.stderr
        assert fake.refresh_count == 3  # neither touched the chain


def test_a_key_that_is_not_a_fernet_key_is_refused_before_any_request(tmp_path: Path):
    with FakeExact(divisions=(1001,), default_rows=5) as fake:
        bad = config(fake, tmp_path / "tokens.json", token_encryption_key="hunter2")
        run = run_tap(tmp_path / "1", bad, with_catalog=False)  # discovery refuses it too
        assert run.returncode != 0
        assert "token_encryption_key" in run.stderr
        assert fake.data_calls() == 0 and fake.token_calls == 0


def test_without_a_key_the_state_still_holds_no_usable_token(tmp_path: Path):
    """`meltano state get` shows the state: without `token_encryption_key` it used to print the
    refresh and access tokens in clear text. They are encrypted with a key derived from the
    client secret; a state from an earlier version, with tokens in clear, is still read."""
    settings = fake_config  # no token_store, no key: the state is the only copy
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        first = run_tap(tmp_path / "1", settings(fake), streams={"gl_accounts"})
        assert first.returncode == 0, first.stderr[-3000:]
        state_text = json.dumps(first.states)
        assert set(first.final_state["exactonline_tokens"]) == {"encrypted"}
        assert fake.issued_secrets()
        assert all(secret not in state_text for secret in fake.issued_secrets())

        # The next run continues the chain from that state (its access token is still valid).
        second = run_tap(
            tmp_path / "2", settings(fake), streams={"gl_accounts"}, state=first.final_state
        )
        assert second.returncode == 0, second.stderr[-3000:]
        assert fake.refresh_count == 1

        # An earlier version's state, tokens in clear: read, and written back encrypted.
        old_state = dict(second.final_state)
        old_state["exactonline_tokens"] = state_tokens(second.final_state)
        fake.advance_clock(601)
        third = run_tap(tmp_path / "3", settings(fake), streams={"gl_accounts"}, state=old_state)
        assert third.returncode == 0, third.stderr[-3000:]
        assert fake.refresh_count == 2  # it refreshed the old state's token: the chain holds
        assert set(third.final_state["exactonline_tokens"]) == {"encrypted"}


def test_without_a_key_the_token_store_holds_no_usable_token_either(tmp_path: Path):
    """A reader of the store alone (a backup, a shared volume, the PostgreSQL table) sees no
    token: the store is encrypted like the state. A store from an earlier version, tokens in
    clear, is still read, and written back encrypted by the first run that reads it."""
    store = tmp_path / "tokens.json"
    settings = fake_config  # no key
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        first = run_tap(
            tmp_path / "1", settings(fake, token_store=str(store)), streams={"gl_accounts"}
        )
        assert first.returncode == 0, first.stderr[-3000:]
        assert set(json.loads(store.read_text())) == {"encrypted"}
        assert all(secret not in store.read_text() for secret in fake.issued_secrets())

        # An earlier version's store, in clear: read, and rewritten encrypted at once (no
        # refresh is due: the access token is still valid).
        clear = stored_tokens(store.read_text())
        store.write_text(json.dumps(clear))
        second = run_tap(
            tmp_path / "2", settings(fake, token_store=str(store)), streams={"gl_accounts"}
        )
        assert second.returncode == 0, second.stderr[-3000:]
        assert "Using the refresh token from the token store" in second.stderr
        assert fake.refresh_count == 1
        assert set(json.loads(store.read_text())) == {"encrypted"}
        assert stored_tokens(store.read_text()) == clear


def test_a_key_is_rotated_without_a_new_login(tmp_path: Path):
    """`token_encryption_key: new,old`: the first key encrypts, every one decrypts. A run with
    both reads the store and the state written with the old key and rewrites them with the new
    one; after it, the old key can go."""
    store = tmp_path / "tokens.json"
    old, new = KEY, Fernet.generate_key().decode()
    with FakeExact(divisions=(1001,), default_rows=5, minutely_limit=10**6) as fake:
        first = run_tap(tmp_path / "1", config(fake, store), streams={"gl_accounts"})
        assert first.returncode == 0, first.stderr[-3000:]

        both = config(fake, store, token_encryption_key=f"{new},{old}")
        second = run_tap(tmp_path / "2", both, streams={"gl_accounts"}, state=first.final_state)
        assert second.returncode == 0, second.stderr[-3000:]
        assert fake.refresh_count == 1  # no refresh was due: the store was rewritten anyway
        chain = stored_tokens(store.read_text(), key=new)  # the new key alone reads both
        assert state_tokens(second.final_state, key=new) == chain
        assert old not in second.stderr and new not in second.stderr

        fake.advance_clock(601)
        only_new = config(fake, store, token_encryption_key=new)
        third = run_tap(tmp_path / "3", only_new, streams={"gl_accounts"}, state=second.final_state)
        assert third.returncode == 0, third.stderr[-3000:]
        assert fake.refresh_count == 2
        assert state_tokens(third.final_state, key=new)["lineage"][0] == fingerprint(
            chain["refresh_token"]
        )
