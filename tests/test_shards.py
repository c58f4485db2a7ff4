"""`division_shard`: N jobs share `divisions: all`, each division in exactly one of them, by a
hash of its code (stable as divisions come and go); four shard jobs through Meltano at once into
one PostgreSQL, sharing one token store."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from fake_exact import FakeExact
from tap_exactonline.settings import in_shard, parse_shard
from tests.conftest import (
    _MELTANO_DEFAULTS,
    _SCRUBBED_PREFIXES,
    MELTANO,
    Postgres,
    select_streams,
    set_plugin_config,
    write_test_meltano_yml,
)
from tests.tap_runner import fake_config, run_tap

DIVISIONS = tuple(range(1001, 1013))  # twelve administrations of one accounting firm


def shard_of(division: int, count: int) -> int:
    [number] = [k for k in range(1, count + 1) if in_shard(division, (k, count))]
    return number


def test_shards_are_disjoint_complete_and_stable_as_divisions_come_and_go():
    codes = list(range(100_000, 100_800))
    for count in (1, 2, 3, 8):
        # Each division lands in exactly one shard (shard_of asserts it) ...
        sizes = Counter(shard_of(code, count) for code in codes)
        # ... and the shards are about even.
        assert set(sizes) == set(range(1, count + 1))
        assert max(sizes.values()) < 1.35 * len(codes) / count
    # A division keeps its shard when others are added or removed: by its code, not its place.
    before = {code: shard_of(code, 8) for code in codes}
    after = {code: shard_of(code, 8) for code in [99_999, *codes[::2], 123_456_789]}
    assert all(after[code] == before[code] for code in codes[::2])


@pytest.mark.parametrize("value", ["0/4", "5/4", "3", "a/b", "3/0", "-1/4"])
def test_a_bad_shard_is_one_line_naming_the_setting(tmp_path: Path, value: str):
    with pytest.raises(ValueError, match="Setting `division_shard` must be K/N"):
        parse_shard(value)
    with FakeExact() as fake:
        run = run_tap(tmp_path, fake_config(fake, division_shard=value), with_catalog=False)
    assert run.returncode == 1
    assert "Setting `division_shard` must be K/N" in run.stderr
    assert "Traceback" not in run.stderr
    assert not fake.calls


def test_a_sharded_job_refuses_resync_streams(tmp_path: Path):
    with FakeExact() as fake:
        config = fake_config(fake, division_shard="2/4", resync_streams=["accounts"])
        run = run_tap(tmp_path, config, with_catalog=False)
    assert run.returncode == 1
    assert "Setting `resync_streams` cannot be used with `division_shard`" in run.stderr
    assert not fake.calls


def test_shard_jobs_read_each_division_of_all_once(tmp_path: Path):
    store = tmp_path / "tokens.json"
    with FakeExact(divisions=DIVISIONS, rows={"gl_accounts": 3}) as fake:
        seen: Counter[int] = Counter()
        for number in range(1, 5):
            config = fake_config(
                fake, divisions="all", division_shard=f"{number}/4", token_store=str(store)
            )
            run = run_tap(tmp_path / str(number), config, streams={"gl_accounts"})
            assert run.returncode == 0, run.stderr[-3000:]
            read = set(run.by_division("gl_accounts"))
            assert read == {d for d in DIVISIONS if shard_of(d, 4) == number}
            assert f"`division_shard` {number}/4: this job reads {len(read)} of the 12" in (
                run.stderr
            )
            seen.update(read)
        assert seen == Counter(DIVISIONS)  # every division once
        assert fake.refresh_count == 1  # one token chain, shared through the store


@pytest.mark.pipeline
def test_four_shard_jobs_at_once_through_meltano_into_one_postgres(
    tmp_path: Path, meltano_plugins: Path, pg_database: Postgres
):
    store = tmp_path / "tokens.json"
    with FakeExact(
        divisions=DIVISIONS, rows={"gl_accounts": 30, "accounts": 1200}
    ) as fake:  # Exact's own limits: 60 calls a minute per division
        projects, envs = [], []
        for number in range(1, 5):
            project = tmp_path / f"shard{number}"
            write_test_meltano_yml(project)
            (project / ".meltano").mkdir()
            (project / ".meltano" / "loaders").symlink_to(meltano_plugins, target_is_directory=True)
            select_streams(project, ["gl_accounts", "accounts"])
            set_plugin_config(
                project,
                "tap-exactonline",
                client_id="fake-client-id",
                client_secret="fake-client-secret",
                refresh_token="fake-initial-refresh-token",
                base_url=fake.base_url,
                divisions="all",
                division_shard=f"{number}/4",
                token_store=str(store),
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
            env |= _MELTANO_DEFAULTS | {"MELTANO_PROJECT_ROOT": str(project)}
            env |= pg_database.target_env("exactonline")
            projects.append(project)
            envs.append(env)

        def start(number: int) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [str(MELTANO), "run", "tap-exactonline", "target-postgres"],
                cwd=projects[number - 1],
                env=envs[number - 1],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )

        def finish(jobs: list[subprocess.Popen[str]]) -> None:
            for job in jobs:
                output = job.communicate(timeout=900)[0]
                failures = [line for line in output.splitlines() if "rror" in line]
                assert job.returncode == 0, "\n".join(failures[:40]) + output[-2000:]

        # As docs/divisions.md advises: the first run of one shard creates the tables (four
        # target-postgres processes creating one table at the same moment can collide) ...
        finish([start(1)])
        # ... then all four shard jobs at once.
        finish([start(number) for number in range(1, 5)])

        with pg_database.connect() as connection:
            for stream, rows in (("gl_accounts", 30), ("accounts", 1200)):
                counts = dict(
                    connection.execute(
                        f"SELECT division, count(*) FROM exactonline.{stream} GROUP BY division"
                    ).fetchall()
                )
                assert counts == dict.fromkeys(DIVISIONS, rows), stream
        assert fake.refresh_count == 1  # one chain for the four jobs
        assert not [call for call in fake.calls if call[3] == 429]
        assert fake.max_concurrent_requests > 1  # the jobs did run at once
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_shard_job_whose_share_is_empty_reads_nothing(tmp_path: Path):
    # 1001 hashes to shard 1 of 3 and 1002 to shard 3: shard 2 has none of them.
    assert [d for d in (1001, 1002) if in_shard(d, (2, 3))] == []
    with FakeExact(divisions=(1001, 1002), rows={"gl_accounts": 3}) as fake:
        config = fake_config(fake, divisions=[1001, 1002], division_shard="2/3")
        run = run_tap(tmp_path, config, streams={"gl_accounts", "receivables_list"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.record_counts() == {}
    assert not [
        path for _, path, _, _ in fake.calls if "GLAccounts" in path or "Receivables" in path
    ]
