"""LookML for the loaded tables: one view per table and a finance explore, as data.

LookML cannot be written through the Looker API; it lives in the Looker project's
git repository, so `lookml_dir` is a checkout of it and these files go there (and
`POST /projects/{id}/validate` can check them). Views, fields, explores and joins
are dataclasses; `render` is the one place that knows LookML's syntax.

Names come from the warehouse (with `column_naming: preserve`, from the tap), so
nothing here trusts them: LookML names (views, fields, files) are reduced to
`[a-z0-9_]`, so every file lands inside `lookml_dir`; quoted strings are escaped; a
table or column whose name LookML's SQL blocks cannot carry (`;;` ends a block, `${`,
`{{`, `{%` are substitutions) is left out with a warning, never written broken.
A write that fails raises `LookMLError`, after writing every file it can.

The finance explore joins voucher rows to GL accounts (account group), to each
cost-allocation code part B-J, and up the account hierarchy (immediate parent,
grandparent, ...), so totals by account group or hierarchy level in Looker are
sums of the same voucher rows IFS sums (tests/target_looker/test_lookml.py runs
the SQL such explore queries imply against loaded data to prove it).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ifs_looker_core.defaults import DEFAULT_TARGET_SCHEMA
from target_looker.columns import SqlType
from target_looker.warehouse.base import TableRef, Warehouse

DATE_TIMEFRAMES = ("raw", "date", "week", "month", "quarter", "year")
TIME_TIMEFRAMES = ("raw", "time", "date", "week", "month", "quarter", "year")
DIMENSION_TYPES = {
    "text": "string",
    "varchar": "string",
    "json": "string",
    "time": "string",
    "bigint": "number",
    "numeric": "number",
    "boolean": "yesno",
}
SQL_PARAMS = frozenset({"sql", "sql_on", "sql_table_name", "sql_where"})
QUOTED_PARAMS = frozenset({"label", "view_label", "group_label", "description", "connection"})
CODE_PARTS = tuple("BCDEFGHIJ")
COMPOUND_KEY = "primary_key"
# What ends or substitutes into a LookML SQL block: no escape exists for these.
SQL_BLOCK_BREAKERS = (";;", "${", "{{", "{%")
_BARE = re.compile(r"[a-z0-9_]+")
_REFERENCE = re.compile(r"\$\{[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
logger = logging.getLogger("target-looker.lookml")


class LookMLError(RuntimeError):
    """LookML could not be (fully) written; `written` and `failures` say what happened."""

    def __init__(
        self,
        message: str,
        *,
        written: list[Path] | None = None,
        failures: list[tuple[Path, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.written = written or []
        self.failures = failures or []


# LookML as data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One LookML block: `kind: name { params children }` (name None for top-level params)."""

    kind: str
    name: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    children: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Dimension:
    name: str
    type: str
    sql: str
    primary_key: bool = False
    hidden: bool = False
    label: str | None = None

    def node(self) -> Node:
        params: list[tuple[str, Any]] = []
        if self.primary_key:
            params.append(("primary_key", True))
        if self.hidden:
            params.append(("hidden", True))
        if self.label:
            params.append(("label", self.label))
        params += [("type", self.type), ("sql", self.sql)]
        return Node("dimension", self.name, tuple(params))


@dataclass(frozen=True)
class DimensionGroup:
    name: str
    sql: str
    datatype: str  # date | timestamp
    timeframes: tuple[str, ...]
    hidden: bool = False

    def node(self) -> Node:
        params: list[tuple[str, Any]] = [("type", "time"), ("timeframes", list(self.timeframes))]
        if self.datatype == "date":
            params += [("datatype", "date"), ("convert_tz", False)]
        if self.hidden:
            params.append(("hidden", True))
        params.append(("sql", self.sql))
        return Node("dimension_group", self.name, tuple(params))

    def field_names(self) -> list[str]:
        return [f"{self.name}_{frame}" for frame in self.timeframes]


@dataclass(frozen=True)
class Measure:
    name: str
    type: str  # sum | count
    sql: str | None = None
    value_format_name: str | None = None
    label: str | None = None

    def node(self) -> Node:
        params: list[tuple[str, Any]] = [("type", self.type)]
        if self.label:
            params.append(("label", self.label))
        if self.value_format_name:
            params.append(("value_format_name", self.value_format_name))
        if self.sql:
            params.append(("sql", self.sql))
        return Node("measure", self.name, tuple(params))


