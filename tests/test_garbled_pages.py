"""A short or garbled read fails loudly and moves no bookmark (issue 11 §2).

What a proxy, a cache or a cut connection hands back instead of Exact's page: an empty page in
the middle of a read, the previous page again, `{}`, a list, a row without its key, a redirect
to another host, links that lead back, an answer one byte at a time. The fake server replays
them in the middle of real reads; the real CLI must retry them like a 5xx, then either read
every row or stop with one line, with no bookmark past a row it did not read, and never send
ACTIVATE_VERSION after a suspicious read.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from fake_exact import FakeExact
from tests.tap_runner import TapRun, fake_config, run_tap

DIVISION = 1001
STANDARD = "journals"  # financial/Journals: 60-row pages, incremental on Modified, key ID
STANDARD_PATH = "/financial/Journals"
SYNC = "transaction_lines"  # sync/Financial/TransactionLines: 1,000-row pages, Timestamps
SYNC_PATH = "/sync/Financial/TransactionLines"
ROWS = {STANDARD: 130, SYNC: 2500, "gl_accounts": 30}


@pytest.fixture
def fake():
    with FakeExact(rows=ROWS, minutely_limit=10**6, daily_limit=10**6) as server:
        yield server


def config(fake: FakeExact, **extra: Any) -> dict[str, Any]:
    return fake_config(fake, retry_base_seconds=0.01, max_retries=2, **extra)


def expected_ids(fake: FakeExact, stream: str) -> set[str]:
    return {str(row["ID"]) for row in fake.expected_rows(stream, DIVISION)}


def ids(run: TapRun, stream: str) -> list[str]:
    return [str(record["id"]) for record in run.records(stream)]


def assert_one_clear_line(run: TapRun, *words: str) -> None:
    assert run.returncode != 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if all(w in line for w in words)]
    assert lines, f"no line with {words}:\n{run.stderr[-3000:]}"


def modified_bookmark(run: TapRun, stream: str) -> str | None:
    try:
        return run.bookmark(stream, DIVISION)
    except KeyError:
        return None


def journal_row(number: int) -> dict[str, Any]:
    return {"ID": str(uuid.UUID(int=number)), "Modified": "/Date(1700000000000)/"}


def page(rows: list[dict[str, Any]], next_link: str | None = None) -> str:
    body: dict[str, Any] = {"results": rows}
    if next_link:
        body["__next"] = next_link
    return json.dumps({"d": body})


# --- pages that would end a read early --------------------------------------------------------


def test_an_empty_page_in_the_middle_of_a_read_is_asked_for_again(fake: FakeExact, tmp_path):
    # 130 rows come in pages of 60, 60 and 10; the second comes back empty once.
    fake.replay_next(STANDARD_PATH, page([]), query_contains="skiptoken")
    run = run_tap(tmp_path, config(fake), streams={STANDARD})
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(ids(run, STANDARD)) == sorted(expected_ids(fake, STANDARD))
    newest = max(r["modified"] for r in run.records(STANDARD))
    assert modified_bookmark(run, STANDARD) == newest


def test_a_stale_copy_of_the_previous_sync_page_is_not_taken(fake: FakeExact, tmp_path):
    # A cache hands back page 1 (rows and all) when page 2 is asked for.
    token = fake.grant_access_token()
    first_page = requests.get(
        f"{fake.base_url}/api/v1/{DIVISION}{SYNC_PATH}?$filter=Timestamp gt 1&$select=ID,Timestamp",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=30,
    ).text
    fake.replay_next(SYNC_PATH, first_page, query_contains="skiptoken")
    run = run_tap(tmp_path, config(fake), streams={SYNC})
    assert run.returncode == 0, run.stderr[-3000:]
    got = ids(run, SYNC)
    assert len(got) == len(set(got)) == 2500
    assert set(got) == expected_ids(fake, SYNC)


NOT_PAGES = pytest.mark.parametrize(
    "body",
    [
        "{}",
        "[]",
        "null",
        '{"d": null}',
        '{"d": {"results": {}}}',
        '{"d": {"results": [{"ID": null, "Timestamp": "99"}]}}',
    ],
    ids=["empty-object", "list", "null", "d-null", "results-not-a-list", "row-without-key"],
)


@NOT_PAGES
def test_an_answer_that_is_not_a_page_is_asked_for_again(
    fake: FakeExact, tmp_path: Path, body: str
):
    fake.replay_next("/sync/Financial/GLAccounts", body)
    run = run_tap(tmp_path, config(fake), streams={"gl_accounts"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(ids(run, "gl_accounts")) == expected_ids(fake, "gl_accounts")


@NOT_PAGES
def test_an_answer_that_is_never_a_page_fails_in_one_line_without_a_bookmark(
    fake: FakeExact, tmp_path: Path, body: str
):
    fake.replay_next("/sync/Financial/GLAccounts", body, times=3)
    run = run_tap(tmp_path, config(fake), streams={"gl_accounts"})
    assert_one_clear_line(run, "gl_accounts (division 1001)", "gave up after 3 attempts")
    assert run.records("gl_accounts") == []
    assert modified_bookmark(run, "gl_accounts") is None


def test_a_redirect_to_another_host_is_not_followed(fake: FakeExact, tmp_path: Path):
    with FakeExact() as elsewhere:
        location = f"{elsewhere.base_url}/api/v1/{DIVISION}/financial/Journals"
        fake.replay_next(STANDARD_PATH, "", status=302, headers={"Location": location})
        run = run_tap(tmp_path, config(fake), streams={STANDARD})
        assert run.returncode == 0, run.stderr[-3000:]
        assert elsewhere.calls == []  # nothing, and certainly no bearer token, went there
        assert "redirect" in run.stderr
        assert set(ids(run, STANDARD)) == expected_ids(fake, STANDARD)


# --- a resync marks rows deleted only after a read that can be believed ------------------------


def activate_versions(run: TapRun, stream: str) -> list[dict[str, Any]]:
    return [m for m in run.messages if m["type"] == "ACTIVATE_VERSION" and m["stream"] == stream]


def test_a_resync_answered_with_garbage_marks_nothing_deleted(fake: FakeExact, tmp_path: Path):
    fake.replay_next("/sync/Financial/GLAccounts", "{}", times=3)
    run = run_tap(tmp_path, config(fake, resync_streams=["gl_accounts"]), streams={"gl_accounts"})
    assert_one_clear_line(run, "gl_accounts (division 1001)")
    assert activate_versions(run, "gl_accounts") == []


def test_a_resync_believes_an_empty_table_only_when_exact_says_so_twice(tmp_path: Path):
    with FakeExact(rows={"gl_accounts": 0}, minutely_limit=10**6) as fake:
        run = run_tap(
            tmp_path, config(fake, resync_streams=["gl_accounts"]), streams={"gl_accounts"}
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert len(activate_versions(run, "gl_accounts")) == 1
        assert fake.data_calls("/sync/Financial/GLAccounts") == 2


def test_a_resync_whose_first_answer_is_wrongly_empty_reads_the_rows(
    fake: FakeExact, tmp_path: Path
):
    fake.replay_next("/sync/Financial/GLAccounts", page([]))
    run = run_tap(tmp_path, config(fake, resync_streams=["gl_accounts"]), streams={"gl_accounts"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(ids(run, "gl_accounts")) == expected_ids(fake, "gl_accounts")
    [activate] = activate_versions(run, "gl_accounts")
    last_record = max(i for i, m in enumerate(run.messages) if m["type"] == "RECORD")
    assert run.messages.index(activate) > last_record


# --- reads that would never end ---------------------------------------------------------------


def test_next_links_that_lead_back_end_the_run_in_bounded_calls(fake: FakeExact, tmp_path):
    base = f"{fake.base_url}/api/v1/{DIVISION}{STANDARD_PATH}"
    # Page 2 links to X, X links back to page 2: A -> B -> A, for ever.
    back = f"{base}?$skiptoken=guid'{uuid.UUID(int=1)}'&loop=b"
    ahead = f"{base}?$skiptoken=guid'{uuid.UUID(int=2)}'&loop=x"
    fake.replay_next(
        STANDARD_PATH,
        page([journal_row(n) for n in range(100, 160)], ahead),
        query_contains="loop=b",
        times=20,
    )
    fake.replay_next(
        STANDARD_PATH,
        page([journal_row(n) for n in range(200, 260)], back),
        query_contains="loop=x",
        times=20,
    )
    fake.replay_next(STANDARD_PATH, page([journal_row(n) for n in range(1, 61)], back), times=1)
    started = time.monotonic()
    run = run_tap(tmp_path, config(fake), streams={STANDARD}, timeout=120)
    assert_one_clear_line(run, "journals (division 1001)", "leads back to a page already read")
    assert time.monotonic() - started < 60
    assert fake.data_calls(STANDARD_PATH) <= 10
    assert modified_bookmark(run, STANDARD) is None  # the read was not complete


def test_pages_that_repeat_under_new_links_end_the_run(fake: FakeExact, tmp_path: Path):
    base = f"{fake.base_url}/api/v1/{DIVISION}{STANDARD_PATH}"
    rows = [journal_row(n) for n in range(1, 61)]
    fake.replay_next(STANDARD_PATH, page(rows, f"{base}?$skiptoken=guid'{uuid.UUID(int=60)}'"))
    for number in range(20):  # the same rows again, each time under a link never seen before
        link = f"{base}?$skiptoken=guid'{uuid.UUID(int=60)}'&again={number + 1}"
        fake.replay_next(STANDARD_PATH, page(rows, link), query_contains="skiptoken")
    run = run_tap(tmp_path, config(fake), streams={STANDARD}, timeout=120)
    assert_one_clear_line(run, "journals (division 1001)", "the same rows as a page already read")
    assert sorted(ids(run, STANDARD)) == sorted(str(r["ID"]) for r in rows)  # no row twice
    assert fake.data_calls(STANDARD_PATH) <= 5


def test_a_page_sent_one_byte_at_a_time_ends_in_bounded_time(fake: FakeExact, tmp_path: Path):
    fake.trickle_next(SYNC_PATH, seconds_per_byte=0.2, n=10)
    started = time.monotonic()
    run = run_tap(tmp_path, config(fake, request_timeout=2), streams={SYNC}, timeout=120)
    assert_one_clear_line(run, "transaction_lines (division 1001)", "no complete answer within 2 s")
    assert time.monotonic() - started < 90  # a whole page at this pace takes hours


# --- bookmarks in the future ------------------------------------------------------------------


def test_a_bookmark_in_the_future_is_reported_and_the_rows_are_read(fake: FakeExact, tmp_path):
    state = {
        "exactonline_state_version": 2,
        "bookmarks": {
            STANDARD: {
                "partitions": [
                    {
                        "context": {"division": DIVISION},
                        "replication_key": "modified",
                        "replication_key_value": "2099-01-01T00:00:00+00:00",
                    }
                ]
            },
            SYNC: {
                "partitions": [
                    {
                        "context": {"division": DIVISION},
                        "replication_key": "timestamp",
                        "replication_key_value": 2**63 - 2,
                    }
                ]
            },
        },
    }
    run = run_tap(tmp_path, config(fake), streams={STANDARD, SYNC}, state=state)
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in (STANDARD, SYNC):
        warnings = [
            line
            for line in run.stderr.splitlines()
            if f"{stream} (division 1001)" in line and "bookmark" in line and "WARNING" in line
        ]
        assert len(warnings) == 1, run.stderr[-3000:]
        assert set(ids(run, stream)) == expected_ids(fake, stream)
    assert modified_bookmark(run, STANDARD) < "2099"


def test_a_row_modified_in_the_future_does_not_carry_the_bookmark_there(
    fake: FakeExact, tmp_path: Path
):
    future = int(time.mktime((2099, 1, 1, 0, 0, 0, 0, 0, 0))) * 1000
    fake.mutate(STANDARD, DIVISION, update=1, at_ms=future)
    run = run_tap(tmp_path, config(fake), streams={STANDARD})
    assert run.returncode == 0, run.stderr[-3000:]
    assert any("in the future" in line for line in run.stderr.splitlines())
    assert modified_bookmark(run, STANDARD) < "2099"
