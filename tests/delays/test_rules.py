"""Pure tests of pmo.delays.rules: signals as of several dates, month precision, the forecast chain,
replay of history, and equality of the vectorised and scalar implementations."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmo.delays.rules import (
    evaluate,
    DEFAULT_THRESHOLDS,
    BodyStatus,
    PlanFacts,
    Severity,
    SeverityThresholds,
    Signal,
    SignalKind,
    SubtaskStatus,
    body_status,
    completion_rate,
    completion_rates,
    compute_signals,
    derive_status,
    derive_statuses,
    effective_end,
    effective_ends,
    effective_start,
    effective_starts,
    explain,
    explain_frame,
    forecast_chain,
    forecast_end,
    forecast_ends,
    severity_for,
    signals_for,
    signals_for_chain,
)

D = dt.date
MS = D(2015, 10, 5)  # B-2's milestone
ONE = dt.timedelta(days=1)


def kinds(facts: PlanFacts, as_of: dt.date, **kw) -> dict[SignalKind, int | None]:
    return {s.kind: s.days for s in signals_for(facts, as_of, **kw)}


def facts(**kw) -> PlanFacts:
    base = dict(planned_start=None, planned_end=None, milestone=MS, subtask="B-2")
    base.update(kw)
    return PlanFacts(**base)


# --- date precision ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        (D(2015, 10, 17), D(2015, 10, 1), D(2015, 10, 31)),
        (D(2015, 12, 5), D(2015, 12, 1), D(2015, 12, 31)),
        (D(2016, 2, 10), D(2016, 2, 1), D(2016, 2, 29)),  # leap year
        (D(2015, 2, 1), D(2015, 2, 1), D(2015, 2, 28)),
        (D(2015, 4, 30), D(2015, 4, 1), D(2015, 4, 30)),
    ],
)
def test_month_precision_start_is_first_day_end_is_last_day(value, start, end):
    assert effective_start(value, "month") == start
    assert effective_end(value, "month") == end
    assert effective_start(value, "day") == value
    assert effective_end(value, "day") == value
    assert effective_starts(np.array([value], dtype="datetime64[D]"), "month")[0] == np.datetime64(start)
    assert effective_ends(pd.Series([value]), ["month"])[0] == np.datetime64(end)


def test_effective_dates_keep_missing_values():
    assert effective_start(None, "month") is None
    assert effective_end(None, "month") is None
    out = effective_ends(pd.Series([None, D(2015, 10, 3)], dtype="datetime64[s]"), ["month", None])
    assert np.isnat(out[0])
    assert out[1] == np.datetime64("2015-10-03")


def test_month_planned_end_means_last_day_of_month():
    f = facts(planned_start=D(2015, 9, 1), planned_end=D(2015, 10, 1), planned_end_precision="month",
              actual_start=D(2015, 9, 1), milestone=D(2015, 12, 1))
    assert SignalKind.LATE_FINISH not in kinds(f, D(2015, 10, 31))
    assert kinds(f, D(2015, 11, 1))[SignalKind.LATE_FINISH] == 1


def test_month_planned_end_is_compared_to_milestone_as_last_day():
    f = facts(planned_start=D(2015, 9, 1), planned_end=D(2015, 10, 1), planned_end_precision="month")
    assert kinds(f, D(2015, 9, 1))[SignalKind.PLAN_AFTER_MILESTONE] == 26


def test_month_planned_start_means_first_day_of_month():
    f = facts(planned_start=D(2015, 10, 20), planned_start_precision="month", planned_end=D(2015, 10, 31),
              milestone=D(2015, 12, 1))
    assert SignalKind.LATE_START not in kinds(f, D(2015, 10, 1))
    assert kinds(f, D(2015, 10, 2))[SignalKind.LATE_START] == 1


def test_month_actual_end_counts_from_last_day_of_month():
    f = facts(planned_start=D(2015, 9, 1), planned_end=D(2015, 9, 30), actual_start=D(2015, 9, 1),
              actual_end=D(2015, 10, 1), actual_end_precision="month", milestone=D(2015, 12, 1))
    assert derive_status(f, D(2015, 10, 15)) is SubtaskStatus.IN_PROGRESS
    assert kinds(f, D(2015, 10, 15)) == {SignalKind.LATE_FINISH: 15}
    assert derive_status(f, D(2015, 10, 31)) is SubtaskStatus.DONE
    assert kinds(f, D(2015, 10, 31)) == {SignalKind.FINISHED_LATE: 31}


def test_month_actual_start_counts_from_first_day_of_month():
    f = facts(planned_start=D(2015, 9, 1), planned_end=D(2015, 9, 30), actual_start=D(2015, 9, 20),
              actual_start_precision="month", milestone=D(2015, 12, 1))
    assert derive_status(f, D(2015, 9, 1)) is SubtaskStatus.IN_PROGRESS
    assert SignalKind.LATE_START not in kinds(f, D(2015, 9, 2))


# --- each signal at the day before, of and after its date -----------------------------------


def test_no_plan_holds_only_without_planned_end():
    assert kinds(facts(), D(2015, 1, 1)) == {SignalKind.NO_PLAN: None}
    assert SignalKind.NO_PLAN not in kinds(facts(planned_end=D(2015, 9, 1)), D(2015, 1, 1))


def test_no_plan_with_a_planned_start_can_also_start_late():
    f = facts(planned_start=D(2015, 6, 1))
    assert kinds(f, D(2015, 6, 11)) == {SignalKind.NO_PLAN: None, SignalKind.LATE_START: 10}


@pytest.mark.parametrize(("planned_end", "expected"), [(MS - ONE, None), (MS, None), (MS + ONE, 1)])
def test_plan_after_milestone_boundary(planned_end, expected):
    f = facts(planned_start=D(2015, 6, 1), planned_end=planned_end, actual_start=D(2015, 6, 1))
    assert kinds(f, D(2015, 7, 1)).get(SignalKind.PLAN_AFTER_MILESTONE) == expected


def test_plan_after_milestone_counts_days():
    f = facts(planned_start=D(2015, 6, 1), planned_end=D(2015, 11, 20))
    assert kinds(f, D(2015, 5, 1)) == {SignalKind.PLAN_AFTER_MILESTONE: 46, SignalKind.MILESTONE_AT_RISK: 46}


START = D(2015, 6, 1)


@pytest.mark.parametrize(("as_of", "expected"), [(START - ONE, None), (START, None), (START + ONE, 1)])
def test_late_start_boundary(as_of, expected):
    f = facts(planned_start=START, planned_end=D(2015, 9, 30))
    assert kinds(f, as_of).get(SignalKind.LATE_START) == expected


@pytest.mark.parametrize(
    ("actual_start", "expected"),
    [(D(2015, 6, 9), None), (D(2015, 6, 10), None), (D(2015, 6, 11), 9), (None, 9)],
)
def test_late_start_ignores_an_actual_start_after_as_of(actual_start, expected):
    f = facts(planned_start=START, planned_end=D(2015, 9, 30), actual_start=actual_start)
    assert kinds(f, D(2015, 6, 10)).get(SignalKind.LATE_START) == expected


def test_finished_without_recorded_start_is_not_a_late_start():
    f = facts(planned_start=START, planned_end=D(2015, 6, 30), actual_end=D(2015, 6, 20))
    assert kinds(f, D(2015, 7, 1)) == {}


END = D(2015, 9, 30)


@pytest.mark.parametrize(("as_of", "expected"), [(END - ONE, None), (END, None), (END + ONE, 1)])
def test_late_finish_boundary(as_of, expected):
    f = facts(planned_start=D(2015, 6, 1), planned_end=END, actual_start=D(2015, 6, 1))
    assert kinds(f, as_of).get(SignalKind.LATE_FINISH) == expected


@pytest.mark.parametrize(
    ("actual_end", "expected"),
    [(D(2015, 10, 3), None), (D(2015, 10, 4), None), (D(2015, 10, 5), 4), (None, 4)],
)
def test_late_finish_ignores_an_actual_end_after_as_of(actual_end, expected):
    f = facts(planned_start=D(2015, 6, 1), planned_end=END, actual_start=D(2015, 6, 1), actual_end=actual_end)
    assert kinds(f, D(2015, 10, 4)).get(SignalKind.LATE_FINISH) == expected


@pytest.mark.parametrize(("actual_end", "expected"), [(END - ONE, None), (END, None), (END + ONE, 1)])
def test_finished_late_boundary_on_actual_end(actual_end, expected):
    f = facts(planned_start=D(2015, 6, 1), planned_end=END, actual_start=D(2015, 6, 1), actual_end=actual_end)
    assert kinds(f, D(2015, 12, 1)).get(SignalKind.FINISHED_LATE) == expected


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (D(2015, 10, 2), {SignalKind.LATE_FINISH: 2}),
        (D(2015, 10, 3), {SignalKind.FINISHED_LATE: 3}),
        (D(2015, 10, 4), {SignalKind.FINISHED_LATE: 3}),
    ],
)
def test_finished_late_only_once_the_actual_end_has_happened(as_of, expected):
    f = facts(planned_start=D(2015, 6, 1), planned_end=END, actual_start=D(2015, 6, 1),
              actual_end=D(2015, 10, 3))
    assert kinds(f, as_of) == expected


@pytest.mark.parametrize(("as_of", "expected"), [(MS - ONE, None), (MS, None), (MS + ONE, 1)])
def test_milestone_at_risk_always_after_milestone_when_unfinished(as_of, expected):
    f = facts(planned_start=D(2015, 6, 1), planned_end=MS, actual_start=D(2015, 6, 1))
    assert kinds(f, as_of).get(SignalKind.MILESTONE_AT_RISK) == expected


@pytest.mark.parametrize(("as_of", "expected"), [(MS - ONE, None), (MS, None), (MS + ONE, 1)])
def test_milestone_at_risk_without_a_plan_after_milestone(as_of, expected):
    assert kinds(facts(), as_of).get(SignalKind.MILESTONE_AT_RISK) == expected


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [(D(2015, 8, 5), None), (D(2015, 8, 6), None), (D(2015, 8, 7), 1), (D(2015, 8, 16), 10)],
)
def test_milestone_at_risk_from_the_forecast_before_the_milestone(as_of, expected):
    # Planned to finish exactly on the milestone; every day it does not start moves the forecast a day.
    f = facts(planned_start=D(2015, 8, 6), planned_end=MS)
    assert kinds(f, as_of).get(SignalKind.MILESTONE_AT_RISK) == expected


def test_milestone_at_risk_uses_the_actual_late_start():
    f = facts(planned_start=D(2015, 8, 1), planned_end=D(2015, 9, 30), actual_start=D(2015, 8, 11))
    assert forecast_end(f, D(2015, 8, 20)) == D(2015, 10, 10)
    assert kinds(f, D(2015, 8, 20)) == {SignalKind.MILESTONE_AT_RISK: 5}


AFTER_MS = MS + 2 * ONE


@pytest.mark.parametrize(
    ("actual_end", "at_risk"), [(AFTER_MS + ONE, True), (AFTER_MS, False), (AFTER_MS - ONE, False)]
)
def test_milestone_at_risk_stops_once_finished_on_as_of(actual_end, at_risk):
    # Finishing after the milestone is reported as finished_late, not as a risk any more.
    f = facts(planned_start=D(2015, 6, 1), planned_end=MS, actual_start=D(2015, 6, 1), actual_end=actual_end)
    assert (SignalKind.MILESTONE_AT_RISK in kinds(f, AFTER_MS)) is at_risk


def test_not_applicable_has_no_signals_and_no_forecast():
    f = facts(planned_start=D(2015, 1, 1), not_applicable=True)
    assert signals_for(f, D(2016, 6, 1)) == []
    assert forecast_end(f, D(2016, 6, 1)) is None
    assert derive_status(f, D(2016, 6, 1)) is SubtaskStatus.NOT_APPLICABLE


def test_datetime_as_of_is_taken_as_its_day():
    f = facts(planned_start=START, planned_end=D(2015, 9, 30))
    assert kinds(f, dt.datetime(2015, 6, 2, 23, 59)) == kinds(f, D(2015, 6, 2))


# --- forecast and chain ---------------------------------------------------------------------


def test_forecast_is_never_before_as_of():
    f = facts(planned_start=D(2015, 6, 1), planned_end=D(2015, 7, 1), actual_start=D(2015, 6, 1))
    assert forecast_end(f, D(2015, 8, 15)) == D(2015, 8, 15)


def test_forecast_early_start_does_not_pull_forecast_earlier():
    f = facts(planned_start=D(2015, 6, 1), planned_end=D(2015, 7, 1), actual_start=D(2015, 5, 1))
    assert forecast_end(f, D(2015, 5, 10)) == D(2015, 7, 1)


def test_forecast_none_when_finished_or_unplanned():
    assert forecast_end(facts(planned_start=D(2015, 6, 1)), D(2015, 6, 10)) is None
    done = facts(planned_start=D(2015, 6, 1), planned_end=D(2015, 7, 1), actual_start=D(2015, 6, 1),
                 actual_end=D(2015, 7, 1))
    assert forecast_end(done, D(2015, 7, 1)) is None
    assert forecast_end(done, D(2015, 6, 30)) == D(2015, 7, 1)  # replayed before the end: still open


def _chain(*rows: PlanFacts) -> list[PlanFacts]:
    return list(rows)


def test_predecessor_slip_pushes_successor():
    c2 = facts(subtask="C-2", planned_start=D(2015, 6, 1), planned_end=D(2015, 8, 31),
               milestone=D(2016, 1, 1))
    c3 = facts(subtask="C-3", planned_start=D(2015, 9, 1), planned_end=D(2015, 12, 1),
               milestone=D(2016, 1, 1))
    as_of = D(2015, 8, 1)  # C-2 not started, 61 days late: forecast 2015-10-31
    assert forecast_chain([c2, c3], as_of) == [D(2015, 10, 31), D(2015, 12, 1)]
    c2_late = facts(subtask="C-2", planned_start=D(2015, 6, 1), planned_end=D(2015, 11, 30),
                    milestone=D(2016, 1, 1))
    # C-2 forecast 2016-01-30 > C-3's own 2015-12-01: C-3 is pushed past its milestone.
    assert forecast_chain([c2_late, c3], as_of) == [D(2016, 1, 30), D(2016, 1, 30)]
    c3_signals = signals_for_chain([c2_late, c3], as_of)[1]
    assert [(s.kind, s.days) for s in c3_signals] == [(SignalKind.MILESTONE_AT_RISK, 29)]
    # Judged alone, C-3 would be fine.
    assert signals_for(c3, as_of) == []


def test_chain_push_is_transitive_through_finished_and_not_applicable():
    open_1 = facts(subtask="F-2", planned_start=D(2015, 6, 1), planned_end=D(2015, 12, 1))
    done_2 = facts(subtask="F-3", planned_start=D(2015, 6, 1), planned_end=D(2015, 7, 1),
                   actual_start=D(2015, 6, 1), actual_end=D(2015, 7, 1))
    na_3 = facts(subtask="F-4", planned_start=D(2015, 6, 1), not_applicable=True)
    open_4 = facts(subtask="F-5", planned_start=D(2015, 8, 1), planned_end=D(2015, 9, 1))
    as_of = D(2015, 8, 1)
    # F-2 has not started 61 days after its planned start: forecast 2015-12-01 + 61 = 2016-01-31.
    assert forecast_chain([open_1, done_2, na_3, open_4], as_of) == [
        D(2016, 1, 31), None, None, D(2016, 1, 31)
    ]


def test_finished_predecessor_does_not_push():
    done = facts(subtask="J-1", planned_start=D(2015, 1, 1), planned_end=D(2015, 3, 1),
                 actual_start=D(2015, 1, 1), actual_end=D(2015, 9, 1))
    nxt = facts(subtask="J-2", planned_start=D(2015, 9, 1), planned_end=D(2015, 9, 20))
    assert forecast_chain([done, nxt], D(2015, 9, 1)) == [None, D(2015, 9, 20)]


def test_vectorised_forecast_follows_seq_not_row_order():
    frame = _frame([
        ("000001", "C-3", D(2015, 9, 1), D(2015, 12, 1), None, None, D(2016, 1, 1)),
        ("000001", "C-2", D(2015, 6, 1), D(2015, 11, 30), None, None, D(2016, 1, 1)),
        ("000002", "C-3", D(2015, 9, 1), D(2015, 12, 1), None, None, D(2016, 1, 1)),
    ])
    out = forecast_ends(frame, D(2015, 8, 1))
    assert list(out.dt.date) == [D(2016, 1, 30), D(2016, 1, 30), D(2015, 12, 1)]


# --- replay ---------------------------------------------------------------------------------


def test_replay_of_a_past_date_ignores_later_actuals():
    f = facts(planned_start=D(2015, 6, 1), planned_end=D(2015, 9, 30), actual_start=D(2015, 6, 20),
              actual_end=D(2015, 10, 20))
    timeline = {
        D(2015, 6, 1): {},
        # 9 days late to start: forecast 2015-10-09, 4 days past the milestone.
        D(2015, 6, 10): {SignalKind.LATE_START: 9, SignalKind.MILESTONE_AT_RISK: 4},
        # Started 19 days late: forecast 2015-10-19 from then on.
        D(2015, 6, 20): {SignalKind.MILESTONE_AT_RISK: 14},
        D(2015, 9, 30): {SignalKind.MILESTONE_AT_RISK: 14},
        D(2015, 10, 6): {SignalKind.LATE_FINISH: 6, SignalKind.MILESTONE_AT_RISK: 14},
        D(2015, 10, 20): {SignalKind.FINISHED_LATE: 20},
        D(2016, 3, 1): {SignalKind.FINISHED_LATE: 20},
    }
    for as_of, expected in timeline.items():
        assert kinds(f, as_of) == expected, as_of
    days = (D(2015, 6, 19), D(2015, 6, 20), D(2015, 10, 19), D(2015, 10, 20))
    statuses = [derive_status(f, d) for d in days]
    assert statuses == [SubtaskStatus.NOT_STARTED, SubtaskStatus.IN_PROGRESS, SubtaskStatus.IN_PROGRESS,
                        SubtaskStatus.DONE]


def test_replay_vectorised_matches_scalar_timeline():
    frame = _frame([("000001", "B-2", D(2015, 6, 1), D(2015, 9, 30), D(2015, 6, 20), D(2015, 10, 20), MS)])
    for as_of in (D(2015, 6, 10), D(2015, 10, 6), D(2015, 10, 20)):
        out = compute_signals(frame, as_of)
        assert dict(zip(out["signal"], out["days"], strict=True)) == {
            k.value: v for k, v in kinds(_facts_of(frame.iloc[0]), as_of).items()
        }


# --- severity -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [(1, Severity.NOTICE), (29, Severity.NOTICE), (30, Severity.DELAYED), (89, Severity.DELAYED),
     (90, Severity.CRITICAL), (400, Severity.CRITICAL)],
)
def test_severity_by_days(days, expected):
    assert severity_for(SignalKind.LATE_FINISH, days) is expected
    assert severity_for(SignalKind.LATE_START, days) is expected
    assert severity_for(SignalKind.PLAN_AFTER_MILESTONE, days) is expected


def test_fixed_and_capped_severities():
    assert severity_for(SignalKind.MILESTONE_AT_RISK, 1) is Severity.CRITICAL
    assert severity_for(SignalKind.NO_PLAN, None) is Severity.DELAYED
    assert severity_for(SignalKind.FINISHED_LATE, 200) is Severity.NOTICE
    custom = SeverityThresholds(delayed_days=7, critical_days=14, no_plan=Severity.CRITICAL,
                                finished_late_cap=Severity.CRITICAL)
    assert severity_for(SignalKind.FINISHED_LATE, 200, custom) is Severity.CRITICAL
    assert severity_for(SignalKind.LATE_START, 7, custom) is Severity.DELAYED
    assert severity_for(SignalKind.NO_PLAN, None, custom) is Severity.CRITICAL


def test_invalid_thresholds_are_rejected():
    with pytest.raises(ValueError):
        SeverityThresholds(delayed_days=60, critical_days=30)
    with pytest.raises(ValueError):
        SeverityThresholds(delayed_days=0)


def test_severity_codes_and_labels():
    assert [s.code for s in Severity] == ["notice", "delayed", "critical"]
    assert [s.label for s in Severity] == ["注意", "遅延", "重大"]
    assert Severity.from_code("delayed") is Severity.DELAYED
    assert max(Severity.NOTICE, Severity.CRITICAL) is Severity.CRITICAL


# --- explanations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "days", "sentence"),
    [
        (SignalKind.NO_PLAN, None, "B-2 の計画終了日が入力されていません"),
        (SignalKind.PLAN_AFTER_MILESTONE, 46, "B-2 の計画終了日がマイルストーン(2015年10月5日)を46日超えています"),
        (SignalKind.LATE_START, 10, "B-2 は計画開始日を10日過ぎても着手していません"),
        (SignalKind.LATE_FINISH, 15, "B-2 は計画終了日を15日過ぎても完了していません"),
        (SignalKind.FINISHED_LATE, 3, "B-2 は計画終了日より3日遅れて完了しました"),
        (SignalKind.MILESTONE_AT_RISK, 46,
         "B-2 の完了見込み(2015年11月20日)がマイルストーン(2015年10月5日)を46日超えています"),
    ],
)
def test_explanations(kind, days, sentence):
    assert explain(kind, "B-2", days, MS) == sentence
    assert Signal(kind, days, severity_for(kind, days), MS).explain("B-2") == sentence


def test_explain_frame_matches_scalar_sentences():
    frame = _frame([("000001", "B-2", D(2015, 6, 1), D(2015, 11, 20), None, None, MS)])
    out = compute_signals(frame, D(2015, 6, 11))
    expected = [s.explain("B-2") for s in signals_for(_facts_of(frame.iloc[0]), D(2015, 6, 11))]
    assert list(explain_frame(out)) == expected
    assert Signal(SignalKind.MILESTONE_AT_RISK, 46, Severity.CRITICAL, MS).forecast_end == D(2015, 11, 20)


# --- status, completion rate, body status ---------------------------------------------------


def test_completion_rate_counts_done_and_not_applicable():
    s = SubtaskStatus
    assert completion_rate([s.DONE, s.NOT_APPLICABLE, s.IN_PROGRESS, s.NOT_STARTED]) == 0.5
    assert completion_rate([]) is None
    assert completion_rate(["done"]) == 1.0


def test_completion_rates_per_body():
    frame = _frame([
        ("000001", "B-2", D(2015, 6, 1), D(2015, 9, 1), D(2015, 6, 1), D(2015, 9, 1), MS),
        ("000001", "B-3", D(2015, 6, 1), D(2015, 9, 1), D(2015, 6, 1), None, MS),
        ("000001", "B-4", None, None, None, None, MS, True),
        ("000001", "B-5", D(2015, 6, 1), D(2015, 9, 1), None, None, MS),
        ("000002", "B-2", D(2015, 6, 1), D(2015, 9, 1), D(2015, 6, 1), D(2015, 9, 2), MS),
    ])
    out = completion_rates(frame, D(2015, 9, 1)).set_index("body_code")
    assert out.loc["000001", ["not_started", "in_progress", "done", "not_applicable", "total"]].tolist() == [
        1, 1, 1, 1, 4
    ]
    assert out.loc["000001", "rate"] == 0.5
    assert out.loc["000002", "rate"] == 0.0  # finished the day after as_of
    assert list(derive_statuses(frame, D(2015, 9, 1))) == ["done", "in_progress", "not_applicable",
                                                           "not_started", "in_progress"]


def test_body_status_is_worst_signal_and_on_track_without_signals():
    frame = _frame([
        ("000001", "B-2", D(2015, 6, 1), D(2015, 9, 1), D(2015, 6, 1), D(2015, 9, 3), MS),  # finished late
        ("000002", "B-2", D(2015, 6, 1), D(2015, 9, 1), D(2015, 6, 1), None, MS),  # late finish
        ("000002", "B-3", None, None, None, None, D(2015, 11, 30)),  # no plan
        ("000003", "B-2", D(2015, 6, 1), D(2015, 9, 1), D(2015, 6, 1), D(2015, 9, 1), MS),
    ])
    out = compute_signals(frame, D(2015, 9, 10))
    status = body_status(out, ["000001", "000002", "000003", "000004"]).set_index("body_code")
    assert status["status"].tolist() == ["notice", "delayed", "on_track", "on_track"]
    assert status["signal_count"].tolist() == [1, 2, 0, 0]
    assert BodyStatus.ON_TRACK.label == "順調"
    assert list(body_status(out)["body_code"]) == ["000001", "000002"]


def test_compute_signals_shape_and_dtypes():
    frame = _frame([("000001", "B-2", None, None, None, None, MS)])
    out = compute_signals(frame, D(2015, 11, 1))
    assert list(out.columns) == ["body_code", "subtask", "item", "signal", "days", "severity", "milestone"]
    assert out["days"].dtype == "Int64"
    assert out["signal"].tolist() == ["no_plan", "milestone_at_risk"]
    assert out["days"].isna().tolist() == [True, False]
    assert out["severity"].tolist() == ["delayed", "critical"]
    empty = compute_signals(frame.iloc[:0], D(2015, 11, 1))
    assert len(empty) == 0 and list(empty.columns) == list(out.columns)


# --- vectorised == scalar -------------------------------------------------------------------

DATE_COLUMNS = ("planned_start", "planned_end", "actual_start", "actual_end")


def _frame(rows) -> pd.DataFrame:
    """Build a plans frame from (body, subtask, ps, pe, as, ae, milestone[, not_applicable]) tuples."""
    records = []
    for row in rows:
        body, subtask, ps, pe, a_s, a_e, milestone, *rest = row
        item, seq = subtask.split("-")
        records.append(dict(body_code=body, subtask=subtask, item=item, seq=int(seq), milestone=milestone,
                            planned_start=ps, planned_end=pe, actual_start=a_s, actual_end=a_e,
                            not_applicable=bool(rest and rest[0])))
    frame = pd.DataFrame(records, columns=["body_code", "subtask", "item", "seq", "milestone", *DATE_COLUMNS,
                                           "not_applicable"])
    for col in ("milestone", *DATE_COLUMNS):
        frame[col] = pd.to_datetime(frame[col].astype(object))
    return frame


def _opt_date(value) -> dt.date | None:
    return None if pd.isna(value) else pd.Timestamp(value).date()


def _facts_of(row) -> PlanFacts:
    kw = {col: _opt_date(row[col]) for col in DATE_COLUMNS}
    for col in DATE_COLUMNS:
        if f"{col}_precision" in row.index:
            kw[f"{col}_precision"] = row[f"{col}_precision"]
    return PlanFacts(milestone=_opt_date(row["milestone"]), not_applicable=bool(row["not_applicable"]),
                     subtask=row["subtask"], **kw)


def _scalar_reference(frame: pd.DataFrame, as_of, thresholds):
    """Run the scalar functions chain by chain; return per-row signals, forecasts and statuses."""
    signals, forecasts = {}, {}
    for _, group in frame.groupby(["body_code", "item"], sort=False):
        group = group.sort_values("seq", kind="stable")
        chain = [_facts_of(row) for _, row in group.iterrows()]
        for label, sigs, fc in zip(group.index, signals_for_chain(chain, as_of, thresholds),
                                   forecast_chain(chain, as_of), strict=True):
            signals[label], forecasts[label] = sigs, fc
    rows = [
        (frame.at[label, "body_code"], frame.at[label, "subtask"], s.kind.value, s.days, s.severity.code)
        for label in frame.index
        for s in signals[label]
    ]
    statuses = [derive_status(_facts_of(row), as_of).value for _, row in frame.iterrows()]
    return rows, [forecasts[label] for label in frame.index], statuses


BASE = D(2015, 10, 1)
offsets = st.one_of(st.none(), st.integers(-45, 45))
precisions = st.sampled_from(["day", "month"])


@st.composite
def plans_frames(draw):
    rows = []
    for b in range(draw(st.integers(1, 4))):
        for item in draw(st.sets(st.sampled_from("BCF"), min_size=1, max_size=3)):
            for seq in draw(st.sets(st.integers(1, 5), min_size=1, max_size=4)):
                dates = [draw(offsets) for _ in DATE_COLUMNS]
                ms = draw(st.integers(-31, 30).map(lambda x: None if x == -31 else x))  # rarely no milestone
                rows.append(dict(
                    body_code=f"{b:06d}", subtask=f"{item}-{seq}", item=item, seq=seq,
                    milestone=None if ms is None else BASE + dt.timedelta(days=ms),
                    **{col: None if off is None else BASE + dt.timedelta(days=off)
                       for col, off in zip(DATE_COLUMNS, dates, strict=True)},
                    **{f"{col}_precision": draw(precisions) for col in DATE_COLUMNS},
                    not_applicable=draw(st.booleans()) and draw(st.booleans()),
                ))
    order = draw(st.permutations(range(len(rows))))
    frame = pd.DataFrame([rows[i] for i in order])
    for col in ("milestone", *DATE_COLUMNS):
        frame[col] = pd.to_datetime(frame[col].astype(object)).astype("datetime64[s]")
    frame.index = frame.index * 10 + 7  # a non-default index must not matter
    return frame


thresholds_strategy = st.builds(
    lambda d, extra, no_plan, cap: SeverityThresholds(d, d + extra, no_plan, cap),
    st.integers(1, 20), st.integers(0, 20), st.sampled_from(list(Severity)), st.sampled_from(list(Severity)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=plans_frames(), as_of_offset=st.integers(-50, 50), thresholds=thresholds_strategy,
       with_body_ids=st.booleans())
def test_vectorised_equals_scalar(frame, as_of_offset, thresholds, with_body_ids):
    as_of = BASE + dt.timedelta(days=as_of_offset)
    if with_body_ids:  # the loader's frames carry integer body ids, which the chain and rates group by
        frame = frame.assign(body_id=frame["body_code"].map(lambda code: 500 - int(code)).astype("int64"))
    expected_rows, expected_forecasts, expected_statuses = _scalar_reference(frame, as_of, thresholds)

    out = compute_signals(frame, as_of, thresholds)
    got_rows = [
        (b, s, k, None if pd.isna(d) else int(d), sev)
        for b, s, k, d, sev in zip(
            out["body_code"], out["subtask"], out["signal"], out["days"], out["severity"], strict=True
        )
    ]
    assert got_rows == expected_rows
    assert list(forecast_ends(frame, as_of).map(_opt_date)) == expected_forecasts
    assert list(derive_statuses(frame, as_of)) == expected_statuses

    # evaluate() gives the same four results in one pass, and where each signal came from.
    judged = evaluate(frame, as_of, thresholds)
    pd.testing.assert_frame_equal(judged.signals, out)
    assert list(judged.forecast_end.map(_opt_date)) == expected_forecasts
    assert list(judged.statuses) == expected_statuses
    pd.testing.assert_frame_equal(judged.rates, completion_rates(frame, as_of))
    assert list(frame["subtask"].to_numpy()[judged.signal_rows]) == list(out["subtask"])
    assert list(frame["body_code"].to_numpy()[judged.signal_rows]) == list(out["body_code"])


def test_default_thresholds_are_the_documented_ones():
    assert (DEFAULT_THRESHOLDS.delayed_days, DEFAULT_THRESHOLDS.critical_days) == (30, 90)
    assert DEFAULT_THRESHOLDS.no_plan is Severity.DELAYED
