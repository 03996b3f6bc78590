"""One sink per stream: typed decoding, rejects, batching and the committed merge.

The hot path (`add`) does one C-level decode per record into the stream's Struct
and appends a tuple; everything else (dedupe, staging, merge, audit) happens once
per batch in `commit`.

A record that cannot be loaded never stops the run (SPEC 5.2): it becomes a reject
with its stream, input line and reason. In a full-table sync its key still counts as
seen: the batch that records the reject moves the stored row with that key to the
sync's table version, so ACTIVATE_VERSION does not retire it (`confirm_rejected_keys`).
In an overwrite the batches go into a shadow table (overwrite.py; `BatchWork.into`), and
the stored row of a rejected record's key is carried into it.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import hashlib
import operator
import time
import typing as t
import uuid
from dataclasses import dataclass

import msgspec
from singer_sdk.sinks import BatchSink

from target_looker import naming
from target_looker.audit import AuditLog, BatchAudit, Reject, now
from target_looker.batch_files import input_position, undecodable_record_reason, with_origin
from target_looker.columns import (
    BIGINT,
    TEXT,
    TIMESTAMPTZ,
    Column,
    length_checked,
    needs_renaming,
    property_type,
    record_struct,
)
from target_looker.merge import deduplicate
from target_looker.reader import RecordEnvelope, decode_generic, scan_object
from target_looker.warehouse.base import (
    APPEND_ONLY,
    DELETED_AT_COLUMN,
    OVERWRITE,
    TABLE_VERSION_COLUMN,
    UPSERT,
    VERSION_COLUMN,
    Batch,
    MergeCounts,
    TableRef,
    Warehouse,
    WarehouseError,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from target_looker.target import TargetLooker

# Metadata columns on every table. The record may supply the first three itself.
RECORD_SUPPLIED: dict[str, tuple[Column, t.Any]] = {
    "_sdc_deleted_at": (Column("_sdc_deleted_at", TIMESTAMPTZ), datetime.datetime),
    "_ifs_etag": (Column("_ifs_etag", TEXT), str),
    "_ifs_objversion": (Column(VERSION_COLUMN, TEXT), str),
}
# Set by the target per record, in the order `add` appends them.
PER_RECORD = (
    Column("_sdc_extracted_at", TIMESTAMPTZ),
    Column("_sdc_sequence", BIGINT),  # nanoseconds since the epoch at receipt: arrival order
    Column("_sdc_table_version", BIGINT),
)
# Set by the target per batch: when its first record arrived, and when it was closed
# for loading. (Per batch rather than per record: a timestamp per row costs the
# warehouse as much to parse as the rest of a voucher row's metadata together.)
PER_BATCH = (
    Column("_sdc_received_at", TIMESTAMPTZ),
    Column("_sdc_batched_at", TIMESTAMPTZ),
    Column("_load_run_id", TEXT),
    Column("_load_batch_id", TEXT),
)
METADATA_ORDER = (
    "_sdc_extracted_at",
    "_sdc_received_at",
    "_sdc_batched_at",
    "_sdc_deleted_at",
    "_sdc_sequence",
    "_sdc_table_version",
    "_ifs_etag",
    "_ifs_objversion",
    "_load_run_id",
    "_load_batch_id",
)

_encode = msgspec.json.Encoder(decimal_format="number").encode
# A stream's rows per batch follow the size of its first FIT_SAMPLE records' JSON
DEFAULT_BATCH_SIZE_BYTES = 16 * 2**20
FIT_SAMPLE = 1000
_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)


@dataclass
class TablePlan:
    """How one stream's records become rows of one table."""

    table: TableRef
    struct: type[msgspec.Struct]
    row_width: int  # leading Struct fields that are columns (the rest are ignored)
    columns: list[Column]  # in row order: record columns, then per-record metadata
    constant_columns: list[Column]  # same value for a whole batch: per-batch metadata, absent
    table_columns: list[Column]  # in table order: data columns, then metadata
    keys: list[str]  # column names
    renamed: dict[str, str]  # property -> JSON name in the Struct, for names msgspec refuses
    key_properties: list[str]
    properties: set[str]
    key_struct: type[msgspec.Struct] | None = None  # the key properties alone, typed
    #: `struct` with each VARCHAR's length checked while decoding (`columns.length_checked`);
    #: None when the stream has no VARCHAR column.
    checked_struct: type[msgspec.Struct] | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def key_of(self, record: t.Any) -> tuple | None:
        """The typed key of a generically decoded record (as a row would hold it), or None
        when it has no complete key that decodes. For rejects only: slow."""
        if self.key_struct is None or not isinstance(record, dict):
            return None
        try:
            values = {
                (f"~{i}" if needs_renaming(prop) else prop): record[prop]
                for i, prop in enumerate(self.key_properties)
            }
            return msgspec.structs.astuple(
                msgspec.json.decode(_encode(values), type=self.key_struct)
            )
        except (KeyError, TypeError, msgspec.DecodeError, msgspec.EncodeError, RecursionError):
            return None

    def key_of_raw(self, raw: msgspec.Raw | bytes) -> tuple | None:
        """`key_of` for a record msgspec cannot decode as a whole (too deep, a lone
        surrogate): its key members are found and decoded one by one."""
        if self.key_struct is None:
            return None
        try:
            text = bytes(raw).decode()
            members = scan_object(text).members
            record = {
                prop: decode_generic(text[start:stop])
                for prop, (start, stop) in members.items()
                if prop in self.key_properties
            }
        except (ValueError, RecursionError, msgspec.DecodeError):
            return None
        return self.key_of(record)


