"""BigQuery warehouse: a Parquet load job into a staging table, then one MERGE in a transaction.

`warehouse_url: bigquery://PROJECT/DATASET?location=EU` (extra `[bigquery]`: the official
`google-cloud-bigquery` client). The dataset in the URL is the one the target writes when
`default_target_schema` is not set; `default_target_schema` names the dataset otherwise.

Credentials, from the target's settings (or the URL's query, for a bare `open_warehouse(url)`):
- `bigquery_service_account_key`: a service-account key, as the path of its JSON file or as
  the JSON itself, either of them may be a `fernet:` value (`ifs-looker secrets`);
  URL query `key_file=PATH`;
- without one, Application Default Credentials (`gcloud auth application-default login`,
  the metadata server, `GOOGLE_APPLICATION_CREDENTIALS`);
- `bigquery_api_endpoint` (URL query `api_endpoint`) points the client at another endpoint,
  an emulator: then, without a key, anonymous credentials.

Loading a batch (never streaming inserts, never row by row):
1. `prepare`: rows become an Arrow table (exact decimals: NUMERIC is DECIMAL(38, 9),
   BIGNUMERIC is DECIMAL(76, 38)); a value the column cannot hold exactly (too many
   digits, NaN, a JSON number BigQuery's JSON type would round) is a reject, never rounded.
   The batch's constant columns (run id, batch id, ...) travel in the table too, so the
   merge statement has no parameters.
2. `merge`, inside the caller's transaction: a load job writes the Parquet file into a
   staging table of its own (`_tl_stage_<uuid>`, expiring after a day should the process
   die, dropped once the batch is done); then, in a BigQuery session, `BEGIN TRANSACTION`,
   a count of what will be inserted/updated/skipped, one `MERGE` under the version guard
   (an older `_ifs_objversion` never replaces a newer one), the audit rows, `COMMIT`.
   The transaction begins lazily, with the first statement: the staging table is loaded
   (a job outside any transaction) before it, so the transaction's snapshot holds it.

Idempotence: every job has a client-made id; the client retries a lost `jobs.insert`
answer with the same id, so a job never runs twice. A batch replayed after a crash merges
by key under the version guard: it never duplicates rows.

DDL (datasets, tables, columns) cannot run inside a BigQuery transaction: it runs on its
own, created through the API (primary keys as `NOT ENFORCED` table constraints, also
written in the table's description, which is where an emulator that drops constraints
keeps them), and "already exists" from a concurrent loader is followed by a re-read.

Audit tables keep their JSON values (`last_state`, `schema`, ...) as STRING holding JSON
text: the audit code binds JSON text, which BigQuery does not convert to JSON by itself.
Data columns from JSON objects and arrays are JSON.
"""

# SQL here is built from identifiers passed through quote() (tested) and fixed fragments;
# every value is a bound query parameter or travels in the staging table.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import datetime
import decimal
import io
import ipaddress
import json
import re
import typing as t
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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
from target_looker.warehouse.lazy_transactions import LazyTransactionWarehouse
from target_looker.warehouse.on_conflict import portable_upsert

if t.TYPE_CHECKING:
    from sqlalchemy.engine import URL

# Settings (target config keys) and their URL query equivalents.
KEY_SETTING = "bigquery_service_account_key"
ENDPOINT_SETTING = "bigquery_api_endpoint"
TIMEOUT_SETTING = "bigquery_timeout_seconds"
DEFAULT_TIMEOUT = 600.0
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

NUMERIC_SCALE, NUMERIC_INTEGER_DIGITS = 9, 29  # BigQuery NUMERIC: 38 digits, 9 after the point
BIGNUMERIC_SCALE, BIGNUMERIC_INTEGER_DIGITS = 38, 38  # 76.76 digits; 38 before is always safe
STAGE_PREFIX = "_tl_stage_"
STAGE_EXPIRY = datetime.timedelta(days=1)
KEY_MARKER = "target-looker primary key: "
# Query parameters: BigQuery takes at most 10,000 in one query; keep well below.
MAX_PARAMS_PER_STATEMENT = 4000
MAX_PARAM_BYTES_PER_STATEMENT = 4_000_000
NUMERIC_LIMIT = decimal.Decimal(10) ** NUMERIC_INTEGER_DIGITS
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

