"""One division's financial core as one small Dutch wholesaler's books, generated lazily.

The fake's tables keep their sizes (tests choose them); what a row *says* comes from here, so that
the financial streams agree with each other the way Exact's do (docs/fake-books.md lists the rules):

* Every `TransactionLines` row is a line of an entry of four lines (`LineNumber` 0-3; 0 is the
  header line, which balances the others: REFERENCE.md, header/line endpoints). Entry `e` holds
  lines `4e`..`4e+3`; each entry sums to zero in the division's currency (`AmountDC`).
* Entry 0 is the opening balance; after it, blocks of eight entries repeat: sales invoices (revenue,
  VAT, debtors), purchase invoices (costs, VAT, creditors), bank entries that pay the invoices of
  about five weeks before (in full, in part, or not at all) and memorial entries (wages,
  depreciation and accruals).
* Links go to rows that exist: the GL account, customer or supplier, item, journal, VAT code and
  period of a line are row indices into those tables (modulo their sizes, so a test that shrinks a
  table still gets rows that join).
* The aggregate endpoints (`ReportingBalance`, `ReceivablesList`, `PayablesList`, the ageing lists,
  `ProfitLossOverview`, the opening balances) are computed from the entries that exist now.

Values are pure functions of (seed, division, entry index); the only state is which entries were
added, changed or deleted. Amounts are whole cents internally (floats only on the wire).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache, partial

from fake_exact.clock import midnight_ms

_MASK64 = 2**64 - 1
DIVISION_CURRENCY = "EUR"
LINES_PER_ENTRY = 4
BLOCK = ("sales", "sales", "purchase", "sales", "bank", "purchase", "memorial", "bank")
PAYMENT_LAG_DAYS = 35
EQUIPMENT_COST = 1_200_000  # cents, in the opening balance
YEARS = 3  # the books run from 1 January two years ago to today

# Exact's codes (sources in docs/fake-books.md): TransactionLines.Type (entry type), Journals.Type,
# GLAccounts.Type, TransactionLines.Status.
ENTRY_TYPE = {
    "opening": 10,
    "sales": 20,
    "purchase": 30,
    "bank": 40,
    "memorial": 90,
    "year_end_result": 326,  # Year end net p/l to balance sheet
    "year_end_closing": 327,  # Year end closing balance
    "year_start_opening": 328,  # Year start opening balance
}
# The entries of Exact's year-end closing (TransactionLines.Type 320-328, Exact's reference as
# picqer/exact-php-client's TransactionLine copies it). They restate figures the other entries
# already give: a year's result moved to the balance sheet, and each balance-sheet account closed
# at the year's end and opened again at the next year's start. Reports leave them out.
YEAR_END_TYPES = range(320, 329)
INVOICE_KINDS = ("sales", "purchase")  # entries with an invoice behind them
STATUS_PROCESSED = 50


@dataclass(frozen=True)
class GLAccountDef:
    code: str
    description: str
    type: int
    type_description: str
    balance_side: str  # D | C
    balance_type: str  # B (balance sheet) | W (profit and loss)
    classification: int  # row of CLASSIFICATIONS
    vat_code: int | None = None  # row of VAT_CODES


@dataclass(frozen=True)
class ClassificationDef:
    code: str
    description: str
    parent: int | None
    balance: str  # D | C


CLASSIFICATIONS = (
    ClassificationDef("B", "Balans", None, "D"),
    ClassificationDef("BA", "Activa", 0, "D"),
    ClassificationDef("BP", "Passiva", 0, "C"),
    ClassificationDef("W", "Winst- en verliesrekening", None, "C"),
    ClassificationDef("BMva", "Materiële vaste activa", 1, "D"),
    ClassificationDef("BVrd", "Voorraden", 1, "D"),
    ClassificationDef("BVor", "Vorderingen", 1, "D"),
    ClassificationDef("BLim", "Liquide middelen", 1, "D"),
    ClassificationDef("BEiv", "Eigen vermogen", 2, "C"),
    ClassificationDef("BSch", "Kortlopende schulden", 2, "C"),
    ClassificationDef("WOmz", "Netto-omzet", 3, "C"),
    ClassificationDef("WKpr", "Kostprijs van de omzet", 3, "D"),
    ClassificationDef("WPer", "Personeelskosten", 3, "D"),
    ClassificationDef("WAfs", "Afschrijvingen", 3, "D"),
    ClassificationDef("WBed", "Overige bedrijfskosten", 3, "D"),
    ClassificationDef("WFbe", "Financiële baten en lasten", 3, "C"),
)


@dataclass(frozen=True)
class VATCodeDef:
    code: str
    description: str
    percentage: float  # a fraction, as Exact's VATCodes.Percentage


VAT_CODES = (
    VATCodeDef("1", "BTW hoog 21%", 0.21),
    VATCodeDef("2", "BTW laag 9%", 0.09),
    VATCodeDef("0", "Geen BTW", 0.0),
    VATCodeDef("5", "Export buiten de EU 0%", 0.0),
)
VAT_HIGH, VAT_LOW, VAT_NONE, VAT_EXPORT = range(4)

CHART = (
    GLAccountDef("0300", "Inventaris", 30, "Fixed assets", "D", "B", 4),
    GLAccountDef("0310", "Afschrijving inventaris", 35, "Accumulated depreciations", "C", "B", 4),
    GLAccountDef("0500", "Eigen vermogen", 50, "Capital stock", "C", "B", 8),
    GLAccountDef("0600", "Onverdeelde winst", 52, "Retained earnings", "C", "B", 8),
    GLAccountDef("1100", "ING Bank", 12, "Bank", "D", "B", 7),
    GLAccountDef("1300", "Debiteuren", 20, "Accounts receivable", "D", "B", 6),
    GLAccountDef("1500", "Te betalen btw", 24, "VAT", "C", "B", 9, VAT_HIGH),
    GLAccountDef("1510", "Te vorderen btw", 24, "VAT", "D", "B", 6, VAT_HIGH),
    GLAccountDef("1600", "Crediteuren", 22, "Accounts payable", "C", "B", 9),
    GLAccountDef("1700", "Te betalen lonen", 25, "Employees payables", "C", "B", 9),
    GLAccountDef("1800", "Nog te betalen kosten", 27, "Accrued expenses", "C", "B", 9),
    GLAccountDef("3000", "Voorraad handelsgoederen", 40, "Inventory", "D", "B", 5),
    GLAccountDef("4000", "Lonen en salarissen", 125, "Employee costs", "D", "W", 12),
    GLAccountDef("4010", "Sociale lasten", 126, "Employment costs", "D", "W", 12),
    GLAccountDef("4020", "Pensioenpremies", 126, "Employment costs", "D", "W", 12),
    GLAccountDef("4100", "Huur bedrijfsruimte", 121, "General expenses", "D", "W", 14, VAT_NONE),
    GLAccountDef("4110", "Gas, water en licht", 121, "General expenses", "D", "W", 14, VAT_HIGH),
    GLAccountDef("4200", "Autokosten", 121, "General expenses", "D", "W", 14, VAT_HIGH),
    GLAccountDef("4300", "Kantoorbenodigdheden", 121, "General expenses", "D", "W", 14, VAT_HIGH),
    GLAccountDef("4310", "Software en abonnementen", 121, "General expenses", "D", "W", 14, 0),
    GLAccountDef("4800", "Afschrijving inventaris", 122, "Depreciation costs", "D", "W", 13),
    GLAccountDef("4900", "Bankkosten", 120, "Other costs", "D", "W", 15, VAT_NONE),
    GLAccountDef("4910", "Rente", 160, "Interest income", "C", "W", 15, VAT_NONE),
    GLAccountDef("7000", "Inkoopwaarde van de omzet", 111, "Cost of goods", "D", "W", 11, 0),
    GLAccountDef("8000", "Omzet hoog", 110, "Revenue", "C", "W", 10, VAT_HIGH),
    GLAccountDef("8010", "Omzet laag", 110, "Revenue", "C", "W", 10, VAT_LOW),
    GLAccountDef("8020", "Omzet export", 110, "Revenue", "C", "W", 10, VAT_EXPORT),
)
_ROLE = {account.code: index for index, account in enumerate(CHART)}
EQUIPMENT, DEPRECIATED, CAPITAL, RETAINED = (_ROLE[c] for c in ("0300", "0310", "0500", "0600"))
BANK, DEBTORS, VAT_TO_PAY, VAT_TO_CLAIM = (_ROLE[c] for c in ("1100", "1300", "1500", "1510"))
CREDITORS, WAGES_DUE, ACCRUED, STOCK = (_ROLE[c] for c in ("1600", "1700", "1800", "3000"))
WAGES, SOCIAL, PENSION, RENT = (_ROLE[c] for c in ("4000", "4010", "4020", "4100"))
EXPENSES = tuple(_ROLE[c] for c in ("4110", "4200", "4300", "4310"))
DEPRECIATION, BANK_COSTS, INTEREST, COST_OF_GOODS = (
    _ROLE[c] for c in ("4800", "4900", "4910", "7000")
)
REVENUE_HIGH, REVENUE_LOW, REVENUE_EXPORT = (_ROLE[c] for c in ("8000", "8010", "8020"))


@dataclass(frozen=True)
class JournalDef:
    code: str
    description: str
    type: int
    gl: int | None  # the bank account's GL account


JOURNALS = (
    JournalDef("20", "ING Bank", 12, BANK),
    JournalDef("60", "Inkoopboek", 22, None),
    JournalDef("70", "Verkoopboek", 20, None),
    JournalDef("90", "Memoriaal", 90, None),
)
JOURNAL_OF = {"opening": 3, "sales": 2, "purchase": 1, "bank": 0, "memorial": 3}
JOURNAL_OF |= dict.fromkeys(("year_end_result", "year_end_closing", "year_start_opening"), 3)

_TRADES = (
    "Bakkerij",
    "Koffiebranderij",
    "Installatiebedrijf",
    "Drukkerij",
    "Bloemisterij",
    "Transportbedrijf",
    "Adviesbureau",
    "Garage",
    "Hoveniersbedrijf",
    "Houthandel",
)
_SURNAMES = (
    "De Vries",
    "Jansen",
    "Van Dijk",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "De Boer",
    "Mulder",
    "De Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "Van Leeuwen",
    "Dekker",
)
_CITIES = (  # name, postcode prefix, latitude, longitude
    ("Amsterdam", "10", 52.370, 4.895),
    ("Rotterdam", "30", 51.924, 4.478),
    ("Utrecht", "35", 52.091, 5.122),
    ("Eindhoven", "56", 51.441, 5.470),
    ("Groningen", "97", 53.219, 6.567),
    ("Zwolle", "80", 52.517, 6.083),
    ("Haarlem", "20", 52.381, 4.636),
    ("Maastricht", "62", 50.851, 5.691),
    ("Breda", "48", 51.589, 4.776),
    ("Leeuwarden", "89", 53.201, 5.800),
)
_STREETS = ("Dorpsstraat", "Kerkstraat", "Stationsweg", "Molenweg", "Industrieweg", "Marktplein")
_PRODUCTS = (  # description, unit price in cents, VAT row
    ("Koffiebonen espresso 1 kg", 2450, VAT_LOW),
    ("Thee earl grey 100 zakjes", 895, VAT_LOW),
    ("Espressomachine Barista Pro", 89900, VAT_HIGH),
    ("Melkopschuimer", 4995, VAT_HIGH),
    ("Koffiekopjes set van 6", 2995, VAT_HIGH),
    ("Suikerzakjes 1000 st", 1495, VAT_LOW),
    ("Onderhoudsbeurt machine", 12500, VAT_HIGH),
    ("Ontkalker 1 l", 1295, VAT_HIGH),
    ("Chocolademelk poeder 1 kg", 1150, VAT_LOW),
    ("Koffiefilters 500 st", 695, VAT_HIGH),
)
_SUPPLIER_TRADES = (
    "Groothandel",
    "Importeur",
    "Energie",
    "Leasing",
    "Software",
    "Kantoorvakhandel",
)


def _mix(value: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash."""
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    value = (value ^ (value >> 27)) * 0x94D049BB133111EB & _MASK64
    return value ^ (value >> 31)


