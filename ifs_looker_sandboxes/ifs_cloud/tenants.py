"""Tenant variants: the same projections, shaped the way another customer's IFS serves them.

Every real IFS tenant has its own properties and custom fields (`Cf_*`), and
lacks some that another tenant has. The `default` tenant is the sandbox's
built-in entity types, which follow a recording of a live IFS Cloud system
(see `entities.py`); `varied` adds custom fields to every entity type
(strings, booleans, awkward and extreme decimals, an enum, dates, timestamps,
times of day, binary data, a stream property and a navigation property a
client must leave out), and lacks a few properties the default tenant serves.
Its rows are as deterministic per seed as the default tenant's. Its names are
invented, in IFS's naming style: the recorded ones are the default tenant's.

Tests read a variant's shape from `tenant_variant(name)` (or `sandbox.tenant`):
`extra_properties[entity_set]` and `missing_properties[entity_set]`, keyed by
entity set name; `stream_properties(entity_set)` and
`extra_navigations[entity_set]` are in `$metadata` but never in a row;
`row_properties(entity_set)` is every property a row carries.
"""

from __future__ import annotations

import base64
import dataclasses
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property

from .entities import (
    BINARY,
    BOOLEAN,
    CODE_PARTS,
    DATE,
    DECIMAL,
    PROJECTIONS,
    STREAM,
    STRING,
    TIME_OF_DAY,
    TIMESTAMP,
    EntityType,
    EnumType,
    Navigation,
    Projection,
    Prop,
)

Row = dict[str, object]
ValueFunction = Callable[[random.Random, Row], object]
Shaper = Callable[[Row], Row]

# Exact values a float cannot hold, trailing zeros, a negative zero, exponent notation (as JSON
# numbers), all within 38 significant digits and scale 20: what a warehouse DECIMAL(38, x) holds.
AWKWARD_DECIMALS: tuple[Decimal, ...] = (
    Decimal("0.1"),
    Decimal("-0.00"),
    Decimal("100.000000"),
    Decimal("1E-7"),
    Decimal("1.5E+3"),
    Decimal("12345678901234567890.123456789"),
    Decimal("-98765432109876543.21098765432109876543"),
    Decimal("0.00000000000000000001"),
    Decimal("1.087650000000000000001"),
)
# The limits of `Edm.Decimal Precision="130" Scale="65"`: legal for IFS, beyond most warehouses.
EXTREME_DECIMALS: tuple[Decimal, ...] = (
    Decimal("0." + "0" * 64 + "1"),
    Decimal("9" * 65 + "." + "9" * 65),
    Decimal("-" + "1" * 65),
    Decimal("3.14159265358979323846264338327950288419716939937510582097494459"),
)
LONG_TEXT = "Allocation note: " + "ÅÄÖ åäö € " * 95  # 967 characters, multi-byte in UTF-8


@dataclass(frozen=True)
class Extra:
    """A property this tenant adds, how each row gets its value, and where its name comes from."""

    prop: Prop
    value: ValueFunction
    origin: str = "invented"  # "invented" (IFS naming style) or "recorded" (a live system's)