_TYPES = {
    "text": "STRING",
    "varchar": "STRING",  # lengths are enforced per batch (sinks.py): an overlong value is a reject
    "bigint": "INT64",
    "date": "DATE",
    "timestamptz": "TIMESTAMP",
    "time": "TIME",
    "boolean": "BOOL",
    "json": "JSON",
}
_PARSED = {
    "STRING": "text",
    "INT64": "bigint",
    "INTEGER": "bigint",
    "DATE": "date",
    "TIMESTAMP": "timestamptz",
    "TIME": "time",
    "BOOL": "boolean",
    "BOOLEAN": "boolean",
    "JSON": "json",
}
_PARAM = re.compile(r"\$(\d+)")
_VARCHAR_CAST = re.compile(r"\bAS\s+VARCHAR\b", re.IGNORECASE)
_INFO_SCHEMA = re.compile(r"(?<![.`\w])information_schema\.(tables|columns)\b", re.IGNORECASE)
_SCHEMA_FILTER = re.compile(r"\btable_schema\s*=\s*\$(\d+)", re.IGNORECASE)
_INSERT_VALUES = re.compile(r"^(?P<head>\s*INSERT\s.*?\bVALUES\s*)(?P<row>\(.*\))\s*$", re.I | re.S)
# Column names BigQuery refuses to start with (case-insensitive).
RESERVED_COLUMN_PREFIXES = (
    "_TABLE_",
    "_FILE_",
    "_PARTITION",
    "_ROW_TIMESTAMP",
    "__ROOT__",
    "_COLIDENTIFIER",
    "_CHANGE_SEQUENCE_NUMBER",
    "_CHANGE_TYPE",
    "_CHANGE_TIMESTAMP",
)
# Flexible column names: letters, marks, numbers, connectors (_), dashes, spaces and these.
_COLUMN_EXTRA = set("&%=+:'<>#|")
_DATASET_NAME = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
MAX_COLUMN_CHARS, MAX_TABLE_BYTES = 300, 1024
_RETRYABLE_WORDS = (
    "concurrent update",
    "could not serialize access",
    "transaction is aborted",
    "aborted due to concurrent",
)


# Values ------------------------------------------------------------------------------------------


def numeric_scale(sql_type: SqlType) -> int:
    """The scale of the column BigQuery gives a numeric type: NUMERIC (9) or BIGNUMERIC (38)."""
    return NUMERIC_SCALE if (sql_type.scale or 0) <= NUMERIC_SCALE else BIGNUMERIC_SCALE


def decimal_problem(value: t.Any, scale: int) -> str | None:
    """Why `value` does not fit NUMERIC (scale 9) or BIGNUMERIC (scale 38) exactly, or None."""
    numeric = scale == NUMERIC_SCALE
    return exact_numbers.fixed_point_problem(
        value,
        scale,
        integer_digits=NUMERIC_INTEGER_DIGITS if numeric else BIGNUMERIC_INTEGER_DIGITS,
        column_type="BigQuery NUMERIC" if numeric else "BigQuery BIGNUMERIC",
    )


def json_number_problem(value: t.Any) -> str | None:
    """Why BigQuery's JSON type would not keep the numbers of `value` exactly, or None.

    BigQuery JSON holds a number as INT64, UINT64 or FLOAT64; `PARSE_JSON` in its
    `exact` mode refuses a number none of those holds exactly (1.1 is fine: it reads
    back as 1.1; 0.1000000000000000000001 is not).
    """
    return exact_numbers.first_json_number_problem(value, _json_number_problem)


def _json_number_problem(item: exact_numbers.JsonNumber) -> str | None:
    """Why BigQuery JSON would not keep the number `item` exactly, or None."""
    if isinstance(item, int):
        if not (INT64_MIN <= item <= UINT64_MAX) and float(item) != item:
            return f"JSON number {item} is too large for BigQuery JSON to keep exactly"
        return None
    number = exact_numbers.exact_decimal(item)
    if not number.is_finite():
        return not_finite_problem(item)
    if number == number.to_integral_value() and INT64_MIN <= number <= UINT64_MAX:
        return None
    if not exact_numbers.float_keeps(number):
        return (
            f"JSON number {item} cannot be stored exactly in a BigQuery JSON value "
            f"(it keeps numbers as INT64 or FLOAT64); declare the property as a number "
            f"column to keep every digit"
        )
    return None


