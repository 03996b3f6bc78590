"""Whether a number survives a warehouse's column or JSON type exactly.

A value a column cannot hold exactly is a reject, never rounded: the cloud warehouses
(BigQuery, Snowflake) differ only in how many digits their types keep and in how their
messages name the type, so the checks live here once and each dialect passes its limits.
"""

from __future__ import annotations

import decimal
import math
import typing as t
from collections.abc import Callable, Iterator

from target_looker.warehouse.base import not_finite_problem

JsonNumber = int | float | decimal.Decimal


def fixed_point_problem(
    value: t.Any, scale: int, *, integer_digits: int, column_type: str
) -> str | None:
    """Why `value` does not fit a fixed-point column exactly, or None.

    The column keeps `scale` digits after the point and `integer_digits` before it;
    `column_type` names it in the message (e.g. "BigQuery NUMERIC"), so that the reject
    says which of the warehouse's types refused the value.
    """
    number = _as_decimal(value)
    if isinstance(number, str):
        return number
    if number.is_zero():
        return None
    _, digits, exponent = number.as_tuple()
    extra_places = -int(exponent) - scale
    if extra_places > 0 and any(digits[-extra_places:]):
        return f"{number} has more than {scale} decimal places ({column_type})"
    if number.adjusted() >= integer_digits:
        return (
            f"{number} has more than {integer_digits} digits before the decimal point "
            f"({column_type})"
        )
    return None


def _as_decimal(value: t.Any) -> decimal.Decimal | str:
    """`value` as a finite Decimal (a float by its shortest repr), or why it is not one."""
    if isinstance(value, bool):
        return f"{value!r} is not a number"
    if isinstance(value, float):
        if not math.isfinite(value):
            return not_finite_problem(value)
        value = decimal.Decimal(repr(value))
    elif isinstance(value, int):
        value = decimal.Decimal(value)
    if not isinstance(value, decimal.Decimal):
        return f"{value!r} is not a number"
    if not value.is_finite():
        return not_finite_problem(value)
    return value


def json_numbers(value: t.Any) -> Iterator[JsonNumber]:
    """The numbers inside a JSON value (objects and arrays walked; booleans are not numbers).

    Depth-first from the last member, without recursion (a deep document cannot overflow
    the stack); the order decides which problem a reject names first.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, (int, decimal.Decimal, float)):
            yield item


def first_json_number_problem(
    value: t.Any, number_problem: Callable[[JsonNumber], str | None]
) -> str | None:
    """The first problem `number_problem` finds with a number inside `value`, or None."""
    for number in json_numbers(value):
        problem = number_problem(number)
        if problem:
            return problem
    return None


def exact_decimal(number: JsonNumber) -> decimal.Decimal:
    """`number` as a Decimal: a float by its shortest repr (what JSON text shows)."""
    return decimal.Decimal(repr(number)) if isinstance(number, float) else decimal.Decimal(number)


def float_keeps(number: decimal.Decimal) -> bool:
    """Whether a FLOAT64/DOUBLE reads back as `number` (a JSON type's fallback for it)."""
    as_float = float(number)
    return math.isfinite(as_float) and decimal.Decimal(repr(as_float)) == number
