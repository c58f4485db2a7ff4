"""Tests of the fake Exact Online server itself, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from fake_exact import FakeExact
from fake_exact.clock import to_wire
from tests.conftest import JSON, authorized

ROOT = Path(__file__).resolve().parents[1]
DIV = 1001
TL = "/api/v1/1001/sync/Financial/TransactionLines"
ASSETS = "/api/v1/1001/assets/Assets"
DAILY_KEYS = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
MINUTELY_KEYS = {
    "X-RateLimit-Minutely-Limit",
    "X-RateLimit-Minutely-Remaining",
    "X-RateLimit-Minutely-Reset",
}


@pytest.fixture
def fake() -> Iterator[FakeExact]:
    with FakeExact(
        divisions=(DIV, 1002), rows={"transaction_lines": 2500}, default_rows=130
    ) as server:
        yield server


def refresh(fake: FakeExact, token: str, **extra: str) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        **extra,
    }
    return requests.post(f"{fake.base_url}/api/oauth2/token", data=form, timeout=10)


def get(session: requests.Session, fake: FakeExact, path: str, **params: str) -> requests.Response:
    return session.get(fake.base_url + path, params=params, timeout=30)


def read_all(session: requests.Session, fake: FakeExact, path: str, **params: str) -> list[dict]:
    """Follow __next (absolute URLs) until it is absent; return every row."""
    response = get(session, fake, path, **params)
    rows: list[dict] = []
    while True:
        assert response.status_code == 200, response.text
        d = response.json()["d"]
        rows.extend(d["results"])
        if "__next" not in d:
            return rows
        assert d["__next"].startswith(fake.base_url + "/api/v1/")
        response = session.get(d["__next"], timeout=30)


def assert_exact_error(response: requests.Response, status: int, text: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == ""
    assert body["error"]["message"]["lang"] == ""
    assert text in body["error"]["message"]["value"]


def strip(row: dict) -> dict:
    """A served row without __metadata and navigation links (what expected_rows returns)."""
    return {k: v for k, v in row.items() if not (k.startswith("__") or isinstance(v, dict))}


def served(row: dict) -> dict:
    """A canonical row (true instants) as Exact serves it: dates on its Amsterdam clock."""
    return {
        k: to_wire(v) if isinstance(v, str) and v.startswith("/Date(") else v
        for k, v in row.items()
    }


# --- OAuth ---------------------------------------------------------------------------------------


def test_refresh_rotates_and_old_token_is_refused(fake: FakeExact) -> None:
    first = refresh(fake, fake.initial_refresh_token)
    assert first.status_code == 200
    body = first.json()
    assert body["expires_in"] == "600"  # a JSON string, like Exact's
    assert body["token_type"].lower() == "bearer"
    assert "!" in body["refresh_token"]
    assert body["refresh_token"] != fake.initial_refresh_token

    fake.advance_clock(600)
    reused = refresh(fake, fake.initial_refresh_token)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert fake.initial_refresh_token not in reused.text

    second = refresh(fake, body["refresh_token"])
    assert second.status_code == 200
    assert fake.refresh_count == 2
    assert fake.token_calls == 3
    secrets = fake.issued_secrets()
    for token in (body["access_token"], body["refresh_token"], second.json()["refresh_token"]):
        assert token in secrets
    assert fake.client_secret in secrets


def test_wrong_client_is_invalid_client(fake: FakeExact) -> None:
    response = refresh(fake, fake.initial_refresh_token, client_secret="nope")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client"}  # Exact sends no description
    # The refresh token was not consumed: with the right secret it still works.
    assert refresh(fake, fake.initial_refresh_token).status_code == 200


def test_refresh_within_570_seconds_is_refused_without_consuming(fake: FakeExact) -> None:
    tokens = refresh(fake, fake.initial_refresh_token).json()
    fake.advance_clock(500)
    early = refresh(fake, tokens["refresh_token"])
    assert early.status_code == 400
    assert early.json() == {
        "error": "access_denied",
        "error_description": "Rate limit exceeded: access_token not expired",
    }
    assert early.headers["Reason"] == (
        "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired"
    )
    fake.advance_clock(100)
    later = refresh(fake, tokens["refresh_token"])  # the refused call did not burn it
    assert later.status_code == 200


def test_old_access_token_survives_rotation_until_expiry(fake: FakeExact) -> None:
    tokens = refresh(fake, fake.initial_refresh_token).json()
    headers = {**JSON, "Authorization": f"Bearer {tokens['access_token']}"}
    fake.advance_clock(580)
    assert refresh(fake, tokens["refresh_token"]).status_code == 200
    url = fake.base_url + TL
    assert requests.get(url, headers=headers, params={"$top": "1"}, timeout=10).status_code == 200
    fake.advance_clock(30)  # 610 s after issue
    expired = requests.get(url, headers=headers, timeout=10)
    assert_exact_error(expired, 401, "Access token is expired or invalid.")


def test_missing_unknown_and_expired_tokens_get_401(fake: FakeExact) -> None:
    url = fake.base_url + TL
    assert_exact_error(requests.get(url, headers=JSON, timeout=10), 401, "expired or invalid")
    bad = {**JSON, "Authorization": "Bearer nonsense"}
    assert_exact_error(requests.get(url, headers=bad, timeout=10), 401, "expired or invalid")
    good = {**JSON, "Authorization": f"Bearer {fake.grant_access_token()}"}
    assert requests.get(url, headers=good, params={"$top": "1"}, timeout=10).status_code == 200
    fake.expire_access_tokens()
    assert requests.get(url, headers=good, timeout=10).status_code == 401


def test_authorization_code_flow(fake: FakeExact) -> None:
    redirect = "http://127.0.0.1:9/callback"
    response = requests.get(
        f"{fake.base_url}/api/oauth2/auth",
        params={
            "client_id": fake.client_id,
            "redirect_uri": redirect,
            "response_type": "code",
            "state": "xyz",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(redirect + "?") and "%21" in location
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["xyz"]
    form = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": redirect,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
    }
    url = f"{fake.base_url}/api/oauth2/token"
    assert requests.post(url, data=form, timeout=10).status_code == 200
    reused = requests.post(url, data=form, timeout=10)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    code = fake.issue_authorization_code(redirect)
    fake.advance_clock(181)
    expired = requests.post(url, data={**form, "code": code}, timeout=10)
    assert expired.json()["error"] == "invalid_grant"


# --- sync endpoints ------------------------------------------------------------------------------


def test_sync_paging_returns_every_row_once_in_timestamp_order(
    fake: FakeExact, session: requests.Session
) -> None:
    first = get(session, fake, TL, **{"$filter": "Timestamp gt 1"})
    assert len(first.json()["d"]["results"]) == 1000
    repeated = parse_qs(urlsplit(first.json()["d"]["__next"]).query)
    assert repeated["$filter"] == ["Timestamp gt 1"]
    assert repeated["$skiptoken"][0].endswith("L")

    rows = read_all(session, fake, TL, **{"$filter": "Timestamp gt 1"})
    assert len(rows) == 2500
    assert len({row["ID"] for row in rows}) == 2500
    stamps = [int(row["Timestamp"]) for row in rows]
    assert stamps == sorted(stamps) and len(set(stamps)) == 2500
    kinds = {type(row["Timestamp"]) for row in rows}
    assert kinds == {str, int}  # Int64 mostly as a JSON string, sometimes a number
    assert all(row["__metadata"]["uri"].endswith(f"(guid'{row['ID']}')") for row in rows)
    assert all("__deferred" in row["Attachments"] for row in rows)
    assert {row["LineNumber"] for row in rows} >= {0, 1, 2, 3}
    assert [strip(row) for row in rows] == [
        served(row) for row in fake.expected_rows("transaction_lines", DIV)
    ]


def test_sync_filter_returns_only_newer_rows(fake: FakeExact, session: requests.Session) -> None:
    everything = read_all(session, fake, TL)
    cut = int(everything[1199]["Timestamp"])
    newer = read_all(session, fake, TL, **{"$filter": f"Timestamp gt {cut}L"})
    assert [row["ID"] for row in newer] == [row["ID"] for row in everything[1200:]]
    assert read_all(session, fake, TL, **{"$filter": f"Timestamp gt {cut}"}) == newer


def test_mutate_gives_newer_timestamps(fake: FakeExact, session: requests.Session) -> None:
    before = max(int(r["Timestamp"]) for r in fake.expected_rows("transaction_lines", DIV))
    # Transaction lines change by entry (four lines each): header and lines together.
    changed = fake.mutate("transaction_lines", DIV, update=3, insert=2)
    assert len(changed) == 5 * 4
    newer = read_all(session, fake, TL, **{"$filter": f"Timestamp gt {before}L"})
    assert [strip(row) for row in newer] == [served(row) for row in changed]
    assert all(int(row["Timestamp"]) > before for row in newer)
    assert fake.row_count("transaction_lines", DIV) == 2500 + 2 * 4
    removed = fake.delete("transaction_lines", DIV, 2)
    assert len(removed) == 2 * 4 and fake.row_count("transaction_lines", DIV) == 2500
    # (and the sync rows of the sales invoices behind them: docs/fake-books.md)
    logged = {d["EntityKey"] for d in fake.deletions if d["stream"] == "transaction_lines"}
    assert logged == set(removed)
    assert all(row["ID"] not in removed for row in read_all(session, fake, TL))


def test_divisions_have_their_own_rows(fake: FakeExact, session: requests.Session) -> None:
    other = get(session, fake, "/api/v1/1002/sync/Financial/TransactionLines", **{"$top": "5"})
    mine = get(session, fake, TL, **{"$top": "5"})
    assert {r["Division"] for r in other.json()["d"]["results"]} == {1002}
    assert {r["ID"] for r in other.json()["d"]["results"]}.isdisjoint(
        r["ID"] for r in mine.json()["d"]["results"]
    )
    assert get(session, fake, "/api/v1/999/sync/Financial/TransactionLines").status_code == 403


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "text"),
    [
        (TL, {"$filter": "Modified gt datetime'2024-01-01T00:00:00'"}, "not supported"),
        (TL, {"$filter": "Timestamp ge 5"}, "not supported for this resource"),
        (TL, {"$select": "ID,Bogus"}, "is not a valid property"),
        ("/api/v1/1001/sync/CRM/Contacts", {"$select": "*"}, "not supported"),
        ("/api/v1/1001/bulk/Cashflow/Payments", {}, "Please add a $select or a $top=1"),
        (ASSETS, {"$filter": "Code eq 'A'"}, "Filtering on these fields is not supported: Code"),
        (ASSETS, {"$filter": "Modified gt 2024-01-01"}, "literal"),
        (
            "/api/v1/1001/read/logistics/ItemExtraField",
            {"modified": "datetime'2020-01-01'"},
            "itemId",
        ),
    ],
)
def test_invalid_options_give_exact_400(
    fake: FakeExact, session: requests.Session, path: str, params: dict, text: str
) -> None:
    assert_exact_error(get(session, fake, path, **params), 400, text)


def test_unknown_path_is_404(fake: FakeExact, session: requests.Session) -> None:
    assert_exact_error(get(session, fake, "/api/v1/1001/crm/Nope"), 404, "")


def test_select_returns_only_selected_fields(fake: FakeExact, session: requests.Session) -> None:
    response = get(session, fake, TL, **{"$select": "ID,Timestamp,AmountDC", "$top": "3"})
    rows = response.json()["d"]["results"]
    assert len(rows) == 3 and "__next" not in response.json()["d"]
    assert all(set(r) == {"__metadata", "Attachments", "ID", "Timestamp", "AmountDC"} for r in rows)
    # `%24select` in the raw URL is the same option as `$select`
    raw = session.get(f"{fake.base_url}{TL}?%24select=ID&%24top=1", timeout=10)
    assert set(raw.json()["d"]["results"][0]) == {"__metadata", "Attachments", "ID"}


# --- standard endpoints --------------------------------------------------------------------------


def test_standard_paging_60_per_page(fake: FakeExact, session: requests.Session) -> None:
    sizes = []
    response = get(session, fake, ASSETS, **{"$select": "ID,Code,Modified"})
    while True:
        d = response.json()["d"]
        sizes.append(len(d["results"]))
        if "__next" not in d:
            break
        repeated = parse_qs(urlsplit(d["__next"]).query)
        assert repeated["$skiptoken"][0].startswith("guid'")
        assert repeated["$select"] == ["ID,Code,Modified"]
        response = session.get(d["__next"], timeout=10)
    assert sizes == [60, 60, 10]
    rows = read_all(session, fake, ASSETS)
    assert [strip(r) for r in rows] == [served(r) for r in fake.expected_rows("assets", DIV)]


def test_beta_and_bulk_urls(fake: FakeExact, session: requests.Session) -> None:
    beta = read_all(session, fake, "/api/v1/beta/1001/cashflow/AllocationRule")
    assert len(beta) == 130
    bulk = read_all(session, fake, "/api/v1/1001/bulk/Cashflow/Payments", **{"$select": "ID"})
    assert len(bulk) == 130


def test_modified_filter_after_mutate(fake: FakeExact, session: requests.Session) -> None:
    since = {"$filter": "Modified ge datetime'2024-01-01T00:00:00'"}
    assert read_all(session, fake, ASSETS, **since) == []
    changed = fake.mutate("assets", DIV, update=2, insert=1)
    rows = read_all(session, fake, ASSETS, **since)
    assert [strip(r) for r in rows] == [served(r) for r in changed]
    window = {
        "$filter": "Modified gt datetime'2021-01-01T01:00:37' and "
        "Modified le datetime'2021-01-01T01:03:05.000'"
    }
    # base rows are 37 s apart from 2021-01-01T00:00Z (01:00 on Exact's clock); rows 0 and 1
    # were mutated away
    assert len(read_all(session, fake, ASSETS, **window)) == 4


def test_item_extra_fields_follow_items(fake: FakeExact, session: requests.Session) -> None:
    items = get(session, fake, "/api/v1/1001/sync/Logistics/Items", **{"$select": "ID"})
    counts = []
    for item in items.json()["d"]["results"][:12]:
        response = get(
            session,
            fake,
            "/api/v1/1001/read/logistics/ItemExtraField",
            itemId=f"guid'{item['ID']}'",
            modified="datetime'1900-01-01T00:00:00'",
        )
        rows = response.json()["d"]["results"]
        assert all(r["ItemID"] == item["ID"] for r in rows)
        counts.append(len(rows))
    assert max(counts) <= 3 and len(set(counts)) > 1


# --- rate limits, faults, headers ----------------------------------------------------------------


def test_minutely_limit_gives_429_with_only_minutely_headers() -> None:
    with FakeExact(minutely_limit=3, minute_window_seconds=3600, default_rows=5) as fake:
        s = authorized(fake)
        ok = [get(s, fake, TL) for _ in range(3)]
        assert [r.status_code for r in ok] == [200, 200, 200]
        assert [r.headers["X-RateLimit-Minutely-Remaining"] for r in ok] == ["2", "1", "0"]
        assert ok[0].headers["X-RateLimit-Remaining"] == "4999"
        reset = int(ok[0].headers["X-RateLimit-Minutely-Reset"])
        assert reset % 3_600_000 == 0 and reset > time.time() * 1000
        assert int(ok[0].headers["X-RateLimit-Reset"]) % 86_400_000 == 0
        refused = get(s, fake, TL)
        assert refused.status_code == 429
        assert refused.content == b""
        assert set(refused.headers) >= MINUTELY_KEYS
        assert not DAILY_KEYS & set(refused.headers)
        me = get(s, fake, "/api/v1/current/Me")  # no division: not counted, no headers
        assert me.status_code == 200 and "X-RateLimit-Minutely-Remaining" not in me.headers


def test_daily_limit_gives_429_with_only_daily_headers(
    fake: FakeExact, session: requests.Session
) -> None:
    fake.set_daily_remaining(DIV, 1)
    assert get(session, fake, TL, **{"$top": "1"}).headers["X-RateLimit-Remaining"] == "0"
    refused = get(session, fake, TL)
    assert refused.status_code == 429 and refused.content == b""
    assert set(refused.headers) >= DAILY_KEYS and not MINUTELY_KEYS & set(refused.headers)
    assert get(session, fake, "/api/v1/1002/sync/Financial/TransactionLines").status_code == 200


def test_injected_503_html_then_recovery(fake: FakeExact, session: requests.Session) -> None:
    fake.fail_next(1, status=503, body="html", path_contains="TransactionLines")
    assert get(session, fake, ASSETS, **{"$top": "1"}).status_code == 200  # does not match
    failed = get(session, fake, TL)
    assert failed.status_code == 503
    assert failed.headers["Content-Type"].startswith("text/html")
    assert "<html" in failed.text
    assert get(session, fake, TL, **{"$top": "1"}).status_code == 200


def test_injected_rate_limit_without_headers(fake: FakeExact, session: requests.Session) -> None:
    fake.rate_limit_next(1, headers="none")
    refused = get(session, fake, TL)
    assert refused.status_code == 429
    assert not any(h.startswith("X-RateLimit") for h in refused.headers)
    fake.rate_limit_next(1)
    assert set(get(session, fake, TL).headers) >= MINUTELY_KEYS


def test_drop_next_closes_without_response(fake: FakeExact, session: requests.Session) -> None:
    fake.drop_next()
    with pytest.raises(requests.ConnectionError):
        get(session, fake, TL)
    assert get(session, fake, TL, **{"$top": "1"}).status_code == 200
    assert fake.calls[-2][3] == 0


def test_missing_accept_header_gets_atom(fake: FakeExact) -> None:
    token = fake.grant_access_token()
    response = requests.get(
        fake.base_url + TL, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    assert response.text.startswith("<?xml")
    assert fake.requests_without_accept == 1


def test_current_me_shape(fake: FakeExact, session: requests.Session) -> None:
    response = get(session, fake, "/api/v1/current/Me", **{"$select": "CurrentDivision,UserID"})
    assert response.status_code == 200
    results = response.json()["d"]["results"]
    assert isinstance(results, list) and len(results) == 1
    assert results[0]["CurrentDivision"] == DIV
    assert "__next" not in response.json()["d"]
    assert not any(h.startswith("X-RateLimit") for h in response.headers)


def test_call_log_and_concurrency(fake: FakeExact, session: requests.Session) -> None:
    for _ in range(3):
        get(session, fake, ASSETS, **{"$top": "1"})
    assert fake.data_calls("assets/Assets") == 3
    assert fake.data_calls() == 3
    assert fake.max_concurrent_requests == 1
    assert fake.calls[0][:2] == ("GET", ASSETS) and fake.calls[0][3] == 200


def test_same_seed_same_data() -> None:
    one = FakeExact(default_rows=20)
    two = FakeExact(default_rows=20)
    for stream in ("transaction_lines", "assets", "items"):
        assert list(one.expected_rows(stream)) == list(two.expected_rows(stream))
    assert list(FakeExact(default_rows=20, seed=2).expected_rows("assets")) != list(
        one.expected_rows("assets")
    )


def test_spread_dates_give_each_row_its_own_date_times_over_ten_years() -> None:
    """The benchmark's realistic rows: date-times the books do not set (Created here) of their
    own per row, over ten years; Modified as without the option (incremental reads rely on its
    order); Date and DueDate stay the books' (one date per entry)."""
    select = {"$select": "ID,Created,Date,DueDate,Modified"}
    with FakeExact(rows={"transaction_lines": 2000}) as narrow:
        narrow_session = authorized(narrow)
        narrow_rows = read_all(narrow_session, narrow, TL, **select)
    with FakeExact(rows={"transaction_lines": 2000}, spread_dates=True) as fake:
        s = authorized(fake)
        rows = read_all(s, fake, TL, **select)
        assert [strip(row) for row in rows] == [
            served({k: row[k] for k in ("ID", "Created", "Date", "DueDate", "Modified")})
            for row in fake.expected_rows("transaction_lines")
        ]
    assert [r["Modified"] for r in rows] == [r["Modified"] for r in narrow_rows]
    assert [(r["Date"], r["DueDate"]) for r in rows] == [
        (r["Date"], r["DueDate"]) for r in narrow_rows
    ]
    year_ms = 365 * 86_400_000
    wire_values = [r["Created"] for r in rows if r["Created"] is not None]
    assert all(v[6:-2].isdigit() for v in wire_values)  # on Exact's clock, from 2016
    values = [int(v[6:-2]) for v in wire_values]
    assert len(values) > 0.85 * len(rows)
    assert len(set(values)) > 0.9 * len(values)  # not one of 251 repeating values
    assert max(values) - min(values) > 9.9 * year_ms
    assert sum(value % 86_400_000 == 0 for value in values) < 0.01 * len(values)  # instants


