"""Japanese date input and display: 和暦, month-precision dates and fiscal years.

Staff type dates in many shapes (2015/10/1, H27.10.1, 平成27年10月, full-width digits, Excel
date cells). This module turns all of them into one ``PartialDate`` and back into the forms
the UI shows, and rejects impossible dates and dates outside an era with a Japanese message
that quotes what was typed. Pure: no clock, no I/O, no Flask.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DateInputError",
    "Era",
    "ERAS",
    "PartialDate",
    "Precision",
    "fiscal_year",
    "fiscal_year_label",
    "fiscal_year_range",
    "format_partial",
    "parse_date_input",
    "to_wareki",
]

Precision = Literal["day", "month"]

# Years outside this range are almost always typos (0215, 2105 is still possible, but 1015 is
# not). 1873 is when Japan adopted the Gregorian calendar: earlier 明治 dates were lunisolar
# and cannot be converted by simple arithmetic.
MIN_YEAR = 1873
MAX_YEAR = 2199


class DateInputError(ValueError):
    """A typed date could not be understood; ``message`` is shown to the user as is."""

    def __init__(self, text: str, message: str) -> None:
        super().__init__(message)
        self.text = text
        self.message = message


@dataclass(frozen=True)
class Era:
    """One Japanese era: its name, its one-letter abbreviation and its first and last day."""

    name: str
    letter: str
    first: dt.date
    last: dt.date | None  # None: the current era

    def contains(self, day: dt.date) -> bool:
        """Tell whether ``day`` falls inside this era."""
        return self.first <= day and (self.last is None or day <= self.last)

    def period_ja(self) -> str:
        """Describe the era's span for error messages."""
        start = f"{self.first.year}年{self.first.month}月{self.first.day}日"
        if self.last is None:
            return f"{self.name}は{start}から"
        end = f"{self.last.year}年{self.last.month}月{self.last.day}日"
        return f"{self.name}は{start}〜{end}"


# Newest first, so a lookup by date finds the current era quickly.
ERAS: tuple[Era, ...] = (
    Era("令和", "R", dt.date(2019, 5, 1), None),
    Era("平成", "H", dt.date(1989, 1, 8), dt.date(2019, 4, 30)),
    Era("昭和", "S", dt.date(1926, 12, 25), dt.date(1989, 1, 7)),
    Era("大正", "T", dt.date(1912, 7, 30), dt.date(1926, 12, 24)),
    # 明治 formally began in 1868, but only its Gregorian part (明治6年 onwards) is convertible.
    Era("明治", "M", dt.date(1873, 1, 1), dt.date(1912, 7, 29)),
)
_ERA_BY_TOKEN = {e.name: e for e in ERAS} | {e.letter: e for e in ERAS}
_MEIJI_BASE_YEAR = 1868  # 明治元年; the era's ``first`` above is the convertible start only


def _base_year(era: Era) -> int:
    """Return the western year of the era's 元年."""
    return _MEIJI_BASE_YEAR if era.letter == "M" else era.first.year


@dataclass(frozen=True)
class PartialDate:
    """A date known to the day or only to the month (``value`` is then the 1st)."""

    value: dt.date
    precision: Precision = "day"

    def __post_init__(self) -> None:
        if self.precision not in ("day", "month"):
            raise ValueError(f"precision must be 'day' or 'month', not {self.precision!r}")
        if type(self.value) is not dt.date:  # a datetime would compare and hash differently
            raise TypeError("value must be a datetime.date (not a datetime)")
        if self.precision == "month" and self.value.day != 1:
            raise ValueError("a month-precision PartialDate must hold the 1st of the month")

    @classmethod
    def of_day(cls, year: int, month: int, day: int) -> PartialDate:
        """Build a day-precision date."""
        return cls(dt.date(year, month, day), "day")

    @classmethod
    def of_month(cls, year: int, month: int) -> PartialDate:
        """Build a month-precision date."""
        return cls(dt.date(year, month, 1), "month")

    @classmethod
    def from_isoformat(cls, text: str) -> PartialDate:
        """Parse what ``isoformat`` produced ('2015-10' or '2015-10-01'), e.g. from the DB."""
        if re.fullmatch(r"\d{4}-\d{2}", text):
            return cls(dt.date.fromisoformat(text + "-01"), "month")
        return cls(dt.date.fromisoformat(text), "day")

    def start(self) -> dt.date:
        """Return the first day the value may stand for."""
        return self.value

    def end(self) -> dt.date:
        """Return the last day the value may stand for (month end for month precision)."""
        if self.precision == "month":
            last = calendar.monthrange(self.value.year, self.value.month)[1]
            return self.value.replace(day=last)
        return self.value

    def isoformat(self) -> str:
        """Return '2015-10' for month precision, '2015-10-01' for day precision."""
        if self.precision == "month":
            return f"{self.value.year:04d}-{self.value.month:02d}"
        return self.value.isoformat()

    def __str__(self) -> str:
        return self.isoformat()


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

