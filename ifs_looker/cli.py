"""`ifs-looker`: the operations command (sandbox, check, secrets, replay-rejects).

Each subcommand lives in its own module, named in COMMANDS, which must offer
`add_arguments(parser)` and `run(args) -> int`. Modules are imported lazily so
that `ifs-looker sandbox` does not pay for the warehouse drivers and vice versa.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "sandbox": ("ifs_looker.sandbox_cli", "run the local IFS Cloud (and Looker) sandboxes"),
    "secrets": ("ifs_looker.secrets_cli", "make keys and encrypt settings (fernet:...)"),
    "check": ("ifs_looker.check", "check IFS Cloud, Looker and the warehouse before a run"),
    "replay-rejects": ("ifs_looker.replay_rejects", "retry records in _load_rejects"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered command."""
    parser = argparse.ArgumentParser(prog="ifs-looker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