def guid_prefix(seed: int, stream: str, division: int, name: str) -> str:
    """The first 24 characters of the guids of one kind (same scheme as fake_exact.data)."""
    digest = hashlib.md5(f"{seed}|{stream}|{division}|{name}".encode()).hexdigest()
    return f"{digest[0:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-"


@dataclass(frozen=True)
class Line:
    gl: int  # chart role (see Books.gl_row for the gl_accounts row)
    amount_dc: int  # cents in the division's currency, debit positive
    amount_fc: int  # cents in the entry's currency
    description: str
    account: int | None = None  # accounts row (customer or supplier)
    item: int | None = None  # items row
    quantity: int | None = None
    vat: int | None = None  # VAT_CODES row
    vat_base_fc: int | None = None
    vat_fc: int | None = None
    invoice: int | None = None  # entry the line settles (a payment) or is (an invoice's header)


@dataclass(frozen=True)
class Entry:
    index: int
    kind: str
    day: date
    currency: str
    rate: float
    lines: tuple[Line, ...]  # LineNumber 0.. ; line 0 balances the others
    account: int | None = None  # the customer or supplier of an invoice
    due: date | None = None
    your_ref: str | None = None

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass
class Sizes:
    """Rows of the tables the books point into (a test may shrink or grow any of them)."""

    gl_accounts: int
    accounts: int
    items: int
    lines: int  # TransactionLines rows generated at the start


