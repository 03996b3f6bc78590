"""Deterministic finance and supply-chain data for the sandbox.

Everything is derived from `SandboxConfig.seed`, so two sandboxes with the same
settings serve identical rows. Generators yield `(entity_set, row, changed_at)`
where `row` maps property names to Python values (Decimal, date, datetime) and
`changed_at` feeds the row's objversion.

GL voucher rows, millions of them, are not kept as rows: `VoucherPlan` replays
the seed's random draws once, exactly as `voucher_rows` makes them, and keeps
what each draw chose in a few bytes per row (account, code parts, amount, ...).
Any row can then be made on demand, the same row `voucher_rows` yields.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache

from .config import SandboxConfig
from .entities import CODE_PARTS, VOUCHER_ROW_DETAILS

Row = dict[str, object]
DETAIL_COLUMNS = tuple(p.name for p in VOUCHER_ROW_DETAILS)
Generated = tuple[str, Row, datetime]

CURRENCIES = {"US01": "USD", "DE01": "EUR", "SE01": "SEK"}
FOREIGN_RATES = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.087650"),
    "SEK": Decimal("0.094312"),
    "GBP": Decimal("1.271043"),
}
FIRST_DAY = date(2025, 1, 1)
DAYS = 546  # data spans 2025-01-01 .. 2026-06-30; the mutation clock adds rows dated "now"
BASE_CHANGE = datetime(2025, 1, 1, 6, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class AccountDef:
    account: str
    description: str
    group: str
    type: str
    logical: str
    parent: str


ACCOUNTS: tuple[AccountDef, ...] = (
    AccountDef("1010", "Cash at bank", "CASH", "A", "Assets", "ASSETS"),
    AccountDef("1200", "Trade receivables", "RECV", "A", "Assets", "ASSETS"),
    AccountDef("1400", "Inventory", "STOCK", "A", "Assets", "ASSETS"),
    AccountDef("1600", "Machinery", "FIXED", "A", "Assets", "ASSETS"),
    AccountDef("2010", "Trade payables", "PAYBL", "L", "Liabilities", "LIAB"),
    AccountDef("2400", "VAT payable", "TAX", "L", "Liabilities", "LIAB"),
    AccountDef("2600", "Accrued expenses", "ACCR", "L", "Liabilities", "LIAB"),
    AccountDef("3010", "Sales of goods", "SALES", "R", "Revenues", "REV"),
    AccountDef("3050", "Service revenue", "SALES", "R", "Revenues", "REV"),
    AccountDef("3900", "Other operating income", "OTHREV", "R", "Revenues", "REV"),
    AccountDef("4010", "Cost of goods sold", "COGS", "C", "Cost", "COST"),
    AccountDef("5010", "Rent", "OPEX", "C", "Cost", "COST"),
    AccountDef("5410", "Consumables", "OPEX", "C", "Cost", "COST"),
    AccountDef("6110", "Travel", "OPEX", "C", "Cost", "COST"),
    AccountDef("7010", "Salaries", "PERS", "C", "Cost", "COST"),
    AccountDef("7510", "Social security", "PERS", "C", "Cost", "COST"),
    AccountDef("9001", "Headcount", "STAT", "S", "Statistics", "STATQ"),
)
DEBIT_ACCOUNTS = [a for a in ACCOUNTS if a.logical in ("Assets", "Cost")]
CREDIT_ACCOUNTS = [a for a in ACCOUNTS if a.logical in ("Liabilities", "Revenues")]

# (node, description, parent, level); accounts hang below the level-3 groups at level 4.
STRUCTURE_NODES: tuple[tuple[str, str, str | None, int], ...] = (
    ("ALL", "All accounts", None, 1),
    ("BS", "Balance sheet", "ALL", 2),
    ("PL", "Profit and loss", "ALL", 2),
    ("STATS", "Statistics", "ALL", 2),
    ("ASSETS", "Assets", "BS", 3),
    ("LIAB", "Liabilities and equity", "BS", 3),
    ("REV", "Revenue", "PL", 3),
    ("COST", "Costs", "PL", 3),
    ("STATQ", "Statistical quantities", "STATS", 3),
)
CODE_VALUES = {
    "B": ("Cost centre", ("100", "200", "300", "400", "500", "600")),
    "C": ("Project", ("P1001", "P1002", "P2001", "P2002", "P3001")),
    "D": ("Department", ("FIN", "OPS", "SAL", "RND")),
    "E": ("Product line", ("PL-A", "PL-B", "PL-C")),
    "F": ("Region", ("NORTH", "SOUTH", "EAST", "WEST")),
    "G": ("Channel", ("WEB", "RETAIL", "PARTNER")),
    "H": ("Employee group", ("WHITE", "BLUE")),
    "I": ("Asset class", ("IT", "VEH", "BLD")),
    "J": ("Intercompany", ("IC-US01", "IC-DE01", "IC-SE01")),
}
VOUCHER_TYPES = ("GL", "AP", "AR", "MPL")
TEXTS = (
    "Monthly accrual",
    "Supplier invoice posting",
    "Customer payment, ÅÄÖ test",
    "Rent for period",
    "Payroll run",
    'Freight & handling "express"',
    "Correction of O'Brien posting",
)


def company_currency(company: str) -> str:
    return CURRENCIES.get(company, "EUR")


def code_description(code_part: str, value: str) -> str:
    title, _ = CODE_VALUES[code_part]
    return f"{title} {value}"


FUNCTION_GROUPS = {"GL": "M", "AP": "I", "AR": "R", "MPL": "M"}
PARTY_TYPES = {"AP": "SUPPLIER", "AR": "CUSTOMER"}


@cache
def voucher_details(company: str, voucher_type: str) -> tuple:
    """The recorded VoucherRow properties beyond the sandbox's own data, in VOUCHER_ROW_DETAILS
    order: as a plain tenant fills them (mostly null, flags false), one value per voucher type."""
    values = {
        "Correction": False,
        "Corrected": False,
        "PeriodAllocation": False,
        "ConversionFactor": ONE,
        "AutoTaxVouEntry": False,
        "FunctionGroup": FUNCTION_GROUPS[voucher_type],
        "PartyType": PARTY_TYPES.get(voucher_type),
        "EnteredByUserGroup": "ACC",
        "Userid": "IFSAPP",
        "IsMultiCompanyRow": False,
        "VoucherTypeReference": f"COMPANY={company}^VOUCHER_TYPE={voucher_type}^",
    }
    return tuple(values.get(p.name) for p in VOUCHER_ROW_DETAILS)


def year_period_key(year: int, period: int) -> int:
    """IFS's YearPeriodKey: the accounting year and period as one number, 202503."""
    return year * 100 + period