@dataclass(frozen=True, eq=False)
class TenantVariant:
    """How one tenant's entity types differ from the sandbox's built-in ones (by entity set)."""

    name: str
    description: str
    extras: Mapping[str, tuple[Extra, ...]] = field(default_factory=dict)
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    navigations: Mapping[str, tuple[Navigation, ...]] = field(default_factory=dict)
    enums: Mapping[str, tuple[EnumType, ...]] = field(default_factory=dict)  # by projection

    # what tests read ------------------------------------------------------------------------------

    @property
    def extra_properties(self) -> dict[str, tuple[Prop, ...]]:
        """Entity set -> the properties this tenant adds (stream properties included)."""
        return {s: tuple(e.prop for e in extras) for s, extras in self.extras.items()}

    @property
    def missing_properties(self) -> dict[str, tuple[str, ...]]:
        """Entity set -> the default tenant's properties this tenant lacks."""
        return dict(self.missing)

    @property
    def extra_navigations(self) -> dict[str, tuple[Navigation, ...]]:
        """Entity set -> navigation properties this tenant adds (in `$metadata`, never in rows)."""
        return dict(self.navigations)

    def extra_property_names(self, entity_set: str) -> tuple[str, ...]:
        return tuple(e.prop.name for e in self.extras.get(entity_set, ()))

    def stream_properties(self, entity_set: str) -> tuple[str, ...]:
        """Properties typed Edm.Stream: in `$metadata`, never in a row; `$select` refuses them."""
        return tuple(p.name for p in self.entity_type(entity_set).props if p.type == STREAM)

    def row_properties(self, entity_set: str) -> tuple[str, ...]:
        """Every property a row of the entity set carries in this tenant (no column may be lost)."""
        return self.entity_type(entity_set).field_names

    def entity_type(self, entity_set: str) -> EntityType:
        """The entity type behind an entity set, as this tenant serves it."""
        for projection in self.projections:
            found = projection.entity_set(entity_set)
            if found is not None:
                return projection.entity_type(found.entity_type)
        raise KeyError(entity_set)

    # what the sandbox uses ------------------------------------------------------------------------

    @cached_property
    def projections(self) -> tuple[Projection, ...]:
        """The built-in projections with this tenant's properties added and removed."""
        if not (self.extras or self.missing or self.navigations or self.enums):
            return PROJECTIONS
        return tuple(self._shape_projection(p) for p in PROJECTIONS)

    @cached_property
    def projections_by_name(self) -> dict[str, Projection]:
        return {p.name: p for p in self.projections}

    def _shape_projection(self, projection: Projection) -> Projection:
        set_of_type = {s.entity_type: s.name for s in projection.entity_sets}
        types = []
        for entity in projection.entity_types:
            entity_set = set_of_type[entity.name]
            missing = set(self.missing.get(entity_set, ()))
            unknown = missing - {p.name for p in entity.props}
            if unknown or missing & set(entity.keys):
                raise ValueError(f"{self.name}: cannot remove {sorted(missing)} from {entity_set}")
            props = tuple(p for p in entity.props if p.name not in missing)
            props += tuple(e.prop for e in self.extras.get(entity_set, ()))
            types.append(
                dataclasses.replace(
                    entity,
                    props=props,
                    navigations=entity.navigations + self.navigations.get(entity_set, ()),
                )
            )
        return dataclasses.replace(
            projection,
            enums=projection.enums + self.enums.get(projection.name, ()),
            entity_types=tuple(types),
        )

    def shaper(self, entity_set: str, keys: tuple[str, ...], seed: int) -> Shaper | None:
        """Turns a default-tenant row into this tenant's: drops missing, fills extra properties.

        Extra values are drawn from a generator seeded by (seed, entity set, row key), in a
        fixed order, so a row has the same values however and whenever it is generated.
        None when this tenant changes nothing about the entity set.
        """
        extras = tuple(e for e in self.extras.get(entity_set, ()) if e.prop.type != STREAM)
        missing = frozenset(self.missing.get(entity_set, ()))
        if not extras and not missing:
            return None

        def shape(values: Row) -> Row:
            out = {k: v for k, v in values.items() if k not in missing}
            if any(e.prop.name not in out for e in extras):
                key = tuple(values.get(k) for k in keys)
                rng = random.Random(f"{seed}:{entity_set}:{key!r}")
                for extra in extras:  # every value drawn, in order: independent of what is given
                    value = extra.value(rng, values)
                    out.setdefault(extra.prop.name, value)
            return out

        return shape


# value functions ----------------------------------------------------------------------------------


def _pick(*choices: object) -> ValueFunction:
    return lambda rng, row: choices[rng.randrange(len(choices))]


def _flag(share: float) -> ValueFunction:
    return lambda rng, row: rng.random() < share


def _decimals(values: tuple[Decimal, ...]) -> ValueFunction:
    return lambda rng, row: values[rng.randrange(len(values))]


def _days_after(field_name: str, share: float, most: int) -> ValueFunction:
    def value(rng: random.Random, row: Row) -> object:
        start, roll, days = row.get(field_name), rng.random(), rng.randrange(1, most + 1)
        if not isinstance(start, date) or roll >= share:
            return None
        return (start.date() if isinstance(start, datetime) else start) + timedelta(days=days)

    return value


