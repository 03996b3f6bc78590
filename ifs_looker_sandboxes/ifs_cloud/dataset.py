"""Deterministic finance and supply-chain data for the sandbox.

Everything is derived from `SandboxConfig.seed`, so two sandboxes with the same
settings serve identical rows. Generators yield `(entity_set, row, changed_at)`
where `row` maps property names to Python values (Decimal, date, datetime) and
`changed_at` feeds the row's objversion.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from .config import SandboxConfig
from .entities import CODE_PARTS

Row = dict[str, object]
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
            yield (
                "Reference_Account",
                {
                    "Company": company,
                    "Account": a.account,
                    "Description": a.description,
                    "AccntGroup": a.group,
                    "AccntType": a.type,
                    "LogicalAccountType": a.logical,
                    "LedgerAccount": "True" if a.logical != "Statistics" else "False",
                    "ValidFrom": date(2020, 1, 1),
                    "ValidUntil": date(2049, 12, 31),
                },
                BASE_CHANGE,
            )
        for code_part in CODE_PARTS:
            _, values = CODE_VALUES[code_part]
            for value in values:
                yield (
                    f"Reference_Code{code_part}",
                    {
                        "Company": company,
                        f"Code{code_part}": value,
                        "Description": code_description(code_part, value),
                        "ValidFrom": date(2020, 1, 1),
                        "ValidUntil": None if value.endswith("3") else date(2049, 12, 31),
                    },
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
            "CorrectionRow": "False",
            "VoucherStatus": "Posted",
        }
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
