"""LookML generation: views and the finance explore as data, rendered once, proven on data.

The end-to-end test loads the IFS sandbox through `tap-ifscloud | target-looker`,
generates LookML from the loaded warehouse, has the Looker sandbox validate it, and
runs the SQL the explore implies for "amount by account group and month": the
totals equal the sandbox's own rows summed in Python with Decimal, to the last digit.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox, SandboxConfig
from ifs_looker_sandboxes.looker import DEFAULT_MODEL, LookerConfig, lint
from target_looker.columns import SqlType
from target_looker.looker_api import LookerClient, LookerCredentials
from target_looker.lookml import (
    Dimension,
    Explore,
    LookMLError,
    Measure,
    Model,
    Node,
    TableSpec,
    View,
    build_model,
    build_view,
    generate_lookml,
    quote,
    render,
    tables_in,
    write_model,
)
from target_looker.warehouse import open_warehouse
from target_looker.warehouse.base import TableRef
from tests.sandboxes import running_ifs_cloud, running_looker

from .singer_io import lines, record, run, schema

BIN = Path(sys.executable).parent
TEXT, NUM, DATE, TS = SqlType("text"), SqlType("numeric"), SqlType("date"), SqlType("timestamptz")


# rendering ---------------------------------------------------------------------------------------


def test_one_renderer_writes_blocks_sql_quoted_strings_lists_and_yesno() -> None:
    view = View(
        "orders",
        '"s"."orders"',
        (Dimension("id", "number", '${TABLE}."id"', primary_key=True, label='The "id"'),),
        (),
        (Measure("total_amount", "sum", "${amount}", "decimal_2"),),
    )
    assert render(view.node()) == (
        "view: orders {\n"
        '  sql_table_name: "s"."orders" ;;\n'
        "\n"
        "  dimension: id {\n"
        "    primary_key: yes\n"
        '    label: "The \\"id\\""\n'
        "    type: number\n"
        '    sql: ${TABLE}."id" ;;\n'
        "  }\n"
        "\n"
        "  measure: total_amount {\n"
        "    type: sum\n"
        "    value_format_name: decimal_2\n"
        "    sql: ${amount} ;;\n"
        "  }\n"
        "}\n"
    )
    top = Node("model", None, (("connection", "wh"), ("include", "/views/*.view.lkml")))
    assert render(top) == 'connection: "wh"\ninclude: "/views/*.view.lkml"\n'


# views -------------------------------------------------------------------------------------------


def test_views_type_their_fields_from_the_columns() -> None:
    table = TableSpec(
        "ifs",
        "voucher_rows",
        {
            "company": TEXT,
            "voucher_no": SqlType("bigint"),
            "voucher_date": DATE,
            "amount": NUM,
            "currency_rate": NUM,
            "posted": SqlType("boolean"),
            "Odd Name": TEXT,
            "_sdc_extracted_at": TS,
            "_load_run_id": TEXT,
        },
        ("company", "voucher_no"),
    )
    view = build_view(table)
    dims = {d.name: d for d in view.dimensions}
    assert dims["voucher_no"].type == "number"
    assert dims["posted"].type == "yesno"
    assert dims["odd_name"].sql == '${TABLE}."Odd Name"'
    assert dims["load_run_id"].hidden
    key = dims["primary_key"]
    assert (key.primary_key, key.hidden) == (True, True)
    assert key.sql == "CAST(${company} AS VARCHAR) || '|' || CAST(${voucher_no} AS VARCHAR)"
    assert not dims["company"].primary_key
    groups = {g.name: g for g in view.dimension_groups}
    assert groups["voucher"].datatype == "date"
    assert "voucher_month" in groups["voucher"].field_names()
    assert groups["sdc_extracted"].datatype == "timestamp"
    assert groups["sdc_extracted"].hidden
    measures = {m.name: (m.type, m.sql) for m in view.measures}
    assert measures == {"count": ("count", None), "total_amount": ("sum", "${amount}")}
    assert view.sql_table_name == '"ifs"."voucher_rows"'


def test_a_single_key_is_the_primary_key_dimension_itself() -> None:
    view = build_view(
        TableSpec("s", "orders", {"order_no": TEXT, "total_amount": NUM}, ("order_no",))
    )
    assert [(d.name, d.primary_key) for d in view.dimensions] == [
        ("order_no", True),
        ("total_amount", False),
    ]


def test_the_finance_explore_joins_accounts_code_parts_and_hierarchy_levels() -> None:
    tables = [
        TableSpec(
            "s",
            "voucher_rows",
            {"company": TEXT, "account": TEXT, "code_b": TEXT, "code_c": TEXT, "amount": NUM},
            ("company",),
        ),
        TableSpec(
            "s",
            "gl_accounts",
            {"company": TEXT, "account": TEXT, "accnt_group": TEXT},
            ("company", "account"),
        ),
        TableSpec(
            "s",
            "cost_dimensions",
            {"company": TEXT, "code_part": TEXT, "code": TEXT},
            ("company", "code_part", "code"),
        ),
        TableSpec(
            "s",
            "account_hierarchy",
            {"company": TEXT, "structure_id": TEXT, "node_id": TEXT, "parent_node_id": TEXT},
            ("company", "structure_id", "node_id"),
        ),
    ]
    [explore] = build_model(tables, connection="wh").explores
    assert [j.name for j in explore.joins] == [
        "gl_accounts",
        "code_b_dimension",
        "code_c_dimension",
        "account_node",
        "account_parent_1",
        "account_parent_2",
        "account_parent_3",
    ]
    joins = {j.name: j for j in explore.joins}
    assert joins["code_c_dimension"].view == "cost_dimensions"
    assert "${code_c_dimension.code_part} = 'C'" in joins["code_c_dimension"].sql_on
    assert (
        "${account_parent_2.node_id} = ${account_parent_1.parent_node_id}"
        in joins["account_parent_2"].sql_on
    )
    assert all(j.relationship == "many_to_one" for j in explore.joins)


def test_joins_whose_columns_are_missing_are_left_out_not_written_broken() -> None:
    tables = [
        TableSpec("s", "voucher_rows", {"Company": TEXT, "Account": TEXT, "CodeB": TEXT}, ()),
        TableSpec("s", "gl_accounts", {"Company": TEXT, "AccountNo": TEXT}, ()),
        TableSpec("s", "cost_dimensions", {"Company": TEXT, "CodePart": TEXT, "Code": TEXT}, ()),
    ]
    [explore] = build_model(tables, connection="wh").explores
    assert [j.name for j in explore.joins] == ["code_b_dimension"]  # no `account` in gl_accounts
    assert explore.joins[0].sql_on == (
        "${voucher_rows.company} = ${code_b_dimension.company} AND "
        "${code_b_dimension.codepart} = 'B' AND ${voucher_rows.codeb} = ${code_b_dimension.code}"
    )


def test_without_voucher_rows_there_is_no_finance_explore() -> None:
    model = build_model([TableSpec("s", "orders", {"id": TEXT}, ("id",))], connection="wh")
    assert model.explores == ()


# the SQL an explore query implies ----------------------------------------------------------------


_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_TIMEFRAME_SQL = {
    "raw": "{sql}",
    "time": "{sql}",
    "date": "CAST({sql} AS DATE)",
    "week": "DATE_TRUNC('week', {sql})",
    "month": "DATE_TRUNC('month', {sql})",
    "quarter": "DATE_TRUNC('quarter', {sql})",
    "year": "DATE_TRUNC('year', {sql})",
}


class ExploreCompiler:
    """Expands `${...}` references the way Looker does, collecting the joins they need."""

    def __init__(self, model: Model, explore: Explore) -> None:
        self.model = model
        self.explore = explore
        self.joins = {j.name: j for j in explore.joins}
        self.needed: list[str] = []

    def view_of(self, alias: str) -> View:
        if alias == self.explore.name:
            return self.model.view(alias)
        if alias not in self.joins:
            raise KeyError(f"explore {self.explore.name!r} has no join {alias!r}")
        return self.model.view(self.joins[alias].view)

    def need(self, alias: str) -> None:
        if alias == self.explore.name or alias in self.needed:
            return
        join = self.joins[alias]
        for ref in _REFERENCE.findall(join.sql_on):
            other = ref.partition(".")[0]
            if other != alias:
                self.need(other)
        self.needed.append(alias)

    def field_sql(self, alias: str, name: str) -> tuple[str, str]:
        """(SQL, kind) of a field: kind is dimension, sum or count."""
        self.need(alias)
        view = self.view_of(alias)
        for dim in view.dimensions:
            if dim.name == name:
                return self.expand(alias, dim.sql), "dimension"
        for group in view.dimension_groups:
            for frame in group.timeframes:
                if f"{group.name}_{frame}" == name:
                    return _TIMEFRAME_SQL[frame].format(
                        sql=self.expand(alias, group.sql)
                    ), "dimension"
        for measure in view.measures:
            if measure.name == name:
                inner = self.expand(alias, measure.sql) if measure.sql else "*"
                return inner, measure.type
        raise KeyError(f"view {view.name!r} (as {alias}) has no field {name!r}")

    def expand(self, alias: str, sql: str) -> str:
        def replace(match: re.Match[str]) -> str:
            ref = match.group(1)
            if ref == "TABLE":
                return quote(alias)
            if "." in ref:
                other, _, name = ref.partition(".")
                return self.field_sql(other, name)[0]
            return self.field_sql(alias, ref)[0]

        return _REFERENCE.sub(replace, sql)


def explore_sql(
    model: Model, explore_name: str, dimensions: Sequence[str], measures: Sequence[str]
) -> str:
    """The SELECT an explore query on `dimensions` and `measures` (`view.field`) implies.

    Only the joins the fields need are included, as Looker does; measures here are
    `sum` and `count` over many_to_one joins, so no symmetric aggregates are needed.
    A test double of Looker's query compiler: it proves the generated joins on data.
    """
    explore = next(e for e in model.explores if e.name == explore_name)
    compiler = ExploreCompiler(model, explore)
    select = []
    for ref in dimensions:
        alias, _, name = ref.partition(".")
        select.append(compiler.field_sql(alias, name)[0])
    for ref in measures:
        alias, _, name = ref.partition(".")
        sql, kind = compiler.field_sql(alias, name)
        select.append("COUNT(*)" if kind == "count" else f"{kind.upper()}({sql})")
    base = model.view(explore.name)
    lines = [
        "SELECT " + ", ".join(select),
        f"FROM {base.sql_table_name} AS {quote(explore.name)}",
    ]
    for alias in compiler.needed:
        join = compiler.joins[alias]
        kind = "LEFT JOIN" if join.type == "left_outer" else "JOIN"
        on = compiler.expand(alias, join.sql_on)
        lines.append(f"{kind} {model.view(join.view).sql_table_name} AS {quote(alias)} ON {on}")
    if dimensions:
        positions = ", ".join(str(i) for i in range(1, len(dimensions) + 1))
        lines += [f"GROUP BY {positions}", f"ORDER BY {positions}"]
    return "\n".join(lines)


# end to end --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ifs() -> IfsCloudSandbox:
    config = SandboxConfig(
        companies=("US01", "DE01"),
        voucher_rows_per_company=120,
        orders_per_company=3,
        invoices_per_company=3,
    )
    with running_ifs_cloud(config) as sandbox:
        yield sandbox


def pipeline(ifs: IfsCloudSandbox, config: dict, tmp_path: Path) -> None:
    """`tap-ifscloud --config tap.json | target-looker --config target.json`, as processes."""
    tap_config = {
        "base_url": ifs.base_url,
        "realm": ifs.config.realm,
        "client_id": ifs.config.client_id,
        "client_secret": ifs.config.client_secret,
        "companies": list(ifs.config.companies),
        "start_date": "2020-01-01T00:00:00Z",
    }
    (tmp_path / "tap.json").write_text(json.dumps(tap_config))
    (tmp_path / "target.json").write_text(json.dumps(config))
    tap = subprocess.Popen(
        [BIN / "tap-ifscloud", "--config", tmp_path / "tap.json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    target = subprocess.run(
        [BIN / "target-looker", "--config", tmp_path / "target.json"],
        stdin=tap.stdout,
        capture_output=True,
        check=False,
    )
    assert tap.wait(timeout=120) == 0
    assert target.returncode == 0, target.stderr.decode()[-2000:]


def expected_by_group_and_month(ifs: IfsCloudSandbox) -> dict[tuple[str, str], Decimal]:
    groups = {
        (a["Company"], a["Account"]): a["AccntGroup"]
        for a in ifs.rows("VoucherRowsAnalysis", "Reference_Account")
    }
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in ifs.rows("VoucherRowsAnalysis", "VoucherRowSet"):
        totals[(groups[(row["Company"], row["Account"])], row["VoucherDate"][:7])] += row["Amount"]
    return dict(totals)


def expected_by_hierarchy_level_2(ifs: IfsCloudSandbox) -> dict[str, Decimal]:
    nodes = {
        (n["Company"], n["NodeId"]): n
        for n in ifs.rows("AccountingStructureHandling", "AccountingStructureItemSet")
    }
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in ifs.rows("VoucherRowsAnalysis", "VoucherRowSet"):
        node = nodes[(row["Company"], row["Account"])]
        for _ in range(2):
            node = nodes[(row["Company"], node["ParentNodeId"])]
        totals[node["Description"]] += row["Amount"]
    return dict(totals)


def test_explore_totals_equal_the_ifs_rows_summed_exactly(
    ifs: IfsCloudSandbox, config: dict, tmp_path: Path
) -> None:
    pipeline(ifs, config, tmp_path)
    warehouse = open_warehouse(config["warehouse_url"])
    warehouse.connect()
    try:
        schema = config["default_target_schema"]
        written = generate_lookml(warehouse, schema, tmp_path / "lookml", connection="wh")
        assert {p.name for p in written} >= {
            "voucher_rows.view.lkml",
            "gl_accounts.view.lkml",
            "cost_dimensions.view.lkml",
            "account_hierarchy.view.lkml",
            "ifs_cloud.model.lkml",
        }
        model = build_model(tables_in(warehouse, schema), connection="wh")
        sql = explore_sql(
            model,
            "voucher_rows",
            ["gl_accounts.accnt_group", "voucher_rows.voucher_month"],
            ["voucher_rows.total_amount"],
        )
        got = {(group, f"{month:%Y-%m}"): total for group, month, total in warehouse.fetchall(sql)}
        levels = explore_sql(
            model, "voucher_rows", ["account_parent_2.description"], ["voucher_rows.total_amount"]
        )
        by_level = dict(warehouse.fetchall(levels))
    finally:
        warehouse.close()
    expected = expected_by_group_and_month(ifs)
    assert len(expected) > 20
    assert got == expected
    assert by_level == expected_by_hierarchy_level_2(ifs)
    assert set(by_level) == {"Balance sheet", "Profit and loss"}  # nothing posts to statistics
    assert sum(by_level.values()) == sum(expected.values())


def test_generated_lookml_passes_the_looker_sandbox_project_validation(
    tmp_path: Path,
) -> None:
    specs = [
        TableSpec(
            "s",
            "voucher_rows",
            {"company": TEXT, "account": TEXT, "code_b": TEXT, "voucher_date": DATE, "amount": NUM},
            ("company", "account"),
        ),
        TableSpec(
            "s",
            "gl_accounts",
            {"company": TEXT, "account": TEXT, "accnt_group": TEXT},
            ("company", "account"),
        ),
        TableSpec(
            "s",
            "cost_dimensions",
            {"company": TEXT, "code_part": TEXT, "code": TEXT},
            ("company", "code_part", "code"),
        ),
        TableSpec(
            "s",
            "account_hierarchy",
            {
                "company": TEXT,
                "structure_id": TEXT,
                "node_id": TEXT,
                "parent_node_id": TEXT,
                "description": TEXT,
            },
            ("company", "structure_id", "node_id"),
        ),
    ]
    write_model(build_model(specs, connection="wh"), tmp_path / "project")
    config = LookerConfig(connections={"wh": f"duckdb:///{tmp_path / 'w.duckdb'}"})
    with running_looker(config, lookml_dirs={DEFAULT_MODEL: tmp_path / "project"}) as looker:
        credentials = LookerCredentials(looker.base_url, "looker-sandbox", "looker-sandbox-secret")
        with LookerClient(credentials) as client:
            assert client.validate_project("ifs_cloud")["errors"] == []
        # and the validator does catch a broken reference
        model_file = tmp_path / "project" / "ifs_cloud.model.lkml"
        model_file.write_text(
            model_file.read_text().replace("${gl_accounts.account}", "${gl_accounts.acct}")
        )
        with LookerClient(credentials) as client:
            errors = client.validate_project("ifs_cloud")["errors"]
        assert [e["message"] for e in errors] == [
            "Unknown field 'gl_accounts.acct' in voucher_rows"
        ]


# names LookML must not trust ---------------------------------------------------------------------

INJECTION = 'q" ;;\n}\ndimension: inj {sql: (SELECT 1) ;;}'
ODD_BUT_SAFE = ["a}b {", 'say "hi"', "new\nline", "tab\there", "# not a comment", "ÅÄÖ"]
UNSAFE = [INJECTION, "${TABLE}", "{{ _user_attributes['x'] }}", "{% if x %}"]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def parsed_views(project: Path) -> dict[str, list[str]]:
    """View name -> its field names, as the Looker sandbox's LookML parser reads the files."""
    errors: list[dict] = []
    blocks = [b for p in sorted(project.rglob("*.lkml")) for b in lint._parse(p, project, errors)]
    assert errors == []
    return {b.name: [c.name for c in b.children] for b in blocks if b.kind == "view"}


