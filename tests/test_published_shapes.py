"""Responses shaped like the real Exact responses others have published, through the real CLI
(replayed by the fake server over HTTP) or through a stream's own `RecordPlan` and SCHEMA.

The fixtures are written here, not copied: the values are invented, the shapes (nesting, value
encodings, padding, headers) follow the public source named above each one.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from fake_exact import FakeExact
from tap_exactonline.catalog import load_catalog
from tap_exactonline.exact_clock import ExactClock
from tap_exactonline.odata import RecordPlan
from tap_exactonline.pages import odata_rows
from tests.conftest import record_of
from tests.tap_runner import TapRun, fake_config, run_tap, state_tokens

CATALOG = load_catalog()
DIVISION = 1001


def account_row(base_url: str, guid: str, code: str, timestamp: str) -> dict[str, Any]:
    """One sync/CRM/Accounts row.

    Shape: Exact's own .NET client test data, exactonline/exactonline-api-dotnet-client
    `test/ExactOnline.Client.Sdk.UnitTests/Json/Response_Json_Array_Account.txt`: `__metadata`
    with uri and type, an unexpanded `BankAccounts` as `__deferred`, `Code` right-aligned in 18
    characters, `Country` and `State` padded to 3, `SearchCode` padded, whole amounts as JSON
    integers, `StartDate`/`StatusSince` as dates (midnight), `Created`/`Modified` with
    milliseconds. `Timestamp` as a JSON string: leapforce-libraries/go_exactonline_new
    `sync/*.go` (`types.Int64String`).
    """
    uri = f"{base_url}/api/v1/{DIVISION}/crm/Accounts(guid'{guid}')"
    return {
        "__metadata": {"uri": uri, "type": "Exact.Web.Api.Models.Account"},
        "AddressLine1": "Kerkstraat 12",
        "BankAccounts": {"__deferred": {"uri": f"{uri}/BankAccounts"}},
        "Blocked": False,
        "City": "Utrecht",
        "Code": f"{code:>18}",
        "Country": "NL ",
        "Created": "/Date(1382667872203)/",  # 02:24:32.203 CEST, 25 Oct 2013
        "CreditLineSales": 0,
        "Division": DIVISION,
        "ID": guid,
        "IsSupplier": True,
        "Modified": "/Date(1382667872203)/",
        "Name": "Fietsen Jansen B.V.",
        "SearchCode": "FIETSEN  ",
        "StartDate": "/Date(1267747200000)/",  # the date 5 March 2010
        "State": "UT ",
        "StatusSince": "/Date(1382659200000)/",  # the date 25 October 2013
        "Timestamp": timestamp,
    }


def page(rows: list[dict[str, Any]], next_url: str | None = None) -> str:
    """`{"d": {"results": [...], "__next": "..."}}` with an absolute next link and a skiptoken:
    Exact's "OData | Best practices" and "Restrictions" articles (`$skiptoken=guid'...'`,
    REFERENCE.md §4), the .NET client's `APIResponse_Json_Array.txt`."""
    body: dict[str, Any] = {"results": rows}
    if next_url:
        body["__next"] = next_url
    return json.dumps({"d": body})


def schema_of(run: TapRun, stream: str) -> dict[str, Any]:
    return next(
        m["schema"] for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == stream
    )


