"""A refreshed token is never lost when it could have been kept (issue 11 §1).

Each test breaks the guarantee the way operations do: a full disk, no free inodes, a read-only
mount, a token file bind-mounted on its own, a disk that fills while Exact answers, SIGTERM in
the middle of the refresh POST, a token endpoint that trickles, a machine whose clock is fast, a
damaged store, two token replacements while eight jobs run. The real CLI runs against the fake
Exact server, which spends a refresh token for good the moment it answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from fake_exact import FakeExact
from tap_exactonline.token_stores.file_safety import trust
from tap_exactonline.tokens import TokenStoreError
from tests.conftest import _free_port, token_answers_held
from tests.hostile import (
    as_nobody,
    bind_file,
    fast_clock_env,
    fill_blocks,
    fill_inodes,
    killed_at_rename_env,
    remount,
    tmpfs,
    umask,
    vanished_folder,
)
from tests.tap_runner import (
    TAP,
    TapRun,
    discover,
    fake_config,
    parse_messages,
    run_auth,
    run_tap,
    select,
    state_tokens,
    stored_tokens,
)

ROWS = {"gl_accounts": 5, "transaction_lines": 2500}
STREAMS = {"gl_accounts"}


@pytest.fixture
def fake():
    with FakeExact(rows=ROWS, minutely_limit=10**6, daily_limit=10**6) as server:
        yield server


def config_for(fake: FakeExact, store: Path | str, **extra: Any) -> dict[str, Any]:
    return fake_config(fake, token_store=str(store), retry_base_seconds=0.01, **extra)


def stored_refresh_token(store: Path) -> str:
    return stored_tokens(store.read_text())["refresh_token"]


def chain_in_a_store(fake: FakeExact, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A first run that starts the chain in a token store, spending the configured token;
    returns the store and the settings."""
    store = tmp_path / "store" / "tokens.json"
    config = config_for(fake, store)
    first = run_tap(tmp_path / "1", config, streams=STREAMS)
    assert first.returncode == 0, first.stderr[-3000:]
    return store, config


def assert_one_clear_line(run: TapRun, *words: str) -> str:
    """The run failed with a line holding every word, and no traceback."""
    assert run.returncode != 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if all(w in line for w in words)]
    assert lines, f"no line with {words}:\n{run.stderr[-3000:]}"
    return lines[0]


def assert_no_secret_leaked(fake: FakeExact, *outputs: str) -> None:
    for secret in fake.issued_secrets():
        for output in outputs:
            assert secret not in output


# --- a store that cannot take the write is found before the refresh token is spent ----------


def _fill_blocks(mount: Path) -> None:
    fill_blocks(mount)


def _fill_inodes(mount: Path) -> None:
    fill_inodes(mount)


def _read_only(mount: Path) -> None:
    remount(mount, read_only=True)


def _free(mount: Path) -> None:
    remount(mount, read_only=False)
    (mount / "filler.bin").unlink(missing_ok=True)
    shutil.rmtree(mount / "inodes", ignore_errors=True)


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (_fill_blocks, "No space left on device"),
        (_fill_inodes, "No space left on device"),
        (_read_only, "Read-only file system"),
    ],
    ids=["disk-full", "no-inodes", "read-only"],
)
def test_a_store_that_cannot_take_the_write_is_found_before_the_refresh(
    fake: FakeExact, tmp_path: Path, breakage, reason: str
):
    with tmpfs(tmp_path / "mount", size="256k", inodes=64) as mount:
        store = mount / "tokens.json"
        config = config_for(fake, store)
        first = run_tap(tmp_path / "1", config, streams=STREAMS)
        assert first.returncode == 0, first.stderr[-3000:]
        kept = stored_refresh_token(store)

        breakage(mount)
        fake.advance_clock(601)  # the next run must refresh
        broken = run_tap(tmp_path / "2", config, streams=STREAMS)
        line = assert_one_clear_line(broken, "token_store", reason)
        assert str(store) in line
        assert fake.refresh_count == 1, "the refresh token was spent on a store that cannot keep"
        assert stored_refresh_token(store) == kept

        _free(mount)  # the operator frees the disk: the chain is still alive
        healed = run_tap(tmp_path / "3", config, streams=STREAMS)
        assert healed.returncode == 0, healed.stderr[-3000:]
        assert fake.refresh_count == 2
        assert_no_secret_leaked(fake, broken.stderr, healed.stderr)