def test_table_names_cannot_write_outside_lookml_dir(tmp_path: Path) -> None:
    names = ["../../x", "/abs/path/x", "x", "a/b", "..", "views/../../y", "c"]
    tables = [TableSpec("s", name, {"id": TEXT}, ("id",)) for name in names]
    project = tmp_path / "deep" / "project"
    written = write_model(build_model(tables, connection="wh"), project)
    assert files_under(tmp_path) == files_under(project) == set(written)
    assert sorted(p.name for p in written) == [
        "a_b.view.lkml",
        "abs_path_x.view.lkml",
        "c.view.lkml",
        "ifs_cloud.model.lkml",
        "view.view.lkml",
        "views_y.view.lkml",
        "x.view.lkml",
        "x_.view.lkml",
    ]
    assert set(parsed_views(project)) == {"x", "abs_path_x", "x_", "a_b", "view", "views_y", "c"}
    assert lint.lint_project(project) == []
    # each view still reads its own table
    view = build_model(tables, connection="wh").views[0]
    assert view.sql_table_name == '"s"."../../x"'


def test_model_names_and_a_symlink_leading_out_are_refused(tmp_path: Path) -> None:
    tables = [TableSpec("s", "orders", {"id": TEXT}, ("id",))]
    model = build_model(tables, connection="wh", model_name="../../evil")
    assert model.name == "evil"
    project, outside = tmp_path / "project", tmp_path / "outside"
    outside.mkdir()
    project.mkdir()
    (project / "views").symlink_to(outside)
    with pytest.raises(LookMLError, match="outside lookml_dir") as caught:
        write_model(model, project)
    assert list(outside.iterdir()) == []
    assert caught.value.written == [project / "evil.model.lkml"]