def plan_table(
    stream: str,
    schema: dict,
    key_properties: t.Sequence[str],
    *,
    target_schema: str,
    column_naming: str,
    warehouse: Warehouse,
) -> TablePlan:
    """Work out columns, types and the record decoder for a stream's SCHEMA."""
    context = f"stream {stream!r}"
    properties: dict[str, dict] = schema.get("properties") or {}
    missing = [k for k in key_properties if k not in properties]
    if missing:
        raise WarehouseError(f"{context}: key properties {missing} are not in its schema")
    table_name = naming.convert(stream, column_naming)
    naming.check_length(table_name, warehouse.max_identifier_bytes, context=context)
    mapping = naming.column_names(
        properties,
        column_naming,
        context=context,
        case_insensitive=warehouse.case_insensitive_identifiers,
        max_bytes=warehouse.max_identifier_bytes,
    )
    required = set(schema.get("required") or ()) | set(key_properties)
    data, supplied, ignored = [], {}, []
    for prop, prop_schema in properties.items():
        column = mapping[prop]
        if column in RECORD_SUPPLIED:
            supplied[column] = prop
        elif column in METADATA_ORDER:
            ignored.append(prop)  # target-owned metadata: the target sets it
        else:
            sql_type, decode_type = property_type(
                prop_schema if isinstance(prop_schema, dict) else {}
            )
            is_key = prop in key_properties
            data.append((prop, column, sql_type, decode_type, is_key))
    fields = [
        (prop, decode_type if is_key else decode_type | None, prop in required)
        for prop, _, _, decode_type, is_key in data
    ]
    checked_fields = [
        (prop, checked if is_key else checked | None, prop in required)
        for prop, _, sql_type, decode_type, is_key in data
        for checked in [length_checked(sql_type, decode_type)]
    ]
    has_varchar = any(sql_type.kind == "varchar" for _, _, sql_type, _, _ in data)
    columns = [
        Column(column, sql_type, source=prop, nullable=not is_key)
        for prop, column, sql_type, _, is_key in data
    ]
    for column_name in RECORD_SUPPLIED:
        if column_name in supplied:
            prop = supplied[column_name]
            col, decode_type = RECORD_SUPPLIED[column_name]
            fields.append((prop, decode_type | None, prop in required))
            columns.append(Column(col.name, col.sql_type, source=prop))
    row_width = len(fields)
    fields += [(prop, t.Any, False) for prop in ignored]
    checked_fields += fields[len(checked_fields) :]
    renamed = {prop: f"~{i}" for i, (prop, _, _) in enumerate(fields) if needs_renaming(prop)}
    absent = [RECORD_SUPPLIED[c][0] for c in RECORD_SUPPLIED if c not in supplied]
    columns += PER_RECORD
    constant_columns = [*PER_BATCH, *absent]
    by_name = {c.name: c for c in [*columns, *constant_columns]}
    table_columns = [c for c in columns if c.name not in METADATA_ORDER]
    table_columns += [by_name[name] for name in METADATA_ORDER]
    key_types = {prop: decode_type for prop, _, _, decode_type, is_key in data if is_key}
    return TablePlan(
        table=TableRef(target_schema, table_name),
        struct=record_struct(stream, fields),
        row_width=row_width,
        columns=columns,
        constant_columns=constant_columns,
        table_columns=table_columns,
        keys=[mapping[k] for k in key_properties],
        renamed=renamed,
        key_properties=list(key_properties),
        properties=set(properties),
        key_struct=(
            record_struct(f"{stream} key", [(k, key_types[k], True) for k in key_properties])
            if key_properties and all(k in key_types for k in key_properties)
            else None
        ),
        checked_struct=record_struct(stream, checked_fields) if has_varchar else None,
    )


