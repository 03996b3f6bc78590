"""The sandbox over real HTTP: tokens, query options, paging, errors and writes, as IFS answers."""

from __future__ import annotations

import base64
from decimal import Decimal

import requests

from ifs_looker_sandboxes.clock import ManualClock
from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox

from .conftest import ODataClient

VOUCHERS = ("VoucherRowsAnalysis", "VoucherRowSet")


def token_request(sandbox: IfsCloudSandbox, secret: str) -> requests.Response:
    return requests.post(
        sandbox.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.config.client_id,
            "client_secret": secret,
            "scope": "openid microprofile-jwt",
        },
        timeout=10,
    )


# tokens ------------------------------------------------------------------------------------------


def test_token_response_has_keycloak_shape(ifs_sandbox: IfsCloudSandbox) -> None:
    body = token_request(ifs_sandbox, "sandbox-secret").json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) > 20


def test_wrong_secret_gets_oauth_error(ifs_sandbox: IfsCloudSandbox) -> None:
    response = token_request(ifs_sandbox, "not-the-secret")
    assert response.status_code == 401
    assert response.json() == {
        "error": "unauthorized_client",
        "error_description": "Invalid client or Invalid client credentials",
    }


def test_requests_without_or_with_a_bad_token_get_401(ifs_sandbox: IfsCloudSandbox) -> None:
    url = f"{ifs_sandbox.service_url('VoucherRowsAnalysis')}/VoucherRowSet"
    assert requests.get(url, timeout=10).status_code == 401
    response = requests.get(url, headers={"Authorization": "Bearer forged"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid access token."


def test_token_expires_after_its_lifetime(sandbox_factory) -> None:
    clock = ManualClock()
    sandbox = sandbox_factory(time_source=clock, token_lifetime=60, voucher_rows_per_company=10)
    client = ODataClient(sandbox)
    assert client.get(*VOUCHERS, **{"$top": "1"}).status_code == 200
    clock.advance(59.5)
    assert client.get(*VOUCHERS, **{"$top": "1"}).status_code == 200
    clock.advance(0.5)  # exactly the lifetime
    expired = client.get(*VOUCHERS, **{"$top": "1"})
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "Access token expired."
    client.login()
    assert client.get(*VOUCHERS, **{"$top": "1"}).status_code == 200


# query options -----------------------------------------------------------------------------------


def test_response_shape_and_row_annotations(client: ODataClient) -> None:
    response = client.get(*VOUCHERS, **{"$top": "2"})
    assert response.headers["Content-Type"].startswith("application/json;odata.metadata=minimal")
    body = response.json()
    assert body["@odata.context"].endswith("VoucherRowsAnalysis.svc/$metadata#VoucherRowSet")
    assert len(body["value"]) == 2
    for row in body["value"]:
        assert {"@odata.etag", "luname", "keyref", "Objgrants"} <= set(row)
        decoded = base64.b64decode(row["@odata.etag"][3:-1]).decode()
        row_id, objversion = decoded[3:-1].split(":")
        assert len(row_id) == 18 and len(objversion) == 14 and objversion.isdigit()


def test_filter_selects_exactly_the_matching_rows(client: ODataClient) -> None:
    everything = client.sandbox.rows(*VOUCHERS)
    expected = {
        (r["VoucherType"], r["VoucherNo"], r["RowNo"])
        for r in everything
        if r["Company"] == "DE01" and "2025-06-01" <= r["EntryDate"] < "2025-07-01"
    }
    rows = client.rows(
        *VOUCHERS,
        **{"$filter": "Company eq 'DE01' and EntryDate ge 2025-06-01 and EntryDate lt 2025-07-01"},
    )
    assert expected
    assert {(r["VoucherType"], r["VoucherNo"], r["RowNo"]) for r in rows} == expected


def test_orderby_several_fields_ascending_and_descending(client: ODataClient) -> None:
    rows = client.rows(
        *VOUCHERS, **{"$filter": "Company eq 'SE01'", "$orderby": "EntryDate desc,VoucherNo asc"}
    )
    pairs = [(r["EntryDate"], -r["VoucherNo"]) for r in rows]
    assert pairs == sorted(pairs, reverse=True)


def test_select_returns_chosen_fields_plus_keys_and_etag(client: ODataClient) -> None:
    body = client.get(
        "VoucherRowsAnalysis", "Reference_Account", **{"$select": "Description", "$top": "3"}
    ).json()
    assert body["@odata.context"].endswith("#Reference_Account(Description)")
    assert [set(r) for r in body["value"]] == [
        {"@odata.etag", "Company", "Account", "Description"}
    ] * 3


def test_top_skip_and_count(client: ODataClient) -> None:
    params = {"$filter": "Company eq 'US01'", "$orderby": "Account"}
    everything = client.rows("VoucherRowsAnalysis", "Reference_Account", **params)
    body = client.get(
        "VoucherRowsAnalysis",
        "Reference_Account",
        **params,
        **{"$top": "4", "$skip": "3", "$count": "true"},
    ).json()
    assert body["@odata.count"] == len(everything)
    assert body["value"] == everything[3:7]


def test_top_skip_paging_until_a_short_page_sees_every_row(client: ODataClient) -> None:
    seen: list[dict] = []
    while True:
        page = client.rows(
            *VOUCHERS, **{"$orderby": "Company", "$top": "250", "$skip": str(len(seen))}
        )
        seen += page
        if len(page) < 250:
            break
    assert len(seen) == len(client.sandbox.rows(*VOUCHERS))
    assert "@odata.nextLink" not in client.get(*VOUCHERS, **{"$top": "250"}).json()


def test_server_driven_paging_follows_next_links(sandbox_factory) -> None:
    sandbox = sandbox_factory(server_page_size=7, voucher_rows_per_company=40)
    client = ODataClient(sandbox)
    url = client.url(*VOUCHERS) + "?$orderby=VoucherNo&$top=50"
    seen, pages = [], 0
    while url:
        body = client.session.get(url, timeout=10).json()
        assert len(body["value"]) <= 7
        seen += body["value"]
        url = body.get("@odata.nextLink")
        pages += 1
    assert len(seen) == 50 and pages == 8
    everything = client.rows(*VOUCHERS, **{"$orderby": "VoucherNo", "$top": "1000"})
    assert len(everything) == 7  # the server caps every answer at its page size
    unbounded, url = [], client.url(*VOUCHERS)
    while url:
        body = client.session.get(url, timeout=10).json()
        unbounded += body["value"]
        url = body.get("@odata.nextLink")
    assert len(unbounded) == len(sandbox.rows(*VOUCHERS))


def test_decimals_beyond_float_precision_are_served_exactly(client: ODataClient) -> None:
    raw = client.get(*VOUCHERS).text
    served = [r["Amount"] for r in client.sandbox.rows(*VOUCHERS)]
    big = [a for a in served if abs(a) >= Decimal(10) ** 13]
    assert big, "the data set must include amounts beyond float precision"
    assert all(str(a) in raw for a in big)
    assert any(float(str(a)) != a for a in big)


# errors ------------------------------------------------------------------------------------------


def test_unknown_property_gets_ifs_400_body(client: ODataClient) -> None:
    response = client.get(*VOUCHERS, **{"$filter": "Bogus eq 'x'"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"]
    assert error["message"] == (
        "The property 'Bogus', used in a query expression, is not defined in type "
        "'IfsApp.VoucherRowsAnalysis.VoucherRow'."
    )
    assert isinstance(error["details"], list)


def test_unknown_projection_gets_metadata_not_found(client: ODataClient) -> None:
    response = client.get("NoSuchProjection", "$metadata")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Metadata not found."


def test_unknown_entity_set_gets_404(client: ODataClient) -> None:
    response = client.get("VoucherRowsAnalysis", "NoSuchSet")
    assert response.status_code == 404
    assert "NoSuchSet" in response.json()["error"]["message"]


def test_bad_top_gets_400(client: ODataClient) -> None:
    response = client.get(*VOUCHERS, **{"$top": "-1"})
    assert response.status_code == 400
    assert "non-negative integer" in response.json()["error"]["message"]


def test_int_path_serves_the_same_projection(client: ODataClient) -> None:
    url = client.url(*VOUCHERS).replace("/main/", "/int/")
    assert client.session.get(url, params={"$top": "1"}, timeout=10).status_code == 200


# writes ------------------------------------------------------------------------------------------


def test_patch_with_if_match_updates_and_changes_the_etag(sandbox_factory) -> None:
    client = ODataClient(sandbox_factory(voucher_rows_per_company=10))
    url = client.url("VoucherRowsAnalysis", "Reference_Account(Company='US01',Account='1010')")
    before = client.session.get(url, timeout=10)
    etag = before.headers["ETag"]
    assert etag == before.json()["@odata.etag"]
    updated = client.session.patch(
        url, json={"Description": "Cash (renamed)"}, headers={"If-Match": etag}, timeout=10
    )
    assert updated.status_code == 200
    assert updated.json()["Description"] == "Cash (renamed)"
    assert updated.headers["ETag"] != etag
    stale = client.session.patch(
        url, json={"Description": "lost update"}, headers={"If-Match": etag}, timeout=10
    )
    assert stale.status_code == 412
    assert stale.json()["error"]["message"]
    assert client.session.get(url, timeout=10).json()["Description"] == "Cash (renamed)"


def test_patch_without_if_match_is_an_upsert(sandbox_factory) -> None:
    client = ODataClient(sandbox_factory(voucher_rows_per_company=10))
    url = client.url("VoucherRowsAnalysis", "Reference_CodeB(Company='US01',CodeB='999')")
    assert client.session.get(url, timeout=10).status_code == 404
    created = client.session.patch(url, json={"Description": "New cost centre"}, timeout=10)
    assert created.status_code == 201
    assert client.session.get(url, timeout=10).json()["Description"] == "New cost centre"


def test_patch_refuses_unknown_properties_and_bad_values(sandbox_factory) -> None:
    client = ODataClient(sandbox_factory(voucher_rows_per_company=10))
    url = client.url("VoucherRowsAnalysis", "Reference_Account(Company='US01',Account='1010')")
    assert client.session.patch(url, json={"Bogus": 1}, timeout=10).status_code == 400
    bad_date = client.session.patch(url, json={"ValidFrom": "soon"}, timeout=10)
    assert bad_date.status_code == 400
    assert "ValidFrom" in bad_date.json()["error"]["message"]


def test_delete_with_stale_etag_is_refused(sandbox_factory) -> None:
    client = ODataClient(sandbox_factory(voucher_rows_per_company=10))
    url = client.url("VoucherRowsAnalysis", "Reference_CodeC(Company='DE01',CodeC='P1001')")
    etag = client.session.get(url, timeout=10).headers["ETag"]
    client.session.patch(url, json={"Description": "changed"}, timeout=10)
    assert client.session.delete(url, headers={"If-Match": etag}, timeout=10).status_code == 412
    fresh = client.session.get(url, timeout=10).headers["ETag"]
    assert client.session.delete(url, headers={"If-Match": fresh}, timeout=10).status_code == 204
    assert client.session.get(url, timeout=10).status_code == 404
