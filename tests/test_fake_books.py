"""The fake's books follow Exact's rules, read over HTTP as the tap reads them.

Each figure here is derived from the rows the fake serves (transaction lines, the chart of
accounts), never from the fake's own aggregates, and compared with what the fake's aggregate
endpoints serve. The rules and their sources: docs/fake-books.md.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timezone

import pytest
import requests

from fake_exact import FakeExact
from fake_exact.books import BLOCK
from tests.conftest import authorized

DIV = 1001
CENT = 0.005
DAY_MS = 86_400_000


@pytest.fixture
def fake() -> Iterator[FakeExact]:
    rows = {"transaction_lines": 3000, "accounts": 200, "gl_accounts": 40, "items": 60}
    rows |= {"contacts": 300, "addresses": 500}  # more than one per account
    # No rate limit: a test reads every invoice table after each change (limits have their own).
    unlimited = {"minutely_limit": 10**6, "daily_limit": 10**6}
    with FakeExact(divisions=(DIV, 1002), rows=rows, default_rows=130, **unlimited) as server:
        yield server


def read(
    session: requests.Session,
    fake: FakeExact,
    stream: str,
    division: int = DIV,
    api: str | None = None,
) -> list:
    """Every row of a stream (on its default API or `api`), page by page, every field selected."""
    spec = fake.data.spec(stream, api)
    url = f"{fake.base_url}/api/v1/{division}/{spec.path}"
    params: dict[str, str] | None = {"$select": ",".join(spec.fields)}
    rows: list[dict] = []
    while True:
        response = session.get(url, params=params, timeout=60)
        assert response.status_code == 200, response.text
        d = response.json()["d"]
        rows.extend(d["results"] if isinstance(d, dict) else d)
        if not isinstance(d, dict) or "__next" not in d:
            return rows
        url, params = d["__next"], None


def keyed(rows: list[dict], key: str) -> dict:
    return {row[key]: row for row in rows}


def grouped(rows: list[dict], key: str) -> dict[object, list[dict]]:
    groups: dict[object, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return groups


def cents(value: float) -> int:
    return round(value * 100)


def wire_day(value: str) -> date:
    ms = int(value[6:-2])
    assert ms % DAY_MS == 0, value  # a date: midnight on Exact's clock
    return datetime.fromtimestamp(ms / 1000, timezone.utc).date()


def chart(session: requests.Session, fake: FakeExact) -> dict[str, dict]:
    return {row["ID"]: row for row in read(session, fake, "gl_accounts")}


def balances_from_lines(lines: list[dict]) -> dict[tuple, list[int]]:
    """ReportingBalance's grouping (Exact: year, period, G/L account, type, status)."""
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for line in lines:
        key = (line["GLAccount"], line["FinancialYear"], line["FinancialPeriod"], line["Type"])
        amount = cents(line["AmountDC"])
        totals = groups[key]
        totals[0] += amount
        totals[1 if amount >= 0 else 2] += abs(amount)
        totals[3] += 1
    return dict(groups)


def balances_served(session: requests.Session, fake: FakeExact) -> dict[tuple, list[int]]:
    served = {}
    for row in read(session, fake, "reporting_balance"):
        key = (row["GLAccount"], row["ReportingYear"], row["ReportingPeriod"], row["Type"])
        assert key not in served, key
        served[key] = [
            cents(row["Amount"]),
            cents(row["AmountDebit"]),
            cents(row["AmountCredit"]),
            row["Count"],
        ]
    return served


def open_items_from_lines(lines: list[dict], accounts: dict[str, dict], gl_type: int) -> dict:
    """Per invoice number: what is left of the invoice after the payments that name it, from
    the lines on the receivables (20) or payables (22) account."""
    left: Counter[int] = Counter()
    for line in lines:
        if accounts[line["GLAccount"]]["Type"] == gl_type and line["InvoiceNumber"]:
            left[line["InvoiceNumber"]] += cents(line["AmountDC"])
    return {number: amount for number, amount in left.items() if amount}


