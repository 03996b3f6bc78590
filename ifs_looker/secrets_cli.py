"""Make a Fernet key and encrypt setting values for `fernet:` settings.

  ifs-looker secrets generate-key [--key-file PATH]
  printf %s "$SECRET" | ifs-looker secrets encrypt     # value from stdin, never from argv

`encrypt` reads the key from $IFS_LOOKER_SECRET_KEY or $IFS_LOOKER_SECRET_KEY_FILE.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ifs_looker_core.encrypted_settings import SecretError, encrypt, generate_key, load_key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    actions = parser.add_subparsers(dest="action", required=True)
    generate = actions.add_parser("generate-key", help="print a new key, or write it to a file")
    generate.add_argument("--key-file", type=Path, help="write the key here (mode 600)")
    actions.add_parser("encrypt", help="encrypt the value read from stdin; prints fernet:...")


def run(args: argparse.Namespace) -> int:
    try:
        return _generate(args) if args.action == "generate-key" else _encrypt()
    except SecretError as exc:
        print(f"ifs-looker secrets: {exc}", file=sys.stderr)
        return 2


def _generate(args: argparse.Namespace) -> int:
    key = generate_key()
    if args.key_file is None:
        print(key)
        return 0
    path: Path = args.key_file
    if path.exists():
        raise SecretError(f"{path} exists already; refusing to overwrite a key")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    print(f"key written to {path}; export IFS_LOOKER_SECRET_KEY_FILE={path}")
    return 0


def _encrypt() -> int:
    if sys.stdin.isatty():
        print("Type the value, then Ctrl-D:", file=sys.stderr)
    value = sys.stdin.read()
    if value.endswith("\n"):
        value = value[:-1]
    if not value:
        raise SecretError("nothing to encrypt: the value on stdin is empty")
    key, _ = load_key()
    print(encrypt(value, key))
    return 0
