"""`ifs-looker`: the operations command (sandbox, check, secrets, replay-rejects).

Each subcommand lives in its own module, named in COMMANDS, which must offer
`add_arguments(parser)` and `run(args) -> int`. Only the module of the command
being run is imported, so `ifs-looker sandbox` does not pay for the warehouse
drivers and the SDK, and `ifs-looker --help` pays for nothing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "sandbox": Command("ifs_looker.sandbox_cli", "run the local IFS Cloud (and Looker) sandboxes"),
    "secrets": Command("ifs_looker.secrets_cli", "make keys and encrypt settings (fernet:...)"),
    "check": Command("ifs_looker.check", "check IFS Cloud, Looker and the warehouse before a run"),
    "describe": Command("ifs_looker.describe", "list an IFS projection's entity sets and fields"),
    "replay-rejects": Command("ifs_looker.replay_rejects", "retry records in _load_rejects"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the `selected` command's module is imported and configured."""
    parser = argparse.ArgumentParser(prog="ifs-looker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        if name != selected:
            sub.add_parser(name, help=command.help)
            continue
        module = importlib.import_module(command.module)
        parser_ = sub.add_parser(name, help=command.help, description=module.__doc__)
        module.add_arguments(parser_)
        parser_.set_defaults(_module=module)
    return parser


def selected_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is one), if any."""
    return next((arg for arg in argv if arg in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(selected_command(args_list)).parse_args(args_list)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