def test_every_entry_balances_and_every_link_joins(fake, session) -> None:
    lines = read(session, fake, "transaction_lines")
    assert len(lines) == 3000
    per_entry: Counter[str] = Counter()
    for line in lines:
        per_entry[line["EntryID"]] += cents(line["AmountDC"])
    assert len(per_entry) == 750
    assert {entry: total for entry, total in per_entry.items() if total} == {}
    # Foreign-currency sales: the amount in the invoice's currency and its rate.
    foreign = [line for line in lines if line["Currency"] != "EUR"]
    assert foreign and all(line["ExchangeRate"] != 1 for line in foreign)
    assert all(
        abs(line["AmountFC"] * line["ExchangeRate"] - line["AmountDC"]) < 0.01
        for line in foreign
        if line["LineNumber"] != 0
    )
    links = {
        "GLAccount": "gl_accounts",
        "Account": "accounts",
        "Item": "items",
    }
    for field, stream in links.items():
        ids = {row["ID"] for row in read(session, fake, stream)}
        used = {line[field] for line in lines if line[field] is not None}
        assert used and used <= ids, field
    journals = {row["Code"] for row in read(session, fake, "journals")}
    assert {line["JournalCode"] for line in lines} <= journals
    periods = {(r["FinYear"], r["FinPeriod"]) for r in read(session, fake, "financial_periods")}
    assert {(line["FinancialYear"], line["FinancialPeriod"]) for line in lines} <= periods
    for line in lines:
        day = wire_day(line["Date"])
        assert (day.year, day.month) == (line["FinancialYear"], line["FinancialPeriod"])


def test_the_chart_and_the_parties_read_like_a_company(fake, session) -> None:
    accounts = chart(session, fake)
    by_code = {row["Code"]: row for row in accounts.values()}
    assert by_code["1300"]["Description"] == "Debiteuren"
    assert (by_code["1300"]["Type"], by_code["1300"]["BalanceType"]) == (20, "B")
    assert (by_code["8000"]["Type"], by_code["8000"]["BalanceSide"]) == (110, "C")
    assert {row["BalanceType"] for row in accounts.values()} == {"B", "W"}
    mapped = read(session, fake, "gl_account_classification_mappings")
    classifications = {row["ID"]: row for row in read(session, fake, "gl_classifications")}
    assert all(row["Classification"] in classifications for row in mapped)
    assert all(row["GLAccount"] in accounts for row in mapped)
    parties = read(session, fake, "accounts")
    for party in parties:
        assert party["Email"].startswith("info@") and party["Email"].endswith(".nl")
        assert 50.7 < party["Latitude"] < 53.6 and 3.3 < party["Longitude"] < 7.3
        assert party["City"] and party["Name"] and party["Code"].strip().isdigit()
    assert {party["IsSupplier"] for party in parties} == {True, False}


def test_contacts_and_addresses_belong_to_the_accounts(fake, session) -> None:
    parties = {row["ID"]: row for row in read(session, fake, "accounts")}
    contacts = read(session, fake, "contacts")
    assert contacts
    for contact in contacts:
        party = parties[contact["Account"]]  # every contact works at an account
        assert contact["AccountName"] == party["Name"]
        assert contact["Email"].endswith("@" + party["Email"].split("@")[1])
        assert contact["FullName"] == f"{contact['FirstName']} {contact['LastName']}"
        assert contact["City"] == party["City"]
    mains = Counter(c["Account"] for c in contacts if c["IsMainContact"])
    assert set(mains.values()) == {1}
    by_id = {c["ID"]: c for c in contacts}
    assert all(by_id[c["AccountMainContact"]]["IsMainContact"] for c in contacts)
    addresses = read(session, fake, "addresses")  # Exact's types: visit, postal, invoice, delivery
    assert {a["Type"] for a in addresses} <= {1, 2, 3, 4}
    for address in addresses:
        party = parties[address["Account"]]
        assert (address["AccountName"], address["City"]) == (party["Name"], party["City"])
    main_types = Counter((a["Account"], a["Type"]) for a in addresses if a["Main"])
    assert set(main_types.values()) == {1}


def test_reporting_balance_equals_the_lines(fake, session) -> None:
    lines = read(session, fake, "transaction_lines")
    assert balances_served(session, fake) == balances_from_lines(lines)


