"""Snowflake warehouse: PUT + COPY INTO a staging table, then UPDATE ... FROM + INSERT ...
WHERE NOT EXISTS under the version guard, in one transaction with the audit rows.

`warehouse_url: snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?warehouse=WH&role=ROLE`
(extra `[snowflake]`: the official `snowflake-connector-python`). SCHEMA is the one the
target writes when `default_target_schema` is not set. Key-pair authentication instead of a
password: the setting `snowflake_private_key` (PEM text or the path of a PEM file; may be a
`fernet:` value) and, for an encrypted key, `snowflake_private_key_passphrase`; URL query
`private_key_file=PATH` does the same for a bare `open_warehouse(url)`. The query
parameters `host`, `port`, `protocol`, `authenticator`, `login_timeout` and
`network_timeout` pass through to the connector (a local emulator: `host=127.0.0.1&port=...
&protocol=http`).

Loading a batch (never row by row):
1. `prepare`: rows become an Arrow table (NUMBER(38, s) as DECIMAL(38, s), exactly); a
   value that does not fit (too many digits, NaN, a JSON number VARIANT would turn into a
   DOUBLE) is a reject, never rounded. Constant columns (run id, batch id, ...) travel in
   the table too.
2. `merge`: the table is written as a Parquet file, `PUT` into the connection's temporary
   stage and `COPY INTO` a transient staging table of its own (`_tl_stage_<uuid>`, dropped
   once the transaction has ended). That DDL comes first: Snowflake commits an open
   transaction at any DDL, so the transaction begins lazily with the first statement after
   it. Then `UPDATE target FROM stage` (rows whose stored version is not newer),
   `INSERT ... SELECT ... WHERE NOT EXISTS` (new keys), the audit rows, `COMMIT`.
   UPDATE + INSERT rather than one MERGE: the same effect inside a transaction, and a
   local emulator (fakesnow) can run it there (it cannot run MERGE inside a transaction).
   A concurrent loader's UPDATE waits for this transaction's table lock, so its
   `NOT EXISTS` sees the rows this one inserted: keys are never duplicated.

Idempotent: a batch replayed after a lost answer merges by key under the version guard.

Names: always quoted, so they keep their case (`"voucher_rows"."voucher_no"`); in
Looker's SQL and LookML they are written quoted too. At most 255 characters.
"""

# SQL here is built from identifiers passed through quote() (tested) and fixed fragments;
# every value is a bound parameter or travels in the staging table.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import datetime
import decimal
import os
import re
import tempfile
import typing as t
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ifs_looker_core import encrypted_settings
from target_looker.columns import Column, SqlType
from target_looker.warehouse import arrow_staging, exact_numbers
from target_looker.warehouse.arrow_staging import AUDIT_NAMES, StageColumn, stage_batch
from target_looker.warehouse.base import (
    APPEND_ONLY,
    VERSION_COLUMN,
    Batch,
    MergeCounts,
    Prepared,
    TableRef,
    Warehouse,
    WarehouseError,
    encode_json,
    not_finite_problem,
)
from target_looker.warehouse.bigquery import check_plain_http, query_flag
from target_looker.warehouse.lazy_transactions import LazyTransactionWarehouse
from target_looker.warehouse.on_conflict import portable_upsert

if t.TYPE_CHECKING:
    from sqlalchemy.engine import URL

KEY_SETTING = "snowflake_private_key"
PASSPHRASE_SETTING = "snowflake_private_key_passphrase"  # noqa: S105 - a setting name
PASS_THROUGH = ("host", "port", "protocol", "authenticator", "login_timeout", "network_timeout")
_INTEGER_PARAMS = ("port", "login_timeout", "network_timeout")

PRECISION, DEFAULT_SCALE, MAX_SCALE = 38, 9, 37
MAX_IDENTIFIER_CHARS = 255
STAGE_PREFIX = "_tl_stage_"
FILE_STAGE = "_tl_files"
# Rows per multi-row INSERT the connector builds (keeps one statement's text moderate).
EXECUTEMANY_CHUNK = 500  # the connection's temporary stage for PUT
_PARAM = re.compile(r"\$(\d+)")
_RETRYABLE_WORDS = ("deadlock", "lock wait", "number of waiters for this lock", "was aborted")