def ensure_table(
    warehouse: Warehouse, plan: TablePlan, load_method: str, table: TableRef | None = None
) -> None:
    """Create the table, or evolve it: add new columns, widen safely, refuse the rest.

    `table`: another table to make hold the plan's rows (an overwrite's shadow, which
    starts as a copy of the table's definition); errors name the plan's table.
    """
    table = table or plan.table
    warehouse.ensure_schema(table.schema)
    existing = warehouse.existing_columns(table)
    keys = plan.keys if load_method != APPEND_ONLY else []
    if existing is None:
        warehouse.create_table(table, plan.table_columns, keys)
        return
    if keys:
        current_key = warehouse.primary_key(table)
        if current_key != keys:
            raise WarehouseError(
                f"table {warehouse.qualified(plan.table)} has primary key "
                f"{current_key or 'none'} "
                f"but the stream's key properties map to {keys}; a key change needs a new "
                f"table (drop or rename the old one) or load_method='append-only'"
            )
    existing_by_fold = {
        (n.casefold() if warehouse.case_insensitive_identifiers else n): n for n in existing
    }
    for column in plan.table_columns:
        folded = column.name.casefold() if warehouse.case_insensitive_identifiers else column.name
        current_name = existing_by_fold.get(folded)
        if current_name is None:
            warehouse.add_column(table, column)
            continue
        current = existing[current_name]
        target_type = warehouse.widened(current, column.sql_type)
        if target_type is None:
            raise WarehouseError(
                f"column {column.name!r} of {warehouse.qualified(plan.table)} is "
                f"{current.describe()} but the stream's schema now makes it "
                f"{column.sql_type.describe()}; only widening (longer VARCHAR, VARCHAR to "
                f"TEXT, BIGINT to NUMERIC) is automatic. Change the column by hand or load "
                f"into a new table."
            )
        if target_type != warehouse.effective_type(current):
            warehouse.alter_type(table, current_name, target_type)