def assert_valid(record: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(schema).validate(record)
    for name, value in record.items():
        if schema["properties"][name].get("format") == "date-time" and value is not None:
            assert datetime.fromisoformat(value).utcoffset() is not None, (name, value)


def test_a_sync_page_with_a_next_link_through_the_cli(tmp_path: Path):
    with FakeExact(divisions=(DIVISION,), rows={"accounts": 0}) as fake:
        first = [
            account_row(fake.base_url, "71b961de-b9f3-49fe-883d-0f46c7e0e89b", "8", "85433"),
            account_row(fake.base_url, "0ebc3ef9-752d-4a3e-b54e-10dea7ba54e6", "3", "85521"),
        ]
        last = [account_row(fake.base_url, "5b3debef-6e6a-4b7c-9b2e-2d2f3c1a9e11", "12", "90017")]
        next_url = (
            f"{fake.base_url}/api/v1/{DIVISION}/sync/CRM/Accounts?$filter=Timestamp%20gt%201"
            "&$select=ID,Code,Name&$skiptoken=85521L"
        )
        fake.replay_next("sync/CRM/Accounts", page(first, next_url))
        fake.replay_next("sync/CRM/Accounts", page(last))
        run = run_tap(tmp_path, fake_config(fake, divisions=[DIVISION]), streams={"accounts"})
        assert run.returncode == 0, run.stderr[-3000:]
        account_calls = [c for c in fake.calls if "sync/CRM/Accounts" in c[1]]
    assert len(account_calls) == 2 and "$skiptoken=85521L" in account_calls[1][2]
    records = run.records("accounts")
    assert [r["code"] for r in records] == [
        "                 8",
        "                 3",
        f"{'12':>18}",
    ]
    schema = schema_of(run, "accounts")
    for record in records:
        assert_valid(record, schema)
        assert not any(key.startswith("__") or key == "bank_accounts" for key in record)
    albex = records[0]
    assert albex["country"] == "NL " and albex["search_code"] == "FIETSEN  "
    assert albex["timestamp"] == 85433 and albex["division"] == DIVISION
    assert albex["start_date"] == "2010-03-05T00:00:00+00:00"  # a date keeps its day
    assert albex["status_since"] == "2013-10-25T00:00:00+00:00"
    assert albex["created"] == "2013-10-25T00:24:32.203000+00:00"  # CEST: UTC+2
    assert albex["modified"] == "2013-10-25T00:24:32.203000+00:00"
    assert albex["credit_line_sales"] == 0
    assert run.bookmark("accounts", DIVISION) == 90017


def sales_invoice_object() -> dict[str, Any]:
    """A single entity in `d`, with its lines expanded as `{"results": [...]}`.

    Shape: exactonline/exactonline-api-dotnet-client
    `test/ExactOnline.Client.Sdk.UnitTests/Json/Response_Json_Object_SalesInvoice.txt`
    (`InvoiceDate`/`DueDate` as dates, amounts as JSON integers, `VATCode` padded to 3).
    """
    uri = "https://start.exactonline.nl/api/v1/1001/salesinvoice/SalesInvoices"
    invoice_id = "c4a1e3b2-5d6f-4a7b-8c9d-0e1f2a3b4c5d"
    return {
        "d": {
            "__metadata": {
                "uri": f"{uri}(guid'{invoice_id}')",
                "type": "Exact.Web.Api.Models.SalesInvoice",
            },
            "AmountDC": 4840,
            "Created": "/Date(1382667906263)/",
            "Currency": "EUR",
            "Description": "Onderhoud fietsen",
            "Division": DIVISION,
            "DueDate": "/Date(1351209600000)/",  # the date 26 October 2012
            "InvoiceDate": "/Date(1351209600000)/",
            "InvoiceID": invoice_id,
            "Modified": "/Date(1382667906263)/",
            "Status": 20,
            "SalesInvoiceLines": {
                "results": [
                    {
                        "__metadata": {"type": "Exact.Web.Api.Models.SalesInvoiceLine"},
                        "AmountDC": 4000,
                        "LineNumber": 1,
                        "VATCode": "02 ",
                    }
                ]
            },
        }
    }


class _Response(requests.Response):
    def __init__(self, body: object) -> None:
        super().__init__()
        self._content = json.dumps(body).encode()
        self.status_code = 200


def plan_and_schema(stream: str, api: str | None = None) -> tuple[RecordPlan, dict[str, Any]]:
    spec = CATALOG[stream] if api is None else CATALOG[stream].on_api(api)
    plan = RecordPlan(spec.record_fields, rename=True, clock=ExactClock())
    return plan, spec.schema(plan)


def test_a_single_entity_with_expanded_lines_fits_the_stream_schema():
    # The .NET client's fixture is the standard endpoint, which `stream_api` can choose.
    plan, schema = plan_and_schema("sales_invoices", "standard")
    [row] = odata_rows(_Response(sales_invoice_object()))
    record = record_of(plan, row, DIVISION)
    assert_valid(record, schema)
    assert record["invoice_date"] == "2012-10-26T00:00:00+00:00"
    assert record["due_date"] == "2012-10-26T00:00:00+00:00"
    assert record["modified"] == "2013-10-25T00:25:06.263000+00:00"
    assert record["amount_dc"] == 4840
    assert "sales_invoice_lines" not in record  # the expanded list is not a column


def test_d_as_a_plain_array_is_a_page_of_rows():
    """OData's "JSON Verbose Format" (odata.org, OData V2): a V1 collection response is
    `{"d": [ ... ]}`, without `results`."""
    plan, schema = plan_and_schema("accounts")
    body = {
        "d": [
            account_row(
                "https://start.exactonline.nl",
                f"{n:08d}-0000-4000-8000-000000000000",
                str(n),
                str(n),
            )
            for n in (1, 2)
        ]
    }
    rows = list(odata_rows(_Response(body)))
    assert [row["Code"].strip() for row in rows] == ["1", "2"]
    for row in rows:
        assert_valid(record_of(plan, row, DIVISION), schema)


# --- error bodies and headers -------------------------------------------------------------------


def error_body(message: str) -> str:
    """`{"error":{"code":"","message":{"lang":"","value":...}}}`: real 400s quoted in
    picqer/exact-php-client#500 and #532; the .NET client's `ServerMessage` model."""
    return json.dumps({"error": {"code": "", "message": {"lang": "", "value": message}}})


def test_mandatory_filtering_refusal_is_reported_with_exacts_words(tmp_path: Path):
    # Message text: picqer/exact-php-client#591 (crm/Accounts, logistics/Items, Oct 2022).
    message = (
        "This endpoint has mandatory filtering applied. A GET request for this endpoint must "
        "have a $filter parameter with one of the following fields in the url:Accountant,"
        "AccountManager,Code,ID"
    )
    with FakeExact(divisions=(DIVISION,), rows={"purchase_invoices": 5, "gl_accounts": 5}) as fake:
        fake.replay_next("purchase/PurchaseInvoices", error_body(message), status=400)
        run = run_tap(
            tmp_path,
            fake_config(fake, divisions=[DIVISION]),
            streams={"purchase_invoices", "gl_accounts"},
        )
    assert "mandatory filtering applied" in run.stderr
    assert "Accountant,AccountManager,Code,ID" in run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.records("gl_accounts")) == 5  # the rest of the run went on
    assert run.returncode == 1  # a stream selected by name was refused: said at the end
    assert "Exact refused streams you selected: purchase_invoices" in run.stderr