_SEP = r"\s*[-/.]\s*"
_WESTERN_SEP = re.compile(rf"(?P<y>\d{{4}}){_SEP}(?P<m>\d{{1,2}})(?:{_SEP}(?P<d>\d{{1,2}}))?")
_WESTERN_COMPACT = re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})?")
_WESTERN_KANJI = re.compile(
    r"(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月(?:\s*(?P<d>\d{1,2})\s*日?)?"
)
_ERA_TOKEN = r"(?P<era>令和|平成|昭和|大正|明治|[RHSTM])"
_ERA_YEAR = r"(?P<y>\d{1,3}|元)"
_ERA_SEP = re.compile(
    rf"{_ERA_TOKEN}\s*{_ERA_YEAR}{_SEP}(?P<m>\d{{1,2}})(?:{_SEP}(?P<d>\d{{1,2}}))?"
)
_ERA_KANJI = re.compile(
    rf"{_ERA_TOKEN}\s*{_ERA_YEAR}\s*年\s*(?P<m>\d{{1,2}})\s*月(?:\s*(?P<d>\d{{1,2}})\s*日?)?"
)
_YEAR_ONLY = re.compile(rf"(?:{_ERA_TOKEN}\s*{_ERA_YEAR}|(?P<wy>\d{{4}}))\s*年?(?:度)?")

# Dashes an IME produces in place of '-' (NFKC leaves these alone), e.g. 2015ー10ー01.
_DASHES = str.maketrans({c: "-" for c in "ー‐‑‒–—―−"})

_EXAMPLES = "例: 2015-10-01、2015/10、20151001、平成27年10月1日、H27.10.1、R1.5"


def parse_date_input(value: object) -> PartialDate | None:
    """Turn what a user typed (or an Excel date cell) into a ``PartialDate``.

    Returns None for empty input, so optional fields need no special case.
    Raises ``DateInputError`` with a Japanese message quoting the input when it is not a date,
    does not exist (2015-02-30) or lies outside its era (H31.5.1).
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):  # check before date: datetime is a date subclass
        return PartialDate(value.date(), "day")
    if isinstance(value, dt.date):
        return PartialDate(value, "day")
    if isinstance(value, PartialDate):
        return value
    if isinstance(value, bool):
        raise DateInputError(str(value), f"「{value}」は日付として認識できません。{_EXAMPLES}")
    if isinstance(value, int):
        # Excel turns a typed 20151001 into a number cell.
        value = str(value)
    elif isinstance(value, float):
        if not value.is_integer():
            raise DateInputError(str(value), f"「{value}」は日付として認識できません。{_EXAMPLES}")
        value = str(int(value))
    if not isinstance(value, str):
        raise TypeError(f"cannot parse a date from {type(value).__name__}")

    typed = value.strip()
    text = unicodedata.normalize("NFKC", value).translate(_DASHES).strip().upper()
    if not text:
        return None

    if m := _ERA_KANJI.fullmatch(text) or _ERA_SEP.fullmatch(text):
        return _from_era(typed, m)
    for pattern in (_WESTERN_SEP, _WESTERN_KANJI, _WESTERN_COMPACT):
        if m := pattern.fullmatch(text):
            return _build(typed, int(m["y"]), int(m["m"]), m["d"])
    if _YEAR_ONLY.fullmatch(text):
        raise DateInputError(typed, f"「{typed}」は年だけです。月まで入力してください（{_EXAMPLES}）。")
    raise DateInputError(typed, f"「{typed}」は日付として認識できません。{_EXAMPLES}")


def _from_era(typed: str, m: re.Match[str]) -> PartialDate:
    """Convert an era match to a western date, checking the era's first and last day."""
    era = _ERA_BY_TOKEN[m["era"]]
    era_year = 1 if m["y"] == "元" else int(m["y"])
    if era_year < 1:
        raise DateInputError(typed, f"「{typed}」は存在しない年です（{era.name}は元年（1年）から）。")
    year = _base_year(era) + era_year - 1
    if era.letter == "M" and year < era.first.year:
        raise DateInputError(typed, f"「{typed}」は変換できません（明治5年以前は旧暦のため）。")
    result = _build(typed, year, int(m["m"]), m["d"])
    if result.precision == "day":
        inside = era.contains(result.value)
    else:
        # A month is valid when any of its days lies in the era: 平成元年1月 and 昭和64年1月 both exist.
        inside = era.contains(result.start()) or era.contains(result.end())
    if not inside:
        raise DateInputError(typed, f"「{typed}」は{era.name}の期間外です（{era.period_ja()}）。")
    return result