class LookerSink(BatchSink):
    """Buffers one stream's records and commits them as audited, merged batches."""

    target: TargetLooker

    def __init__(self, target: TargetLooker, stream_name: str, schema: dict, key_properties):
        self.target = target
        super().__init__(target, stream_name, schema, key_properties)
        self._reset_batch()

    def get_validator(self) -> None:
        return None  # validation is the typed decode in `add`

    @property
    def include_sdc_metadata_properties(self) -> bool:
        """Never the SDK's metadata: the target writes its own columns (`METADATA_ORDER`)
        whatever `add_record_metadata` says, so the setting is not offered either."""
        return False

    # Setup --------------------------------------------------------------------------

    def setup(self) -> None:
        target = self.target
        warehouse, audit = target.session.idle_connection()
        self.plan = plan_table(
            self.stream_name,
            self.original_schema,
            self.key_properties,
            target_schema=target.session.target_schema,
            column_naming=target.config.get("column_naming", naming.SNAKE_CASE),
            warehouse=warehouse,
        )
        self.load_method = target.config.get("load_method") or UPSERT
        if self.load_method == OVERWRITE:
            # The table users read stays as it is until the swap: the first batch creates
            # the shadow like it, shaped by this plan; a new SCHEMA mid-run reshapes that.
            warehouse.ensure_schema(self.plan.table.schema)
            shadow = target.session.shadow_of(self.plan.table)
            if shadow is not None:
                ensure_table(warehouse, self.plan, self.load_method, table=shadow)
        else:
            ensure_table(warehouse, self.plan, self.load_method)
            warehouse.note_table_state(self.plan.table)
        audit.record_stream(
            self.stream_name,
            self.plan.table.name,
            self.original_schema,
            list(self.key_properties),
            target.bookmark_properties.get(self.stream_name, []),
        )
        self.batch_rows = self.max_size
        self._batch_bytes = int(self.config.get("batch_size_bytes") or DEFAULT_BATCH_SIZE_BYTES)
        self._fitted = False
        self._decode, self._decode_unchecked, self._decode_lines = self._decoders()
        self._next_sequence = 0  # `add_lines`: the least `_sdc_sequence` it may give next
        self._astuple = msgspec.structs.astuple
        # Struct fields past the row (target-owned metadata the record sent) are cut off.
        struct_width = len(self.plan.struct.__struct_fields__)
        self._row_width = self.plan.row_width if struct_width != self.plan.row_width else None
        self._check_nul = warehouse.forbids_nul_in_text
        self._warned_fields: set[str] = set()
        self._last_extracted: tuple[str | None, datetime.datetime | None] = (None, None)
        names = self.plan.names
        self._version_index = names.index(VERSION_COLUMN) if VERSION_COLUMN in names else None
        # A rejected record's key is kept (to confirm it in ACTIVATE_VERSION's sync, or to
        # carry its stored row into an overwrite's new table) when the table is merged by key.
        self._keyed = self.load_method != APPEND_ONLY and bool(self.plan.keys)
        self._overwrite = self.load_method == OVERWRITE
        self._key_positions = [names.index(k) for k in self.plan.keys]
        bookmarks = target.bookmark_properties.get(self.stream_name) or []
        sources = [c.source for c in self.plan.columns]
        self._bookmark_index = (
            sources.index(bookmarks[0]) if bookmarks[:1] and bookmarks[0] in sources else None
        )

    def _decoders(
        self,
    ) -> tuple[
        Callable[[t.Any], t.Any],
        Callable[[t.Any], t.Any] | None,
        Callable[[bytes], list[t.Any]] | None,
    ]:
        """The record decoder of the hot path; the one without VARCHAR length checks to
        decode a record again after the first refused it (None: the same decoder); and
        the hot path's decoder of many records at once (`add_lines`).

        Streams with property names msgspec cannot map take the slower `_decode_renamed`,
        which checks no length (their batches are checked value by value), one record at
        a time (no lines decoder).
        """
        if self.plan.renamed:
            return self._decode_renamed, None, None
        # numbers inside object/array properties stay exact, like every other amount
        plain = msgspec.json.Decoder(self.plan.struct, float_hook=decimal.Decimal)
        if self.plan.checked_struct is None:
            return plain.decode, None, plain.decode_lines
        checked = msgspec.json.Decoder(self.plan.checked_struct, float_hook=decimal.Decimal)
        return checked.decode, plain.decode, checked.decode_lines

    # Batch state ----------------------------------------------------------------------

    def _reset_batch(self) -> None:
        self.first_seq: int | None = None
        self._rows: list[tuple] = []
        self._all_raws: list[msgspec.Raw] = []  # every record, in arrival order
        self._all_lines: list[int] = []  # the input line of each, aligned with _all_raws
        self._dropped: list[int] = []  # positions in _all_raws of records that made no row
        # Whether a row may hold a string longer than its VARCHAR: a record that the
        # length-checking decoder refused made a row (see `_decode_again`).
        self._maybe_overlong = False
        self._rejects: list[Reject] = []
        self._batch_id: str | None = None
        self._received_at: datetime.datetime | None = None

    @property
    def current_size(self) -> int:
        """Records buffered in the open batch, rejects included (the SDK's name)."""
        return len(self._all_raws)

    def _start_batch(self, seq: int) -> None:
        self.first_seq = seq
        self._batch_id = uuid.uuid4().hex
        self._received_at = datetime.datetime.now(tz=_UTC)

    def _constants(self) -> list[tuple[Column, t.Any]]:
        values = {
            "_sdc_received_at": self._received_at,
            "_sdc_batched_at": datetime.datetime.now(tz=_UTC),
            "_load_run_id": self.target.session.run_id,
            "_load_batch_id": self._batch_id,
        }
        return [(c, values.get(c.name)) for c in self.plan.constant_columns]

    # Hot path -------------------------------------------------------------------------

    def add(self, envelope: RecordEnvelope, seq: int, has_nul: bool = False, line: int = 0) -> bool:
        """Decode one record into a row, or into a reject with the reason.

        `has_nul`: the input line contains a `\\u0000` escape (checked by the reader);
        `line`: its input line number, for a reject. Returns whether the batch is full
        (`batch_rows` records), so the caller needs no second look at the sink.
        """
        if self.first_seq is None:
            self._start_batch(seq)
        raw = envelope.record
        raws = self._all_raws
        raws.append(raw)
        self._all_lines.append(line)
        try:
            obj = self._decode(raw)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            obj = self._decode_again(envelope, exc, line)  # ValidationError included
            if obj is None:
                self._dropped.append(len(raws) - 1)
                return len(raws) >= self.batch_rows
        row = self._astuple(obj)
        if self._row_width is not None:
            row = row[: self._row_width]
        if has_nul and self._check_nul and _has_nul(row):
            self._reject(
                envelope,
                "a text value contains a NUL (\\u0000) character, which PostgreSQL cannot store",
                line,
                tuple(row[i] for i in self._key_positions),
            )
            self._dropped.append(len(raws) - 1)
            return len(raws) >= self.batch_rows
        extracted = envelope.time_extracted
        if extracted is not None:
            last = self._last_extracted
            extracted = last[1] if extracted == last[0] else self._parse_extracted(extracted)
        # Concatenation copies the tuple in C; `(*row, ...)` builds a list first (slower).
        self._rows.append(row + (extracted, time.time_ns(), envelope.version))  # noqa: RUF005
        return len(raws) >= self.batch_rows

    def fit_batch_rows(self) -> bool:
        """Once FIT_SAMPLE records are in: rows per batch set so that a batch holds about
        `batch_size_bytes` of their JSON (never more than `batch_size_rows`). A row in
        memory weighs several times its JSON, so a tenant with hundreds of custom fields
        would otherwise need several times the memory. Whether the open batch is already
        full by the new measure (the caller commits it)."""
        raws = self._all_raws
        if self._fitted or len(raws) < FIT_SAMPLE:
            return False
        self._fitted = True
        average = sum(map(len, raws[:FIT_SAMPLE])) / FIT_SAMPLE
        rows = max(1, min(self.max_size, int(self._batch_bytes / average)))
        if rows < self.batch_rows:
            self.logger.info(
                "Stream %r: %d records per batch (records of about %d bytes, batch_size_bytes %d)",
                self.stream_name,
                rows,
                average,
                self._batch_bytes,
            )
            self.batch_rows = rows
        return len(raws) >= self.batch_rows

    def add_lines(
        self,
        lines: list[bytes],
        seq: int,
        line: int,
        extracted: str | None,
        version: int | None,
    ) -> bool | None:
        """Records of a batch file, numbered from `seq` and from input line `line`, all
        added as `add` adds them but decoded in one call: whether the batch is now full.

        None when they cannot all be taken this way (nothing is added then, and each one
        goes through `add`): a blank line, a `\\u0000` escape where text cannot hold
        NUL, or any record the typed decode refuses; `add` explains or tolerates each.
        The caller keeps the batch's room (`batch_rows - current_size`) in mind.
        """
        decode_lines = self._decode_lines
        if decode_lines is None or not all(lines):
            return None
        text = b"\n".join(lines)
        if self._check_nul and b"\\u0000" in text:
            return None
        try:
            objs = decode_lines(text)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            return None
        count = len(lines)
        if len(objs) != count:  # a line of only whitespace
            return None
        if self.first_seq is None:
            self._start_batch(seq)
        self._all_raws.extend(map(msgspec.Raw, lines))
        self._all_lines.extend(range(line, line + count))
        rows = map(self._astuple, objs)
        if self._row_width is not None:
            width = self._row_width
            rows = (row[:width] for row in rows)
        if extracted is not None:
            last = self._last_extracted
            extracted = last[1] if extracted == last[0] else self._parse_extracted(extracted)
        # `_sdc_sequence`: arrival order, one nanosecond apart within the call
        first = max(time.time_ns(), self._next_sequence)
        self._next_sequence = first + count
        self._rows.extend(
            [row + (extracted, first + i, version) for i, row in enumerate(rows)]  # noqa: RUF005
        )
        return len(self._all_raws) >= self.batch_rows

    def _parse_extracted(self, text: str) -> datetime.datetime | None:
        """A `time_extracted` as a datetime, remembered: records in a row share theirs."""
        self._last_extracted = (text, _parse_time(text))
        return self._last_extracted[1]

    def _decode_again(self, envelope: RecordEnvelope, error: Exception, line: int) -> t.Any:
        """A record the hot-path decoder refused: decoded without the VARCHAR length
        checks (its batch is then checked value by value, `_drop_overlong`), else
        explained or tolerated by `_recover`. Returns the Struct, or None (rejected)."""
        if self._decode_unchecked is not None:
            try:
                obj = self._decode_unchecked(envelope.record)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
                error = exc
            else:
                self._maybe_overlong = True
                return obj
        obj = self._recover(envelope, error, line)
        if obj is not None:
            self._maybe_overlong = True
        return obj

    def add_record(self, record: dict, envelope: RecordEnvelope, seq: int, line: int = 0) -> bool:
        """A record already decoded (after stream maps): same checks as the raw path."""
        raw = msgspec.Raw(_encode(record))
        return self.add(
            RecordEnvelope(
                "RECORD", envelope.stream, raw, envelope.time_extracted, envelope.version
            ),
            seq,
            line=line,
        )

    def add_undecodable(self, envelope: RecordEnvelope, seq: int, line: int, reason: str) -> None:
        """A record the reader could not decode at all (see reader.salvage_record): a reject."""
        if self.first_seq is None:
            self._start_batch(seq)
        self._all_raws.append(envelope.record)
        self._all_lines.append(line)
        self._dropped.append(len(self._all_raws) - 1)
        key = self.plan.key_of_raw(envelope.record) if self._keeps_key(envelope) else None
        self._reject(envelope, reason, line, key)

    def _decode_renamed(self, raw: msgspec.Raw) -> t.Any:
        """Slower decode for streams with property names msgspec cannot map directly."""
        record = decode_generic(raw)
        if not isinstance(record, dict):
            raise msgspec.ValidationError("Expected `object`")
        return self._convert(record)

    def _convert(self, record: dict) -> t.Any:
        renamed = self.plan.renamed
        if renamed:
            record = {renamed.get(k, k): v for k, v in record.items()}
        return msgspec.convert(record, self.plan.struct)

    def _recover(self, envelope: RecordEnvelope, error: Exception, line: int) -> t.Any:
        """Slow path for a record that failed the typed decode: explain or tolerate."""
        try:
            record = decode_generic(envelope.record)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            # A batch file's line reaches this unchecked: not JSON at all stops the run.
            reason = undecodable_record_reason(envelope.record, exc, line)
            key = self.plan.key_of_raw(envelope.record) if self._keeps_key(envelope) else None
            self._reject(envelope, reason, line, key)
            return None
        if not isinstance(record, dict):
            self._reject(envelope, f"record is not a JSON object ({error})", line)
            return None
        missing = [k for k in self.plan.key_properties if k not in record]
        if missing:
            self._reject(
                envelope,
                f"lacks key properties {missing} (key properties {self.plan.key_properties})",
                line,
            )
            return None
        key = self.plan.key_of(record) if self._keeps_key(envelope) else None
        unknown = [k for k in record if k not in self.plan.properties]
        for name in unknown:
            if name not in self._warned_fields:
                self._warned_fields.add(name)
                self.logger.warning(
                    "Stream %r: field %r is not in the schema; it is not loaded",
                    self.stream_name,
                    name,
                )
            del record[name]
        if not unknown:
            self._reject(envelope, f"fails schema: {error}", line, key)
            return None
        try:
            return self._convert(record)
        except msgspec.ValidationError as exc:
            self._reject(envelope, f"fails schema: {exc}", line, key)
            return None

    def _keeps_key(self, envelope: RecordEnvelope) -> bool:
        """Whether a reject of this record keeps its key: in a full-table sync (a table
        version) or an overwrite, the key is still in the source."""
        return self._keyed and (envelope.version is not None or self._overwrite)

    def _reject(
        self, envelope: RecordEnvelope, reason: str, line: int, key: tuple | None = None
    ) -> None:
        self._rejects.append(
            Reject(
                stream=self.stream_name,
                reason=with_origin(reason, line),
                record=bytes(envelope.record).decode("utf-8", "replace"),
                received_at=datetime.datetime.now(tz=_UTC),
                time_extracted=envelope.time_extracted,
                table_version=envelope.version,
                input_line=input_position(line)[0] or None,
                key=key if self._keeps_key(envelope) else None,
            )
        )

    # Commit ----------------------------------------------------------------------------

    def process_batch(self, context: dict) -> None:
        """SDK hook (used by the SDK's own drain paths): commit what is buffered."""
        self.target.commit_sink(self)

    def take_batch(self) -> BatchWork:
        """Hand the buffered batch over for loading and start an empty one.

        The SDK's record counter (`record_count` metric) is counted here, once per batch:
        the hot path stays free of it.
        """
        all_raws = self._all_raws
        self.record_counter_metric.increment(len(all_raws))
        rows = self._rows
        low, high = self._bookmark_range(rows)
        origins = self._row_origins()
        if self._maybe_overlong or self.plan.renamed:
            rows, origins = self._drop_overlong(rows, origins)
        superseded = 0
        if self._keyed:
            result = deduplicate(rows, _key_getter(self._key_positions), self._version_index)
            superseded = result.superseded
            if superseded:
                origins = [origins[i] if origins else i for i in result.kept]
                rows = [rows[i] for i in result.kept]
        work = BatchWork(
            batch=Batch(
                table=self.plan.table,
                columns=self.plan.columns,
                rows=rows,
                keys=self.plan.keys if self._keyed else [],
                load_method=self.load_method,
                constants=self._constants(),
            ),
            stream=self.stream_name,
            run_id=self.target.session.run_id,
            batch_id=t.cast("str", self._batch_id),
            records_in=len(all_raws),
            superseded=superseded,
            origins=origins,
            rejects=self._rejects,
            all_raws=all_raws,
            all_lines=self._all_lines,
            min_bookmark=low,
            max_bookmark=high,
            plan=self.plan,
        )
        self._reset_batch()
        return work

    def _row_origins(self) -> list[int] | None:
        """The position in `_all_raws` of each buffered row's record; None: the same
        position (no record was rejected before it became a row, the usual case)."""
        if not self._dropped:
            return None
        dropped = set(self._dropped)
        return [i for i in range(len(self._all_raws)) if i not in dropped]

    def _drop_overlong(
        self, rows: list[tuple], origins: list[int] | None
    ) -> tuple[list[tuple], list[int] | None]:
        """Reject rows whose text exceeds the schema's maxLength (never truncate).

        Only for a batch that may hold such a row (`_maybe_overlong`): the hot-path
        decoder has checked every other. Returns the rows kept and their origins (see
        `_row_origins`).
        """
        bad: dict[int, str] = {}
        for i, column in enumerate(self.plan.columns):
            limit = column.sql_type.length
            if column.sql_type.kind != "varchar" or not limit or not rows:
                continue
            values = [row[i] for row in rows]
            if max(map(len, filter(None, values)), default=0) <= limit:
                continue
            for position, value in enumerate(values):
                length = len(value) if value else 0
                if length > limit and position not in bad:
                    bad[position] = (
                        f"fails schema: {column.source!r} is {length} characters, "
                        f"longer than its maxLength {limit}"
                    )
        if not bad:
            return rows, origins
        for position, reason in sorted(bad.items()):
            origin = origins[position] if origins else position
            self._rejects.append(
                row_reject(
                    self.stream_name,
                    rows[position],
                    self._all_raws[origin],
                    self._all_lines[origin],
                    reason,
                    self._key_positions if self._keyed else None,
                    any_version=self._overwrite,
                )
            )
        kept = [i for i in range(len(rows)) if i not in bad]
        return [rows[i] for i in kept], [origins[i] if origins else i for i in kept]

    def _bookmark_range(self, rows: list[tuple]) -> tuple[str | None, str | None]:
        """Bookmark range of the batch as received (rows that a check on the decoded row
        rejects included: they were read)."""
        index = self._bookmark_index
        if index is None or not rows:
            return None, None
        values = [v for v in map(operator.itemgetter(index), rows) if v is not None]
        if not values:
            return None, None
        try:
            return _text(min(values)), _text(max(values))
        except TypeError:
            return None, None