def test_receivables_and_payables_are_the_unpaid_invoices(fake, session) -> None:
    lines = read(session, fake, "transaction_lines")
    accounts = chart(session, fake)
    for stream, gl_type in (("receivables_list", 20), ("payables_list", 22)):
        served = read(session, fake, stream)
        assert served, stream
        assert {row["InvoiceNumber"]: cents(row["Amount"]) for row in served} == (
            open_items_from_lines(lines, accounts, gl_type)
        ), stream
    # Some invoices are paid in full, some in part, some not yet.
    invoices = {line["InvoiceNumber"] for line in lines if line["LineNumber"] == 0}
    receivables = read(session, fake, "receivables_list")
    paid_in_part = [
        row
        for row in receivables
        if any(
            line["InvoiceNumber"] == row["InvoiceNumber"] and line["Type"] == 40 for line in lines
        )
    ]
    assert paid_in_part and len(receivables) < len(invoices) / 2


def test_ageing_lists_share_out_the_open_items_by_invoice_age(fake, session) -> None:
    today = fake.data.today
    for items, ageing in (
        ("receivables_list", "aging_receivables_list"),
        ("payables_list", "aging_payables_list"),
    ):
        expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for row in read(session, fake, items):
            age = (today - wire_day(row["InvoiceDate"])).days
            group = 0 if age <= 30 else 1 if age <= 60 else 2 if age <= 90 else 3
            expected[row["AccountId"]][group] += cents(row["Amount"])
        served = {
            row["AccountId"]: [cents(row[f"AgeGroup{n}Amount"]) for n in range(1, 5)]
            for row in read(session, fake, ageing)
        }
        assert served == dict(expected), ageing
        assert all(
            cents(row["TotalAmount"]) == sum(served[row["AccountId"]])
            for row in read(session, fake, ageing)
        )


def test_profit_and_loss_overview_is_revenue_less_costs(fake, session) -> None:
    lines = read(session, fake, "transaction_lines")
    accounts = chart(session, fake)
    (overview,) = read(session, fake, "profit_loss_overview")
    today = fake.data.today
    assert (overview["CurrentYear"], overview["CurrentPeriod"]) == (today.year, today.month)
    for year, prefix in ((today.year, "CurrentYear"), (today.year - 1, "PreviousYear")):
        revenue = costs = 0
        for line in lines:
            account = accounts[line["GLAccount"]]
            if line["FinancialYear"] != year or account["BalanceType"] != "W":
                continue
            if account["BalanceSide"] == "C":
                revenue -= cents(line["AmountDC"])
            else:
                costs += cents(line["AmountDC"])
        assert cents(overview[f"Revenue{prefix}"]) == revenue
        assert cents(overview[f"Costs{prefix}"]) == costs
        assert cents(overview[f"Result{prefix}"]) == revenue - costs
        assert revenue > costs > 0  # a going concern


def test_opening_balance_carries_the_balance_sheet_and_last_years_result(fake, session) -> None:
    lines = read(session, fake, "transaction_lines")
    accounts = chart(session, fake)
    year = fake.data.today.year
    expected: Counter[str] = Counter()
    retained = next(a["ID"] for a in accounts.values() if a["Type"] == 52)
    for line in lines:
        if line["FinancialYear"] >= year:
            continue
        account = accounts[line["GLAccount"]]
        target = line["GLAccount"] if account["BalanceType"] == "B" else retained
        expected[target] += cents(line["AmountDC"])
    served = {
        row["GLAccount"]: cents(row["Amount"]) * (1 if row["BalanceSide"] == "D" else -1)
        for row in read(session, fake, "opening_balance_current_year_after_entry")
    }
    assert served == {k: v for k, v in expected.items() if v}
    assert sum(served.values()) == 0


