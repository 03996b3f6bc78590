"""Plugin settings read from a JSON config file, as the operations commands take them.

`check` and `describe` read the same files Meltano would hand the plugins; a file that
cannot be read, is not JSON, is not an object or holds a `fernet:` value that does not
decrypt is one clear `ValueError` naming the file, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ifs_looker_core.encrypted_settings import SecretError, decrypt_settings


def load_settings(path: Path, secrets: tuple[str, ...]) -> dict[str, Any]:
    """The settings in `path`, with the `secrets` among them decrypted."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object of settings")
    try:
        return decrypt_settings(config, secrets)
    except SecretError as exc:
        raise ValueError(str(exc)) from None