@dataclass
class BatchWork:
    """A batch detached from its sink: everything needed to load and audit it."""

    batch: Batch
    stream: str
    run_id: str
    batch_id: str
    records_in: int
    superseded: int
    origins: list[int] | None  # batch.rows position -> all_raws position (None: the same)
    rejects: list[Reject]
    all_raws: list[msgspec.Raw]  # every record of the batch, in arrival order
    all_lines: list[int]  # the input line of each record, aligned with all_raws
    min_bookmark: str | None
    max_bookmark: str | None
    plan: TablePlan | None = None  # the stream's plan (an overwrite shapes its shadow by it)
    #: Load into this table instead of `batch.table`: an overwrite's shadow (overwrite.py).
    into: TableRef | None = None

    def load(
        self, warehouse: Warehouse, audit: AuditLog, seal: Callable[[], dict | None]
    ) -> BatchAudit:
        """Prepare, then merge + rejects + audit rows in one transaction.

        `seal` is called last inside the transaction: it returns the STATE that this
        batch's commit makes safe (recorded as the run's `last_state`, then emitted), and
        no newer STATE can attach to the batch after it.
        """
        # One big buffer: hashlib releases the GIL for it, so decoding goes on meanwhile.
        checksum = hashlib.sha256(b"\n".join(self.all_raws)).hexdigest()
        batch = self.batch
        if self.into is not None:
            batch = dataclasses.replace(batch, table=self.into)
        prepared = warehouse.prepare(batch)
        keys = batch.keys
        key_positions = [batch.column_names.index(k) for k in keys] if keys else None
        for position, reason in prepared.rejects:
            origin = self.origins[position] if self.origins else position
            self.rejects.append(
                row_reject(
                    self.stream,
                    batch.rows[position],
                    self.all_raws[origin],
                    self.all_lines[origin],
                    reason,
                    key_positions,
                    any_version=self.into is not None,
                )
            )
        carry_from = self.batch.table if self.into is not None else None

        def write() -> BatchAudit:
            counts = warehouse.merge(prepared)
            confirm_rejected_keys(warehouse, batch, self.rejects, carry_from=carry_from)
            audit.record_rejects(self.batch_id, self.rejects)
            result = BatchAudit(
                run_id=self.run_id,
                batch_id=self.batch_id,
                stream=self.stream,
                table_name=self.batch.table.name,
                records_in=self.records_in,
                counts=MergeCounts(
                    counts.inserted, counts.updated, counts.skipped + self.superseded
                ),
                rejected=len(self.rejects),
                min_bookmark=self.min_bookmark,
                max_bookmark=self.max_bookmark,
                checksum=checksum,
                committed_at=now(),
                loaded_into=None if self.into is None else self.into.name,
            )
            audit.record_batch(result, seal())  # seal() may run again: same STATE
            return result

        # A deadlock or serialization failure rolls all of it back and runs it again.
        return warehouse.run_transaction(write, what=f"{self.stream} batch {self.batch_id}")