def random_amount(rng: random.Random) -> Decimal:
    """Mostly ordinary amounts with 2-6 decimals; now and then one beyond float precision."""
    roll = rng.random()
    if roll < 0.02:
        return Decimal(rng.randrange(10**19, 10**20)).scaleb(-6)
    scale = (2, 2, 2, 3, 6)[rng.randrange(5)]
    return Decimal(rng.randrange(100, 5 * 10**7)).scaleb(-scale)


def reference_rows(config: SandboxConfig) -> Iterator[Generated]:
    """Accounts, code parts B-J and the account structure for each company."""
    for company in config.companies:
        for a in ACCOUNTS:
            yield "Reference_Account", account_row(company, a), BASE_CHANGE
        for code_part in CODE_PARTS:
            for value in CODE_VALUES[code_part][1]:
                yield (
                    f"Reference_Code{code_part}",
                    code_part_row(company, code_part, value),
                    BASE_CHANGE,
                )
        for node, description, parent, level in STRUCTURE_NODES:
            yield (
                "AccountingStructureItemSet",
                _structure_row(company, node, description, parent, level, "Node"),
                BASE_CHANGE,
            )
        for a in ACCOUNTS:
            yield (
                "AccountingStructureItemSet",
                _structure_row(company, a.account, a.description, a.parent, 4, "Account"),
                BASE_CHANGE,
            )