def test_names_cannot_inject_lookml(tmp_path: Path) -> None:
    columns = {"id": TEXT, **dict.fromkeys(ODD_BUT_SAFE + UNSAFE, TEXT), "amount": NUM}
    tables = [
        TableSpec("s", "orders", columns, ("id",)),
        TableSpec("s", "bad;;table", {"id": TEXT}, ("id",)),
    ]
    model = build_model(tables, connection='wh"\ninclude: "/evil/*.lkml', model_name="m")
    assert len(model.skipped) == len(UNSAFE) + 1
    assert any("bad;;table" in reason and "no view" in reason for reason in model.skipped)
    write_model(model, tmp_path / "project")
    assert lint.lint_project(tmp_path / "project") == []
    fields = parsed_views(tmp_path / "project")["orders"]
    assert fields == [
        "id",
        "a_b",
        "say_hi",
        "new_line",
        "tab_here",
        "not_a_comment",
        "field",  # ÅÄÖ has no [a-z0-9_] at all
        "amount",
        "count",
        "total_amount",
    ]
    view_text = (tmp_path / "project" / "views" / "orders.view.lkml").read_text()
    assert '${TABLE}."say ""hi""" ;;' in view_text
    assert '${TABLE}."new\nline" ;;' in view_text  # SQL blocks may span lines
    assert "inj" not in view_text and "_user_attributes" not in view_text
    model_text = (tmp_path / "project" / "m.model.lkml").read_text()
    assert [line for line in model_text.splitlines() if line.startswith("include:")] == [
        'include: "/views/*.view.lkml"'
    ]
    assert model_text.startswith('connection: "wh\\" include: \\"/evil/*.lkml"\n')