_TYPES = {
    "text": "VARCHAR",
    "varchar": "VARCHAR",  # lengths are enforced per batch (sinks.py): overlong is a reject
    "bigint": "NUMBER(38,0)",
    "date": "DATE",
    "timestamptz": "TIMESTAMP_TZ",
    "time": "TIME",
    "boolean": "BOOLEAN",
    "json": "VARIANT",
}
_PARSED = {
    "TEXT": "text",
    "VARCHAR": "text",
    "STRING": "text",
    "DATE": "date",
    "TIMESTAMP_TZ": "timestamptz",
    "TIME": "time",
    "BOOLEAN": "boolean",
    "VARIANT": "json",
    "BIGINT": "bigint",
    "INTEGER": "bigint",
}


def column_scale(sql_type: SqlType) -> int:
    """The scale of NUMBER(38, s) for a numeric type: 9, or more when the schema asks."""
    return min(MAX_SCALE, max(DEFAULT_SCALE, sql_type.scale or 0))


def decimal_problem(value: t.Any, scale: int) -> str | None:
    """Why `value` does not fit NUMBER(38, scale) exactly, or None."""
    return exact_numbers.fixed_point_problem(
        value,
        scale,
        integer_digits=PRECISION - scale,
        column_type=f"Snowflake NUMBER(38, {scale})",
    )


def json_number_problem(value: t.Any) -> str | None:
    """Why a VARIANT would not keep the numbers of `value` exactly, or None: Snowflake
    keeps a JSON number of at most 38 significant digits as a NUMBER, others as a DOUBLE."""
    return exact_numbers.first_json_number_problem(value, _json_number_problem)


def _json_number_problem(item: exact_numbers.JsonNumber) -> str | None:
    """Why a VARIANT would not keep the number `item` exactly, or None."""
    number = exact_numbers.exact_decimal(item)
    if not number.is_finite():
        return not_finite_problem(item)
    _, digits, exponent = number.as_tuple()  # (normalize() would round to 28 digits)
    exponent = int(exponent)
    while exponent < 0 and len(digits) > 1 and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    places = max(0, -exponent)
    integer_digits = max(0, len(digits) + exponent)
    if places <= MAX_SCALE and integer_digits + places <= PRECISION:
        return None
    if not exact_numbers.float_keeps(number):
        return (
            f"JSON number {item} has more digits than a Snowflake VARIANT keeps "
            f"exactly (38); declare the property as a number column to keep every digit"
        )
    return None


def translate(sql: str, params: Sequence[t.Any]) -> tuple[str, dict[str, t.Any] | None]:
    """Generic SQL (`$n` parameters) in the connector's `pyformat` style, bound by the
    connector's own escaping: `%(pn)s`, and a literal `%` doubled."""
    if not params:
        return sql, None
    bound: dict[str, t.Any] = {}

    def bind(match: re.Match) -> str:
        index = int(match.group(1))
        if index < 1 or index > len(params):
            raise WarehouseError(f"statement uses ${index} but has {len(params)} parameters")
        bound[f"p{index}"] = param_value(params[index - 1])
        return f"%(p{index})s"

    return _PARAM.sub(bind, sql.replace("%", "%%")), bound


def param_value(value: t.Any) -> t.Any:
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return format(value, "f")  # as text: `1E-9` would be read as a FLOAT literal
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)  # the target's times are UTC
    if isinstance(value, dict | list):
        return encode_json(value).decode()
    return value


@dataclass(frozen=True)
class SnowflakeMerge:
    """The statements that merge one staged batch, as text (no parameters).

    Inside one transaction: `truncate` (if set), then for an upsert `update` (its row
    count: rows updated), `insert` (rows inserted), `confirm_presence` (if set); for an
    append `insert` alone.
    """

    stage_columns: tuple[StageColumn, ...]
    create_stage: str
    copy: str  # COPY INTO the staging table from the file stage
    insert: str
    upsert: bool
    update: str | None = None
    truncate: str | None = None
    confirm_presence: str | None = None


