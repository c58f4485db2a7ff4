"""What a person reads in a run's log, through the real CLI against the fake server: at INFO
the streams that run, a line per stream and division, progress on long reads and a summary
table whose figures are the run's own (records written, calls Exact answered, calls left);
the SDK's detail (deselected streams, child streams, METRIC lines) only at DEBUG."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml

from fake_exact import FakeExact
from tests.conftest import REPO_ROOT
from tests.tap_runner import TapRun, fake_config, run_tap

# The streams the repository's meltano.yml selects: what a first-time user runs.
MELTANO_STREAMS = {
    rule.split(".")[0]
    for plugin in yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())["plugins"]["extractors"]
    for rule in plugin.get("select", [])
}
DETAIL = (
    "Skipping deselected stream",
    "as child stream",
    "METRIC",
    "Starting incremental sync",
    "assumed to be unsorted",
)
SUMMARY_ROW = re.compile(
    r"\|\s{3}(?P<stream>\w+)\s+(?P<division>\d*)\s+(?P<rows>[\d,]+)\s+(?P<calls>[\d,]+)\s+"
    r"(?P<seconds>[\d.]+)\s+(?P<status>[a-z: ]+?)\s*$"
)
API_DIVISION = re.compile(r"^/api/v1/(?:beta/)?(\d+)/")


def info_lines(run: TapRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if "| INFO " in line]


def summary(run: TapRun) -> dict[tuple[str, int | None], dict[str, str]]:
    rows = {}
    for line in run.stderr.splitlines():
        match = SUMMARY_ROW.search(line)
        if match and match["stream"] != "stream":
            division = int(match["division"]) if match["division"] else None
            rows[(match["stream"], division)] = match.groupdict()
    return rows


def number(text: str) -> int:
    return int(text.replace(",", ""))


def calls_per_division(fake: FakeExact) -> Counter[int]:
    counts: Counter[int] = Counter()
    for _, path, _, status in fake.calls:
        match = API_DIVISION.match(path)
        if match and status:
            counts[int(match[1])] += 1
    return counts


def test_info_shows_each_stream_and_division_and_a_summary_of_the_run(tmp_path: Path):
    divisions = (1001, 1002)
    with FakeExact(divisions=divisions, default_rows=40, minutely_limit=10**6) as fake:
        run = run_tap(
            tmp_path, fake_config(fake, divisions=list(divisions)), streams=MELTANO_STREAMS
        )
        assert run.returncode == 0, run.stderr[-3000:]
        lines = info_lines(run)
        assert "assumed to be unsorted" not in run.stderr  # a WARNING once per division
        # Was 514 lines for 12 streams in 2 divisions, 90 % of them SDK detail: now a few lines
        # per stream and division (its start, its end, its row in the summary).
        assert not [line for line in lines if any(d in line for d in DETAIL)]
        assert len(lines) < 20 + 4 * len(MELTANO_STREAMS) * len(divisions), "\n".join(lines)

        table = summary(run)
        written = Counter(
            # current/Me has no division in its URL: its one row names its own.
            (m["stream"], None if m["stream"] == "me" else m["record"].get("division"))
            for m in run.messages
            if m["type"] == "RECORD"
        )
        assert set(written) == {(s, d) for s in MELTANO_STREAMS - {"me"} for d in divisions} | {
            ("me", None)
        }
        for (stream, division), count in written.items():
            row = table[(stream, division)]
            assert number(row["rows"]) == count, (stream, division)
            assert row["status"] == "done"
            where = stream if division is None else f"{stream}, division {division}"
            end_line = f"{where}: {count:,} row"
            assert any(end_line in line for line in lines), end_line
        # Every call Exact answered is in the table, or among the run's own calls.
        answered = [c[1] for c in fake.calls if c[1].startswith("/api/v1/") and c[3]]
        total = len(answered)
        in_streams = sum(number(row["calls"]) for row in table.values())
        assert 0 < in_streams <= total
        # The calls outside the streams are of the kinds the line names, counted as Exact saw
        # them: those kinds' calls less the ones of the streams that read the same endpoints.
        named = ("/current/Me", "/system/Divisions", "/SyncTimestamp")
        of_named_kinds = [path for path in answered if any(name in path for name in named)]
        by_streams = sum(
            number(row["calls"])
            for (stream, _), row in table.items()
            if stream in ("me", "system_divisions")
        )
        outside = len(of_named_kinds) - by_streams
        assert total - in_streams == outside > 0
        assert (
            f"Calls: {total:,} in all; {outside:,} of them outside the streams (the login's "
            "current/Me, the division list, SyncTimestamp for start_date, each only when needed)"
        ) in run.stderr
        # The calls left per division are Exact's own count.
        used = calls_per_division(fake)
        left = "; ".join(f"division {d}: {5000 - used[d]:,}" for d in divisions)
        assert f"Calls left today: {left}" in run.stderr


def test_a_long_read_reports_progress_every_ten_pages(tmp_path: Path):
    with FakeExact(rows={"accounts": 21_500}, minutely_limit=10**6) as fake:
        run = run_tap(tmp_path, fake_config(fake), streams={"accounts"})
        assert run.returncode == 0, run.stderr[-3000:]
        progress = [line for line in info_lines(run) if "rows so far" in line]
        assert len(progress) == 2, run.stderr[-3000:]
        assert "accounts, division 1001: 10,000 rows so far (10 pages, 10 calls," in progress[0]
        assert "accounts, division 1001: 20,000 rows so far (20 pages, 20 calls," in progress[1]
        assert re.search(r"rows/s\); 4,9\d\d calls left today$", progress[1])


def test_the_summary_says_how_each_read_ended(tmp_path: Path):
    with FakeExact(
        divisions=(1001, 1002), rows={"accounts": 3000, "gl_accounts": 5, "items": 5}
    ) as fake:
        fake.forbid(1001, reason=None, path_contains="/Logistics/Items")  # no rights to items
        fake.set_daily_remaining(1002, 27)  # reserve 25: two calls, then the budget is spent
        run = run_tap(
            tmp_path,
            fake_config(fake, divisions=[1001, 1002]),
            streams={"accounts", "gl_accounts", "items"},
        )
        table = summary(run)
        assert table[("accounts", 1001)]["status"] == "done"
        assert table[("items", 1001)]["status"] == "refused"
        assert table[("accounts", 1002)]["status"] == "stopped: daily budget"
        assert number(table[("accounts", 1002)]["rows"]) == 2000
        assert table[("gl_accounts", 1002)]["status"] == "skipped: daily budget"
        assert "Calls left today: division 1001: " in run.stderr
        assert "division 1002: 25" in run.stderr


def test_the_sdk_detail_is_there_at_debug(tmp_path: Path):
    with FakeExact(rows={"gl_accounts": 5}) as fake:
        run = run_tap(
            tmp_path,
            fake_config(fake),
            streams={"gl_accounts"},
            env={"TAP_EXACTONLINE_LOGLEVEL": "debug"},
        )
        assert run.returncode == 0, run.stderr[-3000:]
        for detail in ("Skipping deselected stream", "METRIC"):
            shown = [line for line in run.stderr.splitlines() if detail in line]
            assert shown and all("| DEBUG " in line for line in shown), detail