def account_row(company: str, a: AccountDef) -> Row:
    """An account as a plain tenant sets it up: postings of cost and revenue need a cost
    centre, stock accounts a quantity; the rest of IFS's switches at their defaults."""
    analysed, statistical = a.logical in ("Cost", "Revenues"), a.logical == "Statistics"
    requests = {f"ReqCode{c}": "Mandatory" if analysed and c == "B" else "Can" for c in CODE_PARTS}
    return {
        "Company": company,
        "CodePart": "A",
        "Account": a.account,
        "ValidFrom": date(2020, 1, 1),
        "ValidUntil": date(2049, 12, 31),
        "Description": a.description,
        "AccntGroup": a.group,
        "AccntType": a.type,
        "LogicalAccountType": a.logical,
        "LedgFlag": "NotLedgerAccount" if statistical else "LedgerAccount",
        **requests,
        "ReqQuantity": "Mandatory" if a.group == "STOCK" else "Can",
        "ReqText": "Can",
        "ReqProcessCode": "Can",
        **{f"ReqBudgetCode{c}": "Can" for c in CODE_PARTS},
        "ReqBudgetQuantity": "Can",
        "CurrBalance": "CurrencyBalance" if a.group == "CASH" else "NoCurrencyBalance",
        "BudAccount": "BudgetAccount" if analysed else "NotBudgetAccount",
        "StatAccount": "StatisticalAccount" if statistical else "NoStatisticalAccount",
        "TaxHandlingValue": "Restricted",
        "TaxFlag": "TaxAccount" if a.group == "TAX" else "NotTaxAccount",
        "ArchivingTransValue": "AllTransactions",
        "TaxCodeMandatory": False,
        "SortValue": a.account,
        "ExcludeProjFollowup": "FALSE",
        "ExcludePeriodicalCap": "IncludeInAllLedgers",
        "ExcludeFromCurrTrans": False,
        "KeepRepCurrency": False,
        "KeepReportingEntity": False,
        "IncludeInRevRec": a.logical == "Revenues",
        "ExchangeDifference": False,
        "SatAccountType": "None",
        "SatLevel": "None",
    }


def code_part_row(company: str, code_part: str, value: str) -> Row:
    """One value of a code part (cost centre, project, ...)."""
    row: Row = {
        "Company": company,
        "CodePart": code_part,
        f"Code{code_part}": value,
        "ValidFrom": date(2020, 1, 1),
        "ValidUntil": None if value.endswith("3") else date(2049, 12, 31),
        "Description": code_description(code_part, value),
        "SortValue": value,
        "BudgetValue": "BudgetAccount" if code_part in "BC" else "NotBudgetAccount",
    }
    if code_part == "F":
        row["Cf_Customer_Project_Id"] = f"CP-{value}" if value in ("NORTH", "SOUTH") else None
    return row


def _structure_row(
    company: str, node: str, description: str, parent: str | None, level: int, node_type: str
) -> Row:
    return {
        "Company": company,
        "StructureId": "FINREP",
        "NodeId": node,
        "Description": description,
        "ParentNodeId": parent,
        "LevelNo": level,
        "NodeType": node_type,
    }


