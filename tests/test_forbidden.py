"""Exact's 403 `Reason` header: a division-wide reason skips the division without a probe call, a
user-wide one stops the run at once (every 4xx counts against Exact's 10 errors an hour), and a
403 without the header is still checked with one probe per division."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fake_exact import FakeExact
from tests.tap_runner import TAP, fake_config, run_tap

ROWS = {"accounts": 30, "gl_accounts": 10, "journals": 5}
# Synced in name order: accounts, gl_accounts, journals; each division in turn.
STREAMS = set(ROWS)
JOURNALS = "/financial/Journals"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line]


def probes(calls: list[tuple[str, str, str, int]], division: int) -> list[str]:
    return [query for _, path, query, _ in calls if path == f"/api/v1/{division}/system/Divisions"]


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        ("NoDivisionAccess", "tap-exactonline-auth"),
        ("DivisionBlocked", "unblock"),
        ("LicenseExpired", "renew"),
        ("BlockedCustomer", "licence holder"),
    ],
)
def test_a_division_wide_reason_skips_the_division_for_every_stream_without_a_probe(
    tmp_path: Path, reason: str, advice: str
):
    with FakeExact(divisions=(1001, 1002), rows=ROWS) as fake:
        fake.forbid(1002, reason=reason)
        run = run_tap(tmp_path, fake_config(fake, divisions="all"), streams=STREAMS)
        calls = fake.calls

    assert run.returncode == 0, run.stderr[-3000:]
    # One 403 into 1002 and nothing after it there: no system/Divisions probe, no other stream.
    into_1002 = [c for c in calls if c[1].startswith("/api/v1/1002/")]
    assert [status for *_, status in into_1002] == [403]
    assert probes(calls, 1002) == []
    [line] = error_lines(run.stderr)
    assert "Division 1002" in line and reason in line and advice in line
    assert "Traceback" not in run.stderr
    for stream, rows in ROWS.items():
        assert {d: len(r) for d, r in run.by_division(stream).items()} == {1001: rows}
        assert run.bookmark(stream, 1002) is None


@pytest.mark.parametrize(
    ("reason", "advice"), [("BlockedUser", "unblock"), ("InactiveUser", "reactivate")]
)
def test_a_user_wide_reason_stops_the_run_at_the_first_403(
    tmp_path: Path, reason: str, advice: str
):
    with FakeExact(divisions=(1001, 1002), rows=ROWS) as fake:
        fake.forbid(1002, reason=reason, path_contains=JOURNALS)
        run = run_tap(tmp_path, fake_config(fake, divisions=[1001, 1002]), streams=STREAMS)
        calls = fake.calls

    assert run.returncode == 1
    # The 403 is the last call of the run: no probe, no other division or stream after it.
    *_, (_, path, _, status) = calls
    assert (path, status) == (f"/api/v1/1002{JOURNALS}", 403)
    assert [c for c in calls if c[3] >= 400] == [calls[-1]]
    [line] = error_lines(run.stderr)
    assert reason in line and advice in line and "tap-exactonline-auth" in line
    assert "Traceback" not in run.stderr
    # What was read before is kept: its bookmarks are in the state emitted on the way out.
    assert run.bookmark("accounts", 1002) is not None
    assert run.bookmark("gl_accounts", 1002) is not None
    assert len(run.records("journals")) == ROWS["journals"]  # division 1001's


def test_a_user_wide_reason_on_the_taps_own_calls_stops_at_once(tmp_path: Path):
    # `--test`: current/Me, which has no division.
    with FakeExact(divisions=(1001,), rows=ROWS) as fake:
        fake.forbid(None, reason="InactiveUser")
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(fake_config(fake)))
        checked = subprocess.run(
            [TAP, "--config", str(config_path), "--test"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        test_calls = [c for c in fake.calls if c[1].startswith("/api/v1/")]
    assert checked.returncode == 1
    assert [(path, status) for _, path, _, status in test_calls] == [("/api/v1/current/Me", 403)]
    [line] = error_lines(checked.stderr)
    assert "Connection test failed" in line and "InactiveUser" in line and "reactivate" in line
    assert "Traceback" not in checked.stderr

    # `divisions: all`: the list of divisions, before any stream.
    with FakeExact(divisions=(1001, 1002), rows=ROWS) as fake:
        fake.forbid(1001, reason="BlockedUser", path_contains="/system/Divisions")
        run = run_tap(tmp_path / "all", fake_config(fake, divisions="all"), streams=STREAMS)
        calls = [c for c in fake.calls if c[1].startswith("/api/v1/")]
    assert run.returncode == 1
    assert [(path, status) for _, path, _, status in calls][-1] == (
        "/api/v1/1001/system/Divisions",
        403,
    )
    assert [c for c in calls if c[3] >= 400] == [calls[-1]]
    [line] = error_lines(run.stderr)
    assert "BlockedUser" in line and "unblock" in line
    assert run.record_counts() == {}
    assert "Traceback" not in run.stderr


def test_only_a_403_without_reason_is_checked_with_a_probe_once_per_division(tmp_path: Path):
    with FakeExact(divisions=(1001, 1002, 1003), rows=ROWS) as fake:
        # Plain 403s for two entities of 1002 (rights to a module, say), none for the division.
        fake.forbid(1002, reason=None, path_contains=JOURNALS)
        fake.forbid(1002, reason=None, path_contains="/sync/Financial/GLAccounts")
        # And a division Exact says is blocked: nothing to check there.
        fake.forbid(1003, reason="DivisionBlocked")
        run = run_tap(tmp_path, fake_config(fake, divisions="all"), streams=STREAMS)
        calls = fake.calls

    assert run.returncode == 1  # streams selected by name were refused
    assert len(probes(calls, 1002)) == 1  # checked once for the division, not per stream
    assert probes(calls, 1003) == []
    refusals = [line for line in error_lines(run.stderr) if "HTTP 403" in line]
    assert len(refusals) == 3
    assert sum("Division 1003" in line and "DivisionBlocked" in line for line in refusals) == 1
    assert all("Reason" not in line for line in refusals if "1002" in line)
    assert sorted(run.by_division("accounts")) == [1001, 1002]
    assert sorted(run.by_division("journals")) == [1001]
    assert sorted(run.by_division("gl_accounts")) == [1001]
    assert "Exact refused streams you selected: gl_accounts, journals" in run.stderr
    assert "Traceback" not in run.stderr
