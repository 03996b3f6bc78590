"""`ifs-looker secrets`: keys and encrypted values from the command line; values only on stdin."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from ifs_looker_core.encrypted_settings import KEY_ENV, decrypt


def ifs_looker(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ifs_looker.cli", "secrets", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_generate_key_then_encrypt_from_stdin() -> None:
    key = ifs_looker("generate-key").stdout.strip()
    result = ifs_looker("encrypt", stdin="the-secret\n", env={KEY_ENV: key})
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("fernet:")
    assert decrypt("client_secret", token, {KEY_ENV: key}) == "the-secret"


def test_key_file_is_private_and_never_overwritten(tmp_path) -> None:
    key_file = tmp_path / "keys" / "secret.key"
    assert ifs_looker("generate-key", "--key-file", str(key_file)).returncode == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = ifs_looker("generate-key", "--key-file", str(key_file))
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr


def test_encrypt_without_key_or_value_fails_clearly() -> None:
    env = {KEY_ENV: "", "IFS_LOOKER_SECRET_KEY_FILE": ""}
    no_key = ifs_looker("encrypt", stdin="hunter2-distinct", env=env)
    assert no_key.returncode == 2
    assert "no decryption key" in no_key.stderr
    assert "hunter2-distinct" not in no_key.stderr + no_key.stdout
    empty = ifs_looker(
        "encrypt", stdin="", env={KEY_ENV: ifs_looker("generate-key").stdout.strip()}
    )
    assert empty.returncode == 2
    assert "empty" in empty.stderr