def test_a_429_with_an_empty_body_and_only_minutely_headers_is_waited_out(tmp_path: Path):
    # picqer/exact-php-client#528: "Error 429: " with no message (empty body); #646: on a
    # minutely 429 only the minutely headers come; header names and values as in #609.
    reset_ms = int((time.time() + 1.5) * 1000)
    headers = {
        "X-RateLimit-Minutely-Limit": "60",
        "X-RateLimit-Minutely-Remaining": "0",
        "X-RateLimit-Minutely-Reset": str(reset_ms),
    }
    with FakeExact(divisions=(DIVISION,), rows={"gl_accounts": 5}) as fake:
        fake.replay_next(
            "sync/Financial/GLAccounts", b"", status=429, headers=headers, content_type=None
        )
        run = run_tap(tmp_path, fake_config(fake, divisions=[DIVISION]), streams={"gl_accounts"})
        statuses = [c[3] for c in fake.calls if "GLAccounts" in c[1]]
    assert run.returncode == 0, run.stderr[-3000:]
    assert statuses == [429, 200]
    assert len(run.records("gl_accounts")) == 5
    assert "HTTP 429" in run.stderr and "waiting" in run.stderr


@pytest.mark.parametrize(
    ("status", "body", "headers", "says"),
    [
        # websmurf/laravel-exact-online#23 and #22: an expired refresh token.
        (
            400,
            {
                "error": "invalid_request",
                "error_description": "The refresh token expired at 10/11/2022 9:18:20 PM and it "
                "is now 10/28/2022 4:15:50 PM.",
            },
            {},
            "Authorize the app again",
        ),
        # websmurf/laravel-exact-online#31 (Jan 2026): a refresh within 570 s, with the Reason
        # header; without a valid access token the run cannot go on.
        (
            400,
            {
                "error": "access_denied",
                "error_description": "Rate limit exceeded: access_token not expired",
            },
            {"Reason": "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired"},
            "run again in 10 minutes",
        ),
    ],
)
def test_token_endpoint_errors_end_in_one_line(tmp_path: Path, status, body, headers, says):
    with FakeExact(divisions=(DIVISION,), rows={"gl_accounts": 5}) as fake:
        fake.replay_next("/api/oauth2/token", json.dumps(body), status=status, headers=headers)
        run = run_tap(tmp_path, fake_config(fake, divisions=[DIVISION]), streams={"gl_accounts"})
        data_calls = fake.data_calls()
    assert run.returncode == 1
    assert says in run.stderr
    assert "Traceback" not in run.stderr
    assert data_calls == 0
    assert "fake-initial-refresh-token" not in run.stderr


def test_a_token_answer_with_expires_in_as_a_string(tmp_path: Path):
    """Exact's OAuth tutorial step 3 (copy in werkenmetai/Chef-Data, REFERENCE.md §1.3):
    `{"access_token":..., "token_type":"Bearer", "expires_in":"600", "refresh_token":...}`,
    `expires_in` a JSON string, the refresh token with a `!`."""
    with FakeExact(divisions=(DIVISION,), rows={"gl_accounts": 5}) as fake:
        answer = {
            "access_token": fake.grant_access_token(),
            "token_type": "Bearer",
            "expires_in": "600",
            "refresh_token": "Gcp7!IAAAAPublishedShapeOnly",
        }
        fake.replay_next("/api/oauth2/token", json.dumps(answer))
        before = time.time()
        run = run_tap(tmp_path, fake_config(fake, divisions=[DIVISION]), streams={"gl_accounts"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.records("gl_accounts")) == 5
    tokens = state_tokens(run.final_state)
    assert tokens["refresh_token"] == "Gcp7!IAAAAPublishedShapeOnly"
    assert before + 590 <= tokens["expires_at"] <= time.time() + 600
