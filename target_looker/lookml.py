"""LookML for the loaded tables: one view per table and a finance explore, as data.

LookML cannot be written through the Looker API; it lives in the Looker project's
git repository, so `lookml_dir` is a checkout of it and these files go there (and
`POST /projects/{id}/validate` can check them). Views, fields, explores and joins
are dataclasses; `render` is the one place that knows LookML's syntax.

The finance explore joins voucher rows to GL accounts (account group), to each
cost-allocation code part B-J, and up the account hierarchy (immediate parent,
grandparent, ...), so totals by account group or hierarchy level in Looker are
sums of the same voucher rows IFS sums (tests/target_looker/test_lookml.py runs
the SQL such explore queries imply against loaded data to prove it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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


def _value(name: str, value: Any) -> str:
    if name in SQL_PARAMS:
        return f"{value} ;;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if name in QUOTED_PARAMS or name == "include":
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def render(node: Node, indent: int = 0) -> str:
    """LookML text of a node; a nameless node renders its params and children at top level."""
    pad = "  " * indent
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


def _loose(name: str) -> str:
    return name.replace("_", "").casefold()


def field_name(column: str) -> str:
    """A LookML field name for a column: lowercase letters, digits and underscores."""
    name = re.sub(r"[^a-z0-9_]+", "_", column.casefold()).strip("_") or "field"
    return name if not name[0].isdigit() else f"f_{name}"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def build_view(table: TableSpec) -> View:
    """A view: typed dimensions, time dimension groups, the primary key and sum measures."""
    dimensions: list[Dimension] = []
    groups: list[DimensionGroup] = []
    measures = [Measure("count", "count")]
    by_column: dict[str, str] = {}
    used: set[str] = {"count"}
    single_key = table.keys[0] if len(table.keys) == 1 else None
    for column, sql_type in table.columns.items():
        name = field_name(column)
        sql = f"${{TABLE}}.{quote(column)}"
        hidden = column.startswith("_")
        if sql_type.kind in ("date", "timestamptz"):
            short = re.sub(r"_(date|at)$", "", name) or name
            short = short if short not in used else name
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
    if len(table.keys) > 1:
        parts = " || '|' || ".join(f"CAST(${{{by_column[k]}}} AS VARCHAR)" for k in table.keys)
        dimensions.insert(
            0, Dimension(COMPOUND_KEY, "string", parts, primary_key=True, hidden=True)
        )
    return View(
        table.name,
        f"{quote(table.schema)}.{quote(table.name)}",
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
    base = voucher_rows
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
            gl_accounts,
            gl_accounts,
            _on(
                (company, _ref(gl_accounts, accounts, "company")),
                (account, _ref(gl_accounts, accounts, "account")),
            ),
            "GL account",
        )
    codes = views.get(cost_dimensions)
    if codes:
        for part in CODE_PARTS:
            alias = f"code_{part.lower()}_dimension"
            add(
                alias,
                cost_dimensions,
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
        leaf.append((_ref(node, tree, "structure_id"), "'" + structure_id.replace("'", "''") + "'"))
    if tree and add(node, account_hierarchy, _on(*leaf), "Account hierarchy"):
        child = node
        for level in range(1, hierarchy_depth + 1):
            alias = f"account_parent_{level}"
            on = _on(
                (_ref(alias, tree, "company"), _ref(child, tree, "company")),
                (_ref(alias, tree, "structure_id"), _ref(child, tree, "structure_id")),
                (_ref(alias, tree, "node_id"), _ref(child, tree, "parent_node_id")),
            )
            if not add(alias, account_hierarchy, on, f"Account hierarchy: parent {level}"):
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
    views = {t.name: build_view(t) for t in tables}
    finance = finance_explore(views, **explore)
    return Model(model_name, connection, tuple(views.values()), (finance,) if finance else ())


def write_model(model: Model, lookml_dir: str | Path) -> list[Path]:
    """Write `<views_dir>/<view>.view.lkml` and `<model>.model.lkml`; returns the paths."""
    root = Path(lookml_dir)
    (root / model.views_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for view in model.views:
        path = root / model.views_dir / f"{view.name}.view.lkml"
        path.write_text(render(view.node()), encoding="utf-8")
        written.append(path)
    path = root / f"{model.name}.model.lkml"
    path.write_text(render(model.node()), encoding="utf-8")
    written.append(path)
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
        specs.append(TableSpec(schema, name, columns, tuple(warehouse.primary_key(ref))))
    return specs


def generate_lookml(
    warehouse: Warehouse,
    schema: str,
    lookml_dir: str | Path,
    *,
    connection: str,
    model_name: str = DEFAULT_TARGET_SCHEMA,
) -> list[Path]:
    """What target-looker runs after a load when `lookml_dir` is set."""
    model = build_model(tables_in(warehouse, schema), connection=connection, model_name=model_name)
    return write_model(model, lookml_dir)