def _timestamp_after(field_name: str, share: float) -> ValueFunction:
    """A UTC timestamp some hours after the row's date (or datetime), or null."""

    def value(rng: random.Random, row: Row) -> object:
        start, roll, seconds = row.get(field_name), rng.random(), rng.randrange(3600, 30 * 86400)
        if not isinstance(start, date) or roll >= share:
            return None
        if not isinstance(start, datetime):
            start = datetime(start.year, start.month, start.day, tzinfo=UTC)
        return start + timedelta(seconds=seconds)

    return value


def _time_of_day(rng: random.Random, row: Row) -> object:
    seconds = rng.randrange(6 * 3600, 20 * 3600)
    return time(seconds // 3600, seconds // 60 % 60, seconds % 60)


def _binary(rng: random.Random, row: Row) -> object:
    """Edm.Binary in JSON: base64url (RFC 4648 section 5), padded; now and then null."""
    size, roll = rng.randrange(8, 48), rng.random()
    data = bytes(rng.randrange(256) for _ in range(size))
    return None if roll < 0.2 else base64.urlsafe_b64encode(data).decode()


def _year_period_key(rng: random.Random, row: Row) -> object:
    year, period = row.get("AccountingYear"), row.get("AccountingPeriod")
    if year is None or period is None:
        return None
    return Decimal(int(year) * 100 + int(period))  # type: ignore[call-overload]


def _ledg_flag(rng: random.Random, row: Row) -> object:
    return "NotLedgerAccount" if row.get("LogicalAccountType") == "Statistics" else "LedgerAccount"


def _copy(field_name: str) -> ValueFunction:
    return lambda rng, row: row.get(field_name)


def _s(name: str, length: int) -> Prop:
    return Prop(name, STRING, max_length=length)


# the varied tenant --------------------------------------------------------------------------------

CUSTOMER_ORDER_PRIORITY = EnumType("OrderPriority", ("Low", "Normal", "High", "Urgent"))
POSTING_SOURCE = EnumType("PostingSource", ("Manual", "Interface", "Allocation"))

_VOUCHER_ROW_EXTRAS: tuple[Extra, ...] = (
    Extra(Prop("Cf_Allocation_Share", DECIMAL), _decimals(AWKWARD_DECIMALS), "invented"),
    Extra(Prop("Cf_Precision_Probe", DECIMAL), _decimals(EXTREME_DECIMALS), "invented"),
    Extra(
        _s("Cf_Party_Alias", 100),
        _pick("Nordic Steel AB", "Müller GmbH", "O'Hara & Sons", "株式会社テスト", None),
        "invented",
    ),
    Extra(_s("Cf_Long_Note", 4000), _pick(None, LONG_TEXT), "invented"),
    Extra(Prop("Cf_Review_Required", BOOLEAN), _flag(0.05), "invented"),
    Extra(Prop("Cf_Settled_On", DATE), _days_after("EntryDate", 0.3, 9), "invented"),
    Extra(Prop("Cf_Approved_At", TIMESTAMP), _timestamp_after("EntryDate", 0.7), "invented"),
    Extra(Prop("Cf_Posting_Time", TIME_OF_DAY), _time_of_day, "invented"),
    Extra(Prop("Cf_Posting_Source", "PostingSource"), _pick(*POSTING_SOURCE.members), "invented"),
    Extra(
        _s("Cf_Cost_Driver", 4000),
        _pick("Headcount", "Floor area m²", "Machine hours", None),
        "invented",
    ),
    Extra(Prop("Cf_Signature", BINARY), _binary, "invented"),
    Extra(Prop("DocumentData", STREAM), _pick(None), "invented"),
)

_ACCOUNT_EXTRAS: tuple[Extra, ...] = (
    Extra(_s("Cf_Consolidation_Account", 20), _copy("Account"), "invented"),
    Extra(
        _s("Cf_Owner_Note", 2000),
        _pick(None, "Used by the monthly close; ask O'Brien first."),
        "invented",
    ),
    Extra(Prop("Cf_Reviewed_On", DATE), _days_after("ValidFrom", 0.5, 400), "invented"),
)


def _code_part_extras(code: str) -> tuple[Extra, ...]:
    if code == "B":
        return (Extra(_s("Cf_Cost_Centre_Owner", 4000), _pick("ALAIN", "BRITT", None), "invented"),)
    if code == "C":
        return (Extra(Prop("Cf_Budget_Cap", DECIMAL), _decimals(AWKWARD_DECIMALS), "invented"),)
    return (Extra(_s("Cf_Reporting_Group", 100), _pick("GROUP", "LOCAL", None), "invented"),)


VARIED = TenantVariant(
    name="varied",
    description=(
        "custom fields and properties of another tenant on every entity type; "
        "a few of the default tenant's properties missing"
    ),
    extras={
        "VoucherRowSet": _VOUCHER_ROW_EXTRAS,
        "Reference_Account": _ACCOUNT_EXTRAS,
        **{f"Reference_Code{c}": _code_part_extras(c) for c in CODE_PARTS},
        "ManSuppInvoiceSet": (
            Extra(_s("AuthorizerId", 30), _pick("CHEN", "BRITT", None), "invented"),
            Extra(Prop("ArrivalDate", DATE), _days_after("InvoiceDate", 0.9, 5), "invented"),
            Extra(
                Prop("Cf_Approval_Deadline", TIMESTAMP),
                _timestamp_after("InvoiceDate", 0.5),
                "invented",
            ),
            Extra(Prop("TaxPercentage", DECIMAL), _decimals(AWKWARD_DECIMALS), "invented"),
        ),
        "PurchaseOrderSet": (
            Extra(_s("ProjectId", 10), _pick("PRJ1001", None), "invented"),
            Extra(Prop("WantedReceiptDate", DATE), _days_after("OrderDate", 1.0, 30), "invented"),
            Extra(_s("Cf_Requisitioner", 4000), _pick("Ops team", "R&D lab", None), "invented"),
            Extra(Prop("Cf_Delivery_Window_Start", TIME_OF_DAY), _time_of_day, "invented"),
        ),
        "PurchaseOrderLineSet": (
            Extra(_s("ProjectId", 10), _pick("PRJ1001", None), "invented"),
            Extra(_s("BuyUnitMeas", 10), _pick("pcs", "kg", "m²"), "invented"),
            Extra(Prop("PriceConvFactor", DECIMAL), _decimals(AWKWARD_DECIMALS), "invented"),
            Extra(Prop("Cf_Inspection_Required", BOOLEAN), _flag(0.2), "invented"),
        ),
        "CustomerOrderSet": (
            Extra(_s("CustomerPoNo", 50), _pick("PO-4711", "PO 'urgent'", None), "invented"),
            Extra(_s("RegionCode", 10), _pick("NORTH", "SOUTH"), "invented"),
            Extra(
                Prop("Priority", "OrderPriority"),
                _pick("Low", "Normal", "High", "Urgent"),
                "invented",
            ),
            Extra(
                Prop("Cf_Promised_At", TIMESTAMP),
                _timestamp_after("DateEntered", 0.8),
                "invented",
            ),
        ),
        "AccountingStructureItemSet": (
            Extra(_s("Cf_Report_Label", 4000), _copy("Description"), "invented"),
            Extra(
                Prop("IsTopNode", BOOLEAN),
                lambda rng, row: row.get("ParentNodeId") is None,
                "invented",
            ),
        ),
    },
    missing={
        # a tenant without projects, tax series or periodical allocation, nor Mexican SAT reporting
        "VoucherRowSet": ("ProjectActivityId", "PeriodAllocation", "TaxSeriesNo"),
        "Reference_Account": ("SatAccountType", "SatLevel", "SatAccountGroup", "SatParentAccount"),
        **{f"Reference_Code{c}": ("AccountingTextId",) for c in CODE_PARTS},
    },
    navigations={
        "VoucherRowSet": (
            Navigation(
                "EnteredByUserGroupRef",
                "UserGroupFinance",
                False,
                (("Company", "Company"), ("EnteredByUserGroup", "UserGroup")),
            ),
        ),
    },
    enums={
        "VoucherRowsAnalysis": (POSTING_SOURCE,),
        "CustomerOrderHandling": (CUSTOMER_ORDER_PRIORITY,),
    },
)

DEFAULT = TenantVariant(name="default", description="the sandbox's built-in entity types")

TENANTS: dict[str, TenantVariant] = {t.name: t for t in (DEFAULT, VARIED)}


def tenant_variant(name: str) -> TenantVariant:
    """The tenant variant called `name` (`default` or `varied`)."""
    try:
        return TENANTS[name]
    except KeyError:
        raise ValueError(f"unknown tenant {name!r}; known: {', '.join(TENANTS)}") from None
