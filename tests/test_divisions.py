"""`divisions: all | current | [...]`, divisions the user cannot open, and division moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from fake_exact import FakeExact
from tap_exactonline.settings import parse_divisions
from tests.tap_runner import fake_config, run_tap

ROWS = {"accounts": 30, "journals": 5}


def sync_filters(fake: FakeExact, division: int, since: int = 0) -> list[str]:
    return [
        query
        for _, path, query, _ in fake.calls[since:]
        if path == f"/api/v1/{division}/sync/CRM/Accounts"
    ]


def test_divisions_all_reads_every_division_and_skips_a_forbidden_one(tmp_path: Path):
    with FakeExact(divisions=(1001, 1002), forbidden_divisions=(1003,), rows=ROWS) as fake:
        config = fake_config(fake, divisions="all")
        run = run_tap(tmp_path, config, streams={"accounts", "journals"})
        # The forbidden division is named once, in one line; the others are read in full.
        assert run.returncode == 0, run.stderr[-3000:]
        assert sorted(run.by_division("accounts")) == [1001, 1002]
        assert all(len(rows) == 30 for rows in run.by_division("accounts").values())
        assert sorted(run.by_division("journals")) == [1001, 1002]
        errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
        assert len(errors) == 1 and "Division 1003 is not accessible" in errors[0]
        assert "reading the 3 divisions system/Divisions lists: 1001, 1002, 1003" in run.stderr
        # After the 403 and one check, 1003 is not asked again, for any stream.
        assert len([c for c in fake.calls if c[1].startswith("/api/v1/1003/")]) == 2


def test_a_forbidden_division_named_in_divisions_fails_the_run_at_the_end(tmp_path: Path):
    with FakeExact(divisions=(1001,), forbidden_divisions=(1003,), rows=ROWS) as fake:
        run = run_tap(tmp_path, fake_config(fake, divisions=[1003, 1001]), streams={"accounts"})
        assert run.returncode == 1
        assert len(run.records("accounts")) == 30  # 1001 is synced and its state saved
        assert run.bookmark("accounts", 1001) is not None
        assert "Divisions you listed in `divisions` could not be read: 1003" in run.stderr
        assert "Traceback" not in run.stderr


def test_divisions_current_is_the_default(tmp_path: Path):
    with FakeExact(divisions=(1002, 1001), current_division=1002, rows=ROWS) as fake:
        run = run_tap(tmp_path, fake_config(fake, divisions="current"), streams={"accounts"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert sorted(run.by_division("accounts")) == [1002]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "current"),
        ("all", "all"),
        (" Current ", "current"),
        ([1001, 1002], [1001, 1002]),
        ("[1001, 1002]", [1001, 1002]),
        ("1001,1002", [1001, 1002]),
        (1001, [1001]),
    ],
)
def test_divisions_setting_forms(value: object, expected: object):
    assert parse_divisions(value) == expected


@pytest.mark.parametrize("value", ["some", ["abc"], [0], "[1001, true]", [True]])
def test_bad_divisions_setting_is_refused(value: object):
    with pytest.raises(ValueError, match="Setting `divisions`"):
        parse_divisions(value)


def test_a_moved_division_is_read_again_from_the_start(tmp_path: Path):
    with FakeExact(divisions=(1001, 1002), rows=ROWS) as fake:
        config = fake_config(
            fake, divisions=[1001, 1002], token_store=str(tmp_path / "tokens.json")
        )
        first = run_tap(tmp_path / "1", config, streams={"accounts"})
        assert first.returncode == 0, first.stderr[-3000:]
        assert first.final_state["exactonline_division_moves"] == {"1001": None, "1002": None}

        fake.move_division(1001)
        since = len(fake.calls)
        second = run_tap(tmp_path / "2", config, streams={"accounts"}, state=first.final_state)
        assert second.returncode == 0, second.stderr[-3000:]
        # 1001: every row again, from `Timestamp gt 1`; 1002: only what changed (nothing).
        assert sync_filters(fake, 1001, since) == [
            "$filter=Timestamp%20gt%201&" + sync_filters(fake, 1001)[0].split("&", 1)[1]
        ]
        assert len(second.by_division("accounts")[1001]) == 30
        assert 1002 not in second.by_division("accounts")
        assert "%20gt%201&" not in sync_filters(fake, 1002, since)[0]
        assert "Division 1001 moved to another Exact database" in second.stderr
        moves = second.final_state["exactonline_division_moves"]
        assert moves["1001"] is not None and moves["1002"] is None

        # Known move date: the next run is incremental again.
        since = len(fake.calls)
        third = run_tap(tmp_path / "3", config, streams={"accounts"}, state=second.final_state)
        assert third.returncode == 0, third.stderr[-3000:]
        assert third.record_counts() == {}
        assert all("%20gt%201&" not in q for q in sync_filters(fake, 1001, since))


def test_no_division_list_is_fetched_without_sync_streams(tmp_path: Path):
    with FakeExact(divisions=(1001,), rows=ROWS) as fake:
        run = run_tap(tmp_path, fake_config(fake), streams={"journals"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert not [c for c in fake.calls if c[1].endswith("/system/Divisions")]