@dataclass(frozen=True)
class View:
    name: str
    sql_table_name: str
    dimensions: tuple[Dimension, ...] = ()
    dimension_groups: tuple[DimensionGroup, ...] = ()
    measures: tuple[Measure, ...] = ()
    fields_by_column: dict[str, str] = field(default_factory=dict, compare=False)

    def node(self) -> Node:
        children = [d.node() for d in self.dimensions]
        children += [g.node() for g in self.dimension_groups]
        children += [m.node() for m in self.measures]
        return Node("view", self.name, (("sql_table_name", self.sql_table_name),), tuple(children))

    def field(self, column: str) -> str | None:
        """The dimension (or dimension group) name of a column, matched loosely by name."""
        wanted = _loose(column)
        for name, field_name in self.fields_by_column.items():
            if _loose(name) == wanted:
                return field_name
        return None


@dataclass(frozen=True)
class Join:
    name: str
    view: str  # the view joined (LookML `from:`)
    sql_on: str
    relationship: str = "many_to_one"
    type: str = "left_outer"
    view_label: str | None = None

    def node(self) -> Node:
        params: list[tuple[str, Any]] = []
        if self.view != self.name:
            params.append(("from", self.view))
        if self.view_label:
            params.append(("view_label", self.view_label))
        params += [
            ("type", self.type),
            ("relationship", self.relationship),
            ("sql_on", self.sql_on),
        ]
        return Node("join", self.name, tuple(params))


@dataclass(frozen=True)
class Explore:
    name: str
    label: str | None = None
    joins: tuple[Join, ...] = ()

    def node(self) -> Node:
        params = (("label", self.label),) if self.label else ()
        return Node("explore", self.name, params, tuple(j.node() for j in self.joins))


@dataclass(frozen=True)
class Model:
    name: str
    connection: str
    views: tuple[View, ...]
    explores: tuple[Explore, ...]
    views_dir: str = "views"
    skipped: tuple[str, ...] = ()  # tables and columns left out, and why

    def node(self) -> Node:
        params = (
            ("connection", self.connection),
            ("include", f"/{self.views_dir}/*.view.lkml"),
        )
        return Node("model", None, params, tuple(e.node() for e in self.explores))

    def view(self, name: str) -> View:
        for view in self.views:
            if view.name == name:
                return view
        raise KeyError(f"no view {name!r} in model {self.name!r}")


# rendering ---------------------------------------------------------------------------------------


def quoted_string(value: Any) -> str:
    """A LookML string literal: backslashes and quotes escaped, line breaks and other
    control characters (which would end the line the string is on) made spaces."""
    text = _CONTROL.sub(" ", str(value))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bare(value: Any) -> str:
    """A LookML name or keyword value; anything else would be LookML syntax, so refused."""
    text = str(value)
    if not _BARE.fullmatch(text):
        raise ValueError(f"{text!r} is not a LookML name ([a-z0-9_]+)")
    return text


def sql_block(sql: str) -> str:
    """`sql` as a LookML SQL block's content; refused if it could end or change the block.

    Well-formed references (`${TABLE}`, `${field}`, `${view.field}`) are what generated
    SQL is made of; any other `${`, a Liquid `{{` / `{%`, or a `;;` is refused.
    """
    breaker = unsafe_in_sql(_REFERENCE.sub("", sql))
    if breaker is not None:
        raise ValueError(f"SQL {sql!r} cannot be written into LookML: it contains {breaker!r}")
    return sql


def _value(name: str, value: Any) -> str:
    if name in SQL_PARAMS:
        return f"{sql_block(str(value))} ;;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_bare(v) for v in value) + "]"
    if name in QUOTED_PARAMS or name == "include":
        return quoted_string(value)
    return _bare(value)