def test_the_renderer_refuses_what_would_change_the_structure() -> None:
    with pytest.raises(ValueError, match="not a LookML name"):
        render(Node("view", "x {"))
    with pytest.raises(ValueError, match="cannot be written into LookML"):
        render(Node("view", "x", (("sql_table_name", 'a ;; } view: y { "'),)))
    with pytest.raises(ValueError, match="not a LookML name"):
        render(Node("dimension", "d", (("type", "string\n  hidden: yes"),)))
    label = render(Explore("e", 'GL "rows"\n}\nexplore: x {').node())
    assert label == 'explore: e {\n  label: "GL \\"rows\\" } explore: x {"\n}\n'


def test_preserved_stream_and_property_names_generate_safe_lookml(
    config: dict, tmp_path: Path
) -> None:
    props = {"Id": {"type": "integer"}, INJECTION: {"type": ["string", "null"]}}
    props.update({name: {"type": ["string", "null"]} for name in ('say "hi"', "a}b {")})
    text = lines(
        schema("../../x", props, ["Id"]),
        record("../../x", {"Id": 1, INJECTION: "v", 'say "hi"': "h", "a}b {": "b"}),
    )
    run({**config, "column_naming": "preserve"}, text)
    project = tmp_path / "lookml" / "project"
    warehouse = open_warehouse(config["warehouse_url"])
    warehouse.connect()
    try:
        written = generate_lookml(
            warehouse, config["default_target_schema"], project, connection="wh"
        )
    finally:
        warehouse.close()
    assert files_under(tmp_path / "lookml") == set(written)
    assert {p.name for p in written} == {"x.view.lkml", "ifs_cloud.model.lkml"}
    assert lint.lint_project(project) == []
    fields = parsed_views(project)["x"]
    assert "inj" not in fields
    assert {"id", "say_hi", "a_b"} <= set(fields)