def confirm_rejected_keys(
    warehouse: Warehouse, batch: Batch, rejects: list[Reject], carry_from: TableRef | None = None
) -> int:
    """Rejected records of a full-table sync (or an overwrite) still prove their key
    exists in IFS.

    In an overwrite (`carry_from`: the table that `batch.table`, its shadow, will
    replace), the stored row with such a key is first copied into the shadow, unless
    the shadow has that key already. The stored row with such a key then joins the
    sync's table version (and is no longer marked deleted, as for a row the version
    guard skipped), so ACTIVATE_VERSION's retire step, which removes rows of older
    versions, leaves it alone: the row keeps its last loaded values, and the reject
    waits in `_load_rejects` for replay. Runs inside the batch's transaction; returns
    how many keys were looked up.
    """
    keyed = [r for r in rejects if r.key is not None and is_plain(r.key)]
    if not keyed or not batch.keys:
        return 0
    if carry_from is not None:
        carry_rows(warehouse, batch, carry_from, list(dict.fromkeys(r.key for r in keyed)))
    confirmed = [
        (reject.key, reject.table_version) for reject in keyed if reject.table_version is not None
    ]
    if not confirmed:
        return 0
    confirmed = list(dict.fromkeys(confirmed))
    q = warehouse.quote
    bigint = warehouse.render_type(BIGINT)
    version, deleted = q(TABLE_VERSION_COLUMN), q(DELETED_AT_COLUMN)
    match = key_match_sql(warehouse, batch.columns, batch.keys, first_param=2)
    table = warehouse.qualified(batch.table)
    # Identifiers go through Warehouse.quote; values are bound parameters.
    sql = (
        f"UPDATE {table} SET {version} = CAST($1 AS {bigint}), {deleted} = NULL "  # noqa: S608
        f"WHERE {match} AND ({version} IS NULL OR {version} < CAST($1 AS {bigint}))"
    )
    warehouse.executemany(sql, [(table_version, *key) for key, table_version in confirmed])
    return len(confirmed)