def render(node: Node, indent: int = 0) -> str:
    """LookML text of a node; a nameless node renders its params and children at top level.

    Names and bare values must be LookML names and SQL must not break its block
    (ValueError otherwise): whatever built the node, the output's structure is its own.
    """
    pad = "  " * indent
    _bare(node.kind)
    for key, _ in node.params:
        _bare(key)
    if node.name is not None:
        _bare(node.name)
    if node.name is None:
        lines = [f"{pad}{k}: {_value(k, v)}" for k, v in node.params]
        body = [render(child, indent) for child in node.children]
        return "\n".join(lines) + ("\n\n" + "\n\n".join(body) if body else "") + "\n"
    inner = [f"{pad}  {k}: {_value(k, v)}" for k, v in node.params]
    inner += ["\n" + render(child, indent + 1).rstrip("\n") for child in node.children]
    return f"{pad}{node.kind}: {node.name} {{\n" + "\n".join(inner) + f"\n{pad}}}\n"


# from tables to LookML ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    """A loaded table: what LookML generation needs to know about it."""

    schema: str
    name: str
    columns: dict[str, SqlType]  # in table order
    keys: tuple[str, ...]
    # How the warehouse's SQL names and casts things (Looker sends the view's SQL to it):
    # double quotes by default, backticks and `project.dataset.table` on BigQuery.
    sql_table_name: str = ""
    quote: Callable[[str], str] = field(default=lambda name: quote(name), compare=False)
    text_type: str = "VARCHAR"


def _loose(name: str) -> str:
    return name.replace("_", "").casefold()


def field_name(column: str, fallback: str = "field") -> str:
    """A LookML name for a column (or table): lowercase letters, digits and underscores.

    Also what makes a file name: no `/`, `.` or `..` survives.
    """
    name = re.sub(r"[^a-z0-9_]+", "_", column.casefold()).strip("_") or fallback
    return name if not name[0].isdigit() else f"f_{name}"


def lookml_name(name: str) -> str:
    """A LookML object name (view, model, explore) for a table or schema name."""
    return field_name(name, fallback="view")


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def unsafe_in_sql(name: str) -> str | None:
    """What in `name` a LookML SQL block cannot carry, or None when it is safe."""
    return next((b for b in SQL_BLOCK_BREAKERS if b in name), None)


def build_view(table: TableSpec, skipped: list[str] | None = None) -> View:
    """A view: typed dimensions, time dimension groups, the primary key and sum measures.

    A column whose name a LookML SQL block cannot carry is left out (noted in `skipped`),
    and so is a compound primary key that needs it. Raises ValueError when the table's
    own name (or schema) cannot be carried: then there is no view.
    """
    for part in (table.schema, table.name):
        breaker = unsafe_in_sql(part)
        if breaker is not None:
            raise ValueError(
                f"table {table.schema}.{table.name} has {breaker!r} in its name, which "
                f"LookML's SQL cannot carry"
            )
    dimensions: list[Dimension] = []
    groups: list[DimensionGroup] = []
    measures = [Measure("count", "count")]
    by_column: dict[str, str] = {}
    used: set[str] = {"count"}
    single_key = table.keys[0] if len(table.keys) == 1 else None
    for column, sql_type in table.columns.items():
        breaker = unsafe_in_sql(column)
        if breaker is not None:
            if skipped is not None:
                skipped.append(
                    f"column {column!r} of {table.name!r}: left out of the view "
                    f"({breaker!r} cannot be written into LookML SQL)"
                )
            continue
        name = field_name(column)
        sql = f"${{TABLE}}.{table.quote(column)}"
        hidden = column.startswith("_")
        if sql_type.kind in ("date", "timestamptz"):
            short = re.sub(r"_(date|at)$", "", name) or name
            short = short if short not in used else name
            while short in used:
                short += "_"
            used.add(short)
            datatype = "date" if sql_type.kind == "date" else "timestamp"
            frames = DATE_TIMEFRAMES if datatype == "date" else TIME_TIMEFRAMES
            groups.append(DimensionGroup(short, sql, datatype, frames, hidden=hidden))
            by_column[column] = short
            continue
        while name in used:
            name += "_"
        used.add(name)
        by_column[column] = name
        dimensions.append(
            Dimension(
                name,
                DIMENSION_TYPES.get(sql_type.kind, "string"),
                sql,
                primary_key=column == single_key,
                hidden=hidden,
            )
        )
        if sql_type.kind == "numeric" and "amount" in name and not hidden:
            measures.append(Measure(f"total_{name}", "sum", f"${{{name}}}", "decimal_2"))
    if len(table.keys) > 1 and all(k in by_column for k in table.keys):
        parts = " || '|' || ".join(
            f"CAST(${{{by_column[k]}}} AS {table.text_type})" for k in table.keys
        )
        key_name = COMPOUND_KEY
        while key_name in used:
            key_name += "_"
        dimensions.insert(0, Dimension(key_name, "string", parts, primary_key=True, hidden=True))
    return View(
        lookml_name(table.name),
        table.sql_table_name or f"{quote(table.schema)}.{quote(table.name)}",
        tuple(dimensions),
        tuple(groups),
        tuple(measures),
        by_column,
    )


