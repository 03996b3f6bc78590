"""Warehouse names for streams and properties.

Looker users write SQL by hand, so the default turns IFS's PascalCase names into
snake_case (`VoucherNo` -> `voucher_no`, `CodeBDesc` -> `code_b_desc`). Two
properties that end up with the same name would silently share a column, so a
collision is an error rather than a merge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SNAKE_CASE = "snake_case"
PRESERVE = "preserve"
NAMING_MODES = (SNAKE_CASE, PRESERVE)

# An upper-case letter that starts a word: after a lower-case letter or digit, or
# the last capital of an acronym before a lower-case letter (HTTPCode -> http_code).
_WORD_BOUNDARY = re.compile(r"(?<=[^\W_A-Z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][^\W_A-Z\d])")
_NOT_WORD = re.compile(r"[\W_]+")


class NamingError(ValueError):
    """Two source names map to one warehouse name, or a name cannot be used."""


def snake_case(name: str) -> str:
    """`VoucherNo` -> `voucher_no`; punctuation and spaces become one underscore.

    Leading underscores survive so that `_ifs_etag` and `_sdc_*` keep their meaning.
    """
    leading = len(name) - len(name.lstrip("_"))
    words = _NOT_WORD.sub("_", _WORD_BOUNDARY.sub("_", name[leading:])).strip("_")
    return "_" * leading + words.lower() if words else name


def convert(name: str, mode: str) -> str:
    """The warehouse name of one stream or property under `mode`."""
    if mode == PRESERVE:
        return name
    if mode == SNAKE_CASE:
        return snake_case(name)
    raise NamingError(f"column_naming must be one of {NAMING_MODES}, not {mode!r}")


def column_names(
    properties: Iterable[str],
    mode: str,
    *,
    context: str,
    case_insensitive: bool = False,
    max_bytes: int | None = None,
) -> dict[str, str]:
    """Map each property to its column name, refusing collisions and over-long names.

    `case_insensitive` is for warehouses (DuckDB) where `"Id"` and `"id"` are one column.
    """
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for prop in properties:
        column = convert(prop, mode)
        check_length(column, max_bytes, context=context)
        folded = column.casefold() if case_insensitive else column
        if folded in seen:
            raise NamingError(collision_message(context, seen[folded], prop, column, mode))
        seen[folded] = prop
        mapping[prop] = column
    return mapping


def collision_message(context: str, first: str, second: str, column: str, mode: str) -> str:
    """Why two properties cannot share `column`, and what can be done about it under `mode`."""
    head = f"{context}: properties {first!r} and {second!r} both map to column {column!r}"
    if mode == PRESERVE:
        # Only a case-insensitive warehouse folds preserved names together.
        return (
            f"{head}: the warehouse does not tell upper from lower case in column names, "
            f"so they would share one column; rename one in the tap (stream_maps)"
        )
    return (
        f"{head} under column_naming={mode!r}; rename one in the tap (stream_maps) "
        f"or use column_naming='preserve'"
    )


def check_length(name: str, max_bytes: int | None, *, context: str) -> None:
    """Refuse names the warehouse would silently truncate (PostgreSQL: 63 bytes)."""
    if not name:
        raise NamingError(f"{context}: empty name")
    if max_bytes is not None and len(name.encode()) > max_bytes:
        raise NamingError(
            f"{context}: name {name!r} is {len(name.encode())} bytes; the warehouse "
            f"keeps only {max_bytes} and would silently truncate it"
        )