def carry_rows(warehouse: Warehouse, batch: Batch, source: TableRef, keys: list[tuple]) -> None:
    """Copy the rows with `keys` from `source` (if it exists) into `batch.table`, where it
    lacks them; columns `source` lacks stay NULL."""
    stored = warehouse.existing_columns(source)
    if stored is None:
        return
    columns = [name for name in warehouse.existing_columns(batch.table) or {} if name in stored]
    names = ", ".join(warehouse.quote(name) for name in columns)
    match = key_match_sql(warehouse, batch.columns, batch.keys, first_param=1)
    target = warehouse.qualified(batch.table)
    # Identifiers go through Warehouse.quote; values are bound parameters. In the
    # subquery the key columns are the target's (the innermost table).
    warehouse.executemany(
        f"INSERT INTO {target} ({names}) SELECT {names} "  # noqa: S608
        f"FROM {warehouse.qualified(source)} WHERE {match} "
        f"AND NOT EXISTS (SELECT 1 FROM {target} WHERE {match})",
        keys,
    )


_PLAIN_KEY_TYPES = (str, int, decimal.Decimal, datetime.date, datetime.time)
# Key values compared as they are: a cast to VARCHAR(n) would truncate, one to
# DECIMAL(p,s) would round, and either could then match another row's key.
_UNCAST_KINDS = frozenset({"text", "varchar", "numeric"})