def param_type(value: t.Any) -> str:
    """The BigQuery type of a query parameter for a Python value."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        return "NUMERIC" if decimal_problem(value, NUMERIC_SCALE) is None else "BIGNUMERIC"
    if isinstance(value, datetime.datetime):
        return "TIMESTAMP"
    if isinstance(value, datetime.date):
        return "DATE"
    if isinstance(value, datetime.time):
        return "TIME"
    if isinstance(value, bytes):
        return "BYTES"
    return "STRING"


def param_value(value: t.Any) -> t.Any:
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)  # the target's times are UTC
    if isinstance(value, dict | list):
        return encode_json(value).decode()
    return value


def translate(sql: str, params: Sequence[t.Any], project: str) -> tuple[str, list[tuple]]:
    """The target's generic SQL (`$n` parameters) as BigQuery SQL with named parameters.

    Returns the SQL and (name, type, value) for each parameter used; a NULL value becomes
    the literal NULL (BigQuery wants a type for a NULL parameter, a literal takes its
    context's). `CAST(x AS VARCHAR)` becomes STRING, and `information_schema.tables`
    the dataset's own view (BigQuery has no unqualified information schema).
    """
    used: dict[int, tuple] = {}

    def schema_view(match: re.Match) -> str:
        found = _SCHEMA_FILTER.search(sql)
        dataset = None
        if found and int(found.group(1)) <= len(params):
            dataset = params[int(found.group(1)) - 1]
        if not isinstance(dataset, str):
            return match.group(0)
        view = match.group(1).upper()
        quote = BigQueryDialect.quote
        return f"{quote(project)}.{quote(dataset)}.INFORMATION_SCHEMA.{view}"

    text = _INFO_SCHEMA.sub(schema_view, sql)
    text = _VARCHAR_CAST.sub("AS STRING", text)

    def bind(match: re.Match) -> str:
        index = int(match.group(1))
        if index < 1 or index > len(params):
            raise WarehouseError(f"statement uses ${index} but has {len(params)} parameters")
        value = params[index - 1]
        if value is None:
            return "NULL"
        if index not in used:
            used[index] = (f"p{index}", param_type(value), param_value(value))
        return f"@p{index}"

    return _PARAM.sub(bind, text), [used[i] for i in sorted(used)]


def multi_row_insert(sql: str, rows: Sequence[Sequence[t.Any]]) -> list[tuple[str, list]]:
    """`INSERT ... VALUES ($1, ...)` run for many rows, as few multi-row INSERTs (SQL and
    parameters each), or [] when `sql` is not of that form."""
    match = _INSERT_VALUES.match(sql)
    if not match or not rows:
        return []
    head, row_sql = match.group("head"), match.group("row")
    width = len(rows[0])
    statements: list[tuple[str, list]] = []
    parts: list[str] = []
    params: list[t.Any] = []
    size = 0

    def flush() -> None:
        nonlocal parts, params, size
        if parts:
            statements.append((head + ", ".join(parts), params))
        parts, params, size = [], [], 0

    for row in rows:
        row_bytes = sum(len(v) if isinstance(v, str | bytes) else 16 for v in row)
        if parts and (
            len(params) + width > MAX_PARAMS_PER_STATEMENT
            or size + row_bytes > MAX_PARAM_BYTES_PER_STATEMENT
        ):
            flush()
        offset = len(params)
        parts.append(_PARAM.sub(lambda m, o=offset: f"${int(m.group(1)) + o}", row_sql))
        params.extend(row)
        size += row_bytes
    flush()
    return statements


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_plain_http(setting: str, scheme: str, host: str | None, allowed: bool) -> None:
    """https is required except on loopback (a local emulator), unless explicitly allowed
    (`allow_insecure_http=true` in the URL's query): SPEC section 9."""
    if scheme == "http" and not allowed and not is_loopback(host):
        raise WarehouseError(
            f"{setting} uses plain http to {host!r}, which is not loopback; use https "
            f"(or add allow_insecure_http=true to warehouse_url's query for a trusted network)"
        )


def query_flag(url: URL, key: str) -> bool:
    value = url.query.get(key)
    value = value[-1] if isinstance(value, tuple) else value
    return str(value or "").lower() in ("1", "true", "yes")


# Names -------------------------------------------------------------------------------------------


def column_name_problem(name: str) -> str | None:
    """Why BigQuery refuses `name` as a column name, or None."""
    if not name:
        return "it is empty"
    if len(name) > MAX_COLUMN_CHARS:
        return f"it is {len(name)} characters; BigQuery allows {MAX_COLUMN_CHARS}"
    upper = name.upper()
    for prefix in RESERVED_COLUMN_PREFIXES:
        if upper.startswith(prefix):
            return f"BigQuery reserves names starting with {prefix}"
    for char in name:
        category = unicodedata.category(char)
        if category[0] in "LMN" or category in ("Pc", "Pd", "Zs") or char in _COLUMN_EXTRA:
            continue
        return (
            f"BigQuery column names cannot contain {char!r} (letters, digits, _, -, spaces "
            f"and & % = + : ' < > # | only)"
        )
    return None


def table_name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if len(name.encode()) > MAX_TABLE_BYTES:
        return f"it is {len(name.encode())} bytes; BigQuery allows {MAX_TABLE_BYTES}"
    for char in name:
        category = unicodedata.category(char)
        if category[0] in "LMN" or category in ("Pc", "Pd", "Zs"):
            continue
        return f"BigQuery table names cannot contain {char!r} (letters, digits, _, - and spaces)"
    return None


def dataset_name_problem(name: str) -> str | None:
    if not _DATASET_NAME.match(name or ""):
        return "BigQuery dataset names are letters, digits and underscores (at most 1,024)"
    return None


# The statements ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BigQueryMerge:
    """The statements that merge one staged batch, as text (no parameters).

    Run in one transaction: `truncate` (if set), `count` (upserts: one row, the number
    of staged rows that will be inserted and updated), `write`, `confirm_presence` (if set).
    """

    stage_columns: tuple[StageColumn, ...]
    write: str
    upsert: bool
    count: str | None = None
    truncate: str | None = None
    confirm_presence: str | None = None


class BigQueryDialect(Warehouse):
    """BigQuery's types, names and statements, independent of the client that runs them."""

    dialect = "bigquery"
    sql_text_type = "STRING"
    max_identifier_bytes = MAX_COLUMN_CHARS
    case_insensitive_identifiers = True  # BigQuery column names ignore case

    def __init__(self, url: URL, settings: Mapping[str, t.Any] | None = None) -> None:
        super().__init__(url)
        self.settings = dict(settings or {})
        if not url.host:
            raise WarehouseError(
                "warehouse_url for BigQuery names the project: bigquery://PROJECT/DATASET"
            )
        self.project = url.host

    @property
    def default_schema(self) -> str | None:
        """The dataset named in the URL (`bigquery://PROJECT/DATASET`), if any."""
        return self.url.database or None

    # Names and types ---------------------------------------------------------------------

    @staticmethod
    def quote(identifier: str) -> str:
        return "`" + identifier.replace("\\", "\\\\").replace("`", "\\`") + "`"

    def qualified(self, table: TableRef) -> str:
        return f"{self.quote(self.project)}.{self.quote(table.schema)}.{self.quote(table.name)}"

    def check_names(self, table: TableRef, columns: Sequence[Column] = ()) -> None:
        """Raise a clear error for a dataset, table or column name BigQuery refuses."""
        problem = dataset_name_problem(table.schema)
        if problem:
            raise WarehouseError(f"dataset name {table.schema!r} cannot be used: {problem}")
        problem = table_name_problem(table.name)
        if problem:
            raise WarehouseError(f"table name {table.name!r} cannot be used: {problem}")
        for column in columns:
            problem = column_name_problem(column.name)
            if problem:
                raise WarehouseError(
                    f"column {column.name!r} of {table.schema}.{table.name} cannot be used: "
                    f"{problem}; rename the property (stream_maps) or use column_naming="
                    f"'snake_case'"
                )

    def effective_type(self, wanted: SqlType) -> SqlType:
        if wanted.kind == "varchar":
            return SqlType("text")
        if wanted.kind == "numeric":
            return SqlType("numeric", scale=numeric_scale(wanted))
        return wanted

    def render_type(self, sql_type: SqlType) -> str:
        sql_type = self.effective_type(sql_type)
        if sql_type.kind == "numeric":
            return "NUMERIC" if sql_type.scale == NUMERIC_SCALE else "BIGNUMERIC"
        return _TYPES[sql_type.kind]

    def column_type(self, table: TableRef, column: Column) -> str:
        """The BigQuery type of `column` in `table`: audit tables keep JSON as text."""
        if column.sql_type.kind == "json" and table.name in AUDIT_NAMES:
            return "STRING"
        return self.render_type(column.sql_type)

    def parse_type(self, data_type: str, length: int | None, scale: int | None) -> SqlType:
        base = data_type.upper().split("(")[0].strip()
        if base in ("NUMERIC", "DECIMAL"):
            return SqlType("numeric", scale=NUMERIC_SCALE if scale is None else scale)
        if base in ("BIGNUMERIC", "BIGDECIMAL"):
            return SqlType("numeric", scale=BIGNUMERIC_SCALE if scale is None else scale)
        return SqlType(_PARSED.get(base, base.lower()))

    def widened(self, existing: SqlType, wanted: SqlType) -> SqlType | None:
        """NUMERIC widens to BIGNUMERIC (every NUMERIC value fits); INT64 to either."""
        effective_existing, effective_wanted = (
            self.effective_type(existing),
            self.effective_type(wanted),
        )
        if effective_existing.kind == effective_wanted.kind == "numeric":
            return (
                effective_existing
                if (effective_wanted.scale or 0) <= (effective_existing.scale or 0)
                else effective_wanted
            )
        if existing.kind == "text" and wanted.kind == "json":
            return None
        return super().widened(existing, wanted)

    def is_digits(self, expression: str) -> str:
        return f"REGEXP_CONTAINS({expression}, r'^[0-9]+$')"

    # BigQuery compares STRING by UTF-8 bytes, which is code-point order.
    binary_collation: t.ClassVar[str] = ""
    primary_key_enforcement: t.ClassVar[str] = " NOT ENFORCED"
    alter_type_words: t.ClassVar[str] = "SET DATA TYPE"

    # Loading: rows -----------------------------------------------------------------------

    def stage_columns(self, batch: Batch) -> list[StageColumn]:
        """The staging table's columns: the batch's columns, then its constants."""
        return arrow_staging.stage_columns(batch, self.stage_type)

    def stage_type(self, sql_type: SqlType) -> tuple[str, pa.DataType]:
        """A column's staging (BigQuery type, Arrow type): NUMERIC as DECIMAL(38, 9),
        BIGNUMERIC as DECIMAL(76, 38), JSON as text."""
        effective = self.effective_type(sql_type)
        if effective.kind != "numeric":
            return arrow_staging.plain_stage_type(effective.kind, _TYPES)
        if (effective.scale or NUMERIC_SCALE) == NUMERIC_SCALE:
            return "NUMERIC", pa.decimal128(38, NUMERIC_SCALE)
        return "BIGNUMERIC", pa.decimal256(76, BIGNUMERIC_SCALE)

    def prepare(self, batch: Batch) -> Prepared:
        """An Arrow table of the rows BigQuery can hold exactly; the others are rejects."""
        return stage_batch(
            batch,
            self.stage_columns(batch),
            decimal_problem=decimal_problem,
            json_number_problem=json_number_problem,
            # DECIMAL(38, 9) holds 29 digits before the point: so does NUMERIC.
            integer_limit=NUMERIC_LIMIT,
        )

    # Loading: statements -----------------------------------------------------------------

    def source_select(self, batch: Batch, stage: str) -> str:
        """The staged rows with the table's column names (JSON text parsed, exactly)."""
        parts = []
        for staged in self.stage_columns(batch):
            expression = staged.name
            if staged.target.sql_type.kind == "json" and batch.table.name not in AUDIT_NAMES:
                expression = f"PARSE_JSON({staged.name}, wide_number_mode => 'exact')"
            parts.append(f"{expression} AS {self.quote(staged.target.name)}")
        return f"SELECT {', '.join(parts)} FROM {stage}"

    def staged_merge(self, batch: Batch, stage: str) -> BigQueryMerge:
        """The statements that merge `batch` once its rows are in the table `stage`."""
        q = self.quote
        target = self.qualified(batch.table)
        names = batch.all_names
        columns = ", ".join(q(c) for c in names)
        source = self.source_select(batch, stage)
        upsert = bool(batch.keys) and batch.load_method != APPEND_ONLY
        truncate = f"DELETE FROM {target} WHERE TRUE" if batch.truncate_first else None
        if not upsert:
            return BigQueryMerge(
                stage_columns=tuple(self.stage_columns(batch)),
                write=f"INSERT INTO {target} ({columns}) SELECT {columns} FROM ({source})",
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
        first_key = f"t.{q(batch.keys[0])}"
        updates = ", ".join(f"{q(c)} = s.{q(c)}" for c in names if c not in batch.keys)
        values = ", ".join(f"s.{q(c)}" for c in names)
        when_matched = f"WHEN MATCHED AND {guard} THEN UPDATE SET {updates} " if updates else ""
        write = (
            f"MERGE {target} AS t USING ({source}) AS s ON {match} "
            f"{when_matched}"
            f"WHEN NOT MATCHED BY TARGET THEN INSERT ({columns}) VALUES ({values})"
        )
        count = (
            f"SELECT COUNTIF({first_key} IS NULL), "
            f"COUNTIF({first_key} IS NOT NULL AND {guard if updates else 'FALSE'}) "
            f"FROM ({source}) AS s LEFT JOIN {target} AS t ON {match}"
        )
        confirm = None
        if batch.carries_table_versions:
            confirm = self.confirm_presence_sql(target, f"({source})", match)
        return BigQueryMerge(
            stage_columns=tuple(self.stage_columns(batch)),
            write=write,
            upsert=True,
            count=count,
            truncate=truncate,
            confirm_presence=confirm,
        )


# The google-cloud-bigquery transport -------------------------------------------------------------


def _client_modules() -> tuple[t.Any, t.Any]:
    try:
        from google.api_core import exceptions
        from google.cloud import bigquery
    except ImportError:
        raise WarehouseError(
            "warehouse_url is bigquery://... but the BigQuery client is not installed: "
            "pip install 'ifs-looker-connector[bigquery]'"
        ) from None
    return bigquery, exceptions


class BigQueryWarehouse(LazyTransactionWarehouse, BigQueryDialect):
    """BigQuery over the official client: load jobs for rows, a session for transactions.

    A transaction is a BigQuery multi-statement transaction in this connection's session.
    """

    retryable_words = _RETRYABLE_WORDS

    def __init__(self, url: URL, settings: Mapping[str, t.Any] | None = None) -> None:
        super().__init__(url, settings)
        self._client: t.Any = None
        self._session_id: str | None = None
        self._init_transaction_state()  # staging tables to drop: `project.dataset.table`

    # Settings ----------------------------------------------------------------------------

    def _setting(self, name: str, query_key: str) -> t.Any:
        value = self.settings.get(name)
        if value in (None, ""):
            value = self.url.query.get(query_key)
            if isinstance(value, tuple):
                value = value[-1]
        return value or None

    @property
    def location(self) -> str | None:
        value = self.url.query.get("location")
        return (value[-1] if isinstance(value, tuple) else value) or None

    @property
    def api_endpoint(self) -> str | None:
        return self._setting(ENDPOINT_SETTING, "api_endpoint")

    @property
    def timeout(self) -> float:
        value = self._setting(TIMEOUT_SETTING, "timeout")
        try:
            return float(value) if value is not None else DEFAULT_TIMEOUT
        except ValueError:
            raise WarehouseError(f"{TIMEOUT_SETTING} must be a number of seconds") from None

    def credentials(self) -> t.Any:
        """Service-account credentials from the key setting, anonymous ones for an endpoint
        without a key, else None (the client finds Application Default Credentials)."""
        key = self._setting(KEY_SETTING, "key_file")
        if key:
            try:
                key = encrypted_settings.decrypt(KEY_SETTING, str(key))
            except encrypted_settings.SecretError as exc:
                raise WarehouseError(str(exc)) from None
            info = self._key_info(key)
            from google.oauth2 import service_account

            try:
                return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            except (ValueError, KeyError) as exc:
                raise WarehouseError(
                    f"{KEY_SETTING} is not a usable service-account key ({type(exc).__name__})"
                ) from None
        if self.api_endpoint:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        return None

    @staticmethod
    def _key_info(key: str) -> dict:
        text = key.strip()
        if not text.startswith("{"):
            path = Path(text).expanduser()
            try:
                text = path.read_text()
            except OSError as exc:
                raise WarehouseError(
                    f"{KEY_SETTING}: the key file {path} cannot be read ({exc.strerror})"
                ) from None
        try:
            info = json.loads(text)
        except ValueError:
            raise WarehouseError(f"{KEY_SETTING} is not a JSON service-account key") from None
        if not isinstance(info, dict):
            raise WarehouseError(f"{KEY_SETTING} is not a JSON service-account key")
        return info

    # Connection --------------------------------------------------------------------------

    def connect(self) -> None:
        bigquery, _ = _client_modules()
        from google.api_core.client_options import ClientOptions

        endpoint = self.api_endpoint
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise WarehouseError(f"{ENDPOINT_SETTING} is not an http(s) URL")
            check_plain_http(
                ENDPOINT_SETTING,
                parts.scheme,
                parts.hostname,
                query_flag(self.url, "allow_insecure_http"),
            )
        options = ClientOptions(api_endpoint=endpoint) if endpoint else None
        try:
            self._client = bigquery.Client(
                project=self.project,
                credentials=self.credentials(),
                location=self.location,
                client_options=options,
            )
        except Exception as exc:  # google.auth's DefaultCredentialsError and the like
            if isinstance(exc, WarehouseError):
                raise
            raise WarehouseError(
                f"cannot connect to {self.safe_url}: {type(exc).__name__}: {exc}; set "
                f"{KEY_SETTING} or Application Default Credentials"
            ) from None

    @property
    def client(self) -> t.Any:
        if self._client is None:
            self.connect()
        return self._client

    def close(self) -> None:
        if self._client is None:
            return
        if self._session_id is not None:
            with contextlib.suppress(Exception):  # ends with the process anyway (24 h idle)
                self._query("CALL BQ.ABORT_SESSION()", [], session=True, job_timeout=30)
            self._session_id = None
        self._client.close()
        self._client = None

    def _retry(self) -> t.Any:
        from google.cloud.bigquery.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_deadline(self.timeout)

    # Statements --------------------------------------------------------------------------

    def _query(
        self,
        sql: str,
        params: Sequence[tuple],
        *,
        session: bool = False,
        job_timeout: float | None = None,
    ) -> t.Any:
        """Run one query job and wait for it; returns the finished job."""
        bigquery, _ = _client_modules()
        from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter(n, k, v) for n, k, v in params],
            use_legacy_sql=False,
        )
        if session:
            if self._session_id is None:
                config.create_session = True
            else:
                config.connection_properties = [
                    bigquery.ConnectionProperty("session_id", self._session_id)
                ]
        timeout = job_timeout or self.timeout
        job = self.client.query(
            sql,
            job_config=config,
            job_id_prefix="target_looker_",
            retry=self._retry(),
            timeout=timeout,
            # A failed job inside a session's transaction is not re-run: the transaction
            # is rolled back and the caller decides.
            job_retry=None if session else DEFAULT_JOB_RETRY,
        )
        result = job.result(timeout=timeout, retry=self._retry())
        if session and self._session_id is None and job.session_info is not None:
            self._session_id = job.session_info.session_id
        job._target_looker_rows = result
        return job

    def portable(self, sql: str, params: Sequence[t.Any]) -> str:
        """`sql` with PostgreSQL-only forms BigQuery lacks rewritten (`ON CONFLICT` upserts)."""
        return portable_upsert(sql, params, self.existing_columns, self.render_type, self.quote)

    def _statement(self, sql: str, params: Sequence[t.Any]) -> t.Any:
        text, bound = translate(self.portable(sql, params), params, self.project)
        if self._in_ddl:  # DDL runs on its own: BigQuery has none in transactions
            return self._query(text, bound)
        in_session = self._in_transaction
        if in_session and not self._began:
            self._query("BEGIN TRANSACTION", [], session=True)
            self._began = True
        return self._query(text, bound, session=in_session)

    def execute(self, sql: str, params: Sequence[t.Any] = ()) -> int:
        job = self._statement(sql, params)
        affected = job.num_dml_affected_rows
        return -1 if affected is None else int(affected)

    def fetchall(self, sql: str, params: Sequence[t.Any] = ()) -> list[tuple]:
        job = self._statement(sql, params)
        return [tuple(row.values()) for row in job._target_looker_rows]

    def executemany(self, sql: str, rows: Sequence[Sequence[t.Any]]) -> None:
        if not rows:
            return
        combined = multi_row_insert(sql, rows)
        if combined:
            for statement, params in combined:
                self.execute(statement, params)
            return
        for row in rows:
            self.execute(sql, row)

    def _commit(self) -> None:
        self._query("COMMIT TRANSACTION", [], session=True)

    def _rollback(self) -> None:
        try:
            self._query("ROLLBACK TRANSACTION", [], session=True, job_timeout=60)
        except Exception:  # none open (a failed COMMIT), or the session is in doubt:
            self._session_id = None  # the next transaction starts a session of its own

    def is_already_exists(self, exc: BaseException) -> bool:
        _, exceptions = _client_modules()
        return isinstance(exc, exceptions.Conflict) or "already exists" in str(exc).lower()

    # Datasets and tables (DDL runs outside transactions) -----------------------------------

    def guarded_ddl(self, name: str, fn: t.Callable[[], t.Any]) -> t.Any:
        """`fn` on its own (BigQuery has no DDL in transactions, nor locks to take), run
        again when a concurrent loader got there first; `fn` re-reads what exists.

        Inside a `transaction()` whose first statement has not run yet, it runs before
        it (the transaction begins lazily); after that, it would be outside the
        transaction's all-or-nothing, so it is refused.
        """
        if self._began:
            raise WarehouseError(
                f"internal: DDL on {name} inside a BigQuery transaction that has begun "
                f"(BigQuery runs no DDL in transactions)"
            )
        return self.retried_ddl(fn)

    def ensure_schema(self, schema: str) -> None:
        problem = dataset_name_problem(schema)
        if problem:
            raise WarehouseError(f"dataset name {schema!r} cannot be used: {problem}")
        bigquery, exceptions = _client_modules()
        dataset_id = f"{self.project}.{schema}"
        try:
            self.client.get_dataset(dataset_id, retry=self._retry(), timeout=self.timeout)
            return
        except exceptions.NotFound:
            pass
        dataset = bigquery.Dataset(dataset_id)
        if self.location:
            dataset.location = self.location
        self.client.create_dataset(
            dataset, exists_ok=True, retry=self._retry(), timeout=self.timeout
        )

    def _get_table(self, table: TableRef) -> t.Any:
        _, exceptions = _client_modules()
        try:
            return self.client.get_table(
                f"{self.project}.{table.schema}.{table.name}",
                retry=self._retry(),
                timeout=self.timeout,
            )
        except exceptions.NotFound:
            return None

    def existing_columns(self, table: TableRef) -> dict[str, SqlType] | None:
        found = self._get_table(table)
        if found is None:
            return None
        return {
            field.name: self.parse_type(field.field_type, field.max_length, field.scale)
            for field in found.schema
        }

    def primary_key(self, table: TableRef) -> list[str]:
        found = self._get_table(table)
        if found is None:
            return []
        constraints = found.table_constraints
        if constraints is not None and constraints.primary_key is not None:
            return list(constraints.primary_key.columns)
        description = found.description or ""
        if KEY_MARKER in description:
            with contextlib.suppress(ValueError):
                keys = json.loads(description.split(KEY_MARKER, 1)[1].splitlines()[0])
                if isinstance(keys, list):
                    return [str(k) for k in keys]
        return []

    def schema_fields(self, table: TableRef, columns: Sequence[Column], keys: Sequence[str]):
        bigquery, _ = _client_modules()
        return [
            bigquery.SchemaField(
                c.name,
                self.column_type(table, c),
                mode="REQUIRED" if (not c.nullable or c.name in keys) else "NULLABLE",
            )
            for c in columns
        ]

    def create_table(self, table: TableRef, columns: Sequence[Column], keys: Sequence[str]) -> None:
        """Create `table` through the API, its key a NOT ENFORCED primary key constraint
        (and in its description); if another loader created it first, evolve it."""
        self.check_names(table, columns)
        bigquery, _ = _client_modules()
        from google.cloud.bigquery.table import PrimaryKey, TableConstraints

        def create() -> None:
            existing = self.existing_columns(table)
            if existing is not None:
                self._evolve(table, columns, keys, existing)
                return
            resource = bigquery.Table(
                f"{self.project}.{table.schema}.{table.name}",
                schema=self.schema_fields(table, columns, keys),
            )
            resource.description = "Loaded by target-looker from IFS Cloud." + (
                f"\n{KEY_MARKER}{json.dumps(list(keys))}" if keys else ""
            )
            if keys:
                resource.table_constraints = TableConstraints(
                    primary_key=PrimaryKey(columns=list(keys)), foreign_keys=[]
                )
            self.client.create_table(resource, retry=self._retry(), timeout=self.timeout)

        self.guarded_ddl(f"table {self.qualified(table)}", create)

    def add_column(self, table: TableRef, column: Column) -> None:
        self.check_names(table, [column])
        super().add_column(table, column)

    # Overwrite: the new contents replace the table's in one transaction --------------------

    def table_names(self, schema: str) -> list[str]:
        return [
            item.table_id
            for item in self.client.list_tables(
                f"{self.project}.{schema}", retry=self._retry(), timeout=self.timeout
            )
        ]

    def drop_table(self, table: TableRef) -> None:
        """Drop `table` if it exists (on its own: DDL is never part of a transaction)."""
        self.guarded_ddl(
            f"table {self.qualified(table)}",
            lambda: self.client.delete_table(
                f"{self.project}.{table.schema}.{table.name}",
                not_found_ok=True,
                retry=self._retry(),
                timeout=self.timeout,
            ),
        )

    def create_shadow(self, shadow: TableRef, table: TableRef) -> None:
        """`shadow`, empty, with `table`'s columns, types and key (through the API)."""
        existing = self.existing_columns(table)
        if existing is None:
            raise WarehouseError(
                f"table {self.qualified(table)} disappeared while it was being loaded"
            )
        self.drop_table(shadow)
        columns = [Column(name, sql_type) for name, sql_type in existing.items()]
        self.create_table(shadow, columns, self.primary_key(table))

    def swap_in(self, table: TableRef, shadow: TableRef, retired: TableRef) -> None:
        """Inside the caller's transaction: `table`'s rows become `shadow`'s.

        BigQuery has no DDL in transactions, so no rename: the table is given the shadow's
        columns first (on its own, before the transaction begins), then, in the
        transaction, emptied and filled from the shadow (DML: all or nothing, with the
        audit rows). The shadow is dropped once the transaction has ended.
        """
        self.refill_from_shadow(table, shadow, f"DELETE FROM {self.qualified(table)} WHERE TRUE")
        self.drop_after_transaction(f"{self.project}.{shadow.schema}.{shadow.name}")

    # Loading -----------------------------------------------------------------------------

    def _load_stage(self, prepared: Prepared) -> TableRef:
        """A load job writes the prepared rows (Parquet) into a new staging table."""
        import pyarrow.parquet as pq

        bigquery, _ = _client_modules()
        batch = prepared.batch
        stage_columns = self.stage_columns(batch)
        name = f"{STAGE_PREFIX}{uuid.uuid4().hex}"
        table_id = f"{self.project}.{batch.table.schema}.{name}"
        resource = bigquery.Table(
            table_id, schema=[bigquery.SchemaField(s.name, s.sql_type) for s in stage_columns]
        )
        resource.expires = datetime.datetime.now(tz=datetime.timezone.utc) + STAGE_EXPIRY
        resource.description = "target-looker staging table of one batch (dropped after it)"
        self.client.create_table(resource, retry=self._retry(), timeout=self.timeout)
        buffer = io.BytesIO()
        pq.write_table(prepared.payload, buffer, compression="snappy")
        buffer.seek(0)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            schema=resource.schema,
        )
        job = self.client.load_table_from_file(
            buffer,
            table_id,
            job_config=config,
            job_id_prefix="target_looker_load_",
            timeout=self.timeout,
        )
        job.result(timeout=self.timeout, retry=self._retry())
        return TableRef(batch.table.schema, name)

    def _drop_stage(self, table_id: str) -> None:
        """Drop a staging table (`project.dataset.table`) if it exists; it expires anyway."""
        with contextlib.suppress(Exception):
            self.client.delete_table(table_id, not_found_ok=True, timeout=self.timeout)

    def merge(self, prepared: Prepared) -> MergeCounts:
        batch = prepared.batch
        staged_rows = prepared.payload.num_rows
        if self._began:
            raise WarehouseError(
                "internal: a BigQuery batch is staged before its transaction's first "
                "statement, so that the transaction reads the staging table"
            )
        stage = self._load_stage(prepared) if staged_rows else None
        try:
            statements = self.staged_merge(batch, self.qualified(stage) if stage else "UNUSED")
            if statements.truncate:
                self.execute(statements.truncate)
            if stage is None:
                return MergeCounts()
            if not statements.upsert:
                self.execute(statements.write)
                return MergeCounts(inserted=staged_rows)
            [(inserted, updated)] = self.fetchall(t.cast("str", statements.count))
            self.execute(statements.write)
            if statements.confirm_presence:
                self.execute(statements.confirm_presence)
            return MergeCounts(inserted, updated, staged_rows - inserted - updated)
        finally:
            # Dropped once the transaction that read it has ended.
            if stage is not None:
                self.drop_after_transaction(f"{self.project}.{stage.schema}.{stage.name}")


__all__ = ["BigQueryDialect", "BigQueryMerge", "BigQueryWarehouse"]