def _build(typed: str, year: int, month: int, day: str | None) -> PartialDate:
    """Validate year, month and day and build the ``PartialDate``."""
    if not 1 <= month <= 12:
        raise DateInputError(typed, f"「{typed}」は存在しない日付です（月は1〜12）。")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise DateInputError(
            typed, f"「{typed}」は対象外の年です（{MIN_YEAR}年〜{MAX_YEAR}年の日付を入力してください）。"
        )
    if day is None:
        return PartialDate(dt.date(year, month, 1), "month")
    last = calendar.monthrange(year, month)[1]
    if not 1 <= int(day) <= last:
        raise DateInputError(typed, f"「{typed}」は存在しない日付です（{year}年{month}月は{last}日まで）。")
    return PartialDate(dt.date(year, month, int(day)), "day")


# ---------------------------------------------------------------------------------------------
# Display
# ---------------------------------------------------------------------------------------------


def era_of(day: dt.date) -> Era:
    """Return the era ``day`` belongs to; ValueError before 明治6年 (no Gregorian mapping)."""
    for era in ERAS:
        if era.contains(day):
            return era
    raise ValueError(f"{day.isoformat()} is before the Gregorian 明治 period")


def _era_year_text(era: Era, year: int) -> str:
    n = year - _base_year(era) + 1
    return "元" if n == 1 else str(n)


def to_wareki(day: dt.date, style: Literal["long", "short"] = "long") -> str:
    """Format a date in 和暦: '平成27年10月1日' (long) or 'H27.10.1' (short; 元年 is 1)."""
    if isinstance(day, dt.datetime):
        day = day.date()
    era = era_of(day)
    if style == "short":
        return f"{era.letter}{day.year - _base_year(era) + 1}.{day.month}.{day.day}"
    if style != "long":
        raise ValueError(f"style must be 'long' or 'short', not {style!r}")
    return f"{era.name}{_era_year_text(era, day.year)}年{day.month}月{day.day}日"


def format_partial(value: PartialDate | None, wareki: bool = False) -> str:
    """Format a ``PartialDate`` for display: '2015年10月1日', '2015年10月' or 和暦.

    A month that spans an era change (1989年1月) is named after the era of its first day.
    None gives '' so templates can pass optional values straight in.
    """
    if value is None:
        return ""
    day = value.value
    if not wareki:
        if value.precision == "month":
            return f"{day.year}年{day.month}月"
        return f"{day.year}年{day.month}月{day.day}日"
    if value.precision == "day":
        return to_wareki(day, "long")
    era = era_of(day)
    return f"{era.name}{_era_year_text(era, day.year)}年{day.month}月"


# ---------------------------------------------------------------------------------------------
# Fiscal years (年度: April to March)
# ---------------------------------------------------------------------------------------------


def fiscal_year(day: dt.date) -> int:
    """Return the fiscal year (年度) a date falls in: 2016-03-31 → 2015, 2016-04-01 → 2016."""
    return day.year if day.month >= 4 else day.year - 1


def fiscal_year_range(year: int) -> tuple[dt.date, dt.date]:
    """Return the first and last day of fiscal year ``year`` (April 1 to March 31)."""
    return dt.date(year, 4, 1), dt.date(year + 1, 3, 31)


def fiscal_year_label(year: int, wareki: bool = True) -> str:
    """Name a fiscal year: '平成27年度' (default) or '2015年度'.

    The era is the one in force at the end of the calendar year, as official usage does:
    FY2019 (April 2019, still 平成) is 令和元年度, FY1988 is 昭和63年度.
    """
    if not wareki:
        return f"{year}年度"
    era = era_of(dt.date(year, 12, 31))
    return f"{era.name}{_era_year_text(era, year)}年度"
