"""Unit tests for the parts with rules: values, names, token choice, budgets, retries."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path
from unittest import mock

import pytest
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_exactonline.auth import ExactAuthenticator
from tap_exactonline.catalog import load_catalog
from tap_exactonline.errors import DailyBudgetSpentError, ExactAPIError, UnauthorizedError
from tap_exactonline.http import ExactHttp, RateLimiter, division_of
from tap_exactonline.odata import RecordPlan, snake_case
from tap_exactonline.token_stores.file import FileTokenStore
from tap_exactonline.tokens import AuthorizationRequiredError, TokenSet, choose_tokens, fingerprint
from tests.conftest import record_of

# --- values and names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AmountDC", "amount_dc"),
        ("ID", "id"),
        ("GLAccount", "gl_account"),
        ("ItemID", "item_id"),
        ("AmountVATBaseFC", "amount_vat_base_fc"),
        ("HID", "hid"),
        ("TimeStampAsBigInt", "time_stamp_as_big_int"),
        ("AgeGroup1Amount", "age_group1_amount"),
        ("Timestamp", "timestamp"),
    ],
)
def test_snake_case(name, expected):
    assert snake_case(name) == expected


def test_record_plan_drops_odata_noise_and_converts_types():
    plan = RecordPlan(
        {
            "ID": "Edm.Guid",
            "Timestamp": "Edm.Int64",
            "Modified": "Edm.DateTime",
            "Code": "Edm.String",
        },
        rename=True,
    )
    row = {
        "__metadata": {"uri": "x", "type": "Exact.Web.Api.Models.Account"},
        "ID": "71b961de-b9f3-49fe-883d-0f46c7e0e89b",
        "Timestamp": "123456789012",
        "Modified": "/Date(0)/",
        "Code": "                 8",
        "BankAccounts": {"__deferred": {"uri": "y"}},
        "NotInCatalog": 1,
    }
    assert record_of(plan, row, 1001) == {
        "id": "71b961de-b9f3-49fe-883d-0f46c7e0e89b",
        "timestamp": 123456789012,
        "modified": "1969-12-31T23:00:00+00:00",  # Exact's clock: Amsterdam, UTC+1
        "code": "                 8",  # padding kept as Exact sends it
        "division": 1001,
    }
    original = RecordPlan({"AmountDC": "Edm.Double", "Division": "Edm.Int32"}, rename=False)
    assert record_of(original, {"AmountDC": 1.5, "Division": 7}, 7) == {
        "AmountDC": 1.5,
        "Division": 7,
    }


def test_no_two_fields_of_a_stream_collide_after_renaming():
    for spec in load_catalog().values():
        columns = [snake_case(name) for name in spec.fields]
        assert len(columns) == len(set(columns)), spec.name


# --- tokens -----------------------------------------------------------------------------------


def _tokens(refresh: str, obtained: float, origin: str, access: str | None = "a") -> TokenSet:
    return TokenSet(refresh, access, obtained + 600, obtained, origin)


def test_the_newest_link_of_the_chain_wins_whatever_the_clocks_say():
    origin = fingerprint("configured")
    older = _tokens("r1", 1000, origin)
    # Obtained by a machine whose clock is behind: an earlier obtained_at, a later link.
    newer = replace(_tokens("r2", 100, origin), lineage=(fingerprint("r1"),))
    assert choose_tokens("configured", [older, newer]) == (newer, "stored")
    assert choose_tokens("configured", [newer, None, older]) == (newer, "stored")


def test_unrelated_copies_go_to_the_most_trusted_one():
    # Copies the chain cannot order (written before links named their predecessors): the
    # first, the shared token store, wins over the state.
    origin = fingerprint("configured")
    store, state = _tokens("r1", 1000, origin), _tokens("r9", 9000, origin)
    assert choose_tokens("configured", [store, state]) == (store, "stored")


def test_newly_configured_refresh_token_wins_over_rotated_ones():
    stored = _tokens("r2", 2000, fingerprint("old-authorization"))
    chosen, source = choose_tokens("new-authorization", [stored])
    assert source == "config"
    assert chosen.refresh_token == "new-authorization"
    assert chosen.access_token is None
    assert chosen.origin == fingerprint("new-authorization")


def test_config_holding_the_latest_rotated_token_is_not_new():
    stored = _tokens("r2", 2000, fingerprint("first"))
    assert choose_tokens("r2", [stored]) == (stored, "stored")


def test_no_token_anywhere_is_a_clear_error():
    with pytest.raises(AuthorizationRequiredError, match="refresh_token"):
        choose_tokens(None, [None])


def test_token_repr_never_shows_tokens():
    tokens = _tokens("REFRESH-SECRET", 1, "o", access="ACCESS-SECRET")
    assert "SECRET" not in repr(tokens)
    assert "SECRET" not in str(tokens)


def test_file_store_is_atomic_and_private(tmp_path: Path):
    store = FileTokenStore(tmp_path / "sub" / "tokens.json")
    assert store.read() is None
    tokens = _tokens("r1", 1000, "o")
    store.write(tokens)
    assert store.read() == tokens
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    store.write(_tokens("r2", 2000, "o"))
    assert store.read().refresh_token == "r2"
    assert [p.name for p in store.path.parent.iterdir()] == ["tokens.json"]  # no temp files left


# --- authenticator against a scripted token endpoint ------------------------------------------


class ScriptedTokenEndpoint:
    def __init__(self, responses: list[tuple[int, dict]]):
        self.responses = responses
        self.posts: list[dict] = []

    def post(self, url, data, headers, timeout, **options):
        self.posts.append(data)
        status, body = self.responses.pop(0)
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        return response


def _authenticator(tokens: TokenSet, endpoint: ScriptedTokenEndpoint, now: list[float], saved):
    auth = ExactAuthenticator(
        token_url="http://127.0.0.1:1/api/oauth2/token",
        client_id="cid",
        client_secret="csecret",
        tokens=tokens,
        store=None,
        on_rotate=saved.append,
        clock=lambda: now[0],
    )
    auth._session = endpoint  # type: ignore[assignment]
    return auth


def test_refreshes_30_seconds_before_expiry_and_saves_the_rotation():
    now = [1000.0]
    endpoint = ScriptedTokenEndpoint(
        [(200, {"access_token": "a2", "refresh_token": "r2", "expires_in": "600"})]
    )
    saved: list[TokenSet] = []
    auth = _authenticator(_tokens("r1", 1000, "o", access="a1"), endpoint, now, saved)
    now[0] = 1000 + 569
    assert auth.access_token() == "a1"  # still more than 30 s left: no refresh
    assert endpoint.posts == []
    now[0] = 1000 + 571
    assert auth.access_token() == "a2"
    assert endpoint.posts[0]["refresh_token"] == "r1"
    assert saved[-1].refresh_token == "r2"
    assert saved[-1].expires_at == pytest.approx(1571 + 600)


def test_too_early_refresh_keeps_the_current_token():
    now = [1000.0]
    endpoint = ScriptedTokenEndpoint(
        [
            (
                400,
                {
                    "error": "access_denied",
                    "error_description": "Rate limit exceeded: access_token not expired",
                },
            )
        ]
    )
    auth = _authenticator(_tokens("r1", 1000, "o", access="a1"), endpoint, now, [])
    now[0] = 1100
    auth.refresh_after_unauthorized("a1")
    assert auth.access_token() == "a1"
    assert auth.tokens.refresh_token == "r1"


def test_invalid_grant_asks_to_authorize_again_without_the_token():
    endpoint = ScriptedTokenEndpoint(
        [(400, {"error": "invalid_grant", "error_description": "Old refresh token used"})]
    )
    auth = _authenticator(TokenSet("SECRET-R", None, 0, 0, "o"), endpoint, [5000.0], [])
    with pytest.raises(AuthorizationRequiredError) as failure:
        auth.access_token()
    assert "Authorize the app again" in str(failure.value)
    assert "SECRET-R" not in str(failure.value)
    assert len(endpoint.posts) == 1  # no retry loop


def test_a_second_401_for_a_token_already_replaced_does_not_refresh_again():
    now = [5000.0]
    endpoint = ScriptedTokenEndpoint(
        [(200, {"access_token": "a2", "refresh_token": "r2", "expires_in": 600})]
    )
    auth = _authenticator(_tokens("r1", 1000, "o", access="a1"), endpoint, now, [])
    auth.refresh_after_unauthorized("a1")
    auth.refresh_after_unauthorized("a1")  # stale rejection: a2 is already in use
    assert len(endpoint.posts) == 1
    assert auth.access_token() == "a2"


# --- budgets and retries ----------------------------------------------------------------------


class FakeTime:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _headers(**values: float) -> dict[str, str]:
    names = {
        "minutely_remaining": "X-RateLimit-Minutely-Remaining",
        "minutely_reset": "X-RateLimit-Minutely-Reset",
        "daily_remaining": "X-RateLimit-Remaining",
        "daily_reset": "X-RateLimit-Reset",
    }
    return {names[k]: str(int(v)) for k, v in values.items()}


def test_waits_for_the_minute_reset_instead_of_provoking_a_429():
    time = FakeTime()
    limiter = RateLimiter(daily_reserve=10, clock=time.clock, sleep=time.sleep)
    reset_ms = (time.now + 12.5) * 1000
    limiter.record(5, _headers(minutely_remaining=1, minutely_reset=reset_ms))
    limiter.before_request(5)
    assert time.sleeps == []
    limiter.record(5, _headers(minutely_remaining=0, minutely_reset=reset_ms))
    limiter.before_request(5)
    assert time.sleeps == [pytest.approx(12.6)]
    limiter.before_request(6)  # another division has its own budget
    assert len(time.sleeps) == 1


def test_429_without_headers_waits_for_the_next_calendar_minute():
    time = FakeTime(now=1_699_999_995.0)  # 15 s into a minute (1_699_999_980 % 60 == 0)
    limiter = RateLimiter(daily_reserve=10, clock=time.clock, sleep=time.sleep)
    limiter.after_429(5, {})
    assert time.sleeps == [pytest.approx(60 - 15 + 0.5)]


def test_reset_far_away_is_capped_at_one_window():
    time = FakeTime()
    limiter = RateLimiter(daily_reserve=10, clock=time.clock, sleep=time.sleep)
    limiter.after_429(5, _headers(minutely_reset=(time.now + 3600) * 1000))
    assert time.sleeps == [61.0]


def test_daily_budget_below_reserve_stops_the_division():
    time = FakeTime()
    limiter = RateLimiter(daily_reserve=10, clock=time.clock, sleep=time.sleep)
    tomorrow_ms = (time.now + 3600) * 1000
    limiter.record(5, _headers(daily_remaining=11, daily_reset=tomorrow_ms))
    assert not limiter.daily_budget_spent(5)
    limiter.record(5, _headers(daily_remaining=10, daily_reset=tomorrow_ms))
    assert limiter.daily_budget_spent(5)
    assert limiter.spent_divisions == {5}
    with pytest.raises(DailyBudgetSpentError):
        limiter.before_request(5)
    time.now += 3601  # a new day
    assert not limiter.daily_budget_spent(5)


def test_division_is_read_from_the_url():
    assert division_of("https://h/api/v1/123456/crm/Accounts?$top=1") == 123456
    assert division_of("https://h/api/v1/beta/77/budget/BudgetScenarios") == 77
    assert division_of("https://h/api/v1/current/Me") is None


class _NoAuth:
    secrets = ("csecret",)

    def __init__(self):
        self.refreshes = 0

    def refresh_after_unauthorized(self, rejected, headers=None):
        if self.refreshes:  # the authenticator's verdict on a token it has just refreshed
            raise ExactAPIError("HTTP 401 even with a freshly refreshed access token")
        self.refreshes += 1


@pytest.fixture(autouse=True)
def _undo_patches():
    yield
    mock.patch.stopall()


def _http(time: FakeTime, retries: int = 3) -> ExactHttp:
    # The waits between retries come from `backoff`, which sleeps with time.sleep: they go to
    # the fake clock (the 429 waits go there through the limiter).
    mock.patch("time.sleep", time.sleep).start()
    limiter = RateLimiter(daily_reserve=0, clock=time.clock, sleep=time.sleep)
    return ExactHttp(
        authenticator=_NoAuth(),  # type: ignore[arg-type]
        limiter=limiter,
        max_retries=retries,
        retry_base_seconds=1.0,
    )


def _response(
    status: int, body: bytes = b"{}", url: str = "https://h/api/v1/5/x"
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.url = url
    response.request = requests.Request(
        "GET", url, headers={"Authorization": "Bearer a1"}
    ).prepare()
    return response


def _sender(http: ExactHttp, statuses: list[int | Exception]):
    sent: list[int] = []

    def send():
        sent.append(1)
        item = statuses.pop(0)
        if isinstance(item, Exception):
            raise item
        response = _response(item, b"<html>busy</html>" if item >= 500 else b"{}")
        http.check(response, "test")
        return response

    return send, sent


def test_5xx_and_dropped_connections_are_retried_with_growing_waits():
    time = FakeTime()
    http = _http(time)
    send, sent = _sender(http, [503, requests.ConnectionError(), 502, 200])
    assert http.execute(send, division=5, what="test").status_code == 200
    assert len(sent) == 4
    assert len(time.sleeps) == 3
    assert (
        0.5 <= time.sleeps[0] <= 1.5
        and 1.0 <= time.sleeps[1] <= 3.0
        and 2.0 <= time.sleeps[2] <= 6.0
    )


def test_retries_are_bounded():
    time = FakeTime()
    http = _http(time, retries=2)
    send, sent = _sender(http, [500, 500, 500, 500])
    with pytest.raises(ExactAPIError, match="gave up after 3 attempts"):
        http.execute(send, division=5, what="test")
    assert len(sent) == 3


def test_other_4xx_are_never_retried_and_carry_exacts_message():
    time = FakeTime()
    http = _http(time)
    body = json.dumps({"error": {"code": "", "message": {"lang": "", "value": "Bad filter"}}})

    def send():
        response = _response(400, body.encode())
        http.check(response, "accounts (division 5)")
        return response

    with pytest.raises(ExactAPIError, match=r"accounts \(division 5\): HTTP 400: Bad filter"):
        http.execute(send, division=5, what="accounts (division 5)")
    assert time.sleeps == []


def test_401_refreshes_once_then_gives_up():
    time = FakeTime()
    http = _http(time)
    send, sent = _sender(http, [401, 401, 200])
    with pytest.raises(ExactAPIError, match="401"):
        http.execute(send, division=5, what="test")
    assert http.authenticator.refreshes == 1
    assert len(sent) == 2


def test_non_json_success_body_is_retriable():
    time = FakeTime()
    http = _http(time)
    with pytest.raises(RetriableAPIError):
        http.accept(_response(200, b"<html>maintenance</html>"), "test")
    with pytest.raises(UnauthorizedError):
        http.check(_response(401), "test")


def test_429_without_headers_uses_the_last_known_window():
    time = FakeTime()
    limiter = RateLimiter(daily_reserve=10, clock=time.clock, sleep=time.sleep)
    limiter.record(5, _headers(minutely_remaining=3, minutely_reset=(time.now + 4) * 1000))
    limiter.after_429(5, {})
    assert time.sleeps == [pytest.approx(4.1)]


def test_token_state_has_no_floats():
    # SDK targets parse floats as Decimal and then fail to serialise the state they echo.
    data = TokenSet("r", "a", 1700000600.75, 1700000000.25, "o").to_dict()
    assert not any(isinstance(v, float) for v in data.values())