class SnowflakeDialect(Warehouse):
    """Snowflake's types, names and statements, independent of the connection."""

    dialect = "snowflake"
    max_identifier_bytes = MAX_IDENTIFIER_CHARS
    case_insensitive_identifiers = False  # quoted identifiers keep their case
    alter_type_words: t.ClassVar[str] = "SET DATA TYPE"

    def __init__(self, url: URL, settings: Mapping[str, t.Any] | None = None) -> None:
        super().__init__(url)
        self.settings = dict(settings or {})
        if not url.host:
            raise WarehouseError(
                "warehouse_url for Snowflake names the account: "
                "snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?warehouse=WH&role=ROLE"
            )
        database, _, schema = (url.database or "").partition("/")
        if not database:
            raise WarehouseError(
                "warehouse_url for Snowflake names the database: "
                "snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA"
            )
        self.account = url.host
        self.database = database
        self._default_schema = schema.strip("/") or None

    @property
    def default_schema(self) -> str | None:
        """The schema named in the URL (`.../DATABASE/SCHEMA`), if any."""
        return self._default_schema

    # Names and types ---------------------------------------------------------------------

    def qualified(self, table: TableRef) -> str:
        return f"{self.quote(self.database)}.{self.quote(table.schema)}.{self.quote(table.name)}"

    def create_schema_sql(self, schema: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {self.quote(self.database)}.{self.quote(schema)}"

    def check_names(self, table: TableRef, columns: Sequence[Column] = ()) -> None:
        for what, name in [
            ("schema", table.schema),
            ("table", table.name),
            *(("column", c.name) for c in columns),
        ]:
            if not name:
                raise WarehouseError(f"an empty {what} name cannot be used in Snowflake")
            if len(name) > MAX_IDENTIFIER_CHARS:
                raise WarehouseError(
                    f"{what} name {name!r} is {len(name)} characters; Snowflake allows "
                    f"{MAX_IDENTIFIER_CHARS}"
                )

    def effective_type(self, wanted: SqlType) -> SqlType:
        if wanted.kind == "varchar":
            return SqlType("text")
        if wanted.kind == "numeric":
            return SqlType("numeric", scale=column_scale(wanted))
        return wanted

    def render_type(self, sql_type: SqlType) -> str:
        sql_type = self.effective_type(sql_type)
        if sql_type.kind == "numeric":
            return f"NUMBER({PRECISION},{sql_type.scale})"
        return _TYPES[sql_type.kind]

    def column_type(self, table: TableRef, column: Column) -> str:
        """The Snowflake type of `column` in `table`: audit tables keep JSON as text."""
        if column.sql_type.kind == "json" and table.name in AUDIT_NAMES:
            return "VARCHAR"
        return self.render_type(column.sql_type)

    def parse_type(self, data_type: str, length: int | None, scale: int | None) -> SqlType:
        base = data_type.upper().split("(")[0].strip()
        if base in ("NUMBER", "DECIMAL", "NUMERIC"):
            if not scale:
                return SqlType("bigint")
            return SqlType("numeric", scale=scale)
        return SqlType(_PARSED.get(base, base.lower()))

    def widened(self, existing: SqlType, wanted: SqlType) -> SqlType | None:
        """Snowflake cannot change a NUMBER's scale: a wider scale needs a new column."""
        effective_existing = self.effective_type(existing)
        effective_wanted = self.effective_type(wanted)
        if effective_existing.kind == "numeric" and effective_wanted.kind == "numeric":
            if (effective_wanted.scale or 0) <= (effective_existing.scale or 0):
                return effective_existing
            return None
        if effective_existing.kind == "numeric" and effective_wanted.kind == "bigint":
            return effective_existing
        if effective_existing.kind == "bigint" and effective_wanted.kind == "numeric":
            return None
        return super().widened(existing, wanted)

    def is_digits(self, expression: str) -> str:
        return f"REGEXP_LIKE({expression}, '[0-9]+')"

    def version_guard(self, incoming: str, stored: str) -> str:
        """As the base class's, with leading zeros cut by REGEXP_REPLACE (not LTRIM's
        two-argument form, which a local emulator gets wrong)."""
        inc = f"REGEXP_REPLACE({incoming}, '^0+', '')"
        sto = f"REGEXP_REPLACE({stored}, '^0+', '')"
        numeric = (
            f"(LENGTH({inc}) > LENGTH({sto}) OR (LENGTH({inc}) = LENGTH({sto}) AND {inc} >= {sto}))"
        )
        return (
            f"({incoming} IS NULL OR {stored} IS NULL OR CASE WHEN "
            f"{self.is_digits(incoming)} AND {self.is_digits(stored)} THEN {numeric} "
            f"ELSE {incoming} >= {stored} END)"
        )

    # Loading: rows -----------------------------------------------------------------------

    def stage_columns(self, batch: Batch) -> list[StageColumn]:
        """The staging table's columns: the batch's columns, then its constants."""
        return arrow_staging.stage_columns(batch, self.stage_type)

    def stage_type(self, sql_type: SqlType) -> tuple[str, pa.DataType]:
        """A column's staging (Snowflake type, Arrow type): NUMBER(38, s) as
        DECIMAL(38, s), JSON as text."""
        effective = self.effective_type(sql_type)
        if effective.kind != "numeric":
            return arrow_staging.plain_stage_type(effective.kind, _TYPES)
        arrow = pa.decimal128(PRECISION, effective.scale or DEFAULT_SCALE)
        return self.render_type(effective), arrow

    def prepare(self, batch: Batch) -> Prepared:
        """An Arrow table of the rows Snowflake can hold exactly; the others are rejects."""
        return stage_batch(
            batch,
            self.stage_columns(batch),
            decimal_problem=decimal_problem,
            json_number_problem=json_number_problem,
        )

    # Loading: statements -----------------------------------------------------------------

    def file_stage(self, schema: str) -> str:
        return f"{self.quote(self.database)}.{self.quote(schema)}.{self.quote(FILE_STAGE)}"

    def source_select(self, batch: Batch, stage: str) -> str:
        parts = []
        for staged in self.stage_columns(batch):
            expression = self.quote(staged.name)
            if staged.target.sql_type.kind == "json" and batch.table.name not in AUDIT_NAMES:
                expression = f"PARSE_JSON({expression})"
            parts.append(f"{expression} AS {self.quote(staged.target.name)}")
        return f"SELECT {', '.join(parts)} FROM {stage}"

    def staged_merge(self, batch: Batch, stage: TableRef) -> SnowflakeMerge:
        """The statements that stage and merge `batch` through the table `stage`."""
        q = self.quote
        target = self.qualified(batch.table)
        stage_sql = self.qualified(stage)
        stage_columns = self.stage_columns(batch)
        names = batch.all_names
        columns = ", ".join(q(c) for c in names)
        source = self.source_select(batch, stage_sql)
        create = (
            f"CREATE TRANSIENT TABLE {stage_sql} ("
            + ", ".join(f"{q(s.name)} {s.sql_type}" for s in stage_columns)
            + ")"
        )
        copy = (
            f"COPY INTO {stage_sql} ({', '.join(q(s.name) for s in stage_columns)}) FROM (SELECT "
            + ", ".join(f'$1:"{s.name}"::{s.sql_type}' for s in stage_columns)
            # The batch's own folder of the file stage: nothing else is ever loaded.
            + f" FROM @{self.file_stage(batch.table.schema)}/{stage.name}) "
            f"FILE_FORMAT = (TYPE = PARQUET) PURGE = TRUE"
        )
        truncate = f"DELETE FROM {target}" if batch.truncate_first else None
        upsert = bool(batch.keys) and batch.load_method != APPEND_ONLY
        if not upsert:
            return SnowflakeMerge(
                stage_columns=tuple(stage_columns),
                create_stage=create,
                copy=copy,
                insert=f"INSERT INTO {target} ({columns}) SELECT {columns} FROM ({source})",
                upsert=False,
                truncate=truncate,
            )
        match = self.key_match("t", "s", batch.keys)
        version = q(VERSION_COLUMN)
        guard = (
            self.version_guard(f"s.{version}", f"t.{version}")
            if VERSION_COLUMN in names
            else "TRUE"
        )
        updates = ", ".join(f"{q(c)} = s.{q(c)}" for c in names if c not in batch.keys)
        update = (
            f"UPDATE {target} AS t SET {updates} FROM ({source}) AS s WHERE {match} AND {guard}"
            if updates
            else None
        )
        insert = (
            f"INSERT INTO {target} ({columns}) SELECT {', '.join(f's.{q(c)}' for c in names)} "
            f"FROM ({source}) AS s WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {match})"
        )
        confirm = None
        if batch.carries_table_versions:
            confirm = self.confirm_presence_sql(target, f"({source})", match)
        return SnowflakeMerge(
            stage_columns=tuple(stage_columns),
            create_stage=create,
            copy=copy,
            insert=insert,
            upsert=True,
            update=update,
            truncate=truncate,
            confirm_presence=confirm,
        )


# The snowflake-connector-python transport --------------------------------------------------------


def _connector() -> t.Any:
    try:
        import snowflake.connector
    except ImportError:
        raise WarehouseError(
            "warehouse_url is snowflake://... but the Snowflake connector is not installed: "
            "pip install 'ifs-looker-connector[snowflake]'"
        ) from None
    return snowflake.connector


class SnowflakeWarehouse(LazyTransactionWarehouse, SnowflakeDialect):
    """Snowflake over the official connector, autocommit outside `transaction()`."""

    retryable_words = _RETRYABLE_WORDS

    def __init__(self, url: URL, settings: Mapping[str, t.Any] | None = None) -> None:
        super().__init__(url, settings)
        self._conn: t.Any = None
        self._init_transaction_state()  # staging tables to drop: TableRefs
        self._file_stages: set[str] = set()

    # Settings ----------------------------------------------------------------------------

    def _query_value(self, key: str) -> t.Any:
        value = self.url.query.get(key)
        return value[-1] if isinstance(value, tuple) else value

    def private_key(self) -> bytes | None:
        """The key-pair key as DER bytes for the connector, or None (password auth)."""
        key = self.settings.get(KEY_SETTING) or self._query_value("private_key_file")
        if not key:
            return None
        try:
            text = encrypted_settings.decrypt(KEY_SETTING, str(key))
            passphrase = self.settings.get(PASSPHRASE_SETTING)
            if passphrase:
                passphrase = encrypted_settings.decrypt(PASSPHRASE_SETTING, str(passphrase))
        except encrypted_settings.SecretError as exc:
            raise WarehouseError(str(exc)) from None
        if "-----BEGIN" not in text:
            path = Path(text.strip()).expanduser()
            try:
                text = path.read_text()
            except OSError as exc:
                raise WarehouseError(
                    f"{KEY_SETTING}: the key file {path} cannot be read ({exc.strerror})"
                ) from None
        from cryptography.hazmat.primitives import serialization

        try:
            loaded = serialization.load_pem_private_key(
                text.encode(), password=passphrase.encode() if passphrase else None
            )
        except (ValueError, TypeError) as exc:
            raise WarehouseError(
                f"{KEY_SETTING} is not a usable PEM private key ({type(exc).__name__}; "
                f"set {PASSPHRASE_SETTING} for an encrypted key)"
            ) from None
        return loaded.private_bytes(
            encoding=serialization.Encoding.DER,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )

    def connect_args(self) -> dict[str, t.Any]:
        url = self.url
        args: dict[str, t.Any] = {
            "account": self.account,
            "user": url.username,
            "database": self.database,
            "session_parameters": {"TIMEZONE": "UTC", "QUOTED_IDENTIFIERS_IGNORE_CASE": False},
            "autocommit": True,
            "application": "target-looker",
        }
        # No `schema`: the connector would name it unquoted (upper case), while every
        # statement here names its schema quoted, exactly as configured.
        for key in ("warehouse", "role", *PASS_THROUGH):
            value = self._query_value(key)
            if value not in (None, ""):
                if key in _INTEGER_PARAMS:
                    try:
                        value = int(value)
                    except ValueError:
                        raise WarehouseError(
                            f"warehouse_url: {key} must be a whole number"
                        ) from None
                args[key] = value
        check_plain_http(
            "warehouse_url",
            str(args.get("protocol", "https")).lower(),
            args.get("host") or f"{self.account}.snowflakecomputing.com",
            query_flag(url, "allow_insecure_http"),
        )
        key = self.private_key()
        if key is not None:
            args["private_key"] = key
        elif url.password is not None:
            args["password"] = url.password
        return args

    # Connection --------------------------------------------------------------------------

    def connect(self) -> None:
        connector = _connector()
        try:
            self._conn = connector.connect(**self.connect_args())
        except connector.errors.Error as exc:
            # The connector's messages name the account and reason, never the password.
            raise WarehouseError(
                f"cannot connect to {self.safe_url}: {getattr(exc, 'msg', None) or exc}"
            ) from None

    @property
    def conn(self) -> t.Any:
        if self._conn is None:
            self.connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
            self._file_stages.clear()

    # Statements --------------------------------------------------------------------------

    def portable(self, sql: str, params: Sequence[t.Any]) -> str:
        """`sql` with PostgreSQL-only forms Snowflake lacks rewritten (`ON CONFLICT`)."""
        return portable_upsert(sql, params, self.existing_columns, self.render_type, self.quote)

    def _begin_if_needed(self) -> None:
        if self._in_transaction and not self._began and not self._in_ddl:
            self._run("BEGIN TRANSACTION", None)
            self._began = True

    def _run(self, sql: str, params: t.Any) -> t.Any:
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, params)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def execute(self, sql: str, params: Sequence[t.Any] = ()) -> int:
        self._begin_if_needed()
        text, bound = translate(self.portable(sql, params), params)
        cursor = self._run(text, bound)
        try:
            count = cursor.rowcount
            return -1 if count is None else int(count)
        finally:
            cursor.close()

    def fetchall(self, sql: str, params: Sequence[t.Any] = ()) -> list[tuple]:
        self._begin_if_needed()
        text, bound = translate(sql, params)
        cursor = self._run(text, bound)
        try:
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def executemany(self, sql: str, rows: Sequence[Sequence[t.Any]]) -> None:
        """One round trip for an INSERT (the connector sends a multi-row INSERT)."""
        if not rows:
            return
        self._begin_if_needed()
        texts = [translate(sql, row) for row in rows]
        text = texts[0][0]
        cursor = self.conn.cursor()
        try:
            for start in range(0, len(texts), EXECUTEMANY_CHUNK):
                chunk = texts[start : start + EXECUTEMANY_CHUNK]
                cursor.executemany(text, [bound for _, bound in chunk])
        finally:
            cursor.close()

    def _commit(self) -> None:
        self._run("COMMIT", None).close()

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            self._run("ROLLBACK", None).close()

    def is_already_exists(self, exc: BaseException) -> bool:
        return "already exists" in str(exc).lower()

    # DDL (outside transactions: Snowflake commits an open one at any DDL) ---------------

    def guarded_ddl(self, name: str, fn: t.Callable[[], t.Any]) -> t.Any:
        """`fn` on its own, run again when a concurrent loader got there first; `fn`
        re-reads what exists (Snowflake has no advisory locks, and DDL cannot be undone).

        Inside a `transaction()` whose first statement has not run yet, it runs before it
        (the transaction begins lazily); after that it would commit the transaction half
        way, so it is refused.
        """
        if self._began:
            raise WarehouseError(
                f"internal: DDL on {name} inside a Snowflake transaction that has begun "
                f"(it would commit the transaction half way)"
            )
        return self.retried_ddl(fn)

    def _select(self, sql: str, params: Sequence[t.Any] = ()) -> list[tuple]:
        """Rows of a catalog query, never beginning a transaction (metadata is not
        transactional, and a DDL after it must not find a transaction begun)."""
        text, bound = translate(sql, params)
        cursor = self._run(text, bound)
        try:
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def table_names(self, schema: str) -> list[str]:
        return [
            row[0]
            for row in self._select(
                f"SELECT table_name FROM {self.quote(self.database)}.information_schema.tables "
                "WHERE table_schema = $1",
                (schema,),
            )
        ]

    def drop_table(self, table: TableRef) -> None:
        """Drop `table` if it exists, on its own (DDL is never part of a transaction)."""
        self.guarded_ddl(
            f"table {self.qualified(table)}",
            lambda: self.execute(self.drop_table_sql(table, if_exists=True)),
        )

    def swap_in(self, table: TableRef, shadow: TableRef, retired: TableRef) -> None:
        """Inside the caller's transaction: `table`'s rows become `shadow`'s.

        A rename is DDL, which would commit the transaction; so the table is given the
        shadow's columns first (before the transaction begins), then, in the transaction,
        emptied and filled from the shadow (all or nothing, with the audit rows). The
        shadow is dropped once the transaction has ended.
        """
        self.refill_from_shadow(table, shadow, f"DELETE FROM {self.qualified(table)}")
        self.drop_after_transaction(shadow)

    def existing_columns(self, table: TableRef) -> dict[str, SqlType] | None:
        rows = self._select(
            "SELECT column_name, data_type, character_maximum_length, numeric_scale FROM "
            f"{self.quote(self.database)}.information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            (table.schema, table.name),
        )
        if not rows:
            return None
        return {name: self.parse_type(dt, length, scale) for name, dt, length, scale in rows}

    def primary_key(self, table: TableRef) -> list[str]:
        cursor = self._run(f"SHOW PRIMARY KEYS IN TABLE {self.qualified(table)}", None)
        try:
            names = [d[0].lower() for d in cursor.description]
            rows = cursor.fetchall()
        finally:
            cursor.close()
        column, sequence = names.index("column_name"), names.index("key_sequence")
        schema, name = names.index("schema_name"), names.index("table_name")
        mine = [r for r in rows if (r[schema], r[name]) == (table.schema, table.name)]
        return list(dict.fromkeys(r[column] for r in sorted(mine, key=lambda r: int(r[sequence]))))

    # Loading -----------------------------------------------------------------------------

    def _ensure_file_stage(self, schema: str) -> str:
        stage = self.file_stage(schema)
        if stage not in self._file_stages:
            self._run(f"CREATE TEMPORARY STAGE IF NOT EXISTS {stage}", None).close()
            self._file_stages.add(stage)
        return stage

    def _load_stage(self, prepared: Prepared, statements: SnowflakeMerge, stage: TableRef) -> None:
        """The batch's rows into the staging table: Parquet, PUT, COPY INTO (bulk)."""
        import pyarrow.parquet as pq

        file_stage = self._ensure_file_stage(stage.schema)
        self._run(statements.create_stage, None).close()
        if self._in_transaction:
            self._stages.append(stage)
        with tempfile.TemporaryDirectory(prefix="target-looker-") as directory:
            path = Path(directory) / f"{stage.name}.parquet"
            pq.write_table(prepared.payload, path, compression="snappy")
            location = path.as_posix() if os.sep == "/" else str(path).replace("\\", "/")
            self._run(
                f"PUT 'file://{location}' @{file_stage}/{stage.name} "
                f"AUTO_COMPRESS = FALSE OVERWRITE = TRUE",
                None,
            ).close()
        self._run(statements.copy, None).close()

    def _drop_stage(self, stage: TableRef) -> None:
        with contextlib.suppress(Exception):
            self._run(f"DROP TABLE IF EXISTS {self.qualified(stage)}", None).close()

    def merge(self, prepared: Prepared) -> MergeCounts:
        batch = prepared.batch
        staged_rows = prepared.payload.num_rows
        stage = TableRef(batch.table.schema, f"{STAGE_PREFIX}{uuid.uuid4().hex}")
        statements = self.staged_merge(batch, stage)
        if self._began:
            raise WarehouseError(
                "internal: a Snowflake batch must be staged before its transaction's first "
                "statement (DDL would commit the transaction)"
            )
        try:
            if staged_rows:
                self._load_stage(prepared, statements, stage)
            if statements.truncate:
                self.execute(statements.truncate)
            if not staged_rows:
                return MergeCounts()
            if not statements.upsert:
                return MergeCounts(inserted=max(0, self.execute(statements.insert)))
            updated = max(0, self.execute(statements.update)) if statements.update else 0
            inserted = max(0, self.execute(statements.insert))
            if statements.confirm_presence:
                self.execute(statements.confirm_presence)
            return MergeCounts(inserted, updated, staged_rows - inserted - updated)
        finally:
            if staged_rows and not self._in_transaction:
                self._drop_stage(stage)


__all__ = ["SnowflakeDialect", "SnowflakeMerge", "SnowflakeWarehouse"]