@dataclass
class Changes:
    """What happened to the books after they were generated."""

    extra: dict[int, Entry] = field(default_factory=dict)  # appended entries
    deleted: set[int] = field(default_factory=set)
    closed_years: set[int] = field(default_factory=set)
    # Entries added with an invoice behind them, per kind (sales, purchase), in order.
    invoices: dict[str, list[int]] = field(default_factory=dict)
    generation: int = 0


class Books:
    """The entries of one division; `entry(e)` is pure for generated entries."""

    def __init__(self, seed: int, division: int, sizes: Sizes, today: date) -> None:
        self.seed = seed
        self.division = division
        self.sizes = sizes
        self.today = today
        self.first_day = date(today.year - YEARS + 1, 1, 1)
        self.span_days = max(1, (today - self.first_day).days)
        self.base_entries = -(-sizes.lines // LINES_PER_ENTRY)
        self.changes = Changes()
        self._salt = _mix(seed * 1_000_003 + division)
        blocks_per_day = max(1, self.base_entries - 1) / len(BLOCK) / self.span_days
        self.lag_blocks = max(1, round(PAYMENT_LAG_DAYS * blocks_per_day))
        self.entry = lru_cache(maxsize=8192)(self._entry)
        self._aggregates: tuple[int, Aggregates] | None = None

    # --- where things are ------------------------------------------------------------------------
    def entries(self) -> int:
        return self.base_entries + len(self.changes.extra)

    def locate(self, line_row: int) -> tuple[int, int]:
        """TransactionLines row -> (entry, LineNumber)."""
        base_rows = self.sizes.lines
        if line_row < base_rows:
            return divmod(line_row, LINES_PER_ENTRY)
        entry, number = divmod(line_row - base_rows, LINES_PER_ENTRY)
        return self.base_entries + entry, number

    def first_row(self, entry: int) -> int:
        if entry < self.base_entries:
            return entry * LINES_PER_ENTRY
        return self.sizes.lines + (entry - self.base_entries) * LINES_PER_ENTRY

    def line_count(self, entry: int) -> int:
        """Lines an entry has (the last generated one may be cut short by the table's size)."""
        if entry < self.base_entries:
            return min(LINES_PER_ENTRY, self.sizes.lines - entry * LINES_PER_ENTRY)
        return LINES_PER_ENTRY

    def gl_row(self, role: int) -> int:
        return role % max(1, self.sizes.gl_accounts)

    def customer(self, bits: int) -> int | None:
        """Accounts rows 0-3 of every 5 are customers, the fifth a supplier."""
        n = self.sizes.accounts
        if n == 0:
            return None
        row = bits % n
        return row - 1 if row % 5 == 4 and row > 0 else row

    def supplier(self, bits: int) -> int | None:
        n = self.sizes.accounts
        if n < 5:
            return None if n == 0 else n - 1
        return (bits % (n // 5)) * 5 + 4

    def item(self, product: int, bits: int) -> int | None:
        """An items row selling `product` (items row r sells product r % len(_PRODUCTS))."""
        n = self.sizes.items
        if n == 0:
            return None
        if n < len(_PRODUCTS):
            return product % n
        return product + len(_PRODUCTS) * (bits % (n // len(_PRODUCTS)))

    def _bits(self, entry: int, salt: int) -> int:
        return _mix((self._salt + entry * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03) & _MASK64)

    def day_of(self, entry: int) -> date:
        if entry == 0:
            return self.first_day
        offset = (entry * self.span_days) // max(1, self.base_entries)
        return self.first_day + timedelta(days=min(offset, self.span_days))

    # --- entries ---------------------------------------------------------------------------------
    def _entry(self, entry: int) -> Entry:
        extra = self.changes.extra.get(entry)
        if extra is not None:
            return extra
        return self.generated(entry, self.day_of(entry))

    def generated(self, entry: int, day: date) -> Entry:
        if entry == 0:
            return self._opening(day)
        block, position = divmod(entry - 1, len(BLOCK))
        kind = BLOCK[position]
        if kind == "sales":
            return self._sales(entry, day)
        if kind == "purchase":
            return self._purchase(entry, day)
        if kind == "bank":
            return self._bank(entry, day, block, position)
        return self._memorial(entry, day, block)

    def _opening(self, day: date) -> Entry:
        lines = [
            Line(BANK, 2_500_000, 2_500_000, "Beginbalans bank"),
            Line(EQUIPMENT, EQUIPMENT_COST, EQUIPMENT_COST, "Beginbalans inventaris"),
            Line(STOCK, 800_000, 800_000, "Beginbalans voorraad"),
        ]
        return self._balanced(0, "opening", day, CAPITAL, lines, description="Beginbalans")

    def _sales(self, entry: int, day: date) -> Entry:
        bits = self._bits(entry, 1)
        customer = self.customer(bits >> 3)
        currency, rate = "EUR", 1.0
        if bits % 13 == 0:
            currency, rate = "USD", round(0.92 + (bits >> 40) % 41 / 1000, 4)
        elif bits % 13 == 1:
            currency, rate = "GBP", round(1.17 + (bits >> 40) % 31 / 1000, 4)
        lines = []
        vat_fc = 0
        for number in (1, 2):
            product = self._bits(entry, 10 + number) % len(_PRODUCTS)
            description, price, vat = _PRODUCTS[product]
            quantity_bits = self._bits(entry, 20 + number)
            # Machines and service one to three at a time, consumables by the box.
            quantity = 1 + quantity_bits % 3 if price >= 10_000 else 20 + quantity_bits % 61
            revenue = REVENUE_HIGH if vat == VAT_HIGH else REVENUE_LOW
            if currency != "EUR":
                vat, revenue = VAT_EXPORT, REVENUE_EXPORT
            net_fc = quantity * price
            line_vat = round(net_fc * VAT_CODES[vat].percentage)
            vat_fc += line_vat
            item = self.item(product, bits >> 7)
            lines.append(
                Line(
                    revenue,
                    -round(net_fc * rate),
                    -net_fc,
                    description,
                    customer,
                    item,
                    quantity,
                    vat,
                    -net_fc,
                    -line_vat,
                )
            )
        lines.append(
            Line(
                VAT_TO_PAY,
                -round(vat_fc * rate),
                -vat_fc,
                "BTW",
                customer,
                vat=lines[0].vat,
                vat_fc=-vat_fc,
            )
        )
        number = self._invoice_number(entry)
        return self._balanced(
            entry,
            "sales",
            day,
            DEBTORS,
            lines,
            description=f"Factuur {number}",
            account=customer,
            currency=currency,
            rate=rate,
            due=day + timedelta(days=30),
            your_ref=f"PO-{(bits >> 17) % 90000 + 10000}",
        )

    def _purchase(self, entry: int, day: date) -> Entry:
        bits = self._bits(entry, 2)
        supplier = self.supplier(bits >> 5)
        lines = []
        vat_total = 0
        for number, role in enumerate((COST_OF_GOODS, EXPENSES[bits % len(EXPENSES)]), 1):
            net = 2_000 + self._bits(entry, 30 + number) % 60_000
            if role == COST_OF_GOODS:
                net *= 3
            vat = CHART[role].vat_code
            if vat is None:
                vat = VAT_HIGH
            vat_amount = round(net * VAT_CODES[vat].percentage)
            vat_total += vat_amount
            lines.append(
                Line(
                    role,
                    net,
                    net,
                    CHART[role].description,
                    supplier,
                    vat=vat,
                    vat_base_fc=net,
                    vat_fc=vat_amount,
                )
            )
        lines.append(
            Line(
                VAT_TO_CLAIM, vat_total, vat_total, "BTW", supplier, vat=VAT_HIGH, vat_fc=vat_total
            )
        )
        return self._balanced(
            entry,
            "purchase",
            day,
            CREDITORS,
            lines,
            description=f"Inkoopfactuur {(bits >> 11) % 900000 + 100000}",
            account=supplier,
            due=day + timedelta(days=14 + bits % 3 * 16),
        )

    def _bank(self, entry: int, day: date, block: int, position: int) -> Entry:
        paid_block = block - self.lag_blocks
        lines: list[Line] = []
        if paid_block < 0:
            bits = self._bits(entry, 3)
            lines = [
                Line(INTEREST, -(bits % 900 + 100), -(bits % 900 + 100), "Rente"),
                Line(BANK_COSTS, bits % 2_000 + 500, bits % 2_000 + 500, "Bankkosten"),
                Line(BANK_COSTS, 1_250, 1_250, "Kosten betaalverkeer"),
            ]
        elif position == 4:  # the first bank entry of a block
            first = 1 + paid_block * len(BLOCK)
            lines = [
                self._receipt(first + 0, whole=True),
                self._receipt(first + 1, whole=paid_block % 11 != 3, skip=paid_block % 11 == 3),
                self._payment(first + 2),
            ]
        else:
            first = 1 + paid_block * len(BLOCK)
            lines = [
                self._receipt(first + 3, whole=paid_block % 5 != 0),
                self._payment(first + 5, skip=paid_block % 7 == 2),
                self._wages_paid(1 + (paid_block + self.lag_blocks - 1) * len(BLOCK) + 6),
            ]
        return self._balanced(entry, "bank", day, BANK, lines, description="Bankafschrift")

    def _invoice_total(self, invoice: int) -> tuple[Entry, int, int] | None:
        if invoice in self.changes.deleted or invoice >= self.entries():
            return None
        paid = self.entry(invoice)
        if paid.kind not in INVOICE_KINDS:  # an added entry where the pattern had one
            return None
        header = paid.lines[0]
        return paid, header.amount_dc, header.amount_fc

    def _receipt(self, invoice: int, *, whole: bool, skip: bool = False) -> Line:
        found = None if skip else self._invoice_total(invoice)
        if found is None:
            return Line(BANK_COSTS, 350, 350, "Kosten incasso")
        paid, amount, _ = found
        if not whole:
            amount //= 2
        return Line(
            DEBTORS,
            -amount,
            -amount,
            f"Betaling factuur {self._invoice_number(invoice)}",
            paid.account,
            invoice=invoice,
        )

    def _payment(self, invoice: int, *, skip: bool = False) -> Line:
        found = None if skip else self._invoice_total(invoice)
        if found is None:
            return Line(BANK_COSTS, 275, 275, "Kosten betaalverkeer")
        paid, amount, _ = found
        return Line(
            CREDITORS, -amount, -amount, paid.lines[0].description, paid.account, invoice=invoice
        )

    def _wages_paid(self, memorial: int) -> Line:
        if memorial < 1 or memorial >= self.entries() or memorial in self.changes.deleted:
            return Line(BANK_COSTS, 150, 150, "Kosten betaalverkeer")
        wages = self.entry(memorial)
        if wages.lines[0].gl != WAGES_DUE:
            return Line(BANK_COSTS, 150, 150, "Kosten betaalverkeer")
        due = -wages.lines[0].amount_dc
        return Line(WAGES_DUE, due, due, "Betaling salarissen")

    def _memorial(self, entry: int, day: date, block: int) -> Entry:
        bits = self._bits(entry, 4)
        if block % 2 == 0:
            gross = 180_000 + bits % 60_000
            lines = [
                Line(WAGES, gross, gross, "Salarissen"),
                Line(SOCIAL, gross * 18 // 100, gross * 18 // 100, "Werkgeverslasten"),
                Line(PENSION, gross * 7 // 100, gross * 7 // 100, "Pensioenpremie"),
            ]
            return self._balanced(
                entry, "memorial", day, WAGES_DUE, lines, description="Salarisjournaal"
            )
        # About three fifths of the opening balance's equipment over the books' span (five
        # years' straight line over three), however many depreciation entries the size of the
        # books makes: never below zero.
        per_year = max(1, self.base_entries // (len(BLOCK) * 2 * YEARS))
        depreciation = max(1, EQUIPMENT_COST // 5 // per_year)
        rent = 150_000
        lines = [
            Line(DEPRECIATION, depreciation, depreciation, "Afschrijving"),
            Line(DEPRECIATED, -depreciation, -depreciation, "Afschrijving"),
            Line(RENT, rent, rent, "Huur"),
        ]
        return self._balanced(
            entry, "memorial", day, ACCRUED, lines, description="Afschrijving en huur"
        )

    def _invoice_number(self, entry: int) -> int:
        return self.first_day.year % 100 * 1_000_000 + entry + 1

    def _balanced(
        self,
        entry: int,
        kind: str,
        day: date,
        counter: int,
        lines: list[Line],
        *,
        description: str,
        account: int | None = None,
        currency: str = DIVISION_CURRENCY,
        rate: float = 1.0,
        due: date | None = None,
        your_ref: str | None = None,
    ) -> Entry:
        """Line 0 (the header) takes the opposite of the other lines: the entry sums to zero."""
        kept = lines[: self.line_count(entry) - 1]
        header = Line(
            counter,
            -sum(line.amount_dc for line in kept),
            -sum(line.amount_fc for line in kept),
            description,
            account,
            invoice=entry if kind in INVOICE_KINDS else None,
        )
        return Entry(entry, kind, day, currency, rate, (header, *kept), account, due, your_ref)

    # --- changes ---------------------------------------------------------------------------------
    def changed(self) -> None:
        self.changes.generation += 1
        self.entry.cache_clear()

    def append(self, make: Callable[[int], Entry]) -> Entry:
        index = self.entries()
        self.changes.extra[index] = made = make(index)
        self.changed()
        return made

    def append_generated(self, day: date) -> Entry:
        """An entry of the kind the pattern has at the next index, dated `day`."""
        made = self.append(lambda index: self.generated(index, day))
        if made.kind in INVOICE_KINDS:
            self.changes.invoices.setdefault(made.kind, []).append(made.index)
        return made

    def append_payment(self, invoice: int, day: date, *, part: int | None = None) -> Entry:
        """A bank entry paying an open item (`part` cents of it; all that is open by default)."""
        open_items = self.aggregates().open_items
        found = open_items[invoice]
        amount = found.open_dc if part is None else part
        paid = self.entry(invoice)
        side = DEBTORS if paid.kind == "sales" else CREDITORS

        def make(index: int) -> Entry:
            line = Line(
                side,
                -amount,
                -amount,
                f"Betaling {paid.lines[0].description}",
                paid.account,
                invoice=invoice,
            )
            costs = Line(BANK_COSTS, 0, 0, "Kosten betaalverkeer")
            return Entry(
                index,
                "bank",
                day,
                DIVISION_CURRENCY,
                1.0,
                (Line(BANK, amount, amount, "Bankafschrift"), line, costs, costs),
            )

        return self.append(make)

    def close_years(self, through: int) -> list[Entry]:
        """Exact's year-end closing of every year up to `through` not closed yet, oldest first:
        per year a result entry (326: each P&L account to zero, on retained earnings) and a
        closing entry (327: each balance-sheet account to zero) on 31 December, and an opening
        entry (328: the same balances again) on 1 January. Entries keep four lines, so each is
        split in entries of three lines with retained earnings as the balancing header."""
        if through >= self.today.year:
            raise ValueError(f"year {through} has not ended: close a year before {self.today.year}")
        made: list[Entry] = []
        for year in range(self.first_day.year, through + 1):
            if year in self.changes.closed_years:
                continue
            self.changes.closed_years.add(year)
            results, closing = self._year_end_balances(year)
            end, start = date(year, 12, 31), date(year + 1, 1, 1)
            reversed_results = {role: -amount for role, amount in results.items()}
            reversed_closing = {role: -amount for role, amount in closing.items()}
            for kind, day, amounts, text in (
                ("year_end_result", end, reversed_results, f"Resultaat {year}"),
                ("year_end_closing", end, reversed_closing, f"Eindbalans {year}"),
                ("year_start_opening", start, closing, f"Beginbalans {year + 1}"),
            ):
                made.extend(self._split_entries(kind, day, amounts, text))
        return made

    def _year_end_balances(self, year: int) -> tuple[dict[int, int], dict[int, int]]:
        """(each P&L account's result in `year`, each balance-sheet account's balance at its end
        with every result so far on retained earnings), from the entries that are not year-end
        entries themselves."""
        results: dict[int, int] = {}
        closing: dict[int, int] = {}
        for (role, line_year, _, kind), totals in self.aggregates().balances.items():
            if kind in YEAR_END_TYPES or line_year > year:
                continue
            on = role
            if CHART[role].balance_type == "W":
                if line_year == year:
                    results[role] = results.get(role, 0) + totals[0]
                on = RETAINED
            closing[on] = closing.get(on, 0) + totals[0]
        keep = {role: amount for role, amount in results.items() if amount}
        return keep, {role: amount for role, amount in closing.items() if amount}

    def _split_entries(
        self, kind: str, day: date, amounts: dict[int, int], description: str
    ) -> list[Entry]:
        lines = [
            Line(role, amount, amount, description) for role, amount in sorted(amounts.items())
        ]
        made = []
        for at in range(0, len(lines), LINES_PER_ENTRY - 1):
            chunk = lines[at : at + LINES_PER_ENTRY - 1]
            chunk += [Line(RETAINED, 0, 0, description)] * (LINES_PER_ENTRY - 1 - len(chunk))
            made.append(self.append(partial(self._year_end_entry, kind, day, chunk, description)))
        return made

    def _year_end_entry(
        self, kind: str, day: date, lines: list[Line], text: str, index: int
    ) -> Entry:
        return self._balanced(index, kind, day, RETAINED, lines, description=text)

    def delete(self, entry: int) -> None:
        self.changes.deleted.add(entry)
        self.changed()

    def existing(self) -> Iterator[int]:
        deleted = self.changes.deleted
        return (e for e in range(self.entries()) if e not in deleted)

    # --- what Exact computes from the entries ----------------------------------------------------
    def aggregates(self) -> Aggregates:
        if self._aggregates is None or self._aggregates[0] != self.changes.generation:
            self._aggregates = (self.changes.generation, Aggregates.of(self))
        return self._aggregates[1]


@dataclass
class OpenItem:
    entry: int
    kind: str  # sales | purchase
    account: int | None
    total_dc: int
    open_dc: int
    day: date
    due: date | None


@dataclass
class Aggregates:
    # (gl role, year, period, entry type) -> [amount, debit, credit, count]
    balances: dict[tuple[int, int, int, int], list[int]]
    open_items: dict[int, OpenItem]  # by invoice entry

    @classmethod
    def of(cls, books: Books) -> Aggregates:
        balances: dict[tuple[int, int, int, int], list[int]] = {}
        open_items: dict[int, OpenItem] = {}
        payments: list[tuple[int, int]] = []
        for index in books.existing():
            entry = books.entry(index)
            year, period, kind = entry.day.year, entry.day.month, ENTRY_TYPE[entry.kind]
            for line in entry.lines:
                key = (line.gl, year, period, kind)
                totals = balances.get(key)
                if totals is None:
                    totals = balances[key] = [0, 0, 0, 0]
                totals[0] += line.amount_dc
                if line.amount_dc >= 0:
                    totals[1] += line.amount_dc
                else:
                    totals[2] -= line.amount_dc
                totals[3] += 1
            if entry.kind in INVOICE_KINDS:
                header = entry.lines[0]
                open_items[index] = OpenItem(
                    index,
                    entry.kind,
                    entry.account,
                    header.amount_dc,
                    header.amount_dc,
                    entry.day,
                    entry.due,
                )
            for line in entry.lines[1:]:
                if line.invoice is not None:
                    payments.append((line.invoice, line.amount_dc))
        for invoice, amount in payments:
            item = open_items.get(invoice)
            if item is not None:
                item.open_dc += amount
        open_items = {k: v for k, v in open_items.items() if v.open_dc != 0}
        return cls(balances, open_items)


def guid(prefix: str, index: int) -> str:
    return prefix + f"{index:012x}"


def date_value(day: date) -> str:
    """A date as Exact keeps it: midnight on its wall clock, as an instant (`/Date(ms)/`)."""
    return f"/Date({midnight_ms((day - date(1970, 1, 1)).days * 86_400_000)})/"


def cents(amount: int) -> float:
    return amount / 100


def uuid_of(text: str) -> str:
    return str(uuid.UUID(hashlib.md5(text.encode()).hexdigest()))
