"""What the rows of the financial streams say, read from a division's `Books`.

Two kinds: reference and entry streams keep their generated rows and take the fields the books
define (`row_values`); aggregate streams are computed from the entries (`ComputedRows`), one
slot per possible row so a row keeps its key while the books change around it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial

from fake_exact.books import (
    _CITIES,
    _PRODUCTS,
    _STREETS,
    _SUPPLIER_TRADES,
    _SURNAMES,
    _TRADES,
    BLOCK,
    CHART,
    CLASSIFICATIONS,
    COST_OF_GOODS,
    DIVISION_CURRENCY,
    ENTRY_TYPE,
    INVOICE_KINDS,
    JOURNAL_OF,
    JOURNALS,
    LINES_PER_ENTRY,
    RETAINED,
    REVENUE_HIGH,
    REVENUE_LOW,
    STATUS_PROCESSED,
    VAT_CODES,
    VAT_HIGH,
    VAT_TO_CLAIM,
    VAT_TO_PAY,
    YEAR_END_TYPES,
    Books,
    Entry,
    GLAccountDef,
    JournalDef,
    OpenItem,
    VATCodeDef,
    cents,
    date_value,
    guid,
    guid_prefix,
)

Values = dict[str, object]
AGE_GROUPS = (
    (1, "<= 30", 0, 30),
    (2, "31 - 60", 31, 60),
    (3, "61 - 90", 61, 90),
    (4, "> 90", 91, 10**9),
)
TYPES = tuple(sorted(set(ENTRY_TYPE.values())))


class Refs:
    """Guids and labels of the rows the books point into, in one division."""

    def __init__(
        self, seed: int, division: int, books: Books, invoice_rows: dict[tuple[str, str], int]
    ) -> None:
        """`invoice_rows`: the rows each table of INVOICE_TABLES is made with."""
        self.books = books
        self._prefix = {
            stream: guid_prefix(seed, stream, division, "ID")
            for stream in (
                "gl_accounts",
                "accounts",
                "items",
                "journals",
                "vat_codes",
                "gl_classifications",
                "gl_schemes",
                "financial_periods",
                "contacts",
                "purchase_invoices",
                "sales_order_lines",
            )
        }
        # Keys of the header-only endpoints, and what every row of an invoice or order names.
        self._prefix["sales_invoices"] = guid_prefix(seed, "sales_invoices", division, "InvoiceID")
        self._prefix["sales_orders"] = guid_prefix(seed, "sales_orders", division, "OrderID")
        self._prefix["quotations"] = guid_prefix(seed, "quotations", division, "QuotationID")
        self.entry_prefix = guid_prefix(seed, "entries", division, "EntryID")
        # Each kind's invoices: as many as its header-only table (one row per invoice) has.
        self.invoices = {
            kind: Invoices(books, kind, invoice_rows[table]) for kind, table in INVOICES_OF.items()
        }
        self.invoice_tables = {
            table: InvoiceTable(
                kind, per_invoice, invoice_rows[table], self.invoices[kind].generated
            )
            for table, (kind, per_invoice) in INVOICE_TABLES.items()
        }

    def invoice(self, table: tuple[str, str], row: int) -> tuple[Entry | None, int, int]:
        """Row `row` of an invoice table -> (the entry behind its invoice, the invoice's number,
        the row's place in the invoice)."""
        where = self.invoice_tables[table]
        number, part = where.locate(row)
        return self.invoices[where.kind].entry(number), number, part

    def rows_behind(self, table: tuple[str, str], entries: Sequence[int]) -> list[int]:
        """The rows of an invoice table that the invoices of these entries have."""
        where = self.invoice_tables[table]
        invoices = self.invoices[where.kind]
        return [row for e in entries for n in invoices.numbers(e) for row in where.rows(n)]

    def key_of(self, table: tuple[str, str], number: int) -> str | None:
        """The key of invoice `number`'s (first) row in a header-only table: what other rows
        name it by."""
        rows = self.invoice_tables[table].rows(number)
        return self.id(table[0], rows[0]) if rows else None

    def id(self, stream: str, row: int | None) -> str | None:
        return None if row is None else guid(self._prefix[stream], row)

    def prefix(self, stream: str) -> str:
        return self._prefix[stream]

    # chart
    def gl(self, row: int) -> GLAccountDef:
        if row < len(CHART):
            return CHART[row]
        return GLAccountDef(
            f"5{row:04d}",
            f"Overige bedrijfskosten {row}",
            121,
            "Sales, general administrative expenses",
            "D",
            "W",
            14,
        )

    def journal(self, row: int) -> JournalDef:
        if row < len(JOURNALS):
            return JOURNALS[row]
        return JournalDef(f"{90 + row}", f"Memoriaal {row}", 90, None)

    def vat(self, row: int) -> VATCodeDef:
        return (
            VAT_CODES[row]
            if row < len(VAT_CODES)
            else VATCodeDef(f"V{row}", f"BTW-code {row}", 0.0)
        )

    # relations
    def account(self, row: int | None) -> tuple[str | None, str | None]:
        if row is None:
            return None, None
        return account_code(row), account_name(row)


def account_code(row: int) -> str:
    return f"{row + 1:>18}"  # Exact right-aligns account codes in 18 characters


def account_name(row: int) -> str:
    surname = _SURNAMES[(row * 7 + row // 16) % len(_SURNAMES)]
    if row % 5 == 4:
        return f"{_SUPPLIER_TRADES[row // 5 % len(_SUPPLIER_TRADES)]} {surname} B.V."
    return f"{_TRADES[row % len(_TRADES)]} {surname}"


# --- reference streams ---------------------------------------------------------------------------


def gl_account_values(refs: Refs, row: int) -> Values:
    account = refs.gl(row)
    vat = None if account.vat_code is None else refs.vat(account.vat_code)
    return {
        "Code": account.code,
        "Description": account.description,
        "SearchCode": account.description[:10].upper().ljust(10),
        "Type": account.type,
        "TypeDescription": account.type_description,
        "BalanceSide": account.balance_side,
        "BalanceType": account.balance_type,
        "VATCode": None if vat is None else vat.code,
        "VATDescription": None if vat is None else vat.description,
        "IsBlocked": False,
        "Costcenter": None,
        "CostcenterDescription": None,
        "Costunit": None,
        "CostunitDescription": None,
    }


def classification_values(refs: Refs, row: int) -> Values:
    if row < len(CLASSIFICATIONS):
        node = CLASSIFICATIONS[row]
        code, description, parent, balance = node.code, node.description, node.parent, node.balance
    else:
        code, description, parent, balance = f"WBed{row:03d}", f"Overige kosten {row}", 14, "D"
    profit_and_loss = code.startswith("W")
    return {
        "Code": code,
        "Name": description,
        "Description": description,
        "Parent": refs.id("gl_classifications", parent),
        "Balance": "debit" if balance == "D" else "credit",
        "PeriodType": "duration" if profit_and_loss else "instant",
        "Abstract": parent is None or row in (1, 2),
        "TaxonomyNamespace": refs.id("gl_schemes", 0),
        "TaxonomyNamespaceDescription": "Referentie Grootboekschema",
    }


def classification_mapping_values(refs: Refs, row: int) -> Values:
    gl_row = row % max(1, refs.books.sizes.gl_accounts)
    account = refs.gl(gl_row)
    node = CLASSIFICATIONS[account.classification]
    return {
        "GLAccount": refs.id("gl_accounts", gl_row),
        "GLAccountCode": account.code,
        "GLAccountDescription": account.description,
        "Classification": refs.id("gl_classifications", account.classification),
        "ClassificationCode": node.code,
        "ClassificationDescription": node.description,
        "GLSchemeID": refs.id("gl_schemes", 0),
        "GLSchemeCode": "RGS",
        "GLSchemeDescription": "Referentie Grootboekschema",
    }


def scheme_values(refs: Refs, row: int) -> Values:
    main = row == 0
    return {
        "Code": "RGS" if main else f"S{row}",
        "Description": "Referentie Grootboekschema" if main else f"Rapportageschema {row}",
        "Main": 1 if main else 0,
        "TargetNamespace": "http://www.nltaxonomie.nl/nt16/rgs" if main else None,
    }


def journal_values(refs: Refs, row: int) -> Values:
    journal = refs.journal(row)
    gl = None if journal.gl is None else refs.books.gl_row(journal.gl)
    return {
        "Code": journal.code,
        "Description": journal.description,
        "Type": journal.type,
        "GLAccount": refs.id("gl_accounts", gl),
        "GLAccountCode": None if gl is None else refs.gl(gl).code,
        "GLAccountDescription": None if gl is None else refs.gl(gl).description,
        "GLAccountType": None if gl is None else refs.gl(gl).type,
        "Currency": "EUR",
        "CurrencyDescription": "Euro",
        "AllowVAT": journal.type in (20, 22, 90),
        "IsBlocked": False,
        "BankAccountIBAN": "NL91INGB0001234567" if journal.type == 12 else None,
        "BankName": "ING Bank" if journal.type == 12 else None,
    }


def vat_code_values(refs: Refs, row: int) -> Values:
    vat = refs.vat(row)
    to_pay, to_claim = refs.books.gl_row(VAT_TO_PAY), refs.books.gl_row(VAT_TO_CLAIM)
    return {
        "Code": vat.code,
        "Description": vat.description,
        "Percentage": vat.percentage,
        "Type": "E" if vat.percentage else "B",
        "VATTransactionType": "B",
        "GLToPay": refs.id("gl_accounts", to_pay),
        "GLToPayCode": refs.gl(to_pay).code,
        "GLToPayDescription": refs.gl(to_pay).description,
        "GLToClaim": refs.id("gl_accounts", to_claim),
        "GLToClaimCode": refs.gl(to_claim).code,
        "GLToClaimDescription": refs.gl(to_claim).description,
        "IsBlocked": False,
        "Country": "NL ",
    }


def period_values(refs: Refs, row: int) -> Values:
    year = refs.books.first_day.year + row // 12
    period = row % 12 + 1
    start = date(year, period, 1)
    end = (date(year + 1, 1, 1) if period == 12 else date(year, period + 1, 1)) - timedelta(days=1)
    return {
        "FinYear": year,
        "FinPeriod": period,
        "StartDate": date_value(start),
        "EndDate": date_value(end),
    }


def account_values(refs: Refs, row: int) -> Values:
    city, postcode, latitude, longitude = _CITIES[(row * 3 + row // 10) % len(_CITIES)]
    name = account_name(row)
    supplier = row % 5 == 4
    slug = "".join(ch for ch in name.lower() if ch.isalnum())[:40]
    return {
        "Code": account_code(row),
        "Name": name,
        "SearchCode": name[:10].upper(),
        "City": city,
        "Postcode": f"{postcode}{row % 90 + 10:02d} {chr(65 + row % 26)}{chr(65 + row // 26 % 26)}",
        "AddressLine1": f"{_STREETS[row % len(_STREETS)]} {row % 180 + 1}",
        "AddressLine2": None,
        "AddressLine3": None,
        "Country": "NL ",
        "CountryName": "Nederland",
        "StateName": None,
        "Email": f"info@{slug}.nl",
        "Phone": f"+31 {postcode}{row % 9 + 1} {row * 7919 % 900000 + 100000}",
        "PhoneExtension": None,
        "Website": f"https://www.{slug}.nl",
        "Latitude": round(latitude + (row % 97 - 48) / 2000, 6),
        "Longitude": round(longitude + (row % 89 - 44) / 2000, 6),
        "IsSupplier": supplier,
        "IsSales": not supplier,
        "IsPurchase": supplier,
        "Status": "A" if supplier else "C",
        "Type": "A",
        "TradeName": None,
    }


_FIRST_NAMES = ("Anna", "Bram", "Daan", "Emma", "Fleur", "Jeroen", "Lotte", "Mark", "Noor", "Sanne")
_JOB_TITLES = ("Eigenaar", "Inkoper", "Office manager", "Financieel medewerker", "Bedrijfsleider")
# Exact's address types (CRM/Addresses, `Type`): 1 visit, 2 postal, 3 invoice, 4 delivery.
ADDRESS_TYPES = (1, 2, 3, 4)


def _account_row(refs: Refs, row: int) -> int:
    """The account a contact or address row belongs to: rows go round the accounts."""
    return row % max(1, refs.books.sizes.accounts)


def contact_values(refs: Refs, row: int) -> Values:
    """A person at one of the accounts; the first contact of each account is its main one."""
    account = _account_row(refs, row)
    first = _FIRST_NAMES[(row * 3 + row // 7) % len(_FIRST_NAMES)]
    owner = account_values(refs, account)
    last = _SURNAMES[(row * 5 + row // 11) % len(_SURNAMES)]
    domain = str(owner["Email"]).split("@", 1)[1]
    local = f"{first}.{last}".lower().replace(" ", "")
    return {
        "Account": refs.id("accounts", account),
        "AccountName": owner["Name"],
        "AccountIsCustomer": owner["IsSales"],
        "AccountIsSupplier": owner["IsSupplier"],
        "AccountMainContact": refs.id("contacts", account),
        "IsMainContact": row == account,
        "FirstName": first,
        "MiddleName": None,
        "LastName": last,
        "FullName": f"{first} {last}",
        "Initials": f"{first[0]}.",
        "Email": f"{local}@{domain}",
        "BusinessEmail": f"{local}@{domain}",
        "Phone": owner["Phone"],
        "BusinessPhone": owner["Phone"],
        "Mobile": f"+31 6 {row * 104_729 % 90_000_000 + 10_000_000}",
        "JobTitleDescription": _JOB_TITLES[row % len(_JOB_TITLES)],
        "City": owner["City"],
        "Postcode": owner["Postcode"],
        "AddressStreet": str(owner["AddressLine1"]).rsplit(" ", 1)[0],
        "AddressStreetNumber": str(owner["AddressLine1"]).rsplit(" ", 1)[1],
        "AddressStreetNumberSuffix": None,
        "Country": "NL",
        "Language": "NL",
        "Nationality": "NL",
    }


def address_values(refs: Refs, row: int) -> Values:
    """An account's addresses, one of each type: visit, postal, invoice, delivery."""
    account = _account_row(refs, row)
    kind = ADDRESS_TYPES[row // max(1, refs.books.sizes.accounts) % len(ADDRESS_TYPES)]
    owner = account_values(refs, account)
    line1 = owner["AddressLine1"]
    if kind == 2:  # postal: a PO box in the same town
        line1 = f"Postbus {account * 37 % 9000 + 100}"
    return {
        "Account": refs.id("accounts", account),
        "AccountName": owner["Name"],
        "AccountIsSupplier": owner["IsSupplier"],
        "Type": kind,
        "Main": row < len(ADDRESS_TYPES) * max(1, refs.books.sizes.accounts),
        "AddressLine1": line1,
        "AddressLine2": None,
        "AddressLine3": None,
        "City": owner["City"],
        "Postcode": owner["Postcode"],
        "Country": "NL",
        "CountryName": "Nederland",
        "State": None,
        "StateDescription": None,
        "Phone": owner["Phone"],
        "PhoneExtension": None,
        "Fax": None,
        "Mailbox": None,
        "Contact": None,
        "ContactName": None,
    }


def item_values(refs: Refs, row: int) -> Values:
    description, price, vat = _PRODUCTS[row % len(_PRODUCTS)]
    revenue = refs.books.gl_row(REVENUE_HIGH if vat == VAT_HIGH else REVENUE_LOW)
    costs = refs.books.gl_row(COST_OF_GOODS)
    variant = row // len(_PRODUCTS)
    return {
        "Code": f"ART{row + 1:05d}",
        "Description": description if variant == 0 else f"{description} ({variant})",
        "SearchCode": f"ART{row + 1:05d}",
        "Unit": "stuk",
        "UnitDescription": "Stuk",
        "IsSalesItem": True,
        "IsPurchaseItem": True,
        "CostPriceStandard": cents(price * 55 // 100),
        "AverageCost": cents(price * 55 // 100),
        "CostPriceCurrency": "EUR",
        "GLRevenueCode": refs.gl(revenue).code,
        "GLRevenueDescription": refs.gl(revenue).description,
        "GLCostsCode": refs.gl(costs).code,
        "GLCostsDescription": refs.gl(costs).description,
        "SalesVatCode": refs.vat(vat).code,
        "SalesVatCodeDescription": refs.vat(vat).description,
    }


# --- transaction lines ----------------------------------------------------------------------------

_EMPTY_LINE_FIELDS = (
    "Asset",
    "AssetCode",
    "AssetDescription",
    "CostCenter",
    "CostCenterDescription",
    "CostUnit",
    "CostUnitDescription",
    "CustomField",
    "Document",
    "DocumentNumber",
    "DocumentSubject",
    "ExternalLinkDescription",
    "ExternalLinkReference",
    "ExtraDutyAmountFC",
    "ExtraDutyPercentage",
    "Notes",
    "OffsetID",
    "OrderNumber",
    "PaymentDiscountAmount",
    "PaymentReference",
    "Project",
    "ProjectCode",
    "ProjectDescription",
    "ProjectWBS",
    "ProjectWBSDescription",
    "SerialNumber",
    "Subscription",
    "SubscriptionDescription",
    "TrackingNumber",
    "TrackingNumberDescription",
)


def line_number(entry: Entry, number: int) -> int:
    """0 the header, 9999 the VAT line of an invoice, else the line's position (Invantive)."""
    if number == 3 and entry.kind in INVOICE_KINDS:
        return 9999
    return number


def transaction_line_values(refs: Refs, row: int) -> Values:
    books = refs.books
    entry_index, number = books.locate(row)
    entry = books.entry(entry_index)
    line = entry.lines[number]
    gl_row = books.gl_row(line.gl)
    gl = refs.gl(gl_row)
    journal = JOURNALS[JOURNAL_OF[entry.kind]]
    account_code_, account_name_ = refs.account(line.account)
    vat = None if line.vat is None else refs.vat(line.vat)
    item_description = None
    if line.item is not None:
        item_description = item_values(refs, line.item)["Description"]
    invoice = line.invoice
    return {
        "Account": refs.id("accounts", line.account),
        "AccountCode": account_code_,
        "AccountName": account_name_,
        "AmountDC": cents(line.amount_dc),
        "AmountFC": cents(line.amount_fc),
        "AmountVATBaseFC": None if line.vat_base_fc is None else cents(line.vat_base_fc),
        "AmountVATFC": None if line.vat_fc is None else cents(line.vat_fc),
        "Currency": entry.currency,
        "Date": date_value(entry.day),
        "Description": line.description,
        "DueDate": date_value(entry.due) if number == 0 and entry.due else None,
        "EntryID": guid(refs.entry_prefix, entry.index),
        "EntryNumber": entry.number,
        "ExchangeRate": entry.rate,
        "FinancialPeriod": entry.day.month,
        "FinancialYear": entry.day.year,
        "GLAccount": refs.id("gl_accounts", gl_row),
        "GLAccountCode": gl.code,
        "GLAccountDescription": gl.description,
        "InvoiceNumber": None if invoice is None else invoice + 1,
        "Item": refs.id("items", line.item),
        "ItemCode": None if line.item is None else f"ART{line.item + 1:05d}",
        "ItemDescription": item_description,
        "JournalCode": journal.code,
        "JournalDescription": journal.description,
        "LineNumber": line_number(entry, number),
        "Quantity": line.quantity,
        "Type": ENTRY_TYPE[entry.kind],
        "VATCode": None if vat is None else vat.code,
        "VATCodeDescription": None if vat is None else vat.description,
        "VATPercentage": None if vat is None else vat.percentage,
        "VATType": None if vat is None else ("S" if entry.kind == "sales" else "P"),
        "YourRef": entry.your_ref if number == 0 else None,
    }


# --- invoices -------------------------------------------------------------------------------------


class Invoices:
    """Which entry each invoice of a kind (sales, purchase) is. The first `generated` invoices,
    the ones the tables were made with, go round the generated entries of the kind in index
    order; each entry of the kind added since (`Books.changes.invoices`) is the next one."""

    def __init__(self, books: Books, kind: str, generated: int) -> None:
        self.books = books
        self.kind = kind
        self.generated = generated
        self.places = [place for place, name in enumerate(BLOCK) if name == kind]
        # Whole entries only: the last generated one may be cut short by the table's size.
        last = books.base_entries - 1
        whole = books.base_entries - (last >= 0 and books.line_count(last) < LINES_PER_ENTRY)
        self.total = sum(max(0, -(-(whole - 1 - place) // len(BLOCK))) for place in self.places)

    def _added(self) -> list[int]:
        return self.books.changes.invoices.get(self.kind, [])

    def entry(self, number: int) -> Entry | None:
        if number < 0:
            return None
        if number >= self.generated:
            added = self._added()
            at = number - self.generated
            return self.books.entry(added[at]) if at < len(added) else None
        if self.total == 0:
            return None
        # In index order: only the last block can be partial, and it holds the first places.
        block, at = divmod(number % self.total, len(self.places))
        return self.books.entry(1 + block * len(BLOCK) + self.places[at])

    def numbers(self, entry: int) -> list[int]:
        """The invoices that are `entry`: several where the tables go round the entries."""
        added = self._added()
        if entry in added:
            return [self.generated + added.index(entry)]
        if not 0 < entry < self.books.base_entries:
            return []
        block, position = divmod(entry - 1, len(BLOCK))
        if BLOCK[position] != self.kind:
            return []
        first = block * len(self.places) + self.places.index(position)
        return list(range(first, self.generated, self.total)) if first < self.total else []


@dataclass(frozen=True)
class InvoiceTable:
    """Where an invoice's rows are in one table: `per_invoice` rows each, the `generated`
    invoices in the `base` rows the table was made with, then the invoices added since."""

    kind: str
    per_invoice: int
    base: int
    generated: int

    def locate(self, row: int) -> tuple[int, int]:
        """Row -> (invoice number, row within the invoice); number -1: no invoice."""
        if row < self.base:
            number, part = divmod(row, self.per_invoice)
            # A table a test sized larger than its invoices goes round them.
            return (number % self.generated if self.generated else -1), part
        number, part = divmod(row - self.base, self.per_invoice)
        return self.generated + number, part

    def rows(self, number: int) -> list[int]:
        """The rows of invoice `number`: in every round of a table that goes round them."""
        per = self.per_invoice
        if number >= self.generated:
            first = self.base + (number - self.generated) * per
            return list(range(first, first + per))
        rounds = range(number * per, self.base, per * self.generated)
        return [row for first in rounds for row in range(first, min(first + per, self.base))]


# Exact's purchase/PurchaseInvoices: Type 8033 purchase invoice, Status 50 processed, Source 3
# purchase invoice (Exact's reference as exactonline-api-dotnet-client documents it).
PURCHASE_INVOICE_CONSTANTS: Values = {
    "Currency": DIVISION_CURRENCY,
    "ExchangeRate": 1.0,
    "Journal": JOURNALS[JOURNAL_OF["purchase"]].code,
    "Source": 3,
    "Status": STATUS_PROCESSED,
    "Type": 8033,
    # What the books do not have: no discounts, no documents, contacts, warehouses or remarks.
    **dict.fromkeys(("AmountDiscount", "AmountDiscountExclVat", "Discount"), 0.0),
    **dict.fromkeys(("ContactPerson", "Document", "PaymentCondition", "PaymentReference")),
    **dict.fromkeys(("Remarks", "Warehouse")),
}
PURCHASE_INVOICE_LINE_CONSTANTS: Values = {
    "Discount": 0.0,
    "Rebill": False,
    **dict.fromkeys(("CostCenter", "CostUnit", "CustomField", "Expense", "ExpenseDescription")),
    **dict.fromkeys(("Item", "ItemUnit", "Notes", "Project", "PurchaseOrderLine", "Unit")),
}


def purchase_invoice_values(refs: Refs, row: int) -> Values:
    """A purchase invoice as the purchase entry behind it has it: the creditor line's total, the
    VAT line, the supplier, dates and period; EntryNumber joins it to TransactionLines."""
    entry = refs.invoice(("purchase_invoices", "standard"), row)[0]
    if entry is None:
        return {}
    total, vat = -entry.lines[0].amount_dc, entry.lines[-1].amount_dc
    return {
        "Amount": cents(total),
        "AmountDC": cents(total),
        "AmountFCExclVat": cents(total - vat),
        "VATAmount": cents(vat),
        "Description": entry.lines[0].description,
        "EntryNumber": entry.number,
        "InvoiceDate": date_value(entry.day),
        "DueDate": None if entry.due is None else date_value(entry.due),
        "FinancialYear": entry.day.year,
        "FinancialPeriod": entry.day.month,
        "Supplier": refs.id("accounts", entry.account),
        "YourRef": entry.lines[0].description.rsplit(" ", 1)[-1],
    }


def purchase_invoice_line_values(refs: Refs, row: int) -> Values:
    """Line 1 or 2 of a purchase invoice (its cost lines in the ledger)."""
    entry, invoice_row, number = refs.invoice(("purchase_invoice_lines", "standard"), row)
    if entry is None:
        return {}
    line = entry.lines[1 + number]
    vat = refs.vat(line.vat if line.vat is not None else VAT_HIGH)
    return {
        "Amount": cents(line.amount_dc),
        "AmountDC": cents(line.amount_dc),
        "Currency": DIVISION_CURRENCY,
        "Description": line.description,
        "InvoiceID": refs.key_of(("purchase_invoices", "standard"), invoice_row),
        "InvoiceType": 8033,
        "LineNumber": 1 + number,
        "NetPrice": cents(line.amount_dc),
        "Quantity": 1.0,
        "QuantityInDefaultUnits": 1.0,
        "UnitPrice": cents(line.amount_dc),
        "VATAmount": cents(line.vat_fc or 0),
        "VATCode": vat.code,
        "VATPercentage": vat.percentage,
    }


# Exact's SalesInvoices: Type 8020 sales invoice, Status 50 processed; Warehouse is for direct
# sales invoices only, withholding tax is not supported in the Netherlands (Exact's reference as
# picqer/exact-php-client's SyncSalesInvoice copies it).
SALES_INVOICE_CONSTANTS: Values = {
    "Journal": JOURNALS[JOURNAL_OF["sales"]].code,
    "JournalDescription": JOURNALS[JOURNAL_OF["sales"]].description,
    "Status": STATUS_PROCESSED,
    "StatusDescription": "Verwerkt",
    "Type": 8020,
    "TypeDescription": "Verkoopfactuur",
    "Discount": 0.0,
    **dict.fromkeys(("AmountDiscount", "AmountDiscountExclVat", "GAccountAmountFC"), 0.0),
    **dict.fromkeys(("CostCenter", "CostCenterDescription", "CostUnit", "CostUnitDescription")),
    **dict.fromkeys(("Document", "DocumentNumber", "DocumentSubject", "Employee", "Notes")),
    **dict.fromkeys(("PaymentCondition", "PaymentConditionDescription", "PaymentReference")),
    **dict.fromkeys(("Project", "ProjectDescription", "ProjectWBS", "ProjectWBSDescription")),
    **dict.fromkeys(("Salesperson", "SalespersonFullName", "Subscription", "Warehouse")),
    **dict.fromkeys(("Remarks", "ExtraDutyAmountFC", "ExtraDutyPercentage", "IsExtraDuty")),
    **dict.fromkeys(("WithholdingTaxAmountFC", "WithholdingTaxBaseAmount")),
    "WithholdingTaxPercentage": None,
    "DiscountType": 1,  # 1 discount percentage (none given)
    # What the books do not keep: no contact persons, price lists, channels, incoterms, tax
    # schedules, selection codes, shipping methods, periods or the starter's status.
    **dict.fromkeys(("DeliverToAddress", "DeliveryDate", "StartTime", "EndTime")),
    **dict.fromkeys(("CustomerItemCode", "CustomField", "EmployeeFullName")),
    **dict.fromkeys(("IncotermAddress", "IncotermCode", "IncotermVersion")),
    **dict.fromkeys(("Pricelist", "PricelistDescription", "SubscriptionDescription")),
    **dict.fromkeys(("SalesChannel", "SalesChannelCode", "SalesChannelDescription")),
    **dict.fromkeys(("SelectionCode", "SelectionCodeCode", "SelectionCodeDescription")),
    **dict.fromkeys(("ShippingMethod", "ShippingMethodCode", "ShippingMethodDescription")),
    **dict.fromkeys(("StarterSalesInvoiceStatus", "StarterSalesInvoiceStatusDescription")),
    **dict.fromkeys(("TaxSchedule", "TaxScheduleCode", "TaxScheduleDescription")),
    **{
        f"{party}ContactPerson{suffix}": None
        for party in ("InvoiceTo", "OrderedBy", "DeliverTo")
        for suffix in ("", "FullName")
    },
}
# sync/SalesInvoice/SalesInvoices serves header and lines as rows: LineNumber 0 the invoice,
# 1 and 2 its lines (REFERENCE.md, "Header/line endpoints"); the other endpoints a row per
# invoice (SalesInvoices) or per line (SalesInvoiceLines).
SALES_INVOICE_SYNC_ROWS = 3
ORDER_LEAD_DAYS = 7  # an order is invoiced when delivered, a week after it was placed


def _sales_invoice(refs: Refs, entry: Entry, invoice_row: int) -> Values:
    """What every row of a sales invoice says about it, from the entry behind it."""
    customer = refs.id("accounts", entry.account)
    name = refs.account(entry.account)[1]
    return {
        "InvoiceID": refs.key_of(("sales_invoices", "standard"), invoice_row),
        "InvoiceNumber": entry.number,
        "InvoiceDate": date_value(entry.day),
        "OrderDate": date_value(entry.day - timedelta(days=ORDER_LEAD_DAYS)),
        "DueDate": None if entry.due is None else date_value(entry.due),
        "Currency": entry.currency,
        "YourRef": entry.your_ref,
        "OrderNumber": entry.number,
        **dict.fromkeys(("InvoiceTo", "OrderedBy", "DeliverTo"), customer),
        **dict.fromkeys(("InvoiceToName", "OrderedByName", "DeliverToName"), name),
    }


def _sales_invoice_totals(entry: Entry) -> Values:
    """The header's figures: the debtors' line (the total with VAT) and the VAT line."""
    header, vat = entry.lines[0], entry.lines[-1]
    return {
        "AmountDC": cents(header.amount_dc),
        "AmountFC": cents(header.amount_fc),
        "AmountFCExclVat": cents(header.amount_fc + vat.amount_fc),
        "VATAmountDC": cents(-vat.amount_dc),
        "VATAmountFC": cents(-vat.amount_fc),
        "Description": header.description,
    }


def _sales_invoice_line(refs: Refs, entry: Entry, number: int) -> Values:
    """Invoice line `number` (1 or 2): a revenue line of the entry, with its sign turned (an
    invoice's lines are positive; the ledger books revenue on the credit side)."""
    line = entry.lines[number]
    gl_row = refs.books.gl_row(line.gl)
    vat = refs.vat(line.vat if line.vat is not None else VAT_HIGH)
    quantity = line.quantity or 1
    item = None if line.item is None else item_values(refs, line.item)
    return {
        "AmountDC": cents(-line.amount_dc),
        "AmountFC": cents(-line.amount_fc),
        "Description": line.description,
        "GLAccount": refs.id("gl_accounts", gl_row),
        "GLAccountDescription": refs.gl(gl_row).description,
        "Item": refs.id("items", line.item),
        "ItemCode": None if item is None else item["Code"],
        "ItemDescription": None if item is None else item["Description"],
        "LineNumber": number,
        "NetPrice": cents(-line.amount_fc // quantity),
        "UnitPrice": cents(-line.amount_fc // quantity),
        "Quantity": float(quantity),
        "UnitCode": "stuk",
        "UnitDescription": "Stuk",
        "VATAmountDC": cents(round(-(line.vat_fc or 0) * entry.rate)),
        "VATAmountFC": cents(-(line.vat_fc or 0)),
        "VATCode": vat.code,
        "VATCodeDescription": vat.description,
        "VATPercentage": vat.percentage,
    }


def _invoiced_order_line(refs: Refs, entry: Entry, invoice_row: int, number: int) -> Values:
    """Where an invoice line comes from: line `number` of the order behind the invoice."""
    order_lines = refs.invoice_tables[("sales_order_lines", "sync")].rows(invoice_row)
    return {
        "SalesOrder": refs.key_of(("sales_orders", "bulk"), invoice_row),
        "SalesOrderNumber": entry.number,
        "SalesOrderLine": refs.id("sales_order_lines", order_lines[number - 1])
        if len(order_lines) >= number
        else None,
        "SalesOrderLineNumber": number,
    }


# Fields of a sync row that only a line fills.
_LINE_ONLY = (
    "SalesOrder",
    "SalesOrderLine",
    "SalesOrderNumber",
    "SalesOrderLineNumber",
    "GLAccount",
    "GLAccountDescription",
    "Item",
    "ItemCode",
    "ItemDescription",
    "NetPrice",
    "UnitPrice",
    "Quantity",
    "UnitCode",
    "UnitDescription",
    "VATCode",
    "VATCodeDescription",
    "VATPercentage",
)


def sales_invoice_values(refs: Refs, row: int) -> Values:
    """A sales invoice (SalesInvoices on the standard and bulk APIs) as its sales entry has it:
    InvoiceNumber is the entry's EntryNumber (Exact copies it there when the invoice is
    processed), the total with VAT is the debtors' line."""
    entry, invoice_row, _ = refs.invoice(("sales_invoices", "standard"), row)
    if entry is None:
        return {}
    invoice = _sales_invoice(refs, entry, invoice_row)
    return {**invoice, **_sales_invoice_totals(entry)}


def sales_invoice_sync_values(refs: Refs, row: int) -> Values:
    """Row `row` of sync/SalesInvoice/SalesInvoices: the header (LineNumber 0, the invoice's
    figures; line fields empty) or line 1 or 2 (the line's figures; AmountFCExclVat, which
    Exact supports for the header only, empty), each with the invoice's own fields."""
    entry, invoice_row, number = refs.invoice(("sales_invoices", "sync"), row)
    if entry is None:
        return {}
    invoice = _sales_invoice(refs, entry, invoice_row)
    if number == 0:
        return {
            **invoice,
            **_sales_invoice_totals(entry),
            **dict.fromkeys(_LINE_ONLY),
            "LineNumber": 0,
        }
    return {
        **invoice,
        **_sales_invoice_line(refs, entry, number),
        **_invoiced_order_line(refs, entry, invoice_row, number),
        "AmountFCExclVat": None,
    }


def sales_invoice_line_values(refs: Refs, row: int) -> Values:
    """Line 1 or 2 of a sales invoice (SalesInvoiceLines)."""
    entry, invoice_row, number = refs.invoice(("sales_invoice_lines", "bulk"), row)
    if entry is None:
        return {}
    return {
        "InvoiceID": refs.key_of(("sales_invoices", "standard"), invoice_row),
        **_sales_invoice_line(refs, entry, 1 + number),
        **_invoiced_order_line(refs, entry, invoice_row, 1 + number),
    }


# --- sales orders ---------------------------------------------------------------------------------

# Exact's SalesOrders: Status 21 complete (12 open, 20 partial, 21 complete, 45 cancelled:
# picqer/exact-php-client's SalesOrder); delivered and invoiced in full, the invoice is in the
# books.
SALES_ORDER_CONSTANTS: Values = {
    **SALES_INVOICE_CONSTANTS,
    **dict.fromkeys(("Status", "DeliveryStatus", "InvoiceStatus"), 21),
    **{
        f"{status}Description": "Complete"
        for status in ("Status", "DeliveryStatus", "InvoiceStatus")
    },
    **dict.fromkeys(("ApprovalStatus", "ApprovalStatusDescription", "Approved", "Approver")),
    **dict.fromkeys(("ApproverFullName", "DeliveryAddress", "ProjectCode", "CostPriceFC")),
    **dict.fromkeys(("ItemVersion", "ItemVersionDescription", "Margin", "ShopOrder")),
    **dict.fromkeys(("PurchaseOrder", "PurchaseOrderLine", "PurchaseOrderLineNumber")),
    **dict.fromkeys(("PurchaseOrderNumber", "ShopOrderNumber")),
    **dict.fromkeys(("WarehouseCode", "WarehouseDescription", "WarehouseID")),
    "UseDropShipment": 0,
}


def _sales_order(refs: Refs, entry: Entry, order_row: int) -> Values:
    """What an order's rows say about it: the order behind invoice `order_row`, its number the
    invoice's."""
    return {
        "OrderID": refs.key_of(("sales_orders", "bulk"), order_row),
        "OrderNumber": entry.number,
        "OrderDate": date_value(entry.day - timedelta(days=ORDER_LEAD_DAYS)),
        "DeliveryDate": date_value(entry.day),
    }


def sales_order_values(table: tuple[str, str], refs: Refs, row: int) -> Values:
    """An order (SalesOrders, SalesOrderHeaders) behind a sales invoice: its customer, currency,
    totals and VAT are the invoice's."""
    entry, order_row, _ = refs.invoice(table, row)
    if entry is None:
        return {}
    invoice = _sales_invoice(refs, entry, order_row)
    totals = _sales_invoice_totals(entry)
    return {
        **{name: value for name, value in invoice.items() if not name.startswith("Invoice")},
        **{name: invoice[name] for name in ("InvoiceTo", "InvoiceToName")},
        **totals,
        "VATAmount": totals["VATAmountFC"],
        "Description": f"Order {entry.number}",
        **_sales_order(refs, entry, order_row),
    }


def _line_behind(table: tuple[str, str], refs: Refs, row: int) -> tuple[Entry, int, Values] | None:
    """Row `row` of a table of two lines per invoice: (the invoice's entry, the invoice's number,
    the invoice line's values)."""
    entry, number, part = refs.invoice(table, row)
    if entry is None:
        return None
    return entry, number, _sales_invoice_line(refs, entry, 1 + part)


def sales_order_line_values(table: tuple[str, str], refs: Refs, row: int) -> Values:
    """Line 1 or 2 of an order: the invoice's line, delivered and invoiced in full."""
    found = _line_behind(table, refs, row)
    if found is None:
        return {}
    entry, order_row, line = found
    return {
        **line,
        **_sales_order(refs, entry, order_row),
        "QuantityDelivered": line["Quantity"],
        "QuantityInvoiced": line["Quantity"],
        "VATAmount": line["VATAmountFC"],
    }


# --- quotations ----------------------------------------------------------------------------------

# Exact's Quotations: Status 50 accepted (5 rejected ... 25 open ... 50 accepted: picqer/
# exact-php-client's Quotation), version 1.
QUOTATION_CONSTANTS: Values = {
    **SALES_ORDER_CONSTANTS,
    "Status": 50,
    "StatusDescription": "Accepted",
    "VersionNumber": 1,
    "Optional": False,
    **dict.fromkeys(("CloseDate", "Opportunity", "OpportunityName", "SalesPerson")),
    **dict.fromkeys(("SalesPersonFullName", "VATDescription")),
    **{
        f"{party}Account{suffix}": None
        for party in ("Order", "Invoice", "Delivery")
        for suffix in ("Contact", "ContactFullName")
    },
}
QUOTATION_LEAD_DAYS = 14  # a quotation is accepted (ordered) two weeks after it was made
QUOTATION_VALID_DAYS = 30


def _quotation(refs: Refs, entry: Entry, quotation_row: int) -> Values:
    """What a quotation's rows say about it: the accepted quotation behind order `quotation_row`,
    its number the order's."""
    ordered = entry.day - timedelta(days=ORDER_LEAD_DAYS)
    made = ordered - timedelta(days=QUOTATION_LEAD_DAYS)
    return {
        "QuotationID": refs.key_of(("quotations", "bulk"), quotation_row),
        "QuotationNumber": entry.number,
        "QuotationDate": date_value(made),
        "DueDate": date_value(made + timedelta(days=QUOTATION_VALID_DAYS)),
        "ClosingDate": date_value(ordered),
        "DeliveryDate": date_value(entry.day),
    }


def quotation_values(table: tuple[str, str], refs: Refs, row: int) -> Values:
    """A quotation (Quotations, QuotationHeaders) the customer accepted: its order's customer,
    currency and totals."""
    entry, quotation_row, _ = refs.invoice(table, row)
    if entry is None:
        return {}
    code, name = refs.account(entry.account)
    customer = refs.id("accounts", entry.account)
    parties = ("Order", "Invoice", "Delivery")
    totals = _sales_invoice_totals(entry)
    return {
        **{f"{party}Account": customer for party in parties},
        **{f"{party}AccountCode": code for party in parties},
        **{f"{party}AccountName": name for party in parties},
        "AmountDC": totals["AmountDC"],
        "AmountFC": totals["AmountFC"],
        "VATAmountFC": totals["VATAmountFC"],
        "Currency": entry.currency,
        "Description": f"Offerte {entry.number}",
        "YourRef": entry.your_ref,
        **_quotation(refs, entry, quotation_row),
    }


def quotation_line_values(table: tuple[str, str], refs: Refs, row: int) -> Values:
    """Line 1 or 2 of a quotation: its order's line."""
    found = _line_behind(table, refs, row)
    if found is None:
        return {}
    entry, quotation_row, line = found
    return {
        **line,
        "VATDescription": line["VATCodeDescription"],
        "QuotationID": refs.key_of(("quotations", "bulk"), quotation_row),
        "QuotationNumber": entry.number,
    }


LINE_CONSTANTS: Values = {
    **dict.fromkeys(_EMPTY_LINE_FIELDS),
    "LineType": 0,
    "Status": STATUS_PROCESSED,
}
# Streams sized by another, unless a test sizes them itself: (that stream, its rows -> these).
# Every G/L account has its one classification in the scheme (an account left out would fall
# out of reports); every invoice has its lines (a line of no invoice would point nowhere).
SIZED_LIKE: dict[str, tuple[str, Callable[[int], int]]] = {
    "gl_account_classification_mappings": ("gl_accounts", lambda accounts: accounts),
    "purchase_invoice_lines": ("purchase_invoices", lambda invoices: 2 * invoices),
    # The line rows of sync/SalesInvoice/SalesInvoices: all but one row of each invoice.
    "sales_invoice_lines": (
        "sales_invoices",
        lambda rows: rows - -(-rows // SALES_INVOICE_SYNC_ROWS),
    ),
    # An order behind each sales invoice, with its two lines.
    "sales_orders": ("sales_invoices", lambda rows: -(-rows // SALES_INVOICE_SYNC_ROWS)),
    "sales_order_headers": ("sales_invoices", lambda rows: -(-rows // SALES_INVOICE_SYNC_ROWS)),
    "sales_order_lines": ("sales_invoices", lambda rows: 2 * -(-rows // SALES_INVOICE_SYNC_ROWS)),
    # The quotation behind each order, with its two lines.
    "quotations": ("sales_invoices", lambda rows: -(-rows // SALES_INVOICE_SYNC_ROWS)),
    "quotation_headers": ("sales_invoices", lambda rows: -(-rows // SALES_INVOICE_SYNC_ROWS)),
    "quotation_lines": ("sales_invoices", lambda rows: 2 * -(-rows // SALES_INVOICE_SYNC_ROWS)),
}
# stream -> (the fields the books give a row, the fields they give every row alike)
ROW_VALUES: dict[str, tuple[Callable[[Refs, int], Values], Values]] = {
    "transaction_lines": (transaction_line_values, LINE_CONSTANTS),
    "gl_accounts": (gl_account_values, {}),
    "gl_classifications": (classification_values, {}),
    "gl_account_classification_mappings": (classification_mapping_values, {}),
    "gl_schemes": (scheme_values, {}),
    "journals": (journal_values, {}),
    "vat_codes": (vat_code_values, {}),
    "financial_periods": (period_values, {}),
    "accounts": (account_values, {}),
    "items": (item_values, {}),
    "purchase_invoices": (purchase_invoice_values, PURCHASE_INVOICE_CONSTANTS),
    "purchase_invoice_lines": (purchase_invoice_line_values, PURCHASE_INVOICE_LINE_CONSTANTS),
    "sales_invoices": (sales_invoice_sync_values, SALES_INVOICE_CONSTANTS),
    "sales_invoice_lines": (sales_invoice_line_values, SALES_INVOICE_CONSTANTS),
    "sales_orders": (partial(sales_order_values, ("sales_orders", "bulk")), SALES_ORDER_CONSTANTS),
    "sales_order_headers": (
        partial(sales_order_values, ("sales_order_headers", "sync")),
        SALES_ORDER_CONSTANTS,
    ),
    "sales_order_lines": (
        partial(sales_order_line_values, ("sales_order_lines", "sync")),
        SALES_ORDER_CONSTANTS,
    ),
    "quotations": (partial(quotation_values, ("quotations", "bulk")), QUOTATION_CONSTANTS),
    "quotation_headers": (
        partial(quotation_values, ("quotation_headers", "sync")),
        QUOTATION_CONSTANTS,
    ),
    "quotation_lines": (
        partial(quotation_line_values, ("quotation_lines", "sync")),
        QUOTATION_CONSTANTS,
    ),
    "contacts": (contact_values, {}),
    "addresses": (address_values, {}),
}
# Where an entity's other endpoints have other rows: (stream, API) -> as in ROW_VALUES.
ROW_VALUES_ON_API = {
    ("sales_invoices", api): (sales_invoice_values, SALES_INVOICE_CONSTANTS)
    for api in ("standard", "bulk")
}
# The tables that list invoices: (stream, API) -> (kind, rows per invoice). An entry of the kind
# added to the books adds its invoice's rows at the end of each (FakeData._follow_invoices).
INVOICE_TABLES: dict[tuple[str, str], tuple[str, int]] = {
    ("sales_invoices", "sync"): ("sales", SALES_INVOICE_SYNC_ROWS),
    ("sales_invoices", "standard"): ("sales", 1),
    ("sales_invoices", "bulk"): ("sales", 1),
    ("sales_invoice_lines", "bulk"): ("sales", 2),
    ("sales_invoice_lines", "standard"): ("sales", 2),
    ("purchase_invoices", "standard"): ("purchase", 1),
    ("purchase_invoice_lines", "standard"): ("purchase", 2),
    # The order behind each sales invoice.
    ("sales_orders", "bulk"): ("sales", 1),
    ("sales_orders", "standard"): ("sales", 1),
    ("sales_order_headers", "sync"): ("sales", 1),
    ("sales_order_lines", "sync"): ("sales", 2),
    ("sales_order_lines", "bulk"): ("sales", 2),
    ("sales_order_lines", "standard"): ("sales", 2),
    # The quotation behind each order.
    ("quotations", "bulk"): ("sales", 1),
    ("quotations", "standard"): ("sales", 1),
    ("quotation_headers", "sync"): ("sales", 1),
    ("quotation_lines", "sync"): ("sales", 2),
    ("quotation_lines", "bulk"): ("sales", 2),
    ("quotation_lines", "standard"): ("sales", 2),
}
# The table that counts each kind's invoices: its rows are the invoices the books start with.
INVOICES_OF = {
    "sales": ("sales_invoices", "standard"),
    "purchase": ("purchase_invoices", "standard"),
}
# Rows of the default (sync) endpoint per row of those header-only endpoints: they hold as many
# invoices as it does.
ROWS_PER_HEADER = {"sales_invoices": SALES_INVOICE_SYNC_ROWS}


# --- aggregates ----------------------------------------------------------------------------------


@dataclass
class Computed:
    """The rows present now: slot -> values (every field of the stream)."""

    rows: dict[int, Values]
    slots: int


def _age_group(today: date, invoice_day: date) -> int:
    age = (today - invoice_day).days
    for number, _, low, high in AGE_GROUPS:
        if low <= age <= high:
            return number
    return 1  # dated after today


def _open_item_values(refs: Refs, item: OpenItem) -> Values:
    entry = refs.books.entry(item.entry)
    journal = JOURNALS[JOURNAL_OF[entry.kind]]
    code, name = refs.account(item.account)
    return {
        "AccountId": refs.id("accounts", item.account),
        "AccountCode": code,
        "AccountName": name,
        "Amount": cents(item.open_dc),
        "AmountInTransit": 0,
        "CurrencyCode": "EUR",
        "Description": entry.lines[0].description,
        "DueDate": None if item.due is None else date_value(item.due),
        "EntryNumber": entry.number,
        "HID": str(item.entry + 1),
        "Id": None,
        "InvoiceDate": date_value(item.day),
        "InvoiceNumber": entry.number,
        "JournalCode": journal.code,
        "JournalDescription": journal.description,
        "YourRef": entry.your_ref,
        "ApprovalStatus": None,
    }


def open_items(kind: str) -> Callable[[Refs], Computed]:
    def compute(refs: Refs) -> Computed:
        items = refs.books.aggregates().open_items
        rows = {e: _open_item_values(refs, item) for e, item in items.items() if item.kind == kind}
        return Computed(rows, refs.books.entries())

    return compute


def _ageing(refs: Refs, kind: str) -> dict[int, list[int]]:
    """accounts row -> open amount per age group (cents)."""
    today = refs.books.today
    by_account: dict[int, list[int]] = {}
    for item in refs.books.aggregates().open_items.values():
        if item.kind != kind or item.account is None:
            continue
        groups = by_account.setdefault(item.account, [0, 0, 0, 0])
        groups[_age_group(today, item.day) - 1] += item.open_dc
    return by_account


def ageing_list(kind: str) -> Callable[[Refs], Computed]:
    def compute(refs: Refs) -> Computed:
        rows = {}
        for account, groups in _ageing(refs, kind).items():
            code, name = refs.account(account)
            values: Values = {
                "AccountId": refs.id("accounts", account),
                "AccountCode": code,
                "AccountName": name,
                "CurrencyCode": "EUR",
                "TotalAmount": cents(sum(groups)),
            }
            for number, description, _, _ in AGE_GROUPS:
                values[f"AgeGroup{number}"] = number
                values[f"AgeGroup{number}Amount"] = cents(groups[number - 1])
                values[f"AgeGroup{number}Description"] = description
            rows[account] = values
        return Computed(rows, max(1, refs.books.sizes.accounts))

    return compute


def ageing_overview(refs: Refs) -> Computed:
    receivable = [0, 0, 0, 0]
    payable = [0, 0, 0, 0]
    for groups in _ageing(refs, "sales").values():
        receivable = [a + b for a, b in zip(receivable, groups, strict=True)]
    for groups in _ageing(refs, "purchase").values():
        payable = [a + b for a, b in zip(payable, groups, strict=True)]
    rows: dict[int, Values] = {
        number - 1: {
            "AgeGroup": number,
            "AgeGroupDescription": description,
            "AmountReceivable": cents(receivable[number - 1]),
            "AmountPayable": cents(payable[number - 1]),
            "CurrencyCode": "EUR",
        }
        for number, description, _, _ in AGE_GROUPS
    }
    return Computed(rows, len(AGE_GROUPS))


def _years(books: Books) -> range:
    return range(books.first_day.year, books.today.year + 1)


def reporting_balance(refs: Refs) -> Computed:
    books = refs.books
    years = _years(books)
    n_gl = max(1, books.sizes.gl_accounts)
    rows = {}
    for (role, year, period, kind), (
        amount,
        debit,
        credit,
        count,
    ) in books.aggregates().balances.items():
        gl_row = books.gl_row(role)
        gl = refs.gl(gl_row)
        slot = (
            ((year - years.start) * 12 + period - 1) * len(TYPES) + TYPES.index(kind)
        ) * n_gl + gl_row
        rows[slot] = {
            "ID": str(slot + 1),
            "Amount": cents(amount),
            "AmountDebit": cents(debit),
            "AmountCredit": cents(credit),
            "BalanceType": gl.balance_type,
            "CostCenterCode": None,
            "CostCenterDescription": None,
            "CostUnitCode": None,
            "CostUnitDescription": None,
            "Count": count,
            "GLAccount": refs.id("gl_accounts", gl_row),
            "GLAccountCode": gl.code,
            "GLAccountDescription": gl.description,
            "ReportingPeriod": period,
            "ReportingYear": year,
            "Status": STATUS_PROCESSED,
            "Type": kind,
        }
    return Computed(rows, len(years) * 12 * len(TYPES) * n_gl)


def profit_and_loss(books: Books, refs: Refs, year: int, periods: range) -> tuple[int, int]:
    """(revenue, costs) in cents, both positive as ProfitLossOverview shows them."""
    revenue = costs = 0
    for (role, line_year, period, kind), totals in books.aggregates().balances.items():
        gl = refs.gl(books.gl_row(role))
        if line_year != year or period not in periods or gl.balance_type != "W":
            continue
        if kind in YEAR_END_TYPES:  # the result moved to the balance sheet is still the result
            continue
        if gl.balance_side == "C":
            revenue -= totals[0]
        else:
            costs += totals[0]
    return revenue, costs


def profit_loss_overview(refs: Refs) -> Computed:
    books = refs.books
    year, period = books.today.year, books.today.month
    values: Values = {
        "CurrentYear": year,
        "CurrentPeriod": period,
        "PreviousYear": year - 1,
        "PreviousYearPeriod": period,
        "CurrencyCode": "EUR",
    }
    for name, (which, periods) in {
        "CurrentYear": (year, range(1, 13)),
        "CurrentPeriod": (year, range(period, period + 1)),
        "PreviousYear": (year - 1, range(1, 13)),
        "PreviousYearPeriod": (year - 1, range(period, period + 1)),
    }.items():
        revenue, costs = profit_and_loss(books, refs, which, periods)
        values[f"Revenue{name}"] = cents(revenue)
        values[f"Costs{name}"] = cents(costs)
        values[f"Result{name}"] = cents(revenue - costs)
    return Computed({0: values}, 1)


def opening_balances(year_offset: int) -> Callable[[Refs], Computed]:
    """Per balance-sheet account, the balance at the start of the year: every earlier line, the
    earlier years' results carried to retained earnings. Only accounts not at zero."""

    def compute(refs: Refs) -> Computed:
        books = refs.books
        year = books.today.year - year_offset
        per_row: dict[int, int] = {}
        result = 0
        for (role, line_year, _, kind), totals in books.aggregates().balances.items():
            if line_year >= year or kind in YEAR_END_TYPES:  # they restate these balances
                continue
            gl_row = books.gl_row(role)
            if refs.gl(gl_row).balance_type == "W":
                result += totals[0]
            else:
                per_row[gl_row] = per_row.get(gl_row, 0) + totals[0]
        retained = books.gl_row(RETAINED)
        per_row[retained] = per_row.get(retained, 0) + result
        rows: dict[int, Values] = {}
        for gl_row, amount in per_row.items():
            if amount == 0:
                continue
            gl = refs.gl(gl_row)
            rows[gl_row] = {
                "Amount": cents(abs(amount)),
                "BalanceSide": "D" if amount > 0 else "C",
                "GLAccount": refs.id("gl_accounts", gl_row),
                "GLAccountCode": gl.code,
                "GLAccountDescription": gl.description,
                "ReportingYear": year,
            }
        return Computed(rows, max(1, books.sizes.gl_accounts))

    return compute


COMPUTED: dict[str, Callable[[Refs], Computed]] = {
    "reporting_balance": reporting_balance,
    "receivables_list": open_items("sales"),
    "receivables_list_by_account": open_items("sales"),
    "payables_list": open_items("purchase"),
    "payables_list_by_account": open_items("purchase"),
    "aging_receivables_list": ageing_list("sales"),
    "aging_payables_list": ageing_list("purchase"),
    "aging_overview": ageing_overview,
    "profit_loss_overview": profit_loss_overview,
    "opening_balance_current_year_after_entry": opening_balances(0),
    "opening_balance_current_year_processed": opening_balances(0),
    "opening_balance_previous_year_after_entry": opening_balances(1),
    "opening_balance_previous_year_processed": opening_balances(1),
}
# Guid keys that are another table's IDs (the URI of a row names the account it is about).
KEY_OF: dict[str, dict[str, str]] = {
    "aging_receivables_list": {"AccountId": "accounts"},
    "aging_payables_list": {"AccountId": "accounts"},
    "opening_balance_current_year_after_entry": {"GLAccount": "gl_accounts"},
    "opening_balance_current_year_processed": {"GLAccount": "gl_accounts"},
    "opening_balance_previous_year_after_entry": {"GLAccount": "gl_accounts"},
    "opening_balance_previous_year_processed": {"GLAccount": "gl_accounts"},
}
