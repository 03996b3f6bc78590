"""The sandbox's projections, entity types and enums, as data.

Names follow IFS Cloud where they are confirmed from live systems (SPEC §3) and
plausible IFS naming elsewhere. `$metadata`, the generated rows, `$filter`
type checks and PATCH validation all read these definitions, so they cannot
drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DECIMAL = "Edm.Decimal"
STRING = "Edm.String"
DATE = "Edm.Date"
TIMESTAMP = "Edm.DateTimeOffset"
INT = "Edm.Int32"
BOOLEAN = "Edm.Boolean"
TIME_OF_DAY = "Edm.TimeOfDay"
BINARY = "Edm.Binary"  # base64url in JSON
STREAM = "Edm.Stream"  # listed in $metadata, never in a row's JSON; clients leave it out


@dataclass(frozen=True)
class EnumType:
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Prop:
    """One entity property; `type` is an Edm type or the name of an EnumType."""

    name: str
    type: str
    max_length: int | None = None
    nullable: bool = True

    @property
    def is_enum(self) -> bool:
        return not self.type.startswith("Edm.")


@dataclass(frozen=True)
class Navigation:
    name: str
    target: str  # entity type name
    collection: bool
    constraints: tuple[tuple[str, str], ...]  # (property, referenced property)


@dataclass(frozen=True)
class EntityType:
    name: str
    luname: str
    keys: tuple[str, ...]
    props: tuple[Prop, ...]
    navigations: tuple[Navigation, ...] = ()
    objversion: str = "timestamp"  # "timestamp" (YYYYMMDDHH24MISS) or "counter"
    behaviour: str = (
        "reference"  # "changing", "ledger" or "reference": how the mutation clock treats it
    )

    def prop(self, name: str) -> Prop | None:
        return self._by_name.get(name)

    @property
    def _by_name(self) -> dict[str, Prop]:
        cache = self.__dict__.get("_props_cache")
        if cache is None:
            cache = {p.name: p for p in self.props}
            object.__setattr__(self, "_props_cache", cache)
        return cache

    @property
    def stored_props(self) -> tuple[Prop, ...]:
        """The properties a row carries: all but stream properties (fetched on their own URL)."""
        return tuple(p for p in self.props if p.type != STREAM)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.stored_props)


@dataclass(frozen=True)
class EntitySet:
    name: str
    entity_type: str


@dataclass(frozen=True)
class Projection:
    name: str
    enums: tuple[EnumType, ...]
    entity_types: tuple[EntityType, ...]
    entity_sets: tuple[EntitySet, ...]
    complex_types: tuple[tuple[str, tuple[Prop, ...]], ...] = field(default=())

    def entity_type(self, name: str) -> EntityType:
        return next(t for t in self.entity_types if t.name == name)

    def entity_set(self, name: str) -> EntitySet | None:
        return next((s for s in self.entity_sets if s.name == name), None)


def _s(name: str, length: int, nullable: bool = True) -> Prop:
    return Prop(name, STRING, max_length=length, nullable=nullable)


def _key(name: str, length: int) -> Prop:
    return Prop(name, STRING, max_length=length, nullable=False)


def _amount(name: str) -> Prop:
    return Prop(name, DECIMAL)


FND_BOOLEAN = EnumType("FndBoolean", ("True", "False"))
CODE_PARTS = tuple("BCDEFGHIJ")

_VOUCHER_ROW = EntityType(
    name="VoucherRow",
    luname="GenLedVoucherRow",
    keys=("Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"),
    behaviour="ledger",
    props=(
        _key("Company", 20),
        _key("VoucherType", 3),
        Prop("AccountingYear", INT, nullable=False),
        Prop("VoucherNo", INT, nullable=False),
        Prop("RowNo", INT, nullable=False),
        Prop("VoucherDate", DATE),
        Prop("EntryDate", DATE),
        Prop("AccountingPeriod", INT),
        _s("Account", 20),
        _s("AccountDesc", 100),
        *(p for c in CODE_PARTS for p in (_s(f"Code{c}", 20), _s(f"Code{c}Desc", 100))),
        _amount("DebetAmount"),
        _amount("CreditAmount"),
        _amount("Amount"),
        _amount("CurrencyDebetAmount"),
        _amount("CurrencyCreditAmount"),
        _amount("CurrencyAmount"),
        _s("CurrencyCode", 3),
        _amount("CurrencyRate"),
        _amount("Quantity"),
        _s("Text", 200),
        _s("TransCode", 100),
        Prop("CorrectionRow", "FndBoolean"),
        Prop("VoucherStatus", "VoucherStatus"),
        _s("Objgrants", 2000),
        _s("luname", 30),
        _s("keyref", 4000),
    ),
    navigations=(
        Navigation(
            "AccountRef", "Account", False, (("Company", "Company"), ("Account", "Account"))
        ),
    ),
)

_ACCOUNT = EntityType(
    name="Account",
    luname="Account",
    keys=("Company", "Account"),
    props=(
        _key("Company", 20),
        _key("Account", 20),
        _s("Description", 100),
        _s("AccntGroup", 20),
        _s("AccntType", 20),
        Prop("LogicalAccountType", "LogicalAccountType"),
        Prop("LedgerAccount", "FndBoolean"),
        Prop("ValidFrom", DATE),
        Prop("ValidUntil", DATE),
        _s("Objgrants", 2000),
        _s("luname", 30),
        _s("keyref", 4000),
    ),
)


def _code_part_type(code: str) -> EntityType:
    return EntityType(
        name=f"Code{code}",
        luname=f"Code{code}",
        keys=("Company", f"Code{code}"),
        objversion="counter",
        props=(
            _key("Company", 20),
            _key(f"Code{code}", 20),
            _s("Description", 100),
            Prop("ValidFrom", DATE),
            Prop("ValidUntil", DATE),
            _s("Objgrants", 2000),
            _s("luname", 30),
            _s("keyref", 4000),
        ),
    )


_MAN_SUPP_INVOICE = EntityType(
    name="ManSuppInvoice",
    luname="ManSuppInvoice",
    keys=("Company", "InvoiceId"),
    behaviour="changing",
    props=(
        _key("Company", 20),
        Prop("InvoiceId", INT, nullable=False),
        _s("InvoiceNo", 50),
        _s("Identity", 20),
        _s("SupplierName", 100),
        Prop("InvoiceDate", DATE),
        Prop("DueDate", DATE),
        _s("CurrencyCode", 3),
        _amount("NetAmount"),
        _amount("VatAmount"),
        _amount("GrossAmount"),
        _amount("CurrRate"),
        _s("PayTermId", 20),
        Prop("Objstate", "ManSuppInvoiceState"),
        Prop("LastModified", TIMESTAMP),
        _s("Objgrants", 2000),
        _s("luname", 30),
        _s("keyref", 4000),
    ),
)

_PURCHASE_ORDER = EntityType(
    name="PurchaseOrder",
    luname="PurchaseOrder",
    keys=("OrderNo",),
    behaviour="changing",
    props=(
        _key("OrderNo", 12),
        _s("Company", 20),
        _s("VendorNo", 20),
        Prop("OrderDate", DATE),
        Prop("Objstate", "PurchaseOrderState"),
        _s("Contract", 5),
        _s("BuyerCode", 20),
        _s("CurrencyCode", 3),
        Prop("LastModified", TIMESTAMP),
        _s("Objgrants", 2000),
        _s("luname", 30),
        _s("keyref", 4000),
    ),
    navigations=(
        Navigation("PurchaseOrderLines", "PurchaseOrderLine", True, (("OrderNo", "OrderNo"),)),
    ),
)

_PURCHASE_ORDER_LINE = EntityType(
    name="PurchaseOrderLine",
    luname="PurchaseOrderLinePart",
    keys=("OrderNo", "LineNo", "ReleaseNo"),
    behaviour="changing",
    props=(
        _key("OrderNo", 12),
        _key("LineNo", 4),
        _key("ReleaseNo", 4),
        _s("Company", 20),
        _s("PartNo", 25),
        _s("Description", 200),
        _amount("BuyQtyDue"),
        _amount("BuyUnitPrice"),
        _amount("LineAmount"),
        Prop("PlannedReceiptDate", DATE),
        Prop("Objstate", "PurchaseOrderLineState"),
        Prop("LastModified", TIMESTAMP),
        _s("Objgrants", 2000),
        _s("luname", 30),
        _s("keyref", 4000),
    ),
    navigations=(Navigation("OrderRef", "PurchaseOrder", False, (("OrderNo", "OrderNo"),)),),
)

_CUSTOMER_ORDER = EntityType(
    name="CustomerOrder",
    luname="CustomerOrder",
    keys=("OrderNo",),
    behaviour="changing",
    props=(
        _key("OrderNo", 12),
        _s("Company", 20),
        _s("Contract", 5),
        _s("CustomerNo", 20),
        Prop("DateEntered", TIMESTAMP),
        Prop("WantedDeliveryDate", TIMESTAMP),
        Prop("Objstate", "CustomerOrderState"),
        _amount("TotalAmount"),
        _s("CurrencyCode", 3),
        Prop("LastModified", TIMESTAMP),
        _s("Objgrants", 2000),
        _s("luname", 30),
        _s("keyref", 4000),
    ),
)

_STRUCTURE_ITEM = EntityType(
    name="AccountingStructureItem",
    luname="AccountingStructureItem",
    keys=("Company", "StructureId", "NodeId"),
    props=(
        _key("Company", 20),
        _key("StructureId", 20),
        _key("NodeId", 20),
        _s("Description", 100),
        _s("ParentNodeId", 20),
        Prop("LevelNo", INT),
        Prop("NodeType", "StructureNodeType"),
        _s("Objgrants", 2000),
        _s("luname", 30),
        _s("keyref", 4000),
    ),
)

PROJECTIONS: tuple[Projection, ...] = (
    Projection(
        name="VoucherRowsAnalysis",
        enums=(
            FND_BOOLEAN,
            EnumType("VoucherStatus", ("Confirmed", "Posted", "Cancelled")),
            EnumType(
                "LogicalAccountType",
                (
                    "Assets",
                    "Liabilities",
                    "Revenues",
                    "Cost",
                    "Statistics",
                    "StatisticsOpeningBalance",
                ),
            ),
        ),
        entity_types=(_VOUCHER_ROW, _ACCOUNT, *(_code_part_type(c) for c in CODE_PARTS)),
        entity_sets=(
            EntitySet("VoucherRowSet", "VoucherRow"),
            EntitySet("Reference_Account", "Account"),
            *(EntitySet(f"Reference_Code{c}", f"Code{c}") for c in CODE_PARTS),
        ),
        complex_types=(("VoucherRowTotals", (_amount("DebetAmount"), _amount("CreditAmount"))),),
    ),
    Projection(
        name="ManualSupplierInvoiceHandling",
        enums=(
            EnumType(
                "ManSuppInvoiceState",
                ("Preliminary", "Posted", "PartlyPaid", "Paid", "Cancelled"),
            ),
        ),
        entity_types=(_MAN_SUPP_INVOICE,),
        entity_sets=(EntitySet("ManSuppInvoiceSet", "ManSuppInvoice"),),
    ),
    Projection(
        name="PurchaseOrderHandling",
        enums=(
            EnumType(
                "PurchaseOrderState", ("Planned", "Released", "Received", "Closed", "Cancelled")
            ),
            EnumType(
                "PurchaseOrderLineState",
                ("Planned", "Released", "Arrived", "Received", "Closed", "Cancelled"),
            ),
        ),
        entity_types=(_PURCHASE_ORDER, _PURCHASE_ORDER_LINE),
        entity_sets=(
            EntitySet("PurchaseOrderSet", "PurchaseOrder"),
            EntitySet("PurchaseOrderLineSet", "PurchaseOrderLine"),
        ),
    ),
    Projection(
        name="CustomerOrderHandling",
        enums=(
            EnumType(
                "CustomerOrderState",
                ("Planned", "Released", "Reserved", "Picked", "Delivered", "Invoiced", "Cancelled"),
            ),
        ),
        entity_types=(_CUSTOMER_ORDER,),
        entity_sets=(EntitySet("CustomerOrderSet", "CustomerOrder"),),
    ),
    Projection(
        name="AccountingStructureHandling",
        enums=(EnumType("StructureNodeType", ("Node", "Account")),),
        entity_types=(_STRUCTURE_ITEM,),
        entity_sets=(EntitySet("AccountingStructureItemSet", "AccountingStructureItem"),),
    ),
)

PROJECTIONS_BY_NAME: dict[str, Projection] = {p.name: p for p in PROJECTIONS}