# a failed write is reported ----------------------------------------------------------------------


def test_a_file_that_cannot_be_written_fails_loudly_after_writing_the_rest(tmp_path: Path) -> None:
    tables = [TableSpec("s", name, {"id": TEXT}, ("id",)) for name in ("a", "b", "c")]
    project = tmp_path / "project"
    (project / "views" / "b.view.lkml").mkdir(parents=True)  # in the way: not a file
    with pytest.raises(LookMLError, match=r"1 of 4 files not written") as caught:
        write_model(build_model(tables, connection="wh"), project)
    assert [path.name for path, _ in caught.value.failures] == ["b.view.lkml"]
    assert sorted(p.name for p in caught.value.written) == [
        "a.view.lkml",
        "c.view.lkml",
        "ifs_cloud.model.lkml",
    ]
    assert not list(project.rglob(".*.tmp"))  # no half-written files left behind


def test_a_lookml_dir_that_cannot_be_created_is_a_lookml_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    tables = [TableSpec("s", "a", {"id": TEXT}, ("id",))]
    with pytest.raises(LookMLError, match="cannot create") as caught:
        write_model(build_model(tables, connection="wh"), tmp_path / "file" / "project")
    assert caught.value.written == []
    assert len(caught.value.failures) == 2


def test_views_quote_and_cast_in_the_warehouses_own_dialect() -> None:
    """Looker sends a view's SQL to the warehouse: BigQuery needs backticks and STRING."""
    warehouse = open_warehouse("bigquery://acme-proj/finance")
    ref = TableRef("finance", "voucher_rows")
    spec = TableSpec(
        "finance",
        "voucher_rows",
        {"company": TEXT, "voucher_no": TEXT, "amount": NUM},
        ("company", "voucher_no"),
        sql_table_name=warehouse.qualified(ref),
        quote=warehouse.quote,
        text_type=warehouse.sql_text_type,
    )
    view = build_view(spec)
    text = render(view.node())
    assert "`acme-proj`.`finance`.`voucher_rows`" in text
    assert "${TABLE}.`amount`" in text
    assert "AS STRING)" in text
    assert '"' + "amount" + '"' not in text