def test_a_token_file_mounted_on_its_own_is_written_in_place(fake: FakeExact, tmp_path: Path):
    host = tmp_path / "host" / "tokens.json"
    host.parent.mkdir()
    host.write_text("")  # `touch tokens.json` before `docker run -v tokens.json:/app/...`
    host.chmod(0o644)  # as `touch` makes it under umask 022
    app = tmp_path / "app"
    app.mkdir()
    with bind_file(host, app / "tokens.json") as store:
        config = config_for(fake, store)
        first = run_tap(tmp_path / "1", config, streams=STREAMS)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "writing it in place" in first.stderr
        # `touch` made it 0644: the tap makes it private (the mount shares the host's file).
        assert "open to other users (mode 644)" in first.stderr
        assert stat.S_IMODE(host.stat().st_mode) == 0o600
        # The host's file (the one that outlives the container) holds the new link.
        assert stored_refresh_token(host) == state_tokens(first.final_state)["refresh_token"]
        # A new container without any state continues the chain from the mounted file.
        fake.advance_clock(601)
        second = run_tap(tmp_path / "2", config, streams=STREAMS)
        assert second.returncode == 0, second.stderr[-3000:]
        assert fake.refresh_count == 2
        assert stored_refresh_token(host) == state_tokens(second.final_state)["refresh_token"]


def test_a_disk_that_fills_during_the_refresh_keeps_the_new_token_in_the_state(
    fake: FakeExact, tmp_path: Path
):
    with tmpfs(tmp_path / "mount", size="256k") as mount:
        store = mount / "tokens.json"
        config = config_for(fake, store)
        # Another process fills the disk while Exact is answering the refresh.
        fake.on_token_answer(lambda response: fill_blocks(mount))
        run = run_tap(tmp_path / "1", config, streams=STREAMS)
        fake.on_token_answer(None)
        line = assert_one_clear_line(run, "CRITICAL", "token_store", "No space left on device")
        assert "STATE" in line and "run again" in line
        assert fake.refresh_count == 1
        # The only copy of the new refresh token is the STATE the run emitted.
        assert run.states, run.stderr[-3000:]
        assert "exactonline_tokens" in run.final_state
        assert_no_secret_leaked(fake, run.stderr)

        (mount / "filler.bin").unlink()
        fake.advance_clock(601)
        healed = run_tap(tmp_path / "2", config, streams=STREAMS, state=run.final_state)
        assert healed.returncode == 0, healed.stderr[-3000:]
        assert fake.refresh_count == 2
        assert stored_refresh_token(store) == state_tokens(healed.final_state)["refresh_token"]


