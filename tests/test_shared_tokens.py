"""Parallel jobs on one Exact login share a token store: lock, reload, skip if fresh, refresh.

Eight real `tap-exactonline` processes start at the same moment against the fake server, which
enforces single-use refresh tokens and the 570 s rule. Every one must succeed, with exactly one
refresh per access-token lifetime between them.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import s3fs

from fake_exact import FakeExact
from tests.conftest import Postgres
from tests.tap_runner import TAP, discover, fake_config, parse_messages, select, stored_tokens

JOBS = 8
ROWS = 6_000  # 6 pages per job: long enough to be mid-run when the token expires


Job = tuple[subprocess.Popen[bytes], Path, Path]


def start_jobs(work: Path, config: dict[str, Any], jobs: int = JOBS) -> list[Job]:
    """Start JOBS syncs of transaction_lines as close to simultaneously as possible.

    Their output goes to files: a pipe nobody reads yet would stall a job after 64 KiB.
    """
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "config.json"
    config_path.write_text(json.dumps(config))
    catalog_path = work / "catalog.json"
    catalog_path.write_text(json.dumps(select(discover(config_path), {"transaction_lines"})))
    args = [TAP, "--config", str(config_path), "--catalog", str(catalog_path)]
    started = []
    for number in range(jobs):
        out, err = work / f"job{number}.out", work / f"job{number}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            started.append((subprocess.Popen(args, stdout=stdout, stderr=stderr), out, err))
    return started


def finish(jobs: list[Job]) -> list[tuple[int, str, str]]:
    results = []
    for process, out, err in jobs:
        process.wait(timeout=600)
        results.append((process.returncode, out.read_text(), err.read_text()))
    return results


def assert_all_synced(results: list[tuple[int, str, str]]) -> None:
    for returncode, stdout, stderr in results:
        assert returncode == 0, stderr[-3000:]
        records = [m for m in parse_messages(stdout) if m["type"] == "RECORD"]
        assert len(records) == ROWS


def wait_until(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(params=["file", "postgresql", "s3"])
def token_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One store shared by all jobs: a local file, a table in a real PostgreSQL, or an object
    in an S3 emulator (through fsspec, locked by a lease object)."""
    if request.param == "file":
        return str(tmp_path / "store" / "tokens.json")
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('s3_bucket')}/exact/tokens.json"
    db: Postgres = request.getfixturevalue("pg_database")
    return f"postgresql://{db.user}:{db.password}@{db.host}:{db.port}/{db.database}"


def test_parallel_jobs_share_one_token_store(token_store: str, tmp_path: Path):
    with FakeExact(
        divisions=(1001,), rows={"transaction_lines": ROWS}, minutely_limit=10**6
    ) as fake:
        config = fake_config(fake, token_store=token_store)

        # 1. A first authorization: all eight start from the configured refresh token.
        assert_all_synced(finish(start_jobs(tmp_path / "1", config)))
        assert fake.refresh_count == 1

        # 2. Ten minutes later every access token has expired: one refresh for all eight.
        fake.advance_clock(601)
        assert_all_synced(finish(start_jobs(tmp_path / "2", config)))
        assert fake.refresh_count == 2

        # 3. The token expires while all eight are mid-run (each sees a 401): still one refresh.
        calls_before = len(fake.calls)
        jobs = start_jobs(tmp_path / "3", config)
        wait_until(lambda: len(fake.calls) >= calls_before + 2 * JOBS)
        fake.advance_clock(601)
        assert_all_synced(finish(jobs))
        assert [c for c in fake.calls[calls_before:] if c[3] == 401]  # they did run into it
        assert fake.refresh_count == 3


def test_a_job_killed_right_after_a_refresh_loses_nothing(token_store: str, tmp_path: Path):
    with FakeExact(
        divisions=(1001,), rows={"transaction_lines": ROWS}, minutely_limit=10**6
    ) as fake:
        config = fake_config(fake, token_store=token_store)
        [(victim, _, _)] = start_jobs(tmp_path / "killed", config, jobs=1)
        # Exact counts a refresh as soon as it answers; the job owns the new token only once it
        # has read the answer. The store is written before the new access token is used, so the
        # first page served proves the refresh is complete from the job's side.
        wait_until(lambda: fake.refresh_count == 1 and fake.data_calls("/sync/") >= 1)
        victim.kill()  # SIGKILL: no cleanup, no final STATE; only the store knows the token
        victim.wait(timeout=60)
        # The configured refresh token is spent now; a new run without any state continues the
        # chain from the store, and can refresh it once Exact allows.
        fake.advance_clock(601)
        assert_all_synced(finish(start_jobs(tmp_path / "next", config, jobs=1)))
        assert fake.refresh_count == 2


def test_a_lease_left_by_a_dead_job_expires(s3_bucket: str, s3_emulator: str, tmp_path: Path):
    """A job killed while holding the object-store lease must not lock the others out."""

    store = f"s3://{s3_bucket}/exact/tokens.json"
    fs = s3fs.S3FileSystem(endpoint_url=s3_emulator, skip_instance_cache=True)
    dead = {"holder": "a-job-that-died", "expires_at": time.time() - 1}
    fs.pipe_file(f"{s3_bucket}/exact/tokens.json.lease", json.dumps(dead).encode())
    with FakeExact(divisions=(1001,), rows={"transaction_lines": ROWS}) as fake:
        [(returncode, stdout, stderr)] = finish(
            start_jobs(tmp_path, fake_config(fake, token_store=store), jobs=1)
        )
        assert_all_synced([(returncode, stdout, stderr)])
        assert "removing a lease left by a run that died" in stderr
        assert not fs.exists(f"{s3_bucket}/exact/tokens.json.lease")  # released after use
        # Kept under the app and the Exact login (see test_shared_logins.py).
        kept = f"{s3_bucket}/exact/tokens.fake-client-id.{fake.user_id}.json"
        assert stored_tokens(fs.cat_file(kept))["refresh_token"]