def test_a_paid_invoice_leaves_the_list_and_its_bank_entry_arrives(fake, session) -> None:
    before = {row["HID"]: row for row in read(session, fake, "receivables_list")}
    paid = fake.delete("receivables_list", DIV, 2)
    assert len(paid) == 2 and set(paid) <= set(before)
    after = {row["HID"] for row in read(session, fake, "receivables_list")}
    assert after == set(before) - set(paid)
    lines = read(session, fake, "transaction_lines")
    new_entries = [line for line in lines[-8:]]
    assert {line["Type"] for line in new_entries} == {40}
    for hid in paid:
        number = before[hid]["InvoiceNumber"]
        payment = [
            line for line in new_entries if line["InvoiceNumber"] == number and line["LineNumber"]
        ]
        assert [cents(line["AmountDC"]) for line in payment] == [-cents(before[hid]["Amount"])]
    accounts = chart(session, fake)
    assert open_items_from_lines(lines, accounts, 20) == {
        row["InvoiceNumber"]: cents(row["Amount"])
        for row in read(session, fake, "receivables_list")
    }
    assert balances_served(session, fake) == balances_from_lines(lines)


def test_changed_added_and_deleted_entries_keep_the_books_whole(fake, session) -> None:
    fake.mutate("transaction_lines", DIV, update=3, insert=5)
    gone = fake.delete("transaction_lines", DIV, 4)
    assert len(gone) == 4 * 4
    logged = {entry["EntityKey"] for entry in fake.deletions if entry["Division"] == DIV}
    assert set(gone) <= logged  # every line of a deleted entry is in sync/Deleted
    lines = read(session, fake, "transaction_lines")
    assert len(lines) == 3000 + 5 * 4 - 4 * 4
    assert not set(gone) & {line["ID"] for line in lines}
    per_entry: Counter[str] = Counter()
    for line in lines:
        per_entry[line["EntryID"]] += cents(line["AmountDC"])
    assert not [entry for entry, total in per_entry.items() if total]
    assert balances_served(session, fake) == balances_from_lines(lines)
    accounts = chart(session, fake)
    assert open_items_from_lines(lines, accounts, 22) == {
        row["InvoiceNumber"]: cents(row["Amount"]) for row in read(session, fake, "payables_list")
    }


def test_a_closed_year_moves_its_result_and_restates_the_balances_leaving_reports_alone(
    fake, session
) -> None:
    """Exact's year-end closing (TransactionLines.Type 326-328): what it posts balances, zeroes
    each P&L account of the year and each balance-sheet account at the year's end, opens the
    balances again on 1 January, and leaves what Exact reports (result, opening balances, open
    items) as it was."""
    reports = ("profit_loss_overview", "opening_balance_current_year_processed")
    reports += ("opening_balance_previous_year_processed", "receivables_list", "payables_list")
    before = {stream: read(session, fake, stream) for stream in reports}
    this_year = fake.data.today.year
    with pytest.raises(ValueError, match=f"year {this_year} has not ended"):
        fake.close_years(DIV, this_year)
    closed = fake.close_years(DIV, this_year - 1)
    assert closed and fake.close_years(DIV, this_year - 1) == []  # closed once

    lines = read(session, fake, "transaction_lines")
    accounts = chart(session, fake)
    year_end = [line for line in lines if line["Type"] in (326, 327, 328)]
    assert len(year_end) == 4 * len(closed)
    per_entry: Counter[str] = Counter()
    for line in lines:
        per_entry[line["EntryID"]] += cents(line["AmountDC"])
    assert not [entry for entry, total in per_entry.items() if total]
    for line in year_end:  # on 31 December, the opening on 1 January
        assert line["FinancialPeriod"] == (1 if line["Type"] == 328 else 12), line
    assert {line["FinancialYear"] for line in year_end} == {this_year - 2, this_year - 1, this_year}
    for year in (this_year - 2, this_year - 1):
        on_pl: Counter[str] = Counter()
        on_bs: Counter[str] = Counter()
        for line in lines:
            account = accounts[line["GLAccount"]]
            if account["BalanceType"] == "W" and line["FinancialYear"] == year:
                on_pl[account["Code"]] += cents(line["AmountDC"])
            if account["BalanceType"] == "B" and line["FinancialYear"] <= year:
                on_bs[account["Code"]] += cents(line["AmountDC"])
        assert not +on_pl and not -on_pl, (year, on_pl)  # every P&L account closed
        assert not +on_bs and not -on_bs, (year, on_bs)  # every balance closed at the year end
        opened = Counter()
        for line in lines:
            if line["Type"] == 328 and line["FinancialYear"] == year + 1:
                opened[accounts[line["GLAccount"]]["Code"]] += cents(line["AmountDC"])
        assert opened["1100"] > 0  # the bank's balance opens the next year
    assert balances_served(session, fake) == balances_from_lines(lines)
    assert {stream: read(session, fake, stream) for stream in reports} == before


