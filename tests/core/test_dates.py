"""Japanese date input, 和暦 display and fiscal years (pmo.core.dates)."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmo.core.dates import (
    DateInputError,
    PartialDate,
    fiscal_year,
    fiscal_year_label,
    fiscal_year_range,
    format_partial,
    parse_date_input,
    to_wareki,
)

D = PartialDate.of_day
M = PartialDate.of_month


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2015-10-01", D(2015, 10, 1)),
        ("2015/10/1", D(2015, 10, 1)),
        ("2015.10.1", D(2015, 10, 1)),
        ("20151001", D(2015, 10, 1)),
        ("2015-10", M(2015, 10)),
        ("2015/10", M(2015, 10)),
        ("201510", M(2015, 10)),
        ("2015年10月1日", D(2015, 10, 1)),
        ("2015年10月", M(2015, 10)),
        ("H27.10.1", D(2015, 10, 1)),
        ("H27/10/1", D(2015, 10, 1)),
        ("H27-10-01", D(2015, 10, 1)),
        ("h27.10.1", D(2015, 10, 1)),
        ("H27年10月1日", D(2015, 10, 1)),
        ("平成27年10月1日", D(2015, 10, 1)),
        ("平成27年10月", M(2015, 10)),
        ("平成 27 年 10 月 1 日", D(2015, 10, 1)),
        ("平成元年5月1日", D(1989, 5, 1)),
        ("平成元年5月", M(1989, 5)),
        ("R1.5", M(2019, 5)),
        ("R1.5.1", D(2019, 5, 1)),
        ("R01.05.01", D(2019, 5, 1)),
        ("R元.5.1", D(2019, 5, 1)),
        ("令和元年5月1日", D(2019, 5, 1)),
        ("令和7年3月31日", D(2025, 3, 31)),
        ("S64.1.7", D(1989, 1, 7)),
        ("昭和64年1月7日", D(1989, 1, 7)),
        ("昭和50年4月", M(1975, 4)),
        ("T15.12.24", D(1926, 12, 24)),
        ("大正元年7月30日", D(1912, 7, 30)),
        ("M45.7.29", D(1912, 7, 29)),
        # full width, NFKC and IME artefacts
        ("２０１５－１０－０１", D(2015, 10, 1)),
        ("２０１５ー１０ー０１", D(2015, 10, 1)),
        ("２０１５／１０", M(2015, 10)),
        ("Ｈ２７．１０．１", D(2015, 10, 1)),
        ("ｒ１．５．１", D(2019, 5, 1)),
        ("平成２７年１０月１日", D(2015, 10, 1)),
        ("㍻27年10月1日", D(2015, 10, 1)),
        ("㋿元年5月1日", D(2019, 5, 1)),
        ("  2015-10-01\u3000", D(2015, 10, 1)),
        ("\t2015/10/1\n", D(2015, 10, 1)),
    ],
)
def test_accepted_forms(typed, expected):
    assert parse_date_input(typed) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.date(2015, 10, 1), D(2015, 10, 1)),
        (dt.datetime(2015, 10, 1, 13, 45), D(2015, 10, 1)),  # Excel date cells come as datetimes
        (20151001, D(2015, 10, 1)),  # a date typed into a number cell
        (20151001.0, D(2015, 10, 1)),
        (M(2015, 10), M(2015, 10)),
    ],
)
def test_accepted_objects(value, expected):
    result = parse_date_input(value)
    assert result == expected
    assert type(result.value) is dt.date


@pytest.mark.parametrize("empty", [None, "", "   ", "\u3000"])
def test_empty_is_none(empty):
    assert parse_date_input(empty) is None


@pytest.mark.parametrize(
    "typed",
    [
        "H31.4.30", "平成31年4月30日", "H31.4", "R1.5.1", "令和元年5月", "S64.1.7", "昭和64年1月",
        "H1.1.8", "平成元年1月8日", "平成元年1月", "S1.12.25", "昭和元年12月", "T15.12.24",
        "大正元年7月30日", "大正元年7月", "M45.7.29", "明治6年1月1日",
    ],
)
def test_era_boundaries_inside(typed):
    assert parse_date_input(typed) is not None


@pytest.mark.parametrize(
    ("typed", "era"),
    [
        ("H31.5.1", "平成"),  # 平成 ended 2019-04-30
        ("平成31年5月1日", "平成"),
        ("H31.5", "平成"),
        ("H32.1.1", "平成"),
        ("R1.4.30", "令和"),  # 令和 began 2019-05-01
        ("令和元年4月30日", "令和"),
        ("R1.4", "令和"),
        ("S64.1.8", "昭和"),
        ("昭和64年2月", "昭和"),
        ("H1.1.7", "平成"),
        ("平成元年1月7日", "平成"),
        ("T15.12.25", "大正"),
        ("S1.12.24", "昭和"),
        ("M45.7.30", "明治"),
        ("T1.7.29", "大正"),
    ],
)
def test_era_boundaries_outside(typed, era):
    with pytest.raises(DateInputError) as info:
        parse_date_input(typed)
    assert f"「{typed}」は{era}の期間外です" in info.value.message
    assert info.value.text == typed


def test_era_message_names_the_period():
    with pytest.raises(DateInputError, match="平成は1989年1月8日〜2019年4月30日"):
        parse_date_input("H31.5.1")
    with pytest.raises(DateInputError, match="令和は2019年5月1日から"):
        parse_date_input("R1.4.30")


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("2015-02-30", "存在しない日付です（2015年2月は28日まで）"),
        ("2015-02-29", "存在しない日付です（2015年2月は28日まで）"),
        ("20150230", "存在しない日付です"),
        ("2015-04-31", "存在しない日付です（2015年4月は30日まで）"),
        ("2015-13-01", "存在しない日付です（月は1〜12）"),
        ("2015-10-00", "存在しない日付です"),
        ("2015/0/1", "存在しない日付です（月は1〜12）"),
        ("令和7年13月", "存在しない日付です（月は1〜12）"),
        ("H27.2.29", "存在しない日付です"),
        ("H0.1.1", "存在しない年です"),
        ("0215-10-01", "対象外の年です"),
        ("M5.12.1", "旧暦"),
        ("平成元年", "年だけです"),
        ("2015", "年だけです"),
        ("2015年度", "年だけです"),
        ("abc", "日付として認識できません"),
        ("2015-10-01 12:00", "日付として認識できません"),
        ("10/1/2015", "日付として認識できません"),
        ("1e309", "日付として認識できません"),
        ("X27.10.1", "日付として認識できません"),
    ],
)
def test_invalid_input_messages(typed, reason):
    with pytest.raises(DateInputError) as info:
        parse_date_input(typed)
    assert info.value.message.startswith(f"「{typed}」は")
    assert reason in info.value.message
    assert str(info.value) == info.value.message


def test_message_quotes_what_was_typed_not_the_normalised_form():
    with pytest.raises(DateInputError, match="「２０１５－０２－３０」は存在しない日付です"):
        parse_date_input(" ２０１５－０２－３０ ")


def test_leap_day():
    assert parse_date_input("2016-02-29") == D(2016, 2, 29)
    assert parse_date_input("R2.2.29") == D(2020, 2, 29)


@pytest.mark.parametrize("bad", [True, 20151001.5])
def test_non_date_scalars_are_rejected(bad):
    with pytest.raises(DateInputError):
        parse_date_input(bad)


def test_unsupported_type_is_a_programming_error():
    with pytest.raises(TypeError):
        parse_date_input(["2015-10-01"])


# --- PartialDate ------------------------------------------------------------------------------


def test_partial_date_month():
    month = M(2016, 2)
    assert month.start() == dt.date(2016, 2, 1)
    assert month.end() == dt.date(2016, 2, 29)
    assert month.isoformat() == "2016-02"
    assert str(month) == "2016-02"
    assert PartialDate.from_isoformat("2016-02") == month


def test_partial_date_day():
    day = D(2015, 10, 1)
    assert day.start() == day.end() == dt.date(2015, 10, 1)
    assert day.isoformat() == "2015-10-01"
    assert PartialDate.from_isoformat("2015-10-01") == day


def test_partial_date_is_frozen_and_validated():
    day = D(2015, 10, 1)
    with pytest.raises(AttributeError):
        day.precision = "month"
    with pytest.raises(ValueError):
        PartialDate(dt.date(2015, 10, 2), "month")
    with pytest.raises(ValueError):
        PartialDate(dt.date(2015, 10, 1), "year")
    with pytest.raises(TypeError):
        PartialDate(dt.datetime(2015, 10, 1), "day")


# --- display ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "long", "short"),
    [
        (dt.date(2015, 10, 1), "平成27年10月1日", "H27.10.1"),
        (dt.date(2019, 4, 30), "平成31年4月30日", "H31.4.30"),
        (dt.date(2019, 5, 1), "令和元年5月1日", "R1.5.1"),
        (dt.date(2020, 1, 1), "令和2年1月1日", "R2.1.1"),
        (dt.date(1989, 1, 7), "昭和64年1月7日", "S64.1.7"),
        (dt.date(1989, 1, 8), "平成元年1月8日", "H1.1.8"),
        (dt.date(1926, 12, 25), "昭和元年12月25日", "S1.12.25"),
        (dt.date(1912, 7, 30), "大正元年7月30日", "T1.7.30"),
        (dt.date(1900, 1, 1), "明治33年1月1日", "M33.1.1"),
    ],
)
def test_to_wareki(day, long, short):
    assert to_wareki(day) == long
    assert to_wareki(day, "long") == long
    assert to_wareki(day, style="short") == short
    assert to_wareki(dt.datetime.combine(day, dt.time(9))) == long


def test_to_wareki_rejects_unknown_style_and_pre_gregorian_dates():
    with pytest.raises(ValueError):
        to_wareki(dt.date(2015, 10, 1), "medium")
    with pytest.raises(ValueError):
        to_wareki(dt.date(1872, 12, 31))


@pytest.mark.parametrize(
    ("value", "western", "wareki"),
    [
        (D(2015, 10, 1), "2015年10月1日", "平成27年10月1日"),
        (M(2015, 10), "2015年10月", "平成27年10月"),
        (M(2019, 5), "2019年5月", "令和元年5月"),
        (M(2019, 4), "2019年4月", "平成31年4月"),
        (M(1989, 1), "1989年1月", "昭和64年1月"),  # spans two eras: named by its first day
    ],
)
def test_format_partial(value, western, wareki):
    assert format_partial(value) == western
    assert format_partial(value, wareki=True) == wareki


def test_format_partial_none():
    assert format_partial(None) == ""
    assert format_partial(None, wareki=True) == ""


# --- fiscal years -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "year"),
    [
        (dt.date(2016, 3, 31), 2015),
        (dt.date(2016, 4, 1), 2016),
        (dt.date(2015, 4, 1), 2015),
        (dt.date(2015, 12, 31), 2015),
        (dt.date(2016, 1, 1), 2015),
        (dt.date(2019, 4, 30), 2019),
        (dt.date(2020, 3, 31), 2019),
    ],
)
def test_fiscal_year(day, year):
    assert fiscal_year(day) == year


@pytest.mark.parametrize(
    ("year", "label"),
    [
        (2015, "平成27年度"),
        (2019, "令和元年度"),  # April 2019 was still 平成, but FY2019 is officially 令和元年度
        (2020, "令和2年度"),
        (2018, "平成30年度"),
        (1988, "昭和63年度"),
        (1989, "平成元年度"),
    ],
)
def test_fiscal_year_label(year, label):
    assert fiscal_year_label(year) == label
    assert fiscal_year_label(year, wareki=False) == f"{year}年度"


def test_fiscal_year_range():
    assert fiscal_year_range(2015) == (dt.date(2015, 4, 1), dt.date(2016, 3, 31))
    assert fiscal_year_range(2015)[1] == dt.date(2016, 3, 31)
    first, last = fiscal_year_range(2019)
    assert fiscal_year(first) == fiscal_year(last) == 2019
    assert fiscal_year(first - dt.timedelta(days=1)) == 2018
    assert fiscal_year(last + dt.timedelta(days=1)) == 2020


# --- properties -------------------------------------------------------------------------------

dates = st.dates(min_value=dt.date(1873, 1, 1), max_value=dt.date(2199, 12, 31))


@given(dates)
def test_every_display_form_parses_back(day):
    expected = PartialDate(day, "day")
    assert parse_date_input(day.isoformat()) == expected
    assert parse_date_input(day.strftime("%Y%m%d")) == expected
    assert parse_date_input(format_partial(expected)) == expected
    assert parse_date_input(to_wareki(day, "long")) == expected
    assert parse_date_input(to_wareki(day, "short")) == expected


@given(dates)
def test_month_forms_parse_back(day):
    month = PartialDate(day.replace(day=1), "month")
    assert parse_date_input(month.isoformat()) == month
    assert parse_date_input(format_partial(month)) == month
    assert parse_date_input(format_partial(month, wareki=True)) == month
    assert month.start() <= day <= month.end()
    assert fiscal_year_range(fiscal_year(day))[0] <= day <= fiscal_year_range(fiscal_year(day))[1]
