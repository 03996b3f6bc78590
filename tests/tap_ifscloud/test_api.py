"""Reaching IFS: settings to URLs, transport rules, IFS's own error messages."""

from __future__ import annotations

import pytest
import requests

from tap_ifscloud.api import Connection, describe_error
from tap_ifscloud.errors import ConfigurationError

BASE = {"client_id": "c", "client_secret": "s3cr3t-value", "companies": ["US01"]}


def test_token_url_comes_from_realm_or_is_explicit():
    conn = Connection.from_config({**BASE, "base_url": "https://acme.ifs.cloud/", "realm": "acme1"})
    assert (
        conn.token_url == "https://acme.ifs.cloud/auth/realms/acme1/protocol/openid-connect/token"
    )
    assert conn.projection_url("VoucherRowsAnalysis") == (
        "https://acme.ifs.cloud/main/ifsapplications/projection/v1/VoucherRowsAnalysis.svc"
    )
    explicit = Connection.from_config(
        {**BASE, "base_url": "https://a.example", "token_url": "https://iam.example/t"}
    )
    assert explicit.token_url == "https://iam.example/t"
    assert "s3cr3t-value" not in repr(explicit)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"base_url": "https://a.example"}, "set either realm"),
        ({"base_url": "", "realm": "r"}, "base_url is required"),
        ({"base_url": "http://ifs.example.com", "realm": "r"}, "plain http to a non-loopback"),
        ({"base_url": "ftp://ifs.example.com", "realm": "r"}, "is not an http"),
    ],
)
def test_bad_connection_settings(config, message):
    with pytest.raises(ConfigurationError, match=message):
        Connection.from_config({**BASE, **config})


def test_plain_http_is_fine_on_loopback_or_when_allowed():
    Connection.from_config({**BASE, "base_url": "http://127.0.0.1:8080", "realm": "r"})
    Connection.from_config({**BASE, "base_url": "http://localhost", "realm": "r"})
    Connection.from_config(
        {**BASE, "base_url": "http://ifs.lan", "realm": "r", "allow_insecure_http": True}
    )


def test_describe_error_carries_ifs_code_message_and_details():
    response = requests.Response()
    response.status_code = 400
    response._content = (
        b'{"error": {"code": "ODP_BAD_REQUEST", "message": "The property \'X\' is not defined.",'
        b' "details": [{"code": "D", "message": "Check the $filter."}]}}'
    )
    text = describe_error(response, "https://ifs.example/p?$filter=X eq 1&access_token=t0k")
    assert text.startswith("IFS answered GET https://ifs.example/p?$filter=X eq 1")
    assert (
        "HTTP 400 (ODP_BAD_REQUEST): The property 'X' is not defined. [Check the $filter.]" in text
    )
    assert "t0k" not in text