class VoucherFactory:
    """Builds balanced vouchers: the debit rows sum exactly to the credit rows."""

    def __init__(self, company: str, rng: random.Random) -> None:
        self.company = company
        self.currency = company_currency(company)
        self.rng = rng
        self.next_no: dict[tuple[str, int], int] = {}

    def voucher(self, entry_date: date) -> list[Row]:
        rng = self.rng
        voucher_type = VOUCHER_TYPES[rng.randrange(len(VOUCHER_TYPES))]
        year = entry_date.year
        number = self.next_no.get((voucher_type, year), year * 100000) + 1
        self.next_no[(voucher_type, year)] = number
        voucher_date = entry_date - timedelta(days=rng.randrange(4))
        debits = [random_amount(rng) for _ in range(1 + rng.randrange(3))]
        total = sum(debits, Decimal(0))
        foreign = rng.random() < 0.15
        currency = "GBP" if foreign else self.currency
        rate = FOREIGN_RATES[currency] if foreign else Decimal("1")
        text = TEXTS[rng.randrange(len(TEXTS))]
        rows: list[Row] = []
        lines = [(amount, DEBIT_ACCOUNTS) for amount in debits] + [(-total, CREDIT_ACCOUNTS)]
        for row_no, (amount, pool) in enumerate(lines, start=1):
            account = pool[rng.randrange(len(pool))]
            rows.append(
                self._row(
                    voucher_type,
                    year,
                    number,
                    row_no,
                    voucher_date,
                    entry_date,
                    account,
                    amount,
                    currency,
                    rate,
                    text,
                )
            )
        return rows

    def _row(
        self,
        voucher_type: str,
        year: int,
        number: int,
        row_no: int,
        voucher_date: date,
        entry_date: date,
        account: AccountDef,
        amount: Decimal,
        currency: str,
        rate: Decimal,
        text: str,
    ) -> Row:
        rng = self.rng
        debit = amount if amount > 0 else Decimal(0)
        credit = -amount if amount < 0 else Decimal(0)
        currency_amount = (amount / rate).quantize(Decimal("0.000001")) if rate != 1 else amount
        row: Row = {
            "Company": self.company,
            "VoucherType": voucher_type,
            "AccountingYear": year,
            "VoucherNo": number,
            "RowNo": row_no,
            "VoucherDate": voucher_date,
            "EntryDate": entry_date,
            "AccountingPeriod": voucher_date.month,
            "YearPeriodKey": year_period_key(year, voucher_date.month),
            "Account": account.account,
            "AccountDesc": account.description,
            "DebetAmount": debit,
            "CreditAmount": credit,
            "Amount": amount,
            "CurrencyDebetAmount": currency_amount if amount > 0 else Decimal(0),
            "CurrencyCreditAmount": -currency_amount if amount < 0 else Decimal(0),
            "CurrencyAmount": currency_amount,
            "CurrencyCode": currency,
            "CurrencyRate": rate,
            "Quantity": Decimal(rng.randrange(1, 500)) if account.group == "STOCK" else None,
            "Text": f"{text} {voucher_type}-{number}/{row_no}",
            "TransCode": "MANUAL" if voucher_type == "GL" else "AUTO",
        }
        row.update(zip(DETAIL_COLUMNS, voucher_details(self.company, voucher_type), strict=True))
        for code_part in CODE_PARTS:
            value = None
            if account.logical in ("Cost", "Revenues") and rng.random() < 0.7:
                values = CODE_VALUES[code_part][1]
                value = values[rng.randrange(len(values))]
            row[f"Code{code_part}"] = value
            row[f"Code{code_part}Desc"] = code_description(code_part, value) if value else None
        return row


def voucher_rows(config: SandboxConfig) -> Iterator[Generated]:
    """About `voucher_rows_per_company` rows per company (whole vouchers), in entry-date order."""
    for index, company in enumerate(config.companies):
        rng = random.Random(f"{config.seed}:vouchers:{index}")
        factory = VoucherFactory(company, rng)
        target = config.voucher_rows_per_company
        produced = 0
        while produced < target:
            day = FIRST_DAY + timedelta(days=produced * DAYS // max(target, 1))
            rows = factory.voucher(day)
            changed = datetime(day.year, day.month, day.day, 18, 0, tzinfo=UTC)
            for row in rows:
                yield "VoucherRowSet", row, changed
            produced += len(rows)


def _change_time(rng: random.Random, day: date) -> datetime:
    seconds = rng.randrange(8 * 3600, 18 * 3600)
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)


def supply_chain_rows(config: SandboxConfig) -> Iterator[Generated]:
    """Supplier invoices, purchase orders with lines and customer orders per company."""
    for index, company in enumerate(config.companies):
        rng = random.Random(f"{config.seed}:supply:{index}")
        currency = company_currency(company)
        site = f"{company[:2]}S1"
        for n in range(1, config.invoices_per_company + 1):
            yield _invoice(rng, company, index, n, currency)
        for n in range(1, config.orders_per_company + 1):
            yield from _purchase_order(rng, company, index, n, currency, site)
        for n in range(1, config.orders_per_company + 1):
            yield _customer_order(rng, company, index, n, currency, site)