def entries_by_number(session: requests.Session, fake: FakeExact) -> dict[int, list[dict]]:
    by_entry: dict[int, list[dict]] = defaultdict(list)
    for line in read(session, fake, "transaction_lines"):
        by_entry[line["EntryNumber"]].append(line)
    return by_entry


def test_purchase_invoices_are_the_purchase_entries(fake, session) -> None:
    invoices = purchase_invoices_checked(session, fake)
    assert len({invoice["EntryNumber"] for invoice in invoices}) == len(invoices) == 130


def purchase_invoices_checked(session: requests.Session, fake: FakeExact) -> list[dict]:
    """Each purchase invoice (purchase/PurchaseInvoices) is a purchase entry of the ledger: the
    lines of its EntryNumber hold its total on the creditors' account (GLAccounts.Type 22), its
    VAT, its supplier and its date; its lines (PurchaseInvoiceLines, by InvoiceID) are the
    entry's cost lines."""
    accounts = chart(session, fake)
    by_entry = entries_by_number(session, fake)
    invoice_lines: dict[str, list[dict]] = defaultdict(list)
    for row in read(session, fake, "purchase_invoice_lines"):
        invoice_lines[row["InvoiceID"]].append(row)
    invoices = read(session, fake, "purchase_invoices")
    for invoice in invoices:
        entry = by_entry[invoice["EntryNumber"]]

        def amounts(matches, entry=entry) -> list[int]:
            return [
                cents(line["AmountDC"]) for line in entry if matches(accounts[line["GLAccount"]])
            ]

        assert {line["Type"] for line in entry} == {30}, invoice["EntryNumber"]
        assert amounts(lambda gl: gl["Type"] == 22) == [-cents(invoice["AmountDC"])]
        assert sum(amounts(lambda gl: gl["Type"] == 24)) == cents(invoice["VATAmount"])
        assert {line["Account"] for line in entry} == {invoice["Supplier"]}
        assert {wire_day(line["Date"]) for line in entry} == {wire_day(invoice["InvoiceDate"])}
        mine = invoice_lines.pop(invoice["ID"])
        costs = amounts(lambda gl: gl["BalanceType"] == "W")
        assert sorted(cents(row["AmountDC"]) for row in mine) == sorted(costs)
        assert [row["LineNumber"] for row in mine] == [1, 2]
    assert not invoice_lines  # every line belongs to an invoice
    return invoices


def test_sales_invoices_are_the_sales_entries(fake, session) -> None:
    headers, with_lines = sales_invoices_checked(session, fake)
    assert len({row["InvoiceNumber"] for row in headers.values()}) == len(headers) == 44
    assert with_lines == 43  # 130 sync rows hold 43 invoices and a header


