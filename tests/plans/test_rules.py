"""Pure plan rules: parsing what staff type, cross-field checks, derived status."""

import datetime as dt

import pytest

from pmo.core.dates import PartialDate
from pmo.plans import rules
from pmo.plans.rules import FieldSpec, PlanValues

TODAY = dt.date(2015, 12, 15)
D = PartialDate


def parse(**raw):
    values, problems = rules.parse_values(raw)
    return values, {p.field: p.message for p in problems}


@pytest.mark.parametrize("typed, expected", [
    ("2015-10-01", D(dt.date(2015, 10, 1))),
    ("2015/10/1", D(dt.date(2015, 10, 1))),
    ("H27.10.1", D(dt.date(2015, 10, 1))),
    ("平成27年10月1日", D(dt.date(2015, 10, 1))),
    ("２０１５／１０／１", D(dt.date(2015, 10, 1))),
    ("2015-10", D(dt.date(2015, 10, 1), "month")),
    ("R1.5", D(dt.date(2019, 5, 1), "month")),
    (dt.datetime(2015, 10, 1), D(dt.date(2015, 10, 1))),
])
def test_dates_are_read_as_staff_type_them(typed, expected):
    values, problems = parse(planned_start=typed)
    assert problems == {}
    assert values.planned_start == expected


def test_an_impossible_date_is_reported_in_japanese_quoting_the_input():
    _, problems = parse(planned_end="2015-02-30")
    assert "2015-02-30" in problems["planned_end"] and "存在しない" in problems["planned_end"]


@pytest.mark.parametrize("typed, expected", [("50", 50), ("５０％", 50), (0.5, 50), (100, 100), ("", None)])
def test_progress(typed, expected):
    values, problems = parse(progress=typed)
    assert problems == {} and values.progress == expected


@pytest.mark.parametrize("typed", ["101", "-1", "abc", "50.5"])
def test_bad_progress(typed):
    _, problems = parse(progress=typed)
    assert "0〜100" in problems["progress"]


def test_month_precision_end_counts_to_the_last_day():
    values, _ = parse(planned_start="2015-10-20", planned_end="2015-10")
    assert rules.check_values(values, TODAY) == []


def test_end_before_start_is_refused():
    values, _ = parse(planned_start="2015-10-20", planned_end="2015-10-01", actual_start="2015-11-10",
                      actual_end="2015-11-01")
    fields = {p.field: p.message for p in rules.check_values(values, TODAY)}
    assert fields["planned_end"] == "計画終了日が計画開始日より前になっています。"
    assert fields["actual_end"] == "実績終了日が実績開始日より前になっています。"


def test_actual_dates_cannot_be_in_the_future():
    values, _ = parse(actual_start="2015-12-16")
    assert "今日（2015年12月15日）より後" in rules.check_values(values, TODAY)[0].message
    values, _ = parse(actual_start="2015-12-01", actual_end="2015-12")  # December has not ended yet
    problems = rules.check_values(values, TODAY)
    assert [p.field for p in problems] == ["actual_end"] and "日まで入力" in problems[0].message


def test_completion_items_are_required_on_completion():
    specs = [FieldSpec("published_on", "評価書公表日", "date"), FieldSpec("note", "補足", "text", required=False)]
    values, problems = rules.parse_values({"actual_start": "2015-09-01", "actual_end": "2015-11-30"}, specs)
    assert problems == []
    assert [(p.field, p.message) for p in rules.check_values(values, TODAY, specs)] == [
        ("cf_published_on", "完了時には「評価書公表日」の入力が必要です。")]
    values, problems = rules.parse_values({"actual_start": "2015-09-01", "actual_end": "2015-11-30",
                                           "cf_published_on": "H27.11.30"}, specs)
    assert problems == [] and rules.check_values(values, TODAY, specs) == []
    assert values.completion_dict() == {"published_on": "2015-11-30"}


@pytest.mark.parametrize("spec, typed, ok", [
    (FieldSpec("n", "件数", "integer"), "1,234", "1234"),
    (FieldSpec("n", "件数", "integer"), "多数", None),
    (FieldSpec("c", "結果", "choice", choices=("問題なし", "要再テスト")), "問題なし", "問題なし"),
    (FieldSpec("c", "結果", "choice", choices=("問題なし",)), "不明", None),
    (FieldSpec("y", "設置", "yes_no"), "はい", "はい"),
    (FieldSpec("d", "日", "date"), "2015-10", None),  # a completion date needs the day
])
def test_completion_item_types(spec, typed, ok):
    values, problems = rules.parse_values({f"cf_{spec.code}": typed}, [spec])
    if ok is None:
        assert [p.field for p in problems] == [f"cf_{spec.code}"]
    else:
        assert problems == [] and values.completion_dict()[spec.code] == ok


def test_not_applicable_needs_a_reason_on_the_screen():
    _, problems = rules.parse_values({}, not_applicable=True)
    assert [p.message for p in problems] == ["対象外とする理由を入力してください。"]
    values, _ = rules.parse_values({"not_applicable_reason": "残す理由"}, not_applicable=False)
    assert values.not_applicable_reason is None  # unticked: the reason is dropped


@pytest.mark.parametrize("values, on, status", [
    (PlanValues(), TODAY, "not_started"),
    (PlanValues(planned_start=D(dt.date(2015, 1, 1))), TODAY, "not_started"),
    (PlanValues(actual_start=D(dt.date(2015, 12, 1))), TODAY, "in_progress"),
    (PlanValues(actual_start=D(dt.date(2015, 12, 1))), dt.date(2015, 11, 30), "not_started"),
    (PlanValues(actual_start=D(dt.date(2015, 9, 1)), actual_end=D(dt.date(2015, 11, 1), "month")), TODAY, "done"),
    (PlanValues(actual_start=D(dt.date(2015, 9, 1)), actual_end=D(dt.date(2015, 11, 1), "month")),
     dt.date(2015, 11, 29), "in_progress"),
    (PlanValues(progress=30), TODAY, "in_progress"),
    (PlanValues(not_applicable_reason="中間サーバー・プラットフォーム利用", actual_start=D(dt.date(2015, 1, 1))),
     TODAY, "not_applicable"),
])
def test_status_on_a_date(values, on, status):
    assert rules.status_of(values, on) == status


def test_completion_rate_counts_done_and_not_applicable():
    assert rules.completion_rate(["done", "not_applicable", "in_progress", "not_started"]) == 0.5


def test_json_round_trip_keeps_precision():
    values = PlanValues(planned_start=D(dt.date(2015, 10, 1), "month"), planned_end=D(dt.date(2015, 12, 24)),
                        progress=40, comment="議会日程待ち", completion=(("a", "1"),))
    assert PlanValues.from_json(values.to_json()) == values
    assert values.to_json()["planned_start_precision"] == "month"