def _invoice(rng: random.Random, company: str, index: int, n: int, currency: str) -> Generated:
    day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
    net = random_amount(rng)
    vat = (net * Decimal("0.25")).quantize(Decimal("0.01"))
    changed = _change_time(rng, day + timedelta(days=rng.randrange(30)))
    row = {
        "Company": company,
        "InvoiceId": index * 1_000_000 + n,
        "InvoiceNo": f"INV-{company}-{n:05d}",
        "Identity": f"SUP{rng.randrange(1, 40):03d}",
        "SupplierName": ("Nordic Steel AB", "Müller GmbH", "O'Hara & Sons", "ACME Inc.")[n % 4],
        "InvoiceDate": day,
        "DueDate": day + timedelta(days=30),
        "CurrencyCode": currency,
        "NetAmount": net,
        "VatAmount": vat,
        "GrossAmount": net + vat,
        "CurrRate": Decimal("1"),
        "PayTermId": "30",
        "Objstate": ("Preliminary", "Posted", "PartlyPaid", "Paid")[rng.randrange(4)],
        "LastModified": changed,
    }
    return "ManSuppInvoiceSet", row, changed


def _purchase_order(
    rng: random.Random, company: str, index: int, n: int, currency: str, site: str
) -> Iterator[Generated]:
    order_no = f"P{index + 1}{n:06d}"
    day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
    changed = _change_time(rng, day + timedelta(days=rng.randrange(20)))
    yield (
        "PurchaseOrderSet",
        {
            "OrderNo": order_no,
            "Company": company,
            "VendorNo": f"SUP{rng.randrange(1, 40):03d}",
            "OrderDate": day,
            "Objstate": ("Planned", "Released", "Received", "Closed")[rng.randrange(4)],
            "Contract": site,
            "BuyerCode": ("ALAIN", "BRITT", "CHEN")[rng.randrange(3)],
            "CurrencyCode": currency,
            "LastModified": changed,
        },
        changed,
    )
    for line in range(1, 2 + rng.randrange(4)):
        quantity = Decimal(rng.randrange(1, 1000))
        price = random_amount(rng)
        line_changed = changed + timedelta(minutes=line)
        yield (
            "PurchaseOrderLineSet",
            {
                "OrderNo": order_no,
                "LineNo": str(line),
                "ReleaseNo": "1",
                "Company": company,
                "PartNo": f"PART-{rng.randrange(1, 200):04d}",
                "Description": f"Part for order {order_no} line {line}",
                "BuyQtyDue": quantity,
                "BuyUnitPrice": price,
                "LineAmount": quantity * price,
                "PlannedReceiptDate": day + timedelta(days=14),
                "Objstate": ("Planned", "Released", "Arrived", "Received")[rng.randrange(4)],
                "LastModified": line_changed,
            },
            line_changed,
        )


def _customer_order(
    rng: random.Random, company: str, index: int, n: int, currency: str, site: str
) -> Generated:
    order_no = f"C{index + 1}{n:06d}"
    day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
    entered = _change_time(rng, day)
    changed = entered + timedelta(hours=rng.randrange(1, 200))
    row = {
        "OrderNo": order_no,
        "Company": company,
        "Contract": site,
        "CustomerNo": f"CUST{rng.randrange(1, 60):04d}",
        "DateEntered": entered,
        "WantedDeliveryDate": entered + timedelta(days=10),
        "Objstate": ("Planned", "Released", "Reserved", "Delivered", "Invoiced")[rng.randrange(5)],
        "TotalAmount": random_amount(rng),
        "CurrencyCode": currency,
        "LastModified": changed,
    }
    return "CustomerOrderSet", row, changed


def generate(config: SandboxConfig) -> Iterator[Generated]:
    """Every generated row of the sandbox, reference data first."""
    yield from reference_rows(config)
    yield from supply_chain_rows(config)
    yield from voucher_rows(config)


# All generated vouchers, compactly ----------------------------------------------------------------

# What `VoucherPlan.values` gives, in order: the built-in VoucherRow's properties but its last
# three (Objgrants, luname and keyref are the store's).
VOUCHER_COLUMNS: tuple[str, ...] = (
    "Company",
    "VoucherType",
    "AccountingYear",
    "VoucherNo",
    "RowNo",
    "VoucherDate",
    "EntryDate",
    "AccountingPeriod",
    "YearPeriodKey",
    "Account",
    "AccountDesc",
    *(name for c in CODE_PARTS for name in (f"Code{c}", f"Code{c}Desc")),
    "DebetAmount",
    "CreditAmount",
    "Amount",
    "CurrencyDebetAmount",
    "CurrencyCreditAmount",
    "CurrencyAmount",
    "CurrencyCode",
    "CurrencyRate",
    "Quantity",
    "Text",
    "TransCode",
    *DETAIL_COLUMNS,
)
ZERO = Decimal(0)
MICRO = Decimal("0.000001")
ONE = Decimal("1")
AMOUNT_SCALES = (2, 2, 2, 3, 6)
SCALE_FACTORS = tuple(Decimal(1).scaleb(-s) for s in range(7))  # Decimal(m) * these: m scaled
BIG_AMOUNT = 0  # a mantissa of 0 (no amount is 0): the amount is in VoucherPlan.big_mantissa