def test_sigterm_during_the_refresh_post_waits_for_the_save(fake: FakeExact, tmp_path: Path):
    store = tmp_path / "store" / "tokens.json"
    config = config_for(fake, store)
    work = tmp_path / "1"
    work.mkdir()
    (work / "config.json").write_text(json.dumps(config))
    (work / "catalog.json").write_text(json.dumps(select(discover(work / "config.json"), STREAMS)))
    with token_answers_held(fake) as (arrived, release):
        tap = subprocess.Popen(
            [TAP, "--config", str(work / "config.json"), "--catalog", str(work / "catalog.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert arrived.wait(timeout=60), "the tap never asked for a token"
            tap.send_signal(signal.SIGTERM)  # the orchestrator stops the job mid-POST
            time.sleep(0.5)
            release.set()  # Exact's answer (the old refresh token is spent by now) arrives
            stdout, stderr = tap.communicate(timeout=60)
        finally:
            tap.kill()
    assert tap.returncode not in (0, None), stderr[-3000:]
    assert "SIGTERM" in stderr
    assert "Traceback" not in stderr
    assert fake.refresh_count == 1
    states = [m["value"] for m in parse_messages(stdout) if m["type"] == "STATE"]
    newest = stored_refresh_token(store)
    assert state_tokens(states[-1])["refresh_token"] == newest
    # The next run continues the chain, from the store alone.
    fake.advance_clock(601)
    second = run_tap(tmp_path / "2", config, streams=STREAMS)
    assert second.returncode == 0, second.stderr[-3000:]
    assert fake.refresh_count == 2


def test_a_trickling_token_endpoint_does_not_outlive_request_timeout(
    fake: FakeExact, tmp_path: Path
):
    fake.trickle_next("/api/oauth2/token", seconds_per_byte=0.25)
    started = time.monotonic()
    run = run_tap(
        tmp_path, config_for(fake, tmp_path / "tokens.json", request_timeout=3), streams=STREAMS
    )
    elapsed = time.monotonic() - started
    assert_one_clear_line(run, "token endpoint", "no complete answer within 3 s")
    # Without the deadline the ~400-byte answer takes 100 s; the margin is for a loaded machine.
    assert elapsed < 60, f"the run took {elapsed:.0f} s"


# --- runs without a token_store ---------------------------------------------------------------


def test_a_run_without_a_store_warns_what_is_at_risk_and_the_setting(
    fake: FakeExact, tmp_path: Path
):
    config = fake_config(fake, retry_base_seconds=0.01)
    run = run_tap(tmp_path / "1", config, streams=STREAMS)
    assert run.returncode == 0, run.stderr[-3000:]
    [warning] = [line for line in run.stderr.splitlines() if "No `token_store` is set" in line]
    assert "WARNING" in warning and "authorized again" in warning
    assert "Set `token_store`" in warning
    with_store = config_for(fake, tmp_path / "tokens.json")
    second = run_tap(tmp_path / "2", with_store, streams=STREAMS, state=run.final_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "No `token_store` is set" not in second.stderr


# --- which token is newest: the chain, not the clocks ----------------------------------------


def test_a_job_on_a_fast_machine_takes_the_stores_newer_token(fake: FakeExact, tmp_path: Path):
    store = tmp_path / "store" / "tokens.json"
    config = config_for(fake, store)
    fast = fast_clock_env(tmp_path / "fast-clock", seconds_ahead=15 * 60)
    # A job on a machine 15 minutes fast starts the chain and keeps its state.
    first = run_tap(tmp_path / "1", config, streams=STREAMS, env=fast)
    assert first.returncode == 0, first.stderr[-3000:]
    # Ten minutes later a job on a good clock refreshes: the store holds the newer link.
    fake.advance_clock(601)
    second = run_tap(tmp_path / "2", config, streams=STREAMS)
    assert second.returncode == 0, second.stderr[-3000:]
    assert fake.refresh_count == 2
    # The fast machine runs again with its own state, whose token looks newer by its clock.
    third = run_tap(tmp_path / "3", config, streams=STREAMS, state=first.final_state, env=fast)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "Authorize" not in third.stderr
    assert "Using the refresh token from the token store" in third.stderr


@pytest.mark.parametrize(
    "damage",
    [
        [],
        {},
        7,
        {"refresh_token": 12345},
    ],
    ids=["list", "empty-object", "number", "number-as-token"],
)
def test_a_store_of_the_wrong_shape_is_refused_not_taken_for_empty(
    fake: FakeExact, tmp_path: Path, damage: object
):
    store, config = chain_in_a_store(fake, tmp_path)
    store.write_text(json.dumps(damage))  # a bad restore, a hand edit, another tool
    calls = fake.token_calls
    run = run_tap(tmp_path / "2", config, streams=STREAMS)
    assert_one_clear_line(run, "token_store", str(store), "does not hold valid tokens")
    assert fake.token_calls == calls, "the spent configured refresh token was replayed"
    assert "Authorize the app again" not in run.stderr


@pytest.mark.parametrize("junk", ["soon", float("nan")], ids=["text", "NaN"])
def test_a_store_whose_expires_at_is_junk_goes_on_with_its_refresh_token(
    fake: FakeExact, tmp_path: Path, junk: object
):
    store, config = chain_in_a_store(fake, tmp_path)
    damaged = stored_tokens(store.read_text()) | {"expires_at": junk}
    store.write_text(json.dumps(damaged))  # a hand edit, another tool
    fake.advance_clock(601)
    run = run_tap(tmp_path / "2", config, streams=STREAMS)
    assert run.returncode == 0, run.stderr[-3000:]
    [warning] = [line for line in run.stderr.splitlines() if "not a number" in line]
    assert "WARNING" in warning and "expires_at" in warning and str(store) in warning
    assert fake.refresh_count == 2  # the stored refresh token renewed the access token
    assert isinstance(stored_tokens(store.read_text())["expires_at"], int)


# --- parallel jobs while the token is replaced twice ------------------------------------------

JOBS = 8


def test_eight_jobs_survive_the_token_being_replaced_twice_while_they_run(tmp_path: Path):
    rows = 6_000
    with FakeExact(rows={"transaction_lines": rows}, minutely_limit=10**6) as fake:
        config = config_for(fake, tmp_path / "store" / "tokens.json")
        work = tmp_path / "jobs"
        work.mkdir()
        (work / "config.json").write_text(json.dumps(config))
        (work / "catalog.json").write_text(
            json.dumps(select(discover(work / "config.json"), {"transaction_lines"}))
        )
        args = [TAP, "--config", str(work / "config.json"), "--catalog", str(work / "catalog.json")]
        jobs = []
        for number in range(JOBS):
            out, err = work / f"{number}.out", work / f"{number}.err"
            with out.open("wb") as stdout, err.open("wb") as stderr:
                jobs.append((subprocess.Popen(args, stdout=stdout, stderr=stderr), out, err))

        def wait_for(condition, timeout: float = 120) -> None:
            deadline = time.monotonic() + timeout
            while not condition():
                assert time.monotonic() < deadline, "timed out"
                time.sleep(0.01)

        wait_for(lambda: fake.refresh_count == 1 and fake.data_calls("/sync/") >= 2 * JOBS)
        fake.advance_clock(601)  # every access token expires: the first replacement
        wait_for(lambda: fake.refresh_count == 2)
        fake.advance_clock(601)  # and again, while the jobs are taking the new one
        results = []
        for process, out, err in jobs:
            process.wait(timeout=600)
            results.append((process.returncode, out.read_text(), err.read_text()))
        for returncode, stdout, stderr in results:
            assert returncode == 0, stderr[-3000:]
            records = [m for m in parse_messages(stdout) if m["type"] == "RECORD"]
            assert len(records) == rows
        assert fake.refresh_count == 3  # one refresh per replacement between all eight


# --- token answers and stores that cannot be used ---------------------------------------------


def test_a_token_answer_without_a_refresh_token_keeps_the_current_one(
    fake: FakeExact, tmp_path: Path
):
    store = tmp_path / "tokens.json"
    config = config_for(fake, store)
    fake.keep_refresh_token_next()  # RFC 6749 section 6: the client keeps its refresh token
    first = run_tap(tmp_path / "1", config, streams=STREAMS)
    assert first.returncode == 0, first.stderr[-3000:]
    [warning] = [line for line in first.stderr.splitlines() if "no refresh_token" in line]
    assert "WARNING" in warning and "keeping the current one" in warning
    assert stored_refresh_token(store) == config["refresh_token"]
    assert state_tokens(first.final_state)["refresh_token"] == config["refresh_token"]
    # The kept refresh token goes on renewing the chain.
    fake.advance_clock(601)
    second = run_tap(tmp_path / "2", config, streams=STREAMS)
    assert second.returncode == 0, second.stderr[-3000:]
    assert fake.refresh_count == 2
    assert stored_refresh_token(store) != config["refresh_token"]
    assert_no_secret_leaked(fake, first.stderr, second.stderr)


def test_an_empty_store_is_named_when_exact_refuses_the_setting_it_leaves(
    fake: FakeExact, tmp_path: Path
):
    store, config = chain_in_a_store(fake, tmp_path)
    store.write_text("")  # emptied: a bad restore, a mount of an empty file
    fake.advance_clock(601)
    run = run_tap(tmp_path / "2", config, streams=STREAMS)
    line = assert_one_clear_line(run, "token_store", str(store), "is empty")
    assert "`refresh_token` setting" in line and "invalid_grant" in line


def _store_is_a_directory(root: Path) -> Path:
    (root / "tokens.json").mkdir(parents=True)
    return root / "tokens.json"


def _lock_is_a_directory(root: Path) -> Path:
    (root / "tokens.json.lock").mkdir(parents=True)
    return root / "tokens.json"


def _parent_is_a_file(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "plain-file").write_text("")
    return root / "plain-file" / "tokens.json"


@pytest.mark.parametrize(
    ("layout", "reason"),
    [
        (_store_is_a_directory, "directory"),
        (_lock_is_a_directory, "Is a directory"),
        (_parent_is_a_file, "Not a directory"),
    ],
    ids=["store-is-a-directory", "lock-is-a-directory", "parent-is-a-file"],
)
def test_a_store_that_cannot_be_opened_or_locked_is_one_line_before_any_refresh(
    fake: FakeExact, tmp_path: Path, layout, reason: str
):
    store = layout(tmp_path / "store")
    run = run_tap(tmp_path / "run", config_for(fake, store), streams=STREAMS)
    assert_one_clear_line(run, "token_store", reason)
    assert fake.token_calls == 0


def test_a_store_on_a_server_that_does_not_answer_is_one_line(fake: FakeExact, tmp_path: Path):
    # fsspec's ftp:// (and sftp://) connect while the store is opened, before any read.
    port = _free_port()
    store = f"ftp://exact:pw@127.0.0.1:{port}/tokens.json"
    run = run_tap(tmp_path, fake_config(fake, token_store=store), streams=STREAMS)
    assert_one_clear_line(run, "token_store", "cannot be opened", "ConnectionRefusedError")
    assert ":pw@" not in run.stderr  # shorter than the log filter masks
    assert fake.token_calls == 0


@pytest.mark.parametrize("place", ["proc", "vanished-folder"])
def test_a_store_whose_lock_file_cannot_be_made_is_one_line_at_once(
    fake: FakeExact, tmp_path: Path, place: str
):
    with contextlib.ExitStack() as stack:
        if place == "proc":
            folder = Path("/proc")  # exists, yet takes no new files
        else:
            folder = stack.enter_context(vanished_folder(tmp_path / "mounted"))
        store = folder / "tokens.json"
        started = time.monotonic()
        run = run_tap(tmp_path / "run", config_for(fake, store), streams=STREAMS)
        elapsed = time.monotonic() - started
    line = assert_one_clear_line(run, "token_store", "cannot be locked")
    assert str(store) in line and "No such file or directory" in line
    assert elapsed < 60, f"the run waited {elapsed:.0f} s for a lock that cannot exist"
    assert fake.token_calls == 0


def test_a_read_only_store_is_one_line_before_any_refresh(fake: FakeExact, tmp_path: Path):
    with tmpfs(tmp_path / "mount", size="64k") as mount:
        remount(mount, read_only=True)
        run = run_tap(tmp_path / "run", config_for(fake, mount / "tokens.json"), streams=STREAMS)
        remount(mount, read_only=False)
    assert_one_clear_line(run, "token_store", "Read-only file system")
    assert fake.token_calls == 0


def auth_refused_before_the_login(
    work: Path, settings: dict[str, Any], command_prefix: list[str] | None = None
) -> str:
    """Run `tap-exactonline-auth --paste` with these settings; assert it stopped with one clear
    error before printing the authorize URL (nobody was sent to log in); return its stderr."""
    result = run_auth(work, settings, "--paste", command_prefix=command_prefix)
    assert result.returncode == 1
    assert "http" not in result.stdout
    assert "Traceback" not in result.stderr
    return result.stderr


def test_the_auth_command_checks_the_store_before_anyone_logs_in(tmp_path: Path):
    with FakeExact() as fake, tmpfs(tmp_path / "mount", size="64k") as mount:
        settings = fake_config(fake, token_store=str(mount / "tokens.json"))
        fill_blocks(mount)  # a full disk: the new tokens would be lost after the login
        stderr = auth_refused_before_the_login(tmp_path, settings)
    assert "token_store" in stderr and "No space left on device" in stderr
    assert fake.token_calls == 0


# --- a token file only its user can read, in folders only its user can list ------------------

ANOTHER_USER = 65533  # anyone but the user running the tap (nobody) and root


def shared_folder(tmp_path: Path) -> Path:
    """A folder like /tmp: root's, sticky, where every user may create files."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    tmp_path.chmod(0o755)
    return folder


def planted_by_another_user(path: Path) -> Path:
    """Another user pre-creates the token file, open to all (mode 0666), to read what comes."""
    path.touch()
    os.chown(path, ANOTHER_USER, ANOTHER_USER)
    path.chmod(0o666)
    return path


def test_a_token_file_another_user_made_in_a_shared_folder_is_refused_by_the_tap(
    fake: FakeExact, tmp_path: Path
):
    trap = planted_by_another_user(shared_folder(tmp_path) / "tokens.json")
    # The job is not root: it cannot replace the other user's file in the sticky folder.
    run = run_tap(
        tmp_path / "run", config_for(fake, trap), streams=STREAMS, command_prefix=as_nobody()
    )
    line = assert_one_clear_line(run, "token_store", str(trap), "another user", "remove it")
    assert "chmod 600" in line
    assert fake.token_calls == 0
    assert trap.read_bytes() == b"", "tokens were written where the other user reads them"


def test_a_token_file_another_user_made_in_a_shared_folder_is_refused_by_the_auth_command(
    tmp_path: Path,
):
    trap = planted_by_another_user(shared_folder(tmp_path) / "tokens.json")
    with FakeExact() as fake:
        settings = fake_config(fake, token_store=str(trap))
        stderr = auth_refused_before_the_login(tmp_path, settings, command_prefix=as_nobody())
    assert f"token_store {trap} belongs to another user" in stderr
    assert trap.read_bytes() == b""


def test_tokens_another_user_put_in_the_store_are_not_taken(fake: FakeExact, tmp_path: Path):
    store, config = chain_in_a_store(fake, tmp_path)
    os.chown(store, ANOTHER_USER, ANOTHER_USER)  # replaced by another user's (mode 0600)
    calls = fake.token_calls
    run = run_tap(tmp_path / "2", config, streams=STREAMS)
    line = assert_one_clear_line(run, "token_store", str(store), "another user")
    assert f"uid {ANOTHER_USER}" in line
    assert fake.token_calls == calls
    assert not run.records("gl_accounts")


def test_a_token_file_of_ours_open_to_others_is_made_private(fake: FakeExact, tmp_path: Path):
    store, config = chain_in_a_store(fake, tmp_path)
    store.chmod(0o644)  # restored with `cp`, or made by `touch` under umask 022
    run = run_tap(tmp_path / "2", config, streams=STREAMS)  # no refresh, so no new file
    assert run.returncode == 0, run.stderr[-3000:]
    [warning] = [line for line in run.stderr.splitlines() if "open to other users" in line]
    assert "WARNING" in warning and str(store) in warning and "mode 644" in warning
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert fake.refresh_count == 1


@pytest.mark.parametrize("mounted", [False, True], ids=["a-file", "a-file-mounted-on-its-own"])
def test_a_token_file_of_ours_others_may_write_is_refused(
    fake: FakeExact, tmp_path: Path, mounted: bool
):
    """Others could have planted tokens in it; and a file mounted on its own would be written
    in place, into the inode a writer of another user may hold open. Refused when read, so
    before any refresh."""
    host = tmp_path / "host" / "tokens.json"
    host.parent.mkdir()
    host.write_text("")
    host.chmod(0o600)
    app = tmp_path / "app"
    app.mkdir()
    with bind_file(host, app / "tokens.json") if mounted else nullcontext(host) as store:
        config = config_for(fake, store)
        first = run_tap(tmp_path / "1", config, streams=STREAMS)
        assert first.returncode == 0, first.stderr[-3000:]
        host.chmod(0o664)  # `touch` under umask 002
        kept, calls = host.read_bytes(), fake.token_calls
        fake.advance_clock(601)  # the next run would refresh
        run = run_tap(tmp_path / "2", config, streams=STREAMS)
    line = assert_one_clear_line(run, "token_store", str(store), "written by other users")
    assert "mode 664" in line and "chmod 600" in line
    assert fake.token_calls == calls
    assert host.read_bytes() == kept
    assert not run.records("gl_accounts")


@pytest.mark.parametrize(
    ("mode", "refused"),
    [(0o600, False), (0o644, False), (0o640, False), (0o620, True), (0o602, True), (0o664, True)],
)
def test_a_token_file_others_may_write_is_not_trusted(tmp_path: Path, mode: int, refused: bool):
    path = tmp_path / "tokens.json"
    path.write_text("{}")
    path.chmod(mode)
    with path.open("rb") as handle:
        if refused:
            with pytest.raises(
                TokenStoreError, match=f"written by other users \\(mode {mode:o}\\)"
            ):
                trust(handle.fileno(), path)
        else:
            trust(handle.fileno(), path)
    assert stat.S_IMODE(path.stat().st_mode) == (mode if refused else 0o600)


def test_folders_the_store_makes_are_private_whatever_the_umask(fake: FakeExact, tmp_path: Path):
    store = tmp_path / "new" / "deeper" / "tokens.json"
    with umask(0):
        run = run_tap(tmp_path / "run", config_for(fake, store), streams=STREAMS)
    assert run.returncode == 0, run.stderr[-3000:]
    for folder in (store.parent, store.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for made in (store, store.with_name("tokens.json.lock")):
        assert stat.S_IMODE(made.stat().st_mode) == 0o600, made


# --- temporary token files a killed run leaves -------------------------------------------------


def git_ignores(work_tree: Path, path: Path) -> bool:
    answer = subprocess.run(
        ["git", "-C", str(work_tree), "check-ignore", "--quiet", str(path)], check=False
    )
    assert answer.returncode in (0, 1)
    return answer.returncode == 0


def test_a_run_killed_while_writing_the_tokens_leaves_no_copy_git_or_the_next_run_keeps(
    fake: FakeExact, tmp_path: Path
):
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "--quiet", str(project)], check=True)
    (project / ".gitignore").write_text("tokens.json\n")  # the token file, not its copies
    store = project / "secrets" / "tokens.json"
    config = config_for(fake, store)
    first = run_tap(tmp_path / "1", config, streams=STREAMS)
    assert first.returncode == 0, first.stderr[-3000:]

    fake.advance_clock(601)  # the next run writes the store before it refreshes
    killed = run_tap(
        tmp_path / "2",
        config,
        streams=STREAMS,
        env=killed_at_rename_env(tmp_path / "kill", store.name),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    [leftover] = [
        p for p in store.parent.iterdir() if p.name not in (store.name, "tokens.json.lock")
    ]
    assert leftover.read_bytes() == store.read_bytes()  # a second copy of the tokens
    healed = run_tap(tmp_path / "3", config, streams=STREAMS)
    assert healed.returncode == 0, healed.stderr[-3000:]
    assert not leftover.exists(), "the killed run's copy of the tokens is still there"
    assert fake.refresh_count == 2

    # Each run named the pattern git must ignore; with it, no such copy can be committed.
    [warning] = [line for line in first.stderr.splitlines() if "git work tree" in line]
    assert "temporary files" in warning
    pattern = warning.split("`")[1]
    assert not git_ignores(project, leftover)
    (project / ".gitignore").write_text(f"tokens.json\n{pattern}\n")
    assert git_ignores(project, leftover)
    again = run_tap(tmp_path / "4", config, streams=STREAMS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "git work tree" not in again.stderr


def test_the_next_run_removes_only_its_own_leftover_token_files(fake: FakeExact, tmp_path: Path):
    store, config = chain_in_a_store(fake, tmp_path)

    def plant(name: str, *, age: float, owner: int | None = None) -> Path:
        path = store.with_name(name)
        path.write_bytes(store.read_bytes())
        path.chmod(0o600)
        if owner is not None:
            os.chown(path, owner, owner)
        os.utime(path, (time.time() - age, time.time() - age))
        return path

    removed = [
        plant(".tokens-k2j4h6g8", age=120),  # left by a version before issue 23
        plant(".tokens.json.a1b2c3d4.tmp", age=120),
    ]
    kept = [
        plant(".tokens-z9y8x7w6", age=1),  # perhaps another store's write, right now
        plant(".tokens.json.q1w2e3r4.tmp", age=1),  # perhaps another run's write, right now
        plant(".tokens.json.m5n6b7v8.tmp", age=120, owner=ANOTHER_USER),
        plant(".other.json.a1b2c3d4.tmp", age=120),  # another store's
        plant("notes.tmp", age=120),
    ]
    run = run_tap(tmp_path / "2", config, streams=STREAMS)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [p.name for p in removed if p.exists()] == []
    assert [p.name for p in kept if not p.exists()] == []
