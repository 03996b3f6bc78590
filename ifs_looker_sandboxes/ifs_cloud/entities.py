"""The sandbox's projections, entity types and enums, as data.

VoucherRowsAnalysis (voucher rows, accounts, code parts) is rebuilt from a
recording of a live IFS Cloud system's `$metadata` (see the note above
FND_BOOLEAN): its keys are Edm.Decimal, it has `Correction` and no
`CorrectionRow`, `luname` is 80 long. Other names follow IFS Cloud where they
are confirmed from live systems (SPEC §3) and plausible IFS naming elsewhere.
`$metadata`, the generated rows, `$filter` type checks and PATCH validation all
read these definitions, so they cannot drift apart.
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


def _flag(name: str) -> Prop:
    return Prop(name, BOOLEAN)


def _row_marks() -> tuple[Prop, ...]:
    """Objgrants, luname and keyref: every IFS entity type serves them."""
    return (_s("Objgrants", 2000), _s("luname", 80), _s("keyref", 4000))


# Recorded: these entity types, their property names, Edm types, MaxLength, enums (members in
# the recorded order) and navigation properties are facts from a public recording of a live IFS
# Cloud `VoucherRowsAnalysis.svc/$metadata` (test cassettes of the GitHub repository
# keboola/component-ex-ifs). Only names, types and lengths were taken; nothing of the recording
# is copied. The order of properties is the sandbox's (generated rows are written in it).
FND_BOOLEAN = EnumType("FndBoolean", ("False", "True"))
ACCOUNT_TYPE_VALUE = EnumType(
    "AccountTypeValue",
    ("Assets", "Liabilities", "Revenues", "Cost", "Statistics", "StatisticsOpeningBalance"),
)
ACCOUNTING_LEDG_FLAG = EnumType("AccountingLedgFlag", ("LedgerAccount", "NotLedgerAccount"))
ACCOUNT_REQUEST = EnumType("AccountRequest", ("Can", "Mandatory", "Blocked"))
ACCOUNT_REQUEST_TEXT = EnumType("AccountRequestText", ("Can", "Mandatory"))
ACC_CURRENCY_BALANCE_FLAG = EnumType(
    "AccCurrencyBalanceFlag", ("CurrencyBalance", "NoCurrencyBalance")
)
BUDGET_ACCOUNT_FLAG = EnumType("BudgetAccountFlag", ("BudgetAccount", "NotBudgetAccount"))
EXCLUDE_STAT_ACCOUNT = EnumType(
    "ExcludeStatAccount", ("StatisticalAccount", "NoStatisticalAccount")
)
TAX_HANDLING_VALUE = EnumType("TaxHandlingValue", ("Restricted", "All", "Blocked"))
TAX_ACCOUNT_FLAG = EnumType("TaxAccountFlag", ("TaxAccount", "NotTaxAccount"))
ARCHIVING_TRANS_VALUE = EnumType("ArchivingTransValue", ("AllTransactions", "MatchedTransOnly"))
EXCLUDE_PERIODICAL_CAP = EnumType(
    "ExcludePeriodicalCap",
    ("IncludeInAllLedgers", "ExcludeFromAllLedgers", "ExcludeFromGL", "ExcludeFromIL"),
)
SAT_ACCOUNT_TYPE = EnumType("SatAccountType", ("None", "Debit", "Credit"))
SAT_LEVEL = EnumType("SatLevel", ("None", "One", "Two"))
CODE_PARTS = tuple("BCDEFGHIJ")

# The recorded VoucherRow properties the sandbox fills with one value per voucher type (most
# of them null): in generated rows they follow TransCode, in this order.
VOUCHER_ROW_DETAILS: tuple[Prop, ...] = (
    _s("ProjectId", 10),
    _s("ObjectId", 10),
    _flag("Correction"),
    _s("ProcessCode", 10),
    _s("OptionalCode", 20),
    _amount("ProjectActivityId"),
    _s("PartyTypeId", 20),
    _s("ReferenceSerie", 50),
    _s("ReferenceNumber", 50),
    _s("UpdateError", 200),
    _s("TransferId", 200),
    _flag("Corrected"),
    _flag("PeriodAllocation"),
    _amount("ThirdCurrencyDebitAmount"),
    _amount("ThirdCurrencyCreditAmount"),
    _amount("ThirdCurrencyAmount"),
    _s("MultiCompanyId", 20),
    _amount("ConversionFactor"),
    _flag("AutoTaxVouEntry"),
    _amount("ReferenceRowNo"),
    _s("FunctionGroup", 20),
    _amount("PostingCombinationId"),
    _s("CurrBalance", 1),
    _amount("ReferenceVersion"),
    _s("PartyType", 20),
    _amount("ParallelCurrencyRate"),
    _amount("ParallelConversionFactor"),
    _amount("ParallelCurrTaxAmount"),
    _amount("ParallelCurrGrossAmount"),
    _amount("ParallelCurrTaxBaseAmount"),
    _s("ParallelCurrRateType", 10),
    _s("DelivTypeId", 20),
    _s("PartyName", 100),
    _s("TaxBookId", 10),
    _s("TaxSeriesId", 20),
    _amount("TaxSeriesNo"),
    _s("EnteredByUserGroup", 30),
    _s("Userid", 30),
    _s("ApprovedByUserGroup", 30),
    _s("ApprovedByUserid", 30),
    _s("SecondApprovedByUserid", 30),
    Prop("SecondApprovedByDate", DATE),
    _s("SecondApprovedByUserGroup", 30),
    _flag("IsMultiCompanyRow"),
    _s("VoucherTypeReference", 4000),
)


def _reference(name: str, code: str) -> Navigation:
    return Navigation(name, code, False, (("Company", "Company"), (code, code)))


_VOUCHER_ROW = EntityType(
    name="VoucherRow",
    luname="GenLedVoucherRow",
    keys=("Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"),
    behaviour="ledger",
    props=(
        _key("Company", 20),
        _key("VoucherType", 3),
        Prop("AccountingYear", DECIMAL, nullable=False),
        Prop("VoucherNo", DECIMAL, nullable=False),
        Prop("RowNo", DECIMAL, nullable=False),
        Prop("VoucherDate", DATE),
        Prop("EntryDate", DATE),
        Prop("AccountingPeriod", DECIMAL),
        Prop("YearPeriodKey", DECIMAL),
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
        *VOUCHER_ROW_DETAILS,
        *_row_marks(),
    ),
    navigations=(
        _reference("AccountRef", "Account"),
        *(_reference(f"Code{c}Ref", f"Code{c}") for c in CODE_PARTS),
    ),
)

_REQUESTS = (*(f"ReqCode{c}" for c in CODE_PARTS), "ReqQuantity")
_BUDGET_REQUESTS = (*(f"ReqBudgetCode{c}" for c in CODE_PARTS), "ReqBudgetQuantity")

_ACCOUNT = EntityType(
    name="Account",
    luname="Account",
    keys=("Company", "Account"),
    props=(
        _key("Company", 20),
        _s("CodePart", 1),
        _key("Account", 20),
        Prop("ValidFrom", DATE),
        Prop("ValidUntil", DATE),
        _s("AccountingTextId", 200),
        _s("ReportingEntity", 20),
        _s("Description", 100),
        _s("AccntGroup", 20),
        _s("AccntType", 20),
        Prop("LogicalAccountType", ACCOUNT_TYPE_VALUE.name),
        _s("ProcessCode", 10),
        Prop("LedgFlag", ACCOUNTING_LEDG_FLAG.name),
        *(Prop(name, ACCOUNT_REQUEST.name) for name in _REQUESTS),
        Prop("ReqText", ACCOUNT_REQUEST_TEXT.name),
        Prop("ReqProcessCode", ACCOUNT_REQUEST.name),
        *(Prop(name, ACCOUNT_REQUEST.name) for name in _BUDGET_REQUESTS),
        _s("MasterCompany", 20),
        Prop("CurrBalance", ACC_CURRENCY_BALANCE_FLAG.name),
        _s("MasterComCodePartValue", 20),
        Prop("BudAccount", BUDGET_ACCOUNT_FLAG.name),
        Prop("StatAccount", EXCLUDE_STAT_ACCOUNT.name),
        _s("Text", 2000),
        Prop("TaxHandlingValue", TAX_HANDLING_VALUE.name),
        Prop("TaxFlag", TAX_ACCOUNT_FLAG.name),
        Prop("ArchivingTransValue", ARCHIVING_TRANS_VALUE.name),
        _flag("TaxCodeMandatory"),
        _s("SortValue", 30),
        _s("ExcludeProjFollowup", 5),
        Prop("ExcludePeriodicalCap", EXCLUDE_PERIODICAL_CAP.name),
        _flag("ExcludeFromCurrTrans"),
        _flag("KeepRepCurrency"),
        _flag("KeepReportingEntity"),
        _flag("IncludeInRevRec"),
        _flag("ExchangeDifference"),
        Prop("SatAccountType", SAT_ACCOUNT_TYPE.name),
        _s("SatAccountGroup", 20),
        Prop("SatLevel", SAT_LEVEL.name),
        _s("SatParentAccount", 20),
        *_row_marks(),
    ),
)

# Recorded: CodeE, CodeF and CodeG have no AccntType; CodeF has the custom field
# Cf_Customer_Project_Id.
_CODE_PARTS_WITHOUT_ACCNT_TYPE = "EFG"
_CODE_PART_CUSTOM_FIELDS: dict[str, tuple[Prop, ...]] = {"F": (_s("Cf_Customer_Project_Id", 4000),)}


def _code_part_type(code: str) -> EntityType:
    accnt_type = () if code in _CODE_PARTS_WITHOUT_ACCNT_TYPE else (_s("AccntType", 20),)
    return EntityType(
        name=f"Code{code}",
        luname=f"Code{code}",
        keys=("Company", f"Code{code}"),
        objversion="counter",
        props=(
            _key("Company", 20),
            _s("CodePart", 1),
            _key(f"Code{code}", 20),
            Prop("ValidFrom", DATE),
            Prop("ValidUntil", DATE),
            _s("AccountingTextId", 200),
            _s("ReportingEntity", 20),
            _s("Description", 100),
            *accnt_type,
            _s("Text", 2000),
            _s("SortValue", 30),
            Prop("BudgetValue", BUDGET_ACCOUNT_FLAG.name),
            *_CODE_PART_CUSTOM_FIELDS.get(code, ()),
            *_row_marks(),
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
        *_row_marks(),
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
        *_row_marks(),
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
        *_row_marks(),
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
        *_row_marks(),
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
        *_row_marks(),
    ),
)

PROJECTIONS: tuple[Projection, ...] = (
    Projection(
        name="VoucherRowsAnalysis",
        enums=(
            FND_BOOLEAN,
            ACCOUNT_TYPE_VALUE,
            ACCOUNTING_LEDG_FLAG,
            ACCOUNT_REQUEST,
            ACCOUNT_REQUEST_TEXT,
            ACC_CURRENCY_BALANCE_FLAG,
            BUDGET_ACCOUNT_FLAG,
            EXCLUDE_STAT_ACCOUNT,
            TAX_HANDLING_VALUE,
            TAX_ACCOUNT_FLAG,
            ARCHIVING_TRANS_VALUE,
            EXCLUDE_PERIODICAL_CAP,
            SAT_ACCOUNT_TYPE,
            SAT_LEVEL,
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
