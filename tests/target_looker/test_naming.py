"""Column naming: snake_case by default, preserve on request, collisions refused."""

from __future__ import annotations

import pytest

from target_looker.naming import NamingError, check_length, column_names, convert, snake_case


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("VoucherNo", "voucher_no"),
        ("CodeBDesc", "code_b_desc"),
        ("AccountingYear", "accounting_year"),
        ("HTTPCode", "http_code"),
        ("Cf_Foo", "cf_foo"),
        ("_ifs_objversion", "_ifs_objversion"),
        ("Voucher Row.Name", "voucher_row_name"),
        ("Größe", "größe"),
        ("Code2Desc", "code2_desc"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_preserve_keeps_names_verbatim() -> None:
    assert convert('My "Odd".Name', "preserve") == 'My "Odd".Name'


def test_collisions_name_both_properties() -> None:
    with pytest.raises(NamingError, match="'VoucherNo' and 'voucher_no'"):
        column_names(["VoucherNo", "voucher_no"], "snake_case", context="stream 's'")


def test_case_insensitive_warehouses_see_case_collisions_even_when_preserved() -> None:
    assert column_names(["Id", "id"], "preserve", context="s") == {"Id": "Id", "id": "id"}
    with pytest.raises(NamingError) as caught:
        column_names(["Id", "id"], "preserve", context="s", case_insensitive=True)
    message = str(caught.value)
    assert "'Id' and 'id'" in message and "upper from lower case" in message
    assert "column_naming='preserve'" not in message  # it already is


def test_a_snake_case_collision_suggests_preserve() -> None:
    with pytest.raises(NamingError, match="or use column_naming='preserve'"):
        column_names(["CodeB", "code_b"], "snake_case", context="s")


def test_names_the_warehouse_would_truncate_are_refused() -> None:
    check_length("x" * 63, 63, context="s")
    with pytest.raises(NamingError, match="silently truncate"):
        check_length("x" * 64, 63, context="s")


def test_unknown_mode() -> None:
    with pytest.raises(NamingError, match="column_naming"):
        convert("X", "camel")
