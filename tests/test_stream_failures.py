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
