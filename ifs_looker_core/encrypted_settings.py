"""Encrypted settings: `fernet:<token>` values, decrypted with a key the operator holds.

A setting may be stored in `meltano.yml`, a `.env` file or a Singer config as
`fernet:gAAAA...`; tap and target resolve it here, once, at start-up. The key
comes from the environment variable `IFS_LOOKER_SECRET_KEY`, or from the file
named by `IFS_LOOKER_SECRET_KEY_FILE`. Errors name the setting and the key
source, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "fernet:"
KEY_ENV = "IFS_LOOKER_SECRET_KEY"
KEY_FILE_ENV = "IFS_LOOKER_SECRET_KEY_FILE"


class SecretError(ValueError):
    """A secret setting that cannot be used; the message never contains the value."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def load_key(environ: Mapping[str, str] | None = None) -> tuple[bytes, str]:
    """The Fernet key and where it came from (for error messages)."""
    environ = os.environ if environ is None else environ
    if environ.get(KEY_ENV):
        return environ[KEY_ENV].strip().encode(), f"${KEY_ENV}"
    if environ.get(KEY_FILE_ENV):
        path = Path(environ[KEY_FILE_ENV]).expanduser()
        try:
            return path.read_text().strip().encode(), str(path)
        except OSError as exc:
            raise SecretError(
                f"the key file {path} (from ${KEY_FILE_ENV}) cannot be read: {exc.strerror}"
            ) from None
    raise SecretError(f"no decryption key: set ${KEY_ENV} or ${KEY_FILE_ENV}")


def _fernet(key: bytes, source: str) -> Fernet:
    try:
        return Fernet(key)
    except ValueError:
        raise SecretError(
            f"the key in {source} is not a Fernet key (32 url-safe base64-encoded bytes); "
            "make one with `ifs-looker secrets generate-key`"
        ) from None


def encrypt(value: str, key: bytes | str) -> str:
    raw = key.encode() if isinstance(key, str) else key
    return PREFIX + _fernet(raw, "the given key").encrypt(value.encode()).decode()


def decrypt(setting: str, value: str, environ: Mapping[str, str] | None = None) -> str:
    """Decrypt one `fernet:` value; plain values pass through unchanged."""
    if not is_encrypted(value):
        return value
    key, source = load_key_for(setting, environ)
    try:
        fernet = _fernet(key, source)
    except SecretError as exc:
        raise SecretError(f"setting '{setting}' is encrypted but {exc}") from None
    try:
        return fernet.decrypt(value[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise SecretError(
            f"setting '{setting}': the encrypted value cannot be decrypted with the key from "
            f"{source} (wrong key, or the value was damaged)"
        ) from None


def load_key_for(setting: str, environ: Mapping[str, str] | None = None) -> tuple[bytes, str]:
    try:
        return load_key(environ)
    except SecretError as exc:
        raise SecretError(f"setting '{setting}' is encrypted but {exc}") from None


def decrypt_settings(
    config: Mapping[str, object], names: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> dict[str, object]:
    """A copy of `config` with the named settings decrypted where they are `fernet:` values."""
    resolved = dict(config)
    for name in names:
        value = resolved.get(name)
        if is_encrypted(value):
            resolved[name] = decrypt(name, value, environ)  # type: ignore[arg-type]
    return resolved