# The code parts of a row as two numbers, a digit per part (0: no value, n: its n-th value):
# parts B, C, D (CODES_HIGH_VALUES) and parts E to J (CODES_LOW_VALUES, CODES_LOW of them).
_CODE_RADICES = tuple(len(CODE_VALUES[c][1]) + 1 for c in CODE_PARTS)
CODES_LOW = 1
for _radix in _CODE_RADICES[3:]:
    CODES_LOW *= _radix


def _code_table(parts: str) -> tuple[tuple[str | None, ...], ...]:
    """Per combined digit of `parts`: (CodeX, CodeXDesc, ...) values, in digit order."""
    table: list[tuple[str | None, ...]] = [()]
    for c in parts:
        values = CODE_VALUES[c][1]
        options = [(None, None), *((v, code_description(c, v)) for v in values)]
        table = [t + o for t in table for o in options]
    return tuple(table)


CODES_HIGH_VALUES = _code_table("BCD")
CODES_LOW_VALUES = _code_table("EFGHIJ")
# per code part: (values, bits `randrange` draws per try, radix)
_CODE_DRAWS = tuple(
    (len(CODE_VALUES[c][1]), len(CODE_VALUES[c][1]).bit_length(), r)
    for c, r in zip(CODE_PARTS, _CODE_RADICES, strict=True)
)
_ANALYSED = ("Cost", "Revenues")  # accounts whose rows carry code parts


def _pool(accounts: list[AccountDef]) -> tuple[tuple[int, bool, bool], ...]:
    """(index in ACCOUNTS, draws a quantity, draws code parts) per account of a pool."""
    return tuple((ACCOUNTS.index(a), a.group == "STOCK", a.logical in _ANALYSED) for a in accounts)


_DEBIT_POOL = _pool(DEBIT_ACCOUNTS)
_CREDIT_POOL = _pool(CREDIT_ACCOUNTS)
_POOL_BITS = (len(_DEBIT_POOL).bit_length(), len(_CREDIT_POOL).bit_length())


@dataclass(frozen=True, eq=False)
class VoucherBlock:
    """One company's vouchers entered on one day: rows `first_row` on, vouchers `first_voucher`
    on (positions in `voucher_rows(config)` order, all companies)."""

    company: str
    entry_date: date
    first_row: int
    row_count: int
    first_voucher: int
    voucher_count: int

    @property
    def changed_at(self) -> datetime:
        day = self.entry_date
        return datetime(day.year, day.month, day.day, 18, 0, tzinfo=UTC)


def _whole_numbers(key: tuple) -> tuple:
    """The key with whole Decimals (how `$filter` and key predicates read Edm.Decimal) as int."""
    return tuple(
        int(v) if type(v) is Decimal and v.is_finite() and v == v.to_integral_value() else v
        for v in key
    )