def sales_invoices_checked(session: requests.Session, fake: FakeExact) -> tuple[dict, int]:
    """Each sales invoice is a sales entry of the ledger (its InvoiceNumber the EntryNumber):
    the header's total is the debtors' line (GLAccounts.Type 20), its VAT the VAT line, its
    lines the revenue lines with the sign turned. sync/SalesInvoice/SalesInvoices has the
    header (LineNumber 0) and the lines as rows; SalesInvoices (standard) one row per invoice;
    SalesInvoiceLines the lines; all joined by InvoiceID."""
    accounts = chart(session, fake)
    by_entry = entries_by_number(session, fake)
    synced = 0
    headers: dict[str, dict] = {}
    sync_lines: dict[str, list[dict]] = defaultdict(list)
    for row in read(session, fake, "sales_invoices"):
        if row["LineNumber"] == 0:
            headers[row["InvoiceID"]] = row
        else:
            sync_lines[row["InvoiceID"]].append(row)
    assert len({row["InvoiceNumber"] for row in headers.values()}) == len(headers)
    for invoice_id, header in headers.items():
        entry = by_entry[header["InvoiceNumber"]]

        def amounts(matches, entry=entry) -> list[int]:
            return [
                cents(line["AmountDC"]) for line in entry if matches(accounts[line["GLAccount"]])
            ]

        assert {line["Type"] for line in entry} == {20}, header["InvoiceNumber"]
        assert amounts(lambda gl: gl["Type"] == 20) == [cents(header["AmountDC"])]
        assert -sum(amounts(lambda gl: gl["Type"] == 24)) == cents(header["VATAmountDC"])
        assert {line["Account"] for line in entry} == {header["InvoiceTo"]}
        assert {wire_day(line["Date"]) for line in entry} == {wire_day(header["InvoiceDate"])}
        mine = sync_lines.pop(invoice_id, [])
        synced += bool(mine)
        if mine:  # the last invoice may be cut short by the table's size
            revenue = [-amount for amount in amounts(lambda gl: gl["BalanceType"] == "W")]
            assert sorted(cents(row["AmountDC"]) for row in mine) == sorted(revenue)
            assert [row["LineNumber"] for row in mine] == [1, 2]
            assert sum(cents(row["AmountFC"]) for row in mine) == cents(header["AmountFCExclVat"])
            assert {row["InvoiceNumber"] for row in mine} == {header["InvoiceNumber"]}
    assert not sync_lines  # every line row has its header
    # Every invoice has its lines on sync, but the last one that the table's size may cut short.
    assert len(headers) - 1 <= synced <= len(headers)

    standard = read(session, fake, "sales_invoices", api="standard")
    assert {row["InvoiceID"] for row in standard} == set(headers)
    for row in standard:
        header = headers[row["InvoiceID"]]
        for name in ("InvoiceNumber", "AmountDC", "VATAmountDC", "InvoiceTo", "InvoiceDate"):
            assert row[name] == header[name], name

    with_lines = 0
    numbers = {row["InvoiceID"]: row["InvoiceNumber"] for row in headers.values()}
    for row in read(session, fake, "sales_invoice_lines"):
        entry = by_entry[numbers[row["InvoiceID"]]]  # a line of a listed invoice
        with_lines += row["LineNumber"] == 1
        assert row["SalesOrderLine"] is not None
        [booked] = [line for line in entry if line["LineNumber"] == row["LineNumber"]]
        assert cents(row["AmountDC"]) == -cents(booked["AmountDC"])
        assert (row["GLAccount"], row["Item"]) == (booked["GLAccount"], booked["Item"])
    assert with_lines == synced  # the sync endpoint's lines
    return headers, with_lines


def test_sales_orders_are_the_orders_behind_the_invoices(fake, session) -> None:
    invoices, _ = sales_invoices_checked(session, fake)
    orders = sales_orders_checked(session, fake, invoices)
    assert len(orders) == len(invoices) == 44
    assert len(quotations_checked(session, fake, orders)) == 44


def quotations_checked(session: requests.Session, fake: FakeExact, orders: dict) -> dict:
    """Behind each sales order the quotation the customer accepted (Quotations, and
    QuotationHeaders on sync; Status 50): same number, customer, currency and total, made
    before the order and closed on its date; its lines (QuotationLines) the order's."""
    quotations = keyed(read(session, fake, "quotations"), "QuotationID")
    headers = keyed(read(session, fake, "quotation_headers"), "QuotationID")
    assert set(headers) == set(quotations)
    quoted = grouped(read(session, fake, "quotation_lines"), "QuotationID")
    order_lines = grouped(read(session, fake, "sales_order_lines"), "OrderNumber")
    by_number = {row["OrderNumber"]: row for row in orders.values()}
    assert {row["QuotationNumber"] for row in quotations.values()} == set(by_number)
    for quotation_id, quotation in quotations.items():
        order = by_number[quotation["QuotationNumber"]]
        assert headers[quotation_id]["AmountDC"] == quotation["AmountDC"] == order["AmountDC"]
        assert (quotation["OrderAccount"], quotation["Currency"], quotation["Status"]) == (
            order["OrderedBy"],
            order["Currency"],
            50,
        )
        made, closed = wire_day(quotation["QuotationDate"]), wire_day(quotation["ClosingDate"])
        assert made < closed == wire_day(order["OrderDate"])
        lines = sorted(quoted.pop(quotation_id, []), key=lambda row: row["LineNumber"])
        ordered = sorted(order_lines.pop(order["OrderNumber"]), key=lambda row: row["LineNumber"])
        assert [(row["Item"], row["AmountDC"]) for row in lines] == [
            (row["Item"], row["AmountDC"]) for row in ordered
        ]
    assert not quoted  # every line is of a quotation
    return quotations


