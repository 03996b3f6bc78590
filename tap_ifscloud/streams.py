"""The built-in streams as data, and how configuration reshapes them.

Only some IFS projection names are confirmed from live systems (SPEC §3), so
every name below is a default: `stream_overrides` may replace any field of a
built-in stream, and `custom_streams` add streams of any other projection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tap_ifscloud import odata
from tap_ifscloud.api import normalize_path_prefix
from tap_ifscloud.errors import ConfigurationError

INCREMENTAL = "incremental"
WINDOW = "window"
FULL_TABLE = "full_table"
REPLICATION_MODES = (INCREMENTAL, WINDOW, FULL_TABLE)
CODE_PART_PLACEHOLDER = "{code_part}"

OVERRIDABLE = (
    "projection",
    "entity_set",
    "key_properties",
    "replication_key",
    "replication_mode",
    "filter",
    "select",
    "path_prefix",
    "enabled",
)


@dataclass(frozen=True)
class StreamDefinition:
    """One Singer stream read from one IFS entity set (or a family of them).

    `key_properties` None means: take the keys from the entity's `$metadata`;
    `path_prefix` None: the system's (`path_prefix` setting). `filter` is checked
    to stay within its own parentheses. `enabled` False leaves the stream out (a
    built-in stream the system has no projection for).
    A stream with `code_parts` reads one entity set per code part (the
    `{code_part}` placeholder in `entity_set` and `code_field`) into one
    stream, with the code part in a `code_part` column and the code in `code`.
    """

    name: str
    projection: str
    entity_set: str
    key_properties: tuple[str, ...] | None
    replication_mode: str = FULL_TABLE
    replication_key: str | None = None
    filter: str | None = None
    select: tuple[str, ...] | None = None
    partition_field: str = "Company"
    code_parts: tuple[str, ...] = ()
    code_field: str | None = None
    path_prefix: str | None = None
    enabled: bool = True

    def entity_sets(self) -> list[tuple[str | None, str]]:
        """(code part or None, entity set name) pairs this stream reads."""
        if not self.code_parts:
            return [(None, self.entity_set)]
        return [(p, self.entity_set.replace(CODE_PART_PLACEHOLDER, p)) for p in self.code_parts]

    def code_field_for(self, code_part: str) -> str:
        return (self.code_field or "").replace(CODE_PART_PLACEHOLDER, code_part)

    @property
    def is_incremental(self) -> bool:
        return self.replication_mode in (INCREMENTAL, WINDOW)


BUILTIN_STREAMS: tuple[StreamDefinition, ...] = (
    StreamDefinition(
        name="supplier_invoices",
        projection="ManualSupplierInvoiceHandling",
        entity_set="ManSuppInvoiceSet",
        key_properties=("Company", "InvoiceId"),
        replication_mode=INCREMENTAL,
        replication_key="LastModified",
    ),
    StreamDefinition(
        name="purchase_orders",
        projection="PurchaseOrderHandling",
        entity_set="PurchaseOrderSet",
        key_properties=("OrderNo",),
        replication_mode=INCREMENTAL,
        replication_key="LastModified",
    ),
    StreamDefinition(
        name="purchase_order_lines",
        projection="PurchaseOrderHandling",
        entity_set="PurchaseOrderLineSet",
        key_properties=("OrderNo", "LineNo", "ReleaseNo"),
        replication_mode=INCREMENTAL,
        replication_key="LastModified",
    ),
    StreamDefinition(
        name="customer_orders",
        projection="CustomerOrderHandling",
        entity_set="CustomerOrderSet",
        key_properties=("OrderNo",),
        replication_mode=INCREMENTAL,
        replication_key="LastModified",
    ),
    StreamDefinition(
        name="voucher_rows",
        projection="VoucherRowsAnalysis",
        entity_set="VoucherRowSet",
        key_properties=("Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"),
        replication_mode=WINDOW,
        replication_key="EntryDate",
    ),
    StreamDefinition(
        name="gl_accounts",
        projection="VoucherRowsAnalysis",
        entity_set="Reference_Account",
        key_properties=("Company", "Account"),
    ),
    StreamDefinition(
        name="cost_dimensions",
        projection="VoucherRowsAnalysis",
        entity_set="Reference_Code{code_part}",
        key_properties=("Company", "code_part", "code"),
        code_parts=tuple("BCDEFGHIJ"),
        code_field="Code{code_part}",
    ),
    StreamDefinition(
        name="account_hierarchy",
        projection="AccountingStructureHandling",
        entity_set="AccountingStructureItemSet",
        key_properties=("Company", "StructureId", "NodeId"),
    ),
)


def _as_tuple(value: Any, setting: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{setting} must be a list of property names, got {value!r}")
    items = tuple(value)
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ConfigurationError(f"{setting} must be a non-empty list of property names")
    return items


def _validated(definition: StreamDefinition) -> StreamDefinition:
    where = f"stream '{definition.name}'"
    if definition.replication_mode not in REPLICATION_MODES:
        raise ConfigurationError(
            f"{where}: replication_mode must be one of {', '.join(REPLICATION_MODES)}, "
            f"got {definition.replication_mode!r}"
        )
    if definition.is_incremental and not definition.replication_key:
        raise ConfigurationError(
            f"{where}: replication_mode {definition.replication_mode!r} needs a replication_key"
        )
    if definition.replication_mode == FULL_TABLE and definition.replication_key:
        definition = replace(definition, replication_key=None)
    for setting in ("projection", "entity_set"):
        value = getattr(definition, setting)
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{where}: {setting} must be a non-empty string")
    if not isinstance(definition.enabled, bool):
        raise ConfigurationError(f"{where}: enabled must be true or false")
    if definition.filter is not None:
        try:
            odata.check_filter(definition.filter)
        except odata.ODataValueError as exc:
            raise ConfigurationError(
                f"{where}: filter {definition.filter!r} {exc}. A filter must stand on its own "
                "(balanced parentheses, string literals in single quotes with '' for a quote); "
                "the tap combines it with the company and date bounds as (...) and (...)"
            ) from None
    if definition.path_prefix is not None:
        definition = replace(
            definition,
            path_prefix=normalize_path_prefix(definition.path_prefix, f"{where}: path_prefix"),
        )
    return definition


def apply_override(definition: StreamDefinition, override: Mapping[str, Any]) -> StreamDefinition:
    """`definition` with the fields of one `stream_overrides` entry replaced."""
    unknown = sorted(set(override) - set(OVERRIDABLE))
    if unknown:
        raise ConfigurationError(
            f"stream_overrides.{definition.name}: unknown setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(OVERRIDABLE)}"
        )
    changes: dict[str, Any] = {}
    for key, value in override.items():
        if key in ("key_properties", "select"):
            value = _as_tuple(value, f"stream_overrides.{definition.name}.{key}")
        changes[key] = value
    if (
        changes.get("replication_key")
        and "replication_mode" not in changes
        and definition.replication_mode == FULL_TABLE
    ):
        changes["replication_mode"] = INCREMENTAL
    return _validated(replace(definition, **changes))


def custom_stream(entry: Mapping[str, Any]) -> StreamDefinition:
    """A stream from one `custom_streams` entry (keys default to `$metadata`'s)."""
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError("custom_streams: every entry needs a non-empty 'name'")
    missing = [k for k in ("projection", "entity_set") if not entry.get(k)]
    if missing:
        raise ConfigurationError(f"custom_streams.{name}: missing {', '.join(missing)}")
    mode = entry.get("replication_mode") or (
        INCREMENTAL if entry.get("replication_key") else FULL_TABLE
    )
    base = StreamDefinition(
        name=name,
        projection=entry["projection"],
        entity_set=entry["entity_set"],
        key_properties=None,
        replication_mode=mode,
    )
    override = {k: v for k, v in entry.items() if k != "name"}
    override["replication_mode"] = mode
    return apply_override(base, override)


def stream_definitions(config: Mapping[str, Any]) -> list[StreamDefinition]:
    """The built-in streams with their overrides applied, then the custom streams; those
    with `enabled: false` left out."""
    overrides = config.get("stream_overrides") or {}
    if not isinstance(overrides, Mapping):
        raise ConfigurationError("stream_overrides must be an object keyed by stream name")
    builtin_names = {d.name for d in BUILTIN_STREAMS}
    unknown = sorted(set(overrides) - builtin_names)
    if unknown:
        raise ConfigurationError(
            f"stream_overrides names unknown stream(s) {', '.join(unknown)}; built-in streams: "
            f"{', '.join(sorted(builtin_names))} (use custom_streams for others)"
        )
    result = [
        apply_override(d, overrides[d.name]) if d.name in overrides else d for d in BUILTIN_STREAMS
    ]
    for entry in config.get("custom_streams") or []:
        definition = custom_stream(entry)
        if definition.name in {d.name for d in result}:
            raise ConfigurationError(f"custom_streams: stream name '{definition.name}' is taken")
        result.append(definition)
    return [d for d in result if d.enabled]
