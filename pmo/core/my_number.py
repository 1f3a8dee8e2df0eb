"""個人番号 (My Number) detection, so free text and imports never carry one (SECURITY.md OPT-01).

The portal is not a 個人番号利用事務 system: it holds plans, documents and subsidy data of local
governments, never residents' numbers. Any 12-digit number that passes the official check digit
(the 検査用数字 formula of the 番号法's 総務省令) is refused where text is typed or imported,
and is never echoed back or logged (DECISIONS.md 18).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pmo.core.errors import Problem

MESSAGE = "個人番号と思われる12桁の数字が含まれています。このポータルでは個人番号を取り扱いません。該当の数字を削除してください。"

# Separators people type between the 4-4-4 groups, and their full-width forms, mapped one
# character to one character so the spans found stay valid in the original text.
_DASHES = "-‐‑‒–—―−－ｰ"
_SPACES = " \u3000\t"
_GROUPED = re.compile(r"(?<![0-9])(?<![0-9][-., ])([0-9]{4})([- ]?)([0-9]{4})\2([0-9]{4})(?![0-9])(?![-., ][0-9])")


def is_my_number(digits: str) -> bool:
    """True when ``digits`` is 12 ASCII digits whose last one is the 個人番号 検査用数字.

    For the 11 leading digits, Pn is the n-th digit counted from the right (n=1 sits just left of
    the check digit), Qn = n+1 for n ≤ 6 and n−5 for n ≥ 7; with r = ΣPn·Qn mod 11 the check
    digit is 0 when r ≤ 1, else 11 − r.
    """
    if len(digits) != 12 or not digits.isascii() or not digits.isdigit():
        return False
    body = digits[:11]
    total = sum(int(p) * (n + 1 if n <= 6 else n - 5) for n, p in enumerate(reversed(body), start=1))
    remainder = total % 11
    return int(digits[11]) == (0 if remainder <= 1 else 11 - remainder)


def _fold(text: str) -> str:
    """Full-width (any Unicode decimal) digits to ASCII, dashes to '-', spaces to ' '; same length."""
    out = []
    for ch in text:
        if ch.isdecimal() and not ch.isascii():
            out.append(str(int(ch)))
        elif ch in _DASHES:
            out.append("-")
        elif ch in _SPACES:
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def find_my_numbers(text: str) -> list[tuple[int, int]]:
    """Spans (start, end) in ``text`` of the 個人番号 it contains.

    A candidate is 12 digits standing alone (not part of a longer digit run, a decimal or a
    longer 4-digit grouping), written plainly or as 4-4-4 with one kind of separator (space or
    hyphen), in half- or full-width. Twelve digits failing the check digit are not one: order
    numbers, phone numbers, amounts with commas, dates and 6-digit body codes pass.
    """
    if not isinstance(text, str) or len(text) < 12:
        return []
    folded = _fold(text)
    return [m.span() for m in _GROUPED.finditer(folded) if is_my_number(m.group(1) + m.group(3) + m.group(4))]


def _as_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a number typed into an Excel cell
    return value if isinstance(value, str) else str(value)


def contains_my_number(value: Any) -> bool:
    """True when a typed or imported value (text, or a number cell) holds a 個人番号."""
    return bool(find_my_numbers(_as_text(value)))


def mask(value: Any) -> Any:
    """``value`` with every 個人番号 replaced by ＊, for problem reports that quote the cell."""
    text = _as_text(value)
    spans = find_my_numbers(text)
    if not spans:
        return value
    for start, end in reversed(spans):
        text = text[:start] + "＊" * (end - start) + text[end:]
    return text


def problems_in(values: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> list[Problem]:
    """One problem per field holding a 個人番号, naming the field but never quoting the value."""
    labels = labels or {}
    return [Problem(name, f"{labels[name]}に{MESSAGE}" if name in labels else MESSAGE)
            for name, value in values.items() if contains_my_number(value)]
