"""No secret, token or Authorization header in anything a full run prints, even at DEBUG."""

from __future__ import annotations

import uuid

import pytest

from ifs_looker_core.encrypted_settings import KEY_ENV, encrypt, generate_key

from .conftest import MeltanoRunner, assert_warehouse_equals_sandbox, make_warehouse, meltano_env


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "fernet"])
def test_debug_run_leaks_no_secret(
    meltano: MeltanoRunner, sandbox_factory, tmp_path, encrypted: bool
) -> None:
    client_secret = f"ifs-Secret-{uuid.uuid4().hex}"
    pg_password = f"pg-Pass-{uuid.uuid4().hex}"
    sandbox = sandbox_factory(client_secret=client_secret, voucher_rows_per_company=60)
    warehouses = make_warehouse("postgres", tmp_path, password=pg_password)
    warehouse = next(warehouses)
    try:
        env = meltano_env(tmp_path, sandbox, warehouse)
        key = generate_key()
        if encrypted:
            env[KEY_ENV] = key
            env["TAP_IFSCLOUD_CLIENT_SECRET"] = encrypt(client_secret, key)
            env["TARGET_LOOKER_WAREHOUSE_URL"] = encrypt(warehouse.url, key)
        env["LOGLEVEL"] = "DEBUG"
        result = meltano(env, "--log-level=debug", "run", "tap-ifscloud", "target-looker")
        assert result.returncode == 0, result.stderr[-3000:]
        assert_warehouse_equals_sandbox(warehouse, sandbox)
        output = result.stdout + result.stderr
        assert "DEBUG" in output.upper()
        tokens = list(sandbox.tokens._tokens)
        assert tokens
        for secret in [client_secret, pg_password, key, *tokens]:
            assert secret not in output
        assert "Bearer " not in output
        if encrypted:
            assert env["TAP_IFSCLOUD_CLIENT_SECRET"] not in output
    finally:
        next(warehouses, None)