def is_plain(key: tuple) -> bool:
    """A key a SQL parameter can hold exactly (not JSON, no NULL part)."""
    return all(isinstance(value, _PLAIN_KEY_TYPES) for value in key)


def key_match_sql(
    warehouse: Warehouse, columns: t.Sequence[Column], keys: t.Sequence[str], first_param: int
) -> str:
    """`key1 = $n AND key2 = $n+1 ...`, each parameter typed like its column (exactly)."""
    types = {c.name: c.sql_type for c in columns}
    conditions = []
    for i, name in enumerate(keys):
        param = f"${first_param + i}"
        sql_type = types[name]
        if sql_type.kind not in _UNCAST_KINDS:
            param = f"CAST({param} AS {warehouse.render_type(sql_type)})"
        conditions.append(f"{warehouse.quote(name)} = {param}")
    return " AND ".join(conditions)


def row_reject(
    stream: str,
    row: tuple,
    raw: msgspec.Raw,
    line: int,
    reason: str,
    key_positions: list[int] | None,
    *,
    any_version: bool = False,
) -> Reject:
    """A reject for a row already decoded: message metadata comes from its tail.

    Its `received_at` is when its record arrived (the row's `_sdc_sequence`), as for a
    record rejected on arrival: replay compares it with the stored row's. Its key is
    kept (`key_positions`) when the record has a table version, or `any_version` (an
    overwrite).
    """
    extracted, received_ns, version = row[-len(PER_RECORD) :]
    return Reject(
        stream=stream,
        reason=with_origin(reason, line),
        record=bytes(raw).decode("utf-8", "replace"),
        received_at=_EPOCH + datetime.timedelta(microseconds=received_ns // 1000),
        time_extracted=extracted.isoformat() if extracted else None,
        table_version=version,
        input_line=input_position(line)[0] or None,
        key=(
            tuple(row[i] for i in key_positions)
            if key_positions is not None and (version is not None or any_version)
            else None
        ),
    )


def _key_getter(positions: list[int]) -> t.Callable[[tuple], t.Hashable]:
    if len(positions) == 1:
        return operator.itemgetter(positions[0])
    return operator.itemgetter(*positions)


def _text(value: t.Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _has_nul(row: tuple) -> bool:
    return any(
        ("\x00" in v)
        if isinstance(v, str)
        else (isinstance(v, dict | list) and b"\\u0000" in _encode(v))
        for v in row
    )


def _parse_time(value: str) -> datetime.datetime | None:
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_UTC)


__all__ = ["APPEND_ONLY", "OVERWRITE", "UPSERT", "LookerSink", "ensure_table", "plan_table"]
