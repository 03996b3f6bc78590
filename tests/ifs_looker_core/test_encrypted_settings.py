"""`fernet:` settings: round trip, and errors that name the setting but never the value."""

from __future__ import annotations

import pytest

from ifs_looker_core.encrypted_settings import (
    KEY_ENV,
    KEY_FILE_ENV,
    SecretError,
    decrypt,
    decrypt_settings,
    encrypt,
    generate_key,
)

SECRET = "s3cr3t-Ünïcode 'quoted' value"


def test_round_trip_with_key_from_environment() -> None:
    key = generate_key()
    token = encrypt(SECRET, key)
    assert token.startswith("fernet:")
    assert SECRET not in token
    assert decrypt("client_secret", token, {KEY_ENV: key}) == SECRET


def test_key_from_file(tmp_path) -> None:
    key = generate_key()
    key_file = tmp_path / "secret.key"
    key_file.write_text(key + "\n")
    token = encrypt(SECRET, key)
    assert decrypt("client_secret", token, {KEY_FILE_ENV: str(key_file)}) == SECRET


def test_plain_values_pass_through_untouched() -> None:
    assert decrypt("client_secret", "plain-value", {}) == "plain-value"
    config = {"client_secret": "plain", "warehouse_url": None, "other": "fernet:not-a-secret"}
    assert decrypt_settings(config, ("client_secret", "warehouse_url"), {}) == config


def test_decrypt_settings_only_touches_named_settings() -> None:
    key = generate_key()
    config = {"client_secret": encrypt("a", key), "looker_client_secret": encrypt("b", key)}
    resolved = decrypt_settings(config, ("client_secret",), {KEY_ENV: key})
    assert resolved["client_secret"] == "a"
    assert resolved["looker_client_secret"] == config["looker_client_secret"]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "setting 'client_secret' is encrypted but no decryption key"),
        (
            {KEY_ENV: generate_key()},
            "setting 'client_secret': the encrypted value cannot be decrypted",
        ),
        ({KEY_ENV: "not-a-key"}, "setting 'client_secret' is encrypted but the key in"),
        ({KEY_ENV: "not-a-key"}, "is not a Fernet key"),
        ({KEY_FILE_ENV: "/nonexistent/key"}, "setting 'client_secret' is encrypted but"),
        ({KEY_FILE_ENV: "/nonexistent/key"}, "cannot be read"),
    ],
)
def test_errors_name_the_setting_and_never_the_value(environ: dict, message: str) -> None:
    token = encrypt(SECRET, generate_key())
    with pytest.raises(SecretError) as caught:
        decrypt("client_secret", token, environ)
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)
    assert token not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
