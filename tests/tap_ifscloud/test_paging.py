"""Key-set paging against the sandbox: what is requested, when paging stops."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tap_ifscloud.api import Connection, IFSApi, retry_policy
from tap_ifscloud.errors import IFSResponseError
from tap_ifscloud.paging import KeysetReader

from .conftest import running_sandbox, sandbox_rows, tap_config

ORDER = (("Company", "string"), ("Account", "string"))


def reader(sandbox, page_size: int, **kwargs) -> KeysetReader:
    config = tap_config(sandbox)
    api = IFSApi(Connection.from_config(config), retry_policy(config))
    return KeysetReader(
        api.get_json,
        f"{sandbox.service_url('VoucherRowsAnalysis')}/Reference_Account",
        base_filter="Company eq 'US01'",
        order_fields=ORDER,
        select=["Company", "Account", "Description"],
        page_size=page_size,
        **kwargs,
    )


def account_queries(sandbox) -> list[dict[str, list[str]]]:
    return [
        parse_qs(urlsplit(unquote(path)).query)
        for method, path, status in sandbox.request_log
        if "/Reference_Account?" in path and status == 200
    ]


@pytest.fixture(scope="module")
def accounts_sandbox():
    with running_sandbox(companies=("US01",), voucher_rows_per_company=10) as sandbox:
        yield sandbox


def test_pages_follow_the_last_row_not_an_offset(accounts_sandbox):
    sandbox = accounts_sandbox
    expected = [
        r["Account"]
        for r in sandbox_rows(sandbox, "VoucherRowsAnalysis", "Reference_Account")
        if r["Company"] == "US01"
    ]
    sandbox.request_log.clear()
    pages = list(reader(sandbox, 10).pages())
    assert [r["Account"] for page in pages for r in page] == sorted(expected)
    queries = account_queries(sandbox)
    assert all("$skip" not in q for q in queries)
    assert queries[0]["$filter"] == ["Company eq 'US01'"]
    last_of_first = pages[0][-1]["Account"]
    assert queries[1]["$filter"] == [
        f"(Company eq 'US01') and ((Company gt 'US01') or (Company eq 'US01' and "
        f"(Account gt '{last_of_first}')))"
    ]
    assert queries[0]["$orderby"] == ["Company asc,Account asc"]
    assert queries[0]["$top"] == ["10"]
    # a short page ends the read: no request after it
    assert len(queries) == -(-len(expected) // 10) + (len(expected) % 10 == 0)


def test_max_pages_stops_early(accounts_sandbox):
    pages = list(reader(accounts_sandbox, 5, max_pages=1).pages())
    assert len(pages) == 1
    assert len(pages[0]) == 5


def test_next_links_must_stay_on_the_ifs_host(accounts_sandbox):
    keyset = reader(accounts_sandbox, 5)
    same = keyset._next_link({"@odata.nextLink": "Reference_Account?$skip=5"})
    assert same.startswith(accounts_sandbox.base_url)
    with pytest.raises(IFSResponseError, match="nextLink to another host"):
        keyset._next_link({"@odata.nextLink": "https://elsewhere.example/steal?$skip=5"})