def _on(*pairs: tuple[str | None, str | None]) -> str | None:
    """`a = b AND ...`, or None when a column is missing (then the join is left out)."""
    if any(left is None or right is None for left, right in pairs):
        return None
    return " AND ".join(f"{left} = {right}" for left, right in pairs)


def _ref(view_alias: str, view: View, column: str) -> str | None:
    name = view.field(column)
    return None if name is None else f"${{{view_alias}.{name}}}"


def finance_explore(
    views: dict[str, View],
    *,
    voucher_rows: str = "voucher_rows",
    gl_accounts: str = "gl_accounts",
    cost_dimensions: str = "cost_dimensions",
    account_hierarchy: str = "account_hierarchy",
    hierarchy_depth: int = 3,
    structure_id: str | None = None,
) -> Explore | None:
    """Voucher rows joined to accounts, code parts B-J and the account hierarchy's levels.

    Columns are matched loosely (`code_b`, `CodeB`), so `column_naming: preserve` works;
    a join whose columns are missing is left out rather than written broken.
    """
    rows = views.get(voucher_rows)
    if rows is None:
        return None
    base = rows.name
    joins: list[Join] = []

    def add(name: str, view: str, on: str | None, label: str) -> bool:
        if on is not None:
            joins.append(Join(name, view, on, view_label=label))
        return on is not None

    company = _ref(base, rows, "company")
    account = _ref(base, rows, "account")
    accounts = views.get(gl_accounts)
    if accounts:
        add(
            accounts.name,
            accounts.name,
            _on(
                (company, _ref(accounts.name, accounts, "company")),
                (account, _ref(accounts.name, accounts, "account")),
            ),
            "GL account",
        )
    codes = views.get(cost_dimensions)
    if codes:
        for part in CODE_PARTS:
            alias = f"code_{part.lower()}_dimension"
            add(
                alias,
                codes.name,
                _on(
                    (company, _ref(alias, codes, "company")),
                    (_ref(alias, codes, "code_part"), f"'{part}'"),
                    (_ref(base, rows, f"code_{part}"), _ref(alias, codes, "code")),
                ),
                f"Code part {part}",
            )
    tree = views.get(account_hierarchy)
    node = "account_node"
    leaf = (
        [(company, _ref(node, tree, "company")), (account, _ref(node, tree, "node_id"))]
        if tree
        else []
    )
    if tree and structure_id is not None:
        if unsafe_in_sql(structure_id):
            raise ValueError(f"structure_id {structure_id!r} cannot be written into LookML SQL")
        leaf.append((_ref(node, tree, "structure_id"), "'" + structure_id.replace("'", "''") + "'"))
    if tree and add(node, tree.name, _on(*leaf), "Account hierarchy"):
        child = node
        for level in range(1, hierarchy_depth + 1):
            alias = f"account_parent_{level}"
            on = _on(
                (_ref(alias, tree, "company"), _ref(child, tree, "company")),
                (_ref(alias, tree, "structure_id"), _ref(child, tree, "structure_id")),
                (_ref(alias, tree, "node_id"), _ref(child, tree, "parent_node_id")),
            )
            if not add(alias, tree.name, on, f"Account hierarchy: parent {level}"):
                break
            child = alias
    return Explore(base, "GL voucher rows", tuple(joins))