def sales_orders_checked(session: requests.Session, fake: FakeExact, invoices: dict) -> dict:
    """Behind each sales invoice an order (SalesOrders, and SalesOrderHeaders on sync) of the
    same customer, currency and total, placed before the invoice date and complete (Status 21);
    its lines (SalesOrderLines) are the invoice's, delivered and invoiced in full; the invoice's
    lines name it (SalesOrder, SalesOrderNumber)."""
    orders = keyed(read(session, fake, "sales_orders"), "OrderID")
    headers = keyed(read(session, fake, "sales_order_headers"), "OrderID")
    assert set(headers) == set(orders)
    order_lines = grouped(read(session, fake, "sales_order_lines"), "OrderID")
    line_rows = [row for row in read(session, fake, "sales_invoices") if row["LineNumber"]]
    invoice_lines = grouped(line_rows, "SalesOrder")
    assert {row["OrderNumber"] for row in orders.values()} == {
        row["InvoiceNumber"] for row in invoices.values()
    }
    by_number = {row["InvoiceNumber"]: row for row in invoices.values()}
    for order_id, order in orders.items():
        invoice = by_number[order["OrderNumber"]]
        assert headers[order_id]["AmountDC"] == order["AmountDC"] == invoice["AmountDC"]
        assert (order["OrderedBy"], order["Currency"]) == (
            invoice["InvoiceTo"],
            invoice["Currency"],
        )
        assert wire_day(order["OrderDate"]) < wire_day(invoice["InvoiceDate"])
        assert (order["Status"], order["InvoiceStatus"], order["DeliveryStatus"]) == (21, 21, 21)
        lines = sorted(order_lines.pop(order_id, []), key=lambda row: row["LineNumber"])
        invoiced = sorted(invoice_lines.pop(order_id, []), key=lambda row: row["LineNumber"])
        if invoiced:  # the last invoice may be cut short by the table's size
            assert [(row["Item"], row["AmountDC"]) for row in lines] == [
                (row["Item"], row["AmountDC"]) for row in invoiced
            ]
            assert all(row["QuantityInvoiced"] == row["Quantity"] for row in lines)
    assert not order_lines and not invoice_lines  # every line is of an order
    return orders


def test_invoices_follow_their_entries(fake, session) -> None:
    """The control API's changes to the entries reach the invoices behind them (Exact keeps an
    invoice with its entry): an added sales or purchase entry adds its invoice and lines, a
    changed one gives its invoice's rows new Timestamps, a deleted one deletes them (the sync
    rows logged in sync/Deleted); the invoices still agree with the ledger after each."""
    headers, with_lines = sales_invoices_checked(session, fake)
    purchases = {row["ID"]: row for row in purchase_invoices_checked(session, fake)}
    stamps = {row["ID"]: int(row["Timestamp"]) for row in read(session, fake, "sales_invoices")}

    fake.mutate("transaction_lines", DIV, insert=len(BLOCK))  # the pattern's 3 sales, 2 purchases
    added, added_lines = sales_invoices_checked(session, fake)
    assert len(added) == len(headers) + 3 and with_lines + 3 == added_lines
    new = [added[key] for key in set(added) - set(headers)]
    assert min(int(row["Timestamp"]) for row in new) > max(stamps.values())
    assert len(purchase_invoices_checked(session, fake)) == len(purchases) + 2
    orders = sales_orders_checked(session, fake, added)
    assert len(orders) == len(quotations_checked(session, fake, orders)) == len(added)

    # The first entries: the opening balance, two sales and a purchase (BLOCK).
    added_ids = {row["InvoiceID"] for row in new}
    fake.mutate("transaction_lines", DIV, update=4)
    changed = [
        row
        for row in read(session, fake, "sales_invoices")
        if int(row["Timestamp"]) > max(stamps.values()) and row["InvoiceID"] not in added_ids
    ]
    assert sorted(row["InvoiceNumber"] for row in changed) == [2, 2, 2, 3, 3, 3]
    moved = [row for row in read(session, fake, "purchase_invoices") if row["EntryNumber"] == 4]
    assert moved and all(row["Modified"] != purchases[row["ID"]]["Modified"] for row in moved)

    gone = fake.delete("transaction_lines", DIV, 4)
    assert len(gone) == 4 * 4
    left, _ = sales_invoices_checked(session, fake)
    assert len(left) == len(added) - 2 and {2, 3}.isdisjoint(
        r["InvoiceNumber"] for r in left.values()
    )
    orders = sales_orders_checked(session, fake, left)
    assert len(orders) == len(quotations_checked(session, fake, orders)) == len(left)
    logged = {e["EntityKey"] for e in fake.deletions if e["stream"] == "sales_invoices"}
    assert logged == {row["ID"] for row in changed}  # the invoices' sync rows
    assert not [r for r in purchase_invoices_checked(session, fake) if r["EntryNumber"] == 4]


