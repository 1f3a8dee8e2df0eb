"""Loading plans as of a date (current rows and replayed history), the catalog version in force,
the thresholds setting, and scope."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.catalog.models import CatalogVersion, SubtaskTerms
from pmo.catalog.service import version_on
from pmo.core import clock
from pmo.core.errors import NotFound, PermissionDenied, ValidationFailed
from pmo.delays import rules, service
from tests.conftest import CITY_A, CITY_B, CITY_C, PREF_X

from .factories import add_plan, add_revision, fill_bodies, jst

D = dt.date


def signals_of(state, code=CITY_A):
    s = state.signals[state.signals["body_code"] == code]
    return {(row.subtask, str(row.signal)): (None if row.days is None or str(row.days) == "<NA>" else int(row.days))
            for row in s.itertuples()}


def test_every_applicable_subtask_is_in_the_frame_and_a_missing_plan_is_no_plan(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    add_plan(db_session, CITY_A, "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 9, 30))
    state = service.delay_state(db_session, officer, D(2015, 6, 1), body_code=CITY_A)
    plans = state.plans
    assert len(plans) == 29  # a 市 has every sub-task of the catalog
    assert set(plans["body_code"]) == {CITY_A}
    sig = signals_of(state)
    assert ("B-3", "no_plan") in sig
    assert ("B-2", "no_plan") not in sig
    assert ("B-2", "late_start") in sig and sig[("B-2", "late_start")] == (D(2015, 6, 1) - D(2015, 4, 1)).days


def test_a_prefecture_gets_only_the_subtasks_that_apply_to_prefectures(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    state = service.delay_state(db_session, officer, D(2015, 6, 1), body_code=PREF_X)
    assert not any(s.startswith("B-") for s in state.plans["subtask"])


def test_month_precision_and_not_applicable_reach_the_rules(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    add_plan(db_session, CITY_A, "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 9, 1),
             planned_end_precision="month")
    add_plan(db_session, CITY_A, "D-3", not_applicable_reason="中間サーバー・プラットフォームを利用")
    on_last_day = signals_of(service.delay_state(db_session, officer, D(2015, 9, 30), body_code=CITY_A))
    assert ("B-2", "late_finish") not in on_last_day  # 2015-09 ends on the 30th
    next_day = signals_of(service.delay_state(db_session, officer, D(2015, 10, 1), body_code=CITY_A))
    assert next_day[("B-2", "late_finish")] == 1
    assert not any(sub == "D-3" for sub, _ in next_day)
    state = service.delay_state(db_session, officer, D(2015, 10, 1), body_code=CITY_A)
    assert state.plans.set_index("subtask").loc["D-3", "status"] == "not_applicable"


def test_a_past_date_replays_the_newest_revision_on_or_before_it(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    clock.freeze(dt.datetime(2016, 3, 1, tzinfo=dt.timezone.utc))
    plan_id = add_plan(db_session, CITY_A, "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 9, 30),
                       actual_start=D(2015, 4, 1), actual_end=D(2015, 10, 20))
    # First planned late (after the milestone), then moved forward on 2015-06-10; finished on 10-20.
    add_revision(db_session, plan_id, jst(D(2015, 3, 1)), planned_start=D(2015, 4, 1), planned_end=D(2015, 10, 31))
    add_revision(db_session, plan_id, jst(D(2015, 6, 10), hour=23), planned_start=D(2015, 4, 1),
                 planned_end=D(2015, 9, 30), actual_start=D(2015, 4, 1))
    add_revision(db_session, plan_id, jst(D(2015, 10, 21)), planned_start=D(2015, 4, 1), planned_end=D(2015, 9, 30),
                 actual_start=D(2015, 4, 1), actual_end=D(2015, 10, 20))

    before_any = signals_of(service.delay_state(db_session, officer, D(2015, 2, 28), body_code=CITY_A))
    assert ("B-2", "no_plan") in before_any  # the plan did not exist yet
    first = signals_of(service.delay_state(db_session, officer, D(2015, 6, 9), body_code=CITY_A))
    assert first[("B-2", "plan_after_milestone")] == 26
    assert ("B-2", "late_start") in first  # no actual start was known then
    moved = signals_of(service.delay_state(db_session, officer, D(2015, 6, 10), body_code=CITY_A))
    assert ("B-2", "plan_after_milestone") not in moved and ("B-2", "late_start") not in moved
    late = signals_of(service.delay_state(db_session, officer, D(2015, 10, 15), body_code=CITY_A))
    assert late[("B-2", "late_finish")] == 15
    assert late[("B-2", "milestone_at_risk")] == 10  # forecast 10-15 against the 10-05 milestone
    done = signals_of(service.delay_state(db_session, officer, D(2016, 2, 1), body_code=CITY_A))
    assert done[("B-2", "finished_late")] == 20
    assert ("B-2", "late_finish") not in done


def test_a_plan_without_history_is_judged_as_it_stands(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    clock.freeze(dt.datetime(2016, 3, 1, tzinfo=dt.timezone.utc))
    add_plan(db_session, CITY_A, "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 11, 30))
    sig = signals_of(service.delay_state(db_session, officer, D(2015, 5, 1), body_code=CITY_A))
    assert sig[("B-2", "plan_after_milestone")] == 56


def test_the_catalog_version_in_force_on_the_date_gives_the_milestone(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    first = version_on(db_session, D(2015, 1, 1))
    later = CatalogVersion(effective_from=D(2015, 7, 1), note="B-2 のマイルストーンを変更", created_dt=clock.now())
    db_session.add(later)
    db_session.flush()
    from pmo.catalog.models import Milestone, Subtask

    b2 = db_session.scalar(sa.select(Subtask.id).where(Subtask.code == "B-2"))
    card = db_session.scalar(sa.select(Milestone.id).where(Milestone.code == "card_delivery"))
    for terms in first.terms:
        db_session.add(SubtaskTerms(
            version_id=later.id, subtask_id=terms.subtask_id,
            milestone_id=card if terms.subtask_id == b2 else terms.milestone_id,
            applies_prefecture=terms.applies_prefecture, applies_municipality=terms.applies_municipality,
            applies_union=terms.applies_union,
        ))
    db_session.flush()
    add_plan(db_session, CITY_A, "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 10, 31))
    old = signals_of(service.delay_state(db_session, officer, D(2015, 6, 30), body_code=CITY_A))
    new = signals_of(service.delay_state(db_session, officer, D(2015, 7, 1), body_code=CITY_A))
    assert old[("B-2", "plan_after_milestone")] == 26
    assert ("B-2", "plan_after_milestone") not in new  # 2015-11-30 now


def test_thresholds_are_a_setting(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    admin = actor(Role.SYSTEM_ADMIN)
    add_plan(db_session, CITY_A, "A-6", planned_start=D(2015, 4, 1), planned_end=D(2015, 12, 1))
    state = service.delay_state(db_session, officer, D(2015, 5, 11), body_code=CITY_A)
    row = state.signals[(state.signals["subtask"] == "A-6") & (state.signals["signal"] == "late_start")].iloc[0]
    assert int(row["days"]) == 40 and row["severity"] == "delayed"
    service.set_thresholds(db_session, admin, rules.SeverityThresholds(delayed_days=45, critical_days=100))
    state = service.delay_state(db_session, officer, D(2015, 5, 11), body_code=CITY_A)
    row = state.signals[(state.signals["subtask"] == "A-6") & (state.signals["signal"] == "late_start")].iloc[0]
    assert row["severity"] == "notice"
    with pytest.raises(PermissionDenied):
        service.set_thresholds(db_session, officer, rules.DEFAULT_THRESHOLDS)


def test_scope_body_prefecture_national(db_session, actor):
    fill_bodies(db_session, [CITY_A, CITY_B, CITY_C])
    staff = actor(Role.BODY_STAFF, CITY_A)
    pref = actor(Role.PREFECTURE_STAFF, PREF_X)
    officer = actor(Role.MINISTRY_OFFICER)
    as_of = D(2015, 11, 1)
    assert set(service.delay_state(db_session, staff, as_of).bodies["body_code"]) == {CITY_A}
    pref_codes = set(service.delay_state(db_session, pref, as_of).bodies["body_code"])
    assert {CITY_A, CITY_B, PREF_X} <= pref_codes and CITY_C not in pref_codes
    assert all(code.startswith("01") or code == "U01001" for code in pref_codes)
    national = service.delay_state(db_session, officer, as_of).bodies
    assert len(national) > 1700
    with pytest.raises(NotFound):
        service.delay_state(db_session, staff, as_of, body_code=CITY_B)
    with pytest.raises(NotFound):
        service.delay_state(db_session, pref, as_of, body_code=CITY_C)
    with pytest.raises(NotFound):
        service.delay_state(db_session, pref, as_of, prefecture_code="02")


def test_body_rows_roll_up_status_rate_and_vendor(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    fill_bodies(db_session, [CITY_A], plan=lambda v: {
        "planned_start": v.milestone_date - dt.timedelta(days=200), "planned_end": v.milestone_date - dt.timedelta(days=100),
        "actual_start": v.milestone_date - dt.timedelta(days=200), "actual_end": v.milestone_date - dt.timedelta(days=100),
        "vendor": "北斗システム",
    })
    row = service.delay_state(db_session, officer, D(2017, 6, 1), body_code=CITY_A).bodies.iloc[0]
    assert row["status"] == "on_track" and row["rate"] == 1.0 and row["vendors"] == ["北斗システム"]


@pytest.mark.parametrize("raw,expected", [
    ("2015-12-01", D(2015, 12, 1)), ("2015/12/1", D(2015, 12, 1)), ("２０１５－１２－０１", D(2015, 12, 1)), ("", D(2015, 1, 1)),
])
def test_parse_as_of(raw, expected):
    assert service.parse_as_of(raw, D(2015, 1, 1)) == expected


@pytest.mark.parametrize("raw", ["2015-13-01", "yesterday", "1999-01-01"])
def test_parse_as_of_rejects_in_japanese(raw):
    with pytest.raises(ValidationFailed) as exc:
        service.parse_as_of(raw, D(2015, 1, 1))
    assert "基準日" in exc.value.problems[0].message and raw in exc.value.problems[0].message


def test_the_state_cache_follows_every_plan_change(db_session, actor, monkeypatch):
    officer = actor(Role.MINISTRY_OFFICER)
    monkeypatch.setitem(service.CACHE, "enabled", True)
    monkeypatch.setattr(service, "_state_cache", {})
    plan_id = add_plan(db_session, CITY_A, "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 9, 30))
    first = service.delay_state(db_session, officer, D(2015, 10, 15), prefecture_code="01")
    assert service.delay_state(db_session, officer, D(2015, 10, 15), prefecture_code="01") is first
    from pmo.plans.models import Plan

    plan = db_session.get(Plan, plan_id)
    plan.actual_end, plan.version = D(2015, 9, 30), plan.version + 1  # how the plans service saves
    db_session.flush()
    second = service.delay_state(db_session, officer, D(2015, 10, 15), prefecture_code="01")
    assert second is not first
    late = second.signals[(second.signals["body_code"] == CITY_A) & (second.signals["subtask"] == "B-2")]
    assert "late_finish" not in set(late["signal"].astype(str))


@pytest.mark.parametrize("replay", [False, True])
def test_the_loader_reads_every_field_exactly_at_the_edges_of_the_date_range(db_session, replay):
    # The loader packs dates, precisions, 対象外 and progress into integers in SQL; each must come back as stored.
    values = dict(planned_start=D(1873, 1, 1), planned_end=D(2199, 12, 31), actual_start=D(2015, 2, 1),
                  actual_end=D(2016, 2, 29), planned_start_precision="month", planned_end_precision="day",
                  actual_start_precision="month", actual_end_precision="month", progress=100, vendor="株式会社A")
    plan_id = add_plan(db_session, CITY_A, "B-2", **values)
    other = add_plan(db_session, CITY_A, "B-3", planned_start=D(2015, 1, 1), progress=0,
                     not_applicable_reason="不要")
    if replay:
        add_revision(db_session, plan_id, jst(D(2015, 1, 1)), **values)
        add_revision(db_session, other, jst(D(2015, 1, 1)), planned_start=D(2015, 1, 1), progress=0,
                     not_applicable_reason="不要")
    plans = service.load_plans(db_session, service.Reach(body_id=service_body_id(db_session)), D(2016, 3, 1),
                               replay=replay).set_index("subtask")
    row = plans.loc["B-2"]
    for column in service.DATE_COLUMNS:
        assert row[column].date() == values[column]
        assert row[f"{column}_precision"] == values[f"{column}_precision"]
    assert row["progress"] == 100 and row["vendor"] == "株式会社A" and not row["not_applicable"]
    assert row["plan_id"] == plan_id
    na = plans.loc["B-3"]
    assert na["not_applicable"] and na["not_applicable_reason"] == "不要" and na["progress"] == 0
    assert na["planned_start"].date() == D(2015, 1, 1) and pd.isna(na["planned_end"])
    unplanned = plans.loc["C-3"]
    assert pd.isna(unplanned["plan_id"]) and pd.isna(unplanned["progress"]) and pd.isna(unplanned["planned_start"])
    assert unplanned["planned_start_precision"] == "day" and not unplanned["not_applicable"]


def service_body_id(session):
    from pmo.orgs.models import Body

    return session.scalar(sa.select(Body.id).where(Body.code == CITY_A))
