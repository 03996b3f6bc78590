"""An OData client for sandbox tests: a requests session holding a bearer token."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox


class ODataClient:
    def __init__(self, sandbox: IfsCloudSandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.login()

    def login(self) -> None:
        config = self.sandbox.config
        response = self.session.post(
            self.sandbox.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "scope": "openid microprofile-jwt",
            },
            timeout=10,
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def url(self, projection: str, rest: str) -> str:
        return f"{self.sandbox.service_url(projection)}/{rest}"

    def get(self, projection: str, rest: str, **params: str) -> requests.Response:
        return self.session.get(self.url(projection, rest), params=params, timeout=10)

    def rows(self, projection: str, entity_set: str, **params: str) -> list[dict]:
        response = self.get(projection, entity_set, **params)
        assert response.status_code == 200, response.text
        return response.json(parse_float=Decimal)["value"]


@pytest.fixture
def client(ifs_sandbox: IfsCloudSandbox) -> ODataClient:
    return ODataClient(ifs_sandbox)