def build_model(
    tables: Iterable[TableSpec],
    *,
    connection: str,
    model_name: str = DEFAULT_TARGET_SCHEMA,
    **explore: Any,
) -> Model:
    """Views keyed by table name (each a distinct LookML name) and the finance explore.

    Tables and columns LookML cannot carry are left out and listed in `Model.skipped`.
    """
    views: dict[str, View] = {}
    names: set[str] = set()
    skipped: list[str] = []
    for table in tables:
        try:
            view = build_view(table, skipped)
        except ValueError as exc:
            skipped.append(f"{exc}: no view written")
            continue
        name = view.name
        while name in names:  # `GlAccounts` and `gl.accounts` are both gl_accounts
            name += "_"
        names.add(name)
        views[table.name] = view if name == view.name else dataclasses.replace(view, name=name)
    finance = finance_explore(views, **explore)
    return Model(
        lookml_name(model_name),
        connection,
        tuple(views.values()),
        (finance,) if finance else (),
        skipped=tuple(skipped),
    )


def _inside(root: Path, path: Path) -> Path:
    """`path`, refused unless it resolves (symlinks followed) to a place under `root`."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise LookMLError(f"{path} would be written outside lookml_dir {root} (to {resolved})")
    return path


def _write_file(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (a temporary file, then a rename)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_model(model: Model, lookml_dir: str | Path) -> list[Path]:
    """Write `<views_dir>/<view>.view.lkml` and `<model>.model.lkml`; returns the paths.

    Every file lands inside `lookml_dir` (names are LookML names; a symlink leading out
    is refused). A file that cannot be written does not stop the others; then, at the
    end, LookMLError names each failure (its `written` lists the files that were).
    """
    root = Path(lookml_dir)
    if not _BARE.fullmatch(model.views_dir):
        raise LookMLError(f"views_dir {model.views_dir!r} must be one plain directory name")
    files = [
        (root / model.views_dir / f"{_bare(view.name)}.view.lkml", render(view.node()))
        for view in model.views
    ]
    files.append((root / f"{_bare(model.name)}.model.lkml", render(model.node())))
    try:
        (root / model.views_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LookMLError(
            f"LookML not written: cannot create {root / model.views_dir}: {exc.strerror or exc}",
            failures=[(path, "directory missing") for path, _ in files],
        ) from None
    written: list[Path] = []
    failures: list[tuple[Path, str]] = []
    for path, text in files:
        try:
            _write_file(_inside(root, path), text)
        except LookMLError as exc:
            failures.append((path, str(exc)))
        except OSError as exc:
            failures.append((path, exc.strerror or str(exc)))
        else:
            written.append(path)
    if failures:
        details = "; ".join(f"{path}: {reason}" for path, reason in failures)
        raise LookMLError(
            f"LookML: {len(failures)} of {len(files)} files not written to {root}: {details}",
            written=written,
            failures=failures,
        )
    return written


def tables_in(warehouse: Warehouse, schema: str) -> list[TableSpec]:
    """The data tables of `schema` (audit tables, named `_...`, are left out)."""
    names = [
        row[0]
        for row in warehouse.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
            "ORDER BY table_name",
            (schema,),
        )
        if not str(row[0]).startswith("_")
    ]
    specs = []
    for name in names:
        ref = TableRef(schema, name)
        columns = warehouse.existing_columns(ref) or {}
        specs.append(
            TableSpec(
                schema,
                name,
                columns,
                tuple(warehouse.primary_key(ref)),
                sql_table_name=warehouse.qualified(ref),
                quote=warehouse.quote,
                text_type=warehouse.sql_text_type,
            )
        )
    return specs


def generate_lookml(
    warehouse: Warehouse,
    schema: str,
    lookml_dir: str | Path,
    *,
    connection: str,
    model_name: str = DEFAULT_TARGET_SCHEMA,
) -> list[Path]:
    """What target-looker runs after a load when `lookml_dir` is set.

    Returns the files written. Raises LookMLError when any could not be (the caller
    marks the LookML step failed); tables and columns left out are logged as warnings.
    """
    model = build_model(tables_in(warehouse, schema), connection=connection, model_name=model_name)
    for reason in model.skipped:
        logger.warning("LookML: %s", reason)
    return write_model(model, lookml_dir)
