"""One stream's failure stops no other (issue 22 §5).

A report that keeps serving a row without its key, a page whose Timestamps go backwards, a 5xx
that never stops: the real CLI reads such a page again a few times, then reports that stream in
that division as failed, keeps its bookmark where its last complete read left it, and goes on
with every other stream and division. The run then exits non-zero and names each failure.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fake_exact import FakeExact
from tap_exactonline.catalog import load_catalog
from tests.tap_runner import TapRun, fake_config, run_tap

CATALOG = load_catalog()
DIVISIONS = (1001, 1002)
FAILING = "journal_status_list"  # read/financial/JournalStatusList, in the middle of the alphabet
FAILING_PATH = f"/api/v1/1001/{CATALOG[FAILING].path}"
# Read functions fed per parent row run only when selected by name, not with everything.
ON_REQUEST = {name for name, spec in CATALOG.items() if spec.child_of and spec.child_of.on_request}


def config(fake: FakeExact, **extra: Any) -> dict[str, Any]:
    return fake_config(
        fake, divisions=list(DIVISIONS), beta_endpoints=True, retry_base_seconds=0.01, **extra
    )


def failure_lines(run: TapRun) -> list[str]:
    """The lines of the verdict at the end that name a failed read."""
    return [line for line in run.stderr.splitlines() if "  failed: " in line]


def partition(run: TapRun, stream: str, division: int) -> dict[str, Any]:
    for entry in run.final_state["bookmarks"].get(stream, {}).get("partitions", []):
        if entry["context"].get("division") == division:
            return entry
    return {}


def test_a_stream_that_fails_for_good_stops_no_other(tmp_path: Path):
    with FakeExact(
        divisions=DIVISIONS, default_rows=3, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        # Every answer of the report in division 1001 holds a row without its key.
        bad_row = {"Journal": None, "Period": 1, "Year": 2024, "Description": "x"}
        page = json.dumps({"d": {"results": [bad_row]}})
        fake.replay_next(FAILING_PATH, page, times=20)
        started = time.monotonic()
        run = run_tap(tmp_path, config(fake), timeout=900)
        seconds = time.monotonic() - started

        assert run.returncode == 1, run.stderr[-3000:]
        assert "Traceback" not in run.stderr
        # Read three times (two re-reads, short waits), not six times over a minute of backoff.
        assert fake.data_calls(FAILING_PATH) == 3
        assert seconds < 300
        # Named once at the end, by stream and division, without the page's data.
        [line] = failure_lines(run)
        assert f"{FAILING} (division 1001)" in line
        assert "a row without its key (Journal)" in line
        assert "ERROR" in line

        # Every other stream, in both divisions (and the failing one in the other division), is
        # read whole and its state saved.
        read = run.record_counts()
        for name, spec in CATALOG.items():
            if name in ON_REQUEST:
                continue
            for division in DIVISIONS if spec.division_in_path else (None,):
                if (name, division) == (FAILING, 1001) or name == "deleted":
                    continue
                expected = fake.row_count(name, division)
                got = len(run.by_division(name).get(division or fake.current_division, []))
                if name in ("me", "system_divisions", "system_users") or division is None:
                    assert read[name] > 0, name
                    continue
                assert got == expected, (name, division)
                assert partition(run, name, division), (name, division)
        # The failed read is not marked complete; the same stream in division 1002 is.
        assert "last_full_read_at" not in partition(run, FAILING, 1001)
        assert "last_full_read_at" in partition(run, FAILING, 1002)


def test_a_failed_read_keeps_its_bookmark_where_its_last_complete_page_left_it(tmp_path: Path):
    rows = {"journals": 130, "transaction_lines": 2500, "gl_accounts": 30}
    with FakeExact(rows=rows, minutely_limit=10**6, daily_limit=10**6) as fake:
        # journals (Modified, in key order: its bookmark moves only after a complete read):
        # page 2 of 3 holds a row without its key, every time.
        journals_page = json.dumps({"d": {"results": [{"ID": None, "Modified": None}]}})
        fake.replay_next("/financial/Journals", journals_page, query_contains="skiptoken", times=10)
        # transaction_lines (Timestamp order: its bookmark moves with every row): page 2 of 3
        # goes back to a Timestamp below those of page 1, every time.
        stale = {"ID": "00000000-0000-4000-8000-000000000001", "Timestamp": "2"}
        fake.replay_next(
            "/sync/Financial/TransactionLines",
            json.dumps({"d": {"results": [stale]}}),
            query_contains="skiptoken",
            times=10,
        )
        incoming = "2001-01-01T00:00:00+00:00"
        state = {
            "exactonline_state_version": 2,
            "bookmarks": {
                "journals": {
                    "partitions": [
                        {
                            "context": {"division": 1001},
                            "replication_key": "modified",
                            "replication_key_value": incoming,
                        }
                    ]
                }
            },
        }
        run = run_tap(
            tmp_path,
            fake_config(fake, retry_base_seconds=0.01),
            streams={"journals", "transaction_lines", "gl_accounts"},
            state=state,
        )

    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    failed = failure_lines(run)
    assert len(failed) == 2
    assert any("journals (division 1001)" in line for line in failed)
    assert any(
        "transaction_lines (division 1001)" in line and "do not move forward" in line
        for line in failed
    )
    # The first page of journals was sent, but the bookmark stays where it came in: its rows
    # come in key order, so a partial read says nothing about which changes were read.
    assert len(run.records("journals")) == 60
    assert run.bookmark("journals", 1001) == incoming
    assert "progress_markers" not in partition(run, "journals", 1001)
    # The sync stream's bookmark is the last row of its last page that passed the checks.
    lines = run.records("transaction_lines")
    assert len(lines) == 1000
    assert run.bookmark("transaction_lines", 1001) == max(r["timestamp"] for r in lines)
    # The stream before them was read whole, and keeps its bookmark.
    assert len(run.records("gl_accounts")) == 30
    assert run.bookmark("gl_accounts", 1001)


def test_reads_failing_one_after_another_with_no_answer_between_end_the_run(tmp_path: Path):
    # Exact is down (every call a 503): after three reads in a row fail, stop, rather than wait
    # out every stream's retries.
    streams = {"costcenters", "currencies", "departments", "journals", "payment_conditions"}
    with FakeExact(minutely_limit=10**6, daily_limit=10**6) as fake:
        fake.fail_next(1000, status=503, path_contains="/api/v1/1001/")
        run = run_tap(
            tmp_path, fake_config(fake, retry_base_seconds=0.01, max_retries=1), streams=streams
        )
        calls = fake.data_calls("/api/v1/1001/")

    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert calls == 3 * 2  # three reads, each an attempt and one retry
    assert any("seems to be down" in line for line in run.stderr.splitlines()), run.stderr[-3000:]


def test_a_row_the_tap_cannot_turn_into_a_record_fails_only_its_stream(tmp_path: Path):
    # An object where a date belongs (costcenters.EndDate): converting it raises inside the tap.
    customer = "Fietsen Jansen Geheim B.V."
    row = {"ID": "00000000-0000-4000-8000-000000000001", "EndDate": {"odd": [customer]}}
    with FakeExact(
        rows={"costcenters": 5, "departments": 5}, minutely_limit=10**6, daily_limit=10**6
    ) as fake:
        fake.replay_next("/hrm/Costcenters", json.dumps({"d": {"results": [row]}}), times=5)
        run = run_tap(
            tmp_path,
            fake_config(fake, retry_base_seconds=0.01),
            streams={"costcenters", "departments"},
        )

    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert customer not in run.stderr  # the error's own text may quote the page: not shown
    [line] = failure_lines(run)
    assert "costcenters (division 1001)" in line and "unexpected TypeError" in line
    assert len(run.records("departments")) == 5
    assert run.bookmark("departments", 1001)
    assert run.bookmark("costcenters", 1001) is None


def test_a_child_stream_that_fails_keeps_its_parents_rows_for_the_next_run(tmp_path: Path):
    # receivables_list_by_account is read once per changed account (a child of accounts).
    streams = {"accounts", "receivables_list_by_account"}
    with FakeExact(divisions=(1001,), rows={"accounts": 12}, minutely_limit=10**6) as fake:
        settings = fake_config(fake, retry_base_seconds=0.01)
        fake.fail_next(10_000, status=503, path_contains="ReceivablesListByAccount")
        first = run_tap(tmp_path / "1", settings, streams=streams)
        assert first.returncode == 1, first.stderr[-3000:]
        assert "Traceback" not in first.stderr
        assert any("accounts (division 1001)" in line for line in failure_lines(first))

        # Exact is well again: the accounts whose children were not read are read again, and
        # their children with them.
        fake.clear_faults()
        child_calls = fake.data_calls("ReceivablesListByAccount")
        second = run_tap(tmp_path / "2", settings, streams=streams, state=first.final_state)
        assert second.returncode == 0, second.stderr[-3000:]
        assert len(second.records("accounts")) == 12
        assert fake.data_calls("ReceivablesListByAccount") - child_calls == 12