# --- speed and CLI -------------------------------------------------------------------------------


def test_thousand_row_transaction_lines_page_is_fast() -> None:
    with FakeExact(rows={"transaction_lines": 5000}) as fake:
        s = authorized(fake)
        get(s, fake, TL)  # warm the per-stream caches
        spec = fake.data.spec("transaction_lines")
        table = fake.data.table(spec, DIV)
        select = tuple(spec.fields)
        started = time.perf_counter()
        for _ in range(5):
            rows = table.rows_json(table.sync_indices(None, 1000), select, "http://x/api")
            ("[" + ",".join(rows) + "]").encode()
        generate_ms = (time.perf_counter() - started) / 5 * 1000
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            response = get(s, fake, TL, **{"$filter": "Timestamp gt 1"})
            _ = response.content
            timings.append((time.perf_counter() - started) * 1000)
        assert len(response.json()["d"]["results"]) == 1000
        print(f"\n1,000-row page: generate {generate_ms:.1f} ms, HTTP GET {min(timings):.1f} ms")
        assert generate_ms < 200
        assert min(timings) < 400


def test_cli_prints_url_and_serves_stats() -> None:
    command = [
        sys.executable,
        "-m",
        "fake_exact",
        "--port",
        "0",
        "--divisions",
        "1001,1002",
        "--rows",
        "transaction_lines=1200",
        "--default-rows",
        "5",
        "--streams",
        "transaction_lines,me",
        "--window",
        "2",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("FAKE_EXACT_URL=http://127.0.0.1:")
        base = line.split("=", 1)[1]
        tokens = requests.post(
            f"{base}/api/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": "fake-initial-refresh-token",
                "client_id": "fake-client-id",
                "client_secret": "fake-client-secret",
            },
            timeout=10,
        ).json()
        headers = {**JSON, "Authorization": f"Bearer {tokens['access_token']}"}
        page = requests.get(f"{base}{TL.replace('1001', '1002')}", headers=headers, timeout=10)
        assert len(page.json()["d"]["results"]) == 1000
        assert int(page.headers["X-RateLimit-Minutely-Reset"]) % 2000 == 0
        assert requests.get(f"{base}{ASSETS}", headers=headers, timeout=10).status_code == 404
        stats = requests.get(f"{base}/_fake/stats", timeout=10).json()
        assert stats["data_calls"] == 2 and stats["token_calls"] == 1
        assert stats["max_concurrent_requests"] == 1
        assert stats["calls_by_path"]["/api/v1/1002/sync/Financial/TransactionLines"] == 1
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_dates_are_served_and_filtered_on_exacts_clock(
    fake: FakeExact, session: requests.Session
) -> None:
    """Exact's FAQ: `/Date(ms)/` is CET/CEST wall-clock time, and so are `datetime'..'` filters."""
    [first] = get(session, fake, ASSETS, **{"$select": "ID,Modified", "$top": "1"}).json()["d"][
        "results"
    ]
    assert first["Modified"] == "/Date(1609462800000)/"  # 2021-01-01T00:00Z is 01:00 in Amsterdam
    # A date (Amsterdam midnight of 31 March 2024, 2024-03-30T23:00Z) is served as midnight.
    changed = fake.mutate("assets", DIV, update=1, values={"StartDate": "/Date(1711839600000)/"})
    [row] = [r for r in read_all(session, fake, ASSETS) if r["ID"] == changed[0]["ID"]]
    assert row["StartDate"] == "/Date(1711843200000)/"
    # The repeated autumn hour: 02:15 CEST (00:15Z) and then 02:05 CET (01:05Z). On Exact's
    # clock the later row shows the earlier time, and a filter compares clocks, not instants.
    fake.mutate("assets", DIV, update=1, start=1, at_ms=1729988100000)  # 00:15Z
    fake.mutate("assets", DIV, update=1, start=2, at_ms=1729991100000)  # 01:05Z
    after = {
        "$filter": "Modified ge datetime'2024-10-27T02:10:00' and "
        "Modified le datetime'2024-10-28T00:00:00'"
    }
    assert [r["Modified"] for r in read_all(session, fake, ASSETS, **after)] == [
        "/Date(1729995300000)/"  # 02:15 on the clock: the 02:05 CET row is not returned
    ]