class VoucherPlan:
    """Every row `voucher_rows(config)` yields, in its order, in about 20 bytes a row.

    Made by replaying the seed's draws as `VoucherFactory` makes them (`randrange(n)` is
    `getrandbits(n.bit_length())` until below n, as `random.Random` does it), keeping what
    each draw chose. `values(i)` is row i again; `find(key)` is the row with that key.

    Per voucher, `voucher` packs its type (index in VOUCHER_TYPES, bits 0-1), the days
    between voucher and entry date (2-3), foreign currency (4), text (index in TEXTS, 5-7)
    and number of rows (8-10); `voucher_number` and `voucher_first_row` are its number and
    first row. Per row, `row_bits` packs its account (index in ACCOUNTS, bits 0-4), amount
    scale (5-7), quantity (0: null, 8-16), code parts B-D (index in CODES_HIGH_VALUES, 17-24)
    and E-J (index in CODES_LOW_VALUES, 25 on);
    the amount is `mantissa` * 10**-scale (a mantissa of BIG_AMOUNT: in `big_mantissa`).
    """

    def __init__(self, config: SandboxConfig) -> None:
        if len(set(config.companies)) != len(config.companies):
            raise ValueError("a voucher plan needs distinct companies")
        self.blocks: list[VoucherBlock] = []
        self.block_first_voucher = array("q")
        self.voucher = array("H")
        self.voucher_number = array("I")
        self.voucher_first_row = array("q")
        self.row_bits = array("q")
        self.mantissa = array("q")
        self.big_mantissa: dict[int, int] = {}
        # (company, type index, year) -> voucher positions by number (year * 100000 + 1 first)
        self.by_number: dict[tuple[str, int, int], array] = {}
        for index, company in enumerate(config.companies):
            self._replay(config, index, company)
        self.row_count = len(self.row_bits)

    def _replay(self, config: SandboxConfig, index: int, company: str) -> None:
        """Every draw `voucher_rows` makes for one company, in its order, kept compactly."""
        rng = random.Random(f"{config.seed}:vouchers:{index}")
        bits, uniform = rng.getrandbits, rng.random
        target = config.voucher_rows_per_company
        voucher, v_number, v_first = self.voucher, self.voucher_number, self.voucher_first_row
        row_bits, mantissa, big = self.row_bits, self.mantissa, self.big_mantissa
        code_draws, scales = _CODE_DRAWS, AMOUNT_SCALES
        debit_pool, debit_bits, debit_n = _DEBIT_POOL, _POOL_BITS[0], len(_DEBIT_POOL)
        credit_pool, credit_bits, credit_n = _CREDIT_POOL, _POOL_BITS[1], len(_CREDIT_POOL)
        powers = tuple(10**n for n in range(7))
        int64 = 2**63
        base = len(row_bits)  # this company's first row
        produced = 0
        while produced < target:
            day_index = produced * DAYS // target
            day = FIRST_DAY + timedelta(days=day_index)
            year = day.year
            numbered = [
                self.by_number.setdefault((company, t, year), array("I"))
                for t in range(len(VOUCHER_TYPES))
            ]
            block_row, block_voucher = base + produced, len(voucher)
            while produced < target and produced * DAYS // target == day_index:
                voucher_type = bits(3)
                while voucher_type >= 4:
                    voucher_type = bits(3)
                numbers = numbered[voucher_type]
                v_number.append(year * 100000 + len(numbers) + 1)
                numbers.append(len(v_first))
                first = base + produced
                v_first.append(first)
                back = bits(3)
                while back >= 4:
                    back = bits(3)
                debits = bits(2)
                while debits >= 3:
                    debits = bits(2)
                debits += 1
                amounts = []
                top = 2
                for _ in range(debits):
                    if uniform() < 0.02:
                        r = bits(67)
                        while r >= 9 * 10**19:
                            r = bits(67)
                        amounts.append((10**19 + r, 6))
                        top = 6
                    else:
                        r = bits(3)
                        while r >= 5:
                            r = bits(3)
                        s = scales[r]
                        if s > top:
                            top = s
                        r = bits(26)
                        while r >= 49_999_900:
                            r = bits(26)
                        amounts.append((100 + r, s))
                amounts.append((-sum(m * powers[top - s] for m, s in amounts), top))
                foreign = uniform() < 0.15
                text = bits(3)
                while text >= 7:
                    text = bits(3)
                voucher.append(
                    voucher_type | back << 2 | foreign << 4 | text << 5 | (debits + 1) << 8
                )
                for row, (m, s) in enumerate(amounts):
                    if row < debits:
                        r = bits(debit_bits)
                        while r >= debit_n:
                            r = bits(debit_bits)
                        position, stock, analysed = debit_pool[r]
                    else:
                        r = bits(credit_bits)
                        while r >= credit_n:
                            r = bits(credit_bits)
                        position, stock, analysed = credit_pool[r]
                    packed = position | s << 5
                    if stock:
                        r = bits(9)
                        while r >= 499:
                            r = bits(9)
                        packed |= (1 + r) << 8
                    if analysed:
                        code = 0
                        for count, k, radix in code_draws:
                            if uniform() < 0.7:
                                r = bits(k)
                                while r >= count:
                                    r = bits(k)
                                code = code * radix + r + 1
                            else:
                                code *= radix
                        high, low = divmod(code, CODES_LOW)
                        packed |= high << 17 | low << 25
                    row_bits.append(packed)
                    if -int64 < m < int64:
                        mantissa.append(m)
                    else:
                        mantissa.append(BIG_AMOUNT)
                        big[first + row] = m
                produced += debits + 1
            self.block_first_voucher.append(block_voucher)
            self.blocks.append(
                VoucherBlock(
                    company,
                    day,
                    block_row,
                    base + produced - block_row,
                    block_voucher,
                    len(voucher) - block_voucher,
                )
            )

    # rows ----------------------------------------------------------------------------------------

    def voucher_of(self, row: int) -> int:
        return bisect_right(self.voucher_first_row, row) - 1

    def block_of(self, voucher: int) -> VoucherBlock:
        return self.blocks[bisect_right(self.block_first_voucher, voucher) - 1]

    def amount(self, row: int) -> Decimal:
        bits = self.row_bits[row]
        m = self.mantissa[row] or self.big_mantissa[row]
        return Decimal(m) * SCALE_FACTORS[bits >> 5 & 7]

    def key(self, row: int) -> tuple[str, str, int, int, int]:
        """(Company, VoucherType, AccountingYear, VoucherNo, RowNo) of row `row`."""
        v = self.voucher_of(row)
        block = self.block_of(v)
        return (
            block.company,
            VOUCHER_TYPES[self.voucher[v] & 3],
            block.entry_date.year,
            self.voucher_number[v],
            row - self.voucher_first_row[v] + 1,
        )

    def find(self, key: tuple) -> int | None:
        """The row with this (Company, VoucherType, AccountingYear, VoucherNo, RowNo), if any."""
        company, voucher_type, year, number, row_no = _whole_numbers(key)
        if not all(type(n) is int for n in (year, number, row_no)):
            return None
        if voucher_type not in VOUCHER_TYPES:
            return None
        numbers = self.by_number.get((company, VOUCHER_TYPES.index(voucher_type), year))
        position = number - year * 100000 - 1
        if numbers is None or not 0 <= position < len(numbers):
            return None
        v = numbers[position]
        if not 1 <= row_no <= self.voucher[v] >> 8:
            return None
        return self.voucher_first_row[v] + row_no - 1

    def values(self, row: int) -> tuple:
        """Row `row` as `voucher_rows` yields it: its values in VOUCHER_COLUMNS order."""
        v = self.voucher_of(row)
        block = self.block_of(v)
        company, entry = block.company, block.entry_date
        packed = self.voucher[v]
        voucher_type = VOUCHER_TYPES[packed & 3]
        number, row_no = self.voucher_number[v], row - self.voucher_first_row[v] + 1
        voucher_date = entry - timedelta(days=packed >> 2 & 3)
        bits = self.row_bits[row]
        account = ACCOUNTS[bits & 31]
        quantity = bits >> 8 & 511
        amount = self.amount(row)
        if packed & 16:
            currency, rate = "GBP", FOREIGN_RATES["GBP"]
            in_currency = (amount / rate).quantize(MICRO)
        else:
            currency, rate, in_currency = company_currency(company), ONE, amount
        return (
            company,
            voucher_type,
            entry.year,
            number,
            row_no,
            voucher_date,
            entry,
            voucher_date.month,
            year_period_key(entry.year, voucher_date.month),
            account.account,
            account.description,
            *CODES_HIGH_VALUES[bits >> 17 & 255],
            *CODES_LOW_VALUES[bits >> 25],
            amount if amount > 0 else ZERO,
            -amount if amount < 0 else ZERO,
            amount,
            in_currency if amount > 0 else ZERO,
            -in_currency if amount < 0 else ZERO,
            in_currency,
            currency,
            rate,
            Decimal(quantity) if quantity else None,
            f"{TEXTS[packed >> 5 & 7]} {voucher_type}-{number}/{row_no}",
            "MANUAL" if voucher_type == "GL" else "AUTO",
            *voucher_details(company, voucher_type),
        )

    def row(self, row: int) -> Row:
        """Row `row` as the dict `voucher_rows` yields."""
        return dict(zip(VOUCHER_COLUMNS, self.values(row), strict=True))
