"""Rows that leave a stream read only in full are marked by the target (issue 22 §2).

`receivables_list` has no `Timestamp` and no `Modified`: a paid invoice simply stops being
listed. After a complete read in every division of the run the tap sends ACTIVATE_VERSION, and
the records of that read carry its version; never after a read that missed a division. The
effect in PostgreSQL is in test_pipeline.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fake_exact import FakeExact
from tap_exactonline.catalog import load_catalog
from tests.tap_runner import TapRun, fake_config, run_tap

DIVISIONS = (1001, 1002)
FULL_TABLE = "receivables_list"
ROWS = {FULL_TABLE: 40, "accounts": 30}


@pytest.fixture
def fake():
    with FakeExact(divisions=DIVISIONS, rows=ROWS, minutely_limit=10**6) as server:
        yield server


def config(fake: FakeExact, **extra: Any) -> dict[str, Any]:
    return fake_config(fake, **{"divisions": list(DIVISIONS), "retry_base_seconds": 0.01, **extra})


def activations(run: TapRun, stream: str) -> list[int]:
    return [
        m["version"]
        for m in run.messages
        if m["type"] == "ACTIVATE_VERSION" and m["stream"] == stream
    ]


def versions(run: TapRun, stream: str) -> set[Any]:
    return {
        m.get("version") for m in run.messages if m["type"] == "RECORD" and m["stream"] == stream
    }


def test_a_complete_read_in_every_division_ends_in_one_activate_version(
    fake: FakeExact, tmp_path: Path
):
    run = run_tap(tmp_path, config(fake), streams={FULL_TABLE, "accounts"})
    assert run.returncode == 0, run.stderr[-3000:]
    # One, after the read: not also the SDK's own, which comes before the first record (a
    # read that then stopped short would have the target mark the whole table).
    [version] = activations(run, FULL_TABLE)
    # Every record of both divisions carries it, and the message follows the last of them.
    assert versions(run, FULL_TABLE) == {version}
    assert set(run.by_division(FULL_TABLE)) == set(DIVISIONS)
    kinds = [m["type"] for m in run.messages if m.get("stream") == FULL_TABLE]
    assert kinds.index("ACTIVATE_VERSION") > max(
        i for i, kind in enumerate(kinds) if kind == "RECORD"
    )
    # Whole seconds since the epoch (the SDK's unit): this run's start.
    assert abs(version - time.time()) < 300
    # An incremental stream never: its rows are not all read again.
    assert activations(run, "accounts") == []
    assert versions(run, "accounts") == {None}


def test_a_division_refused_the_stream_means_no_rows_are_marked(fake: FakeExact, tmp_path: Path):
    fake.forbid(1002, reason=None, path_contains="ReceivablesList")
    run = run_tap(tmp_path, config(fake), streams={FULL_TABLE})
    assert set(run.by_division(FULL_TABLE)) == {1001}
    assert activations(run, FULL_TABLE) == []
    assert "not every division was read completely in this run (1002)" in run.stderr


def test_a_division_whose_read_failed_means_no_rows_are_marked(fake: FakeExact, tmp_path: Path):
    # Exact fails every try for division 1002 (its retries spent): the run goes on, but the
    # rows 1002 would have sent are unknown, so none of the table's rows may be retracted.
    fake.fail_next(50, status=500, path_contains="1002/read/financial/ReceivablesList")
    run = run_tap(tmp_path, config(fake), streams={FULL_TABLE})
    assert run.returncode != 0
    assert set(run.by_division(FULL_TABLE)) == {1001}
    assert activations(run, FULL_TABLE) == []
    assert "not every division was read completely in this run (1002)" in run.stderr


def test_a_division_out_of_daily_budget_means_no_rows_are_marked(fake: FakeExact, tmp_path: Path):
    fake.set_daily_remaining(1002, 0)
    run = run_tap(tmp_path, config(fake), streams={FULL_TABLE})
    assert set(run.by_division(FULL_TABLE)) == {1001}
    assert activations(run, FULL_TABLE) == []


def test_divisions_are_read_together_so_a_late_one_does_not_block_retraction(
    fake: FakeExact, tmp_path: Path
):
    # Division 1001 was read in full an hour ago; 1002 is new in the run.
    first = run_tap(tmp_path / "1", config(fake, divisions=[1001]), streams={FULL_TABLE})
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_tap(tmp_path / "2", config(fake), streams={FULL_TABLE}, state=first.final_state)
    assert second.returncode == 0, second.stderr[-3000:]
    # 1002 is due, so both are read again, and the read can end in ACTIVATE_VERSION.
    assert set(second.by_division(FULL_TABLE)) == set(DIVISIONS)
    assert len(activations(second, FULL_TABLE)) == 1
    # Inside the interval neither is read, and nothing is marked.
    third = run_tap(tmp_path / "3", config(fake), streams={FULL_TABLE}, state=second.final_state)
    assert third.returncode == 0, third.stderr[-3000:]
    assert third.records(FULL_TABLE) == []
    assert activations(third, FULL_TABLE) == []


@pytest.mark.parametrize(
    "setting",
    [{"emit_activate_version_messages": False}, {"division_shard": "1/3"}],
    ids=["switched-off", "shard-job"],
)
def test_no_activate_version_when_switched_off_or_in_a_shard_job(
    fake: FakeExact, tmp_path: Path, setting: dict[str, Any]
):
    run = run_tap(tmp_path, config(fake, **setting), streams={FULL_TABLE})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.records(FULL_TABLE)
    assert activations(run, FULL_TABLE) == []
    assert versions(run, FULL_TABLE) == {None}


def test_one_empty_answer_does_not_make_a_division_look_emptied(fake: FakeExact, tmp_path: Path):
    # A proxy or a hiccup answers one read of 1002 with an empty page: believed, the
    # ACTIVATE_VERSION after it would mark every 1002 receivable deleted.
    path = f"/api/v1/1002/{load_catalog()[FULL_TABLE].path}"
    fake.replay_next(path, json.dumps({"d": {"results": []}}))
    run = run_tap(tmp_path, config(fake), streams={FULL_TABLE})
    assert run.returncode == 0, run.stderr[-3000:]
    assert {d: len(rows) for d, rows in run.by_division(FULL_TABLE).items()} == {
        d: fake.row_count(FULL_TABLE, d) for d in DIVISIONS
    }
    assert len(activations(run, FULL_TABLE)) == 1


def test_a_division_that_refuses_a_stream_does_not_make_it_due_on_every_run(
    fake: FakeExact, tmp_path: Path
):
    fake.forbid(1002, reason=None, path_contains="ReceivablesList")
    first = run_tap(tmp_path / "1", config(fake), streams={FULL_TABLE})
    assert set(first.by_division(FULL_TABLE)) == {1001}
    calls = fake.data_calls("ReceivablesList")
    second = run_tap(tmp_path / "2", config(fake), streams={FULL_TABLE}, state=first.final_state)
    # Inside full_table_interval: neither division is asked again, the refusing one included.
    assert second.records(FULL_TABLE) == []
    assert fake.data_calls("ReceivablesList") == calls
    assert "not every division" not in second.stderr
