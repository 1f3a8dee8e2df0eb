"""個人番号 detection (OPT-01): the official check digit, and what counts as one in free text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmo.core.my_number import contains_my_number, find_my_numbers, is_my_number, mask, problems_in

# 123456789018 is the example number commonly used to explain the 検査用数字 formula
# (11 digits 12345678901 → ΣPnQn = 212, 212 mod 11 = 3, 11 − 3 = 8); the others are worked by hand:
# 00000000000 → remainder 0 → 0; 11111111111 → Σ = 47 → 3 → 8; 98765432109 → Σ = 228 → 8 → 3.
VALID = ["123456789018", "000000000000", "111111111118", "987654321093"]


def reference_check_digit(first11: str) -> int:
    """The 検査用数字 written the way the ordinance lists it: P1 is the digit next to the check digit."""
    p = [int(c) for c in reversed(first11)]  # p[0] is P1
    q = [n + 1 if n <= 6 else n - 5 for n in range(1, 12)]
    remainder = sum(pn * qn for pn, qn in zip(p, q, strict=True)) % 11
    return 0 if remainder <= 1 else 11 - remainder


@pytest.mark.parametrize("number", VALID)
def test_known_valid_numbers(number):
    assert is_my_number(number)
    assert reference_check_digit(number[:11]) == int(number[11])


@pytest.mark.parametrize("number", ["123456789012", "123456789019", "111111111116", "12345678901", "1234567890180",
                                    "12345678901a", "１２３４５６７８９０１８", ""])
def test_invalid_numbers(number):
    assert not is_my_number(number)


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_exactly_one_check_digit_of_ten_is_valid(first11):
    valid = [d for d in "0123456789" if is_my_number(first11 + d)]
    assert valid == [str(reference_check_digit(first11))]


@pytest.mark.parametrize("text", [
    "123456789018",
    "個人番号は123456789018です",
    "番号：1234 5678 9018",
    "1234-5678-9018",
    "１２３４５６７８９０１８",
    "１２３４－５６７８－９０１８",
    "１２３４　５６７８　９０１８",
    "メモ\n123456789018\n以上",
])
def test_found_in_text(text):
    assert len(find_my_numbers(text)) == 1
    assert contains_my_number(text)
    assert "9018" not in mask(text) and "９０１８" not in mask(text)


@pytest.mark.parametrize("text", [
    "123456789012",                   # 12 digits, wrong check digit
    "1234567890180",                  # part of a 13-digit run
    "9123456789018",
    "1234-5678-9018-3456",            # a longer 4-4-4-4 grouping (card-like)
    "0312-1234-5678",                 # wrong check digit in 4-4-4
    "03-1234-5678", "090-1234-5678", "0120-123-456",  # phone numbers
    "123,456,789,018円",               # an amount with commas
    "1,234,567,890,180",
    "2015-12-15", "平成27年12月15日", "20151215",    # dates
    "011029", "北海道小樽市（012033）",  # body codes
    "1234-5678 9018",                 # mixed separators
    "0.123456789018", "123456789018.5",  # decimals
    "",
])
def test_not_found(text):
    assert find_my_numbers(text) == []
    assert mask(text) == text


def test_numbers_from_excel_cells():
    assert contains_my_number(123456789018) and contains_my_number(123456789018.0)
    assert not contains_my_number(123456789012) and not contains_my_number(True) and not contains_my_number(None)
    assert not contains_my_number(1234567890.18)


def test_spans_point_into_the_original_text():
    text = "A：１２３４－５６７８－９０１８、B：123456789018"
    spans = find_my_numbers(text)
    assert [text[a:b] for a, b in spans] == ["１２３４－５６７８－９０１８", "123456789018"]
    assert mask(text) == "A：" + "＊" * 14 + "、B：" + "＊" * 12


def test_problems_name_the_field_but_never_the_number():
    found = problems_in({"comment": "123456789018", "vendor": "A社"}, {"comment": "備考"})
    assert [p.field for p in found] == ["comment"]
    assert found[0].message.startswith("備考に個人番号と思われる12桁の数字") and "9018" not in found[0].message


@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=40),
       st.text(alphabet="0123456789", min_size=11, max_size=11),
       st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=40))
def test_a_valid_number_is_always_found_between_non_digits(before, first11, after):
    number = first11 + str(reference_check_digit(first11))
    text = before.rstrip("-‐‑‒–—―−－ｰ .,\u3000\t") + "：" + number + "。" + after
    assert contains_my_number(text)
    assert number not in mask(text)


@given(st.text(alphabet="0123456789", min_size=11, max_size=11), st.integers(1, 9))
def test_a_wrong_check_digit_is_never_found(first11, offset):
    wrong = (reference_check_digit(first11) + offset) % 10
    assert not contains_my_number(f"番号 {first11}{wrong} です")


@given(st.integers(min_value=0, max_value=10**15))
def test_amounts_with_commas_never_trigger(amount):
    assert not contains_my_number(f"{amount:,}円")