def test_tables_sized_by_a_test_follow_the_entries_too() -> None:
    """A table a test makes smaller than the books' invoices, or larger (it goes round them):
    the links of an added invoice name rows that exist, a deleted entry leaves no copy, and
    rows are added through the entries only."""
    rows = {"transaction_lines": 3000, "sales_invoices": 300, "sales_orders": 20}
    rows |= {"sales_order_headers": 2000, "accounts": 200, "gl_accounts": 40, "items": 60}
    with FakeExact(divisions=(DIV,), rows=rows, minutely_limit=10**6, daily_limit=10**6) as fake:
        session = authorized(fake)
        before = keyed(read(session, fake, "sales_orders"), "OrderID")
        fake.mutate("transaction_lines", DIV, insert=len(BLOCK))  # 3 sales entries
        orders = keyed(read(session, fake, "sales_orders"), "OrderID")
        added = set(orders) - set(before)
        assert len(added) == 3
        headers = read(session, fake, "sales_order_headers")
        invoiced = [row for row in read(session, fake, "sales_invoices") if row["LineNumber"]]
        for named in ({r["OrderID"] for r in headers}, {r["SalesOrder"] for r in invoiced}):
            assert added <= named <= set(orders) | {None}, "a link to an order that is not there"

        assert sum(row["OrderNumber"] == 2 for row in headers) > 1  # the headers go round
        fake.delete("transaction_lines", DIV, 4)  # the opening, two sales and a purchase
        left = read(session, fake, "sales_order_headers")
        assert not [row for row in left if row["OrderNumber"] in (2, 3)]

        with pytest.raises(ValueError, match="insert transaction_lines"):
            fake.mutate("sales_invoices", DIV, insert=1)


def test_divisions_keep_books_of_their_own(fake, session) -> None:
    mine = read(session, fake, "transaction_lines")
    other = read(session, fake, "transaction_lines", 1002)
    assert {line["EntryID"] for line in mine}.isdisjoint(line["EntryID"] for line in other)
    assert [line["AmountDC"] for line in mine[:40]] != [line["AmountDC"] for line in other[:40]]


def test_a_division_of_a_million_lines_is_served_lazily() -> None:
    """Rows are generated when asked: the last page of a million lines comes without the rows
    before it, and its entries balance like the first."""
    with FakeExact(divisions=(DIV,), rows={"transaction_lines": 1_000_000}) as fake:
        s = authorized(fake)
        assert fake.row_count("transaction_lines", DIV) == 1_000_000
        spec = fake.data.spec("transaction_lines")
        table = fake.data.table(spec, DIV)
        before_last = table.timestamp(1_000_000 - 1001)
        response = s.get(
            f"{fake.base_url}/api/v1/{DIV}/{spec.path}",
            params={"$select": ",".join(spec.fields), "$filter": f"Timestamp gt {before_last}L"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        lines = response.json()["d"]["results"]
    assert len(lines) == 1000
    per_entry: Counter[str] = Counter()
    for line in lines:
        per_entry[line["EntryID"]] += cents(line["AmountDC"])
    assert len(per_entry) == 250 and not [e for e, total in per_entry.items() if total]
    assert (fake.data.today - wire_day(lines[-1]["Date"])).days <= 1  # the books run up to today
