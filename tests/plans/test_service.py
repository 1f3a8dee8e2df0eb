"""Plan use cases: scope, all-or-nothing save, concurrent edits (REL-02), history replay, monthly close."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from pmo.accounts.models import Role
from pmo.audit.models import AuditEntry
from pmo.core import clock
from pmo.core.dates import PartialDate
from pmo.core.errors import NotFound, PermissionDenied, ValidationFailed
from pmo.plans import service
from pmo.plans.models import DatePrecision, MonthlySnapshot, Plan, PlanRevision, SnapshotRow
from tests.conftest import CITY_A, CITY_B, PREF_X
from tests.plans.conftest import row


def test_sheet_lists_every_applicable_subtask_grouped_by_work_item(db_session, actor, body):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    sheet = service.load_sheet(db_session, staff, CITY_A)
    codes = [r.subtask.code for r in sheet.rows]
    assert len(codes) == 29 and codes[:3] == ["A-6", "B-2", "B-3"]
    assert [g[0] for g in sheet.groups] == list("ABCDEFGHIJK")
    _, pref = actor(Role.BODY_STAFF, PREF_X)
    pref_codes = [r.subtask.code for r in service.load_sheet(db_session, pref, PREF_X).rows]
    assert "B-2" not in pref_codes and len(pref_codes) == 25  # B is for municipalities only


def test_other_bodies_are_not_found(db_session, actor):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    with pytest.raises(NotFound):
        service.load_sheet(db_session, staff, CITY_B)
    with pytest.raises(NotFound):
        service.save_sheet(db_session, staff, CITY_B, [row("A-6", 0, planned_start="2015-04-01")])
    assert db_session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "authz.denied")) >= 2


def test_prefecture_staff_read_their_municipalities_but_cannot_edit(db_session, actor):
    _, pref = actor(Role.PREFECTURE_STAFF, PREF_X)
    assert service.load_sheet(db_session, pref, CITY_A).body.code == CITY_A
    with pytest.raises(NotFound):
        service.save_sheet(db_session, pref, CITY_A, [row("A-6", 0, planned_start="2015-04-01")])


def test_save_writes_plan_revision_and_audit(db_session, actor, body):
    user, staff = actor(Role.BODY_STAFF, CITY_A)
    result = service.save_sheet(db_session, staff, CITY_A, [
        row("B-2", 0, planned_start="H26.10.1", planned_end="平成27年9月30日", vendor="株式会社中央電算"),
        row("A-6", 0),  # untouched: nothing written
    ])
    assert result.changed == ["B-2"]
    plan = db_session.scalar(select(Plan).where(Plan.body_id == body(CITY_A).id))
    assert (plan.planned_start, plan.planned_end, plan.version) == (dt.date(2014, 10, 1), dt.date(2015, 9, 30), 1)
    assert plan.vendor == "株式会社中央電算"
    revision = db_session.scalar(select(PlanRevision).where(PlanRevision.plan_id == plan.id))
    assert revision.channel == "ui" and revision.user_id == user.id and revision.before is None
    assert revision.after["planned_end"] == "2015-09-30"
    entry = db_session.scalar(select(AuditEntry).where(AuditEntry.action == "plan.updated"))
    assert entry.target_body_code == CITY_A and entry.detail == "B-2"
    assert entry.before == {"planned_start": None, "planned_end": None, "vendor": None}
    assert entry.after == {"planned_start": "2014-10-01", "planned_end": "2015-09-30", "vendor": "株式会社中央電算"}


def test_save_is_all_or_nothing(db_session, actor, body):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    with pytest.raises(ValidationFailed) as caught:
        service.save_sheet(db_session, staff, CITY_A, [
            row("A-6", 0, planned_start="2015-04-01", planned_end="2015-12-25"),
            row("B-2", 0, planned_start="2015-10-20", planned_end="2015-10-01"),
            row("C-3", 0, actual_start="2016-01-05"),
        ])
    assert {p.field for p in caught.value.problems} == {"B-2.planned_end", "C-3.actual_start"}
    assert db_session.scalar(select(func.count()).select_from(Plan).where(Plan.body_id == body(CITY_A).id)) == 0


def test_completion_items_are_saved_and_required(db_session, actor):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    with pytest.raises(ValidationFailed) as caught:
        service.save_sheet(db_session, staff, CITY_A, [row("I-3", 0, actual_start="2015-06-01", actual_end="2015-09-30")])
    assert [p.field for p in caught.value.problems] == ["I-3.cf_published_on"]
    service.save_sheet(db_session, staff, CITY_A, [
        row("I-3", 0, actual_start="2015-06-01", actual_end="2015-09-30", cf_published_on="H27.10.2")])
    sheet = service.load_sheet(db_session, staff, CITY_A)
    i3 = next(r for r in sheet.rows if r.subtask.code == "I-3")
    assert i3.status == "done" and i3.values.completion_dict() == {"published_on": "2015-10-02"}


def test_concurrent_edit_shows_both_values_and_overwrites_nothing(db_session, actor):
    _, first = actor(Role.BODY_STAFF, CITY_A)
    _, second = actor(Role.BODY_STAFF, CITY_A)
    service.save_sheet(db_session, first, CITY_A, [row("C-4", 0, planned_end="2015-11-30")])
    # ``second`` read the sheet at version 0 and typed another end date
    with pytest.raises(service.PlanConflict) as caught:
        service.save_sheet(db_session, second, CITY_A, [
            row("C-4", 0, planned_end="2015-12-20"), row("C-5", 0, planned_end="2015-12-22")])
    conflict = caught.value.rows[0]
    assert conflict.subtask_code == "C-4" and conflict.fields == ["planned_end"]
    assert conflict.theirs.planned_end.value == dt.date(2015, 11, 30)
    assert conflict.yours.planned_end.value == dt.date(2015, 12, 20)
    sheet = {r.subtask.code: r for r in service.load_sheet(db_session, first, CITY_A).rows}
    assert sheet["C-4"].values.planned_end.value == dt.date(2015, 11, 30)
    assert sheet["C-5"].version == 0  # the other row of the same save was not written either


def test_rows_the_user_did_not_touch_are_not_conflicts(db_session, actor):
    _, first = actor(Role.BODY_STAFF, CITY_A)
    _, second = actor(Role.BODY_STAFF, CITY_A)
    seen = {r.subtask.code: r for r in service.load_sheet(db_session, second, CITY_A).rows}
    service.save_sheet(db_session, first, CITY_A, [row("C-4", 0, planned_end="2015-11-30")])
    untouched = service.RowInput("C-4", {}, version=0, fingerprint=seen["C-4"].fingerprint)
    changed = service.RowInput("C-5", {"planned_end": "2015-12-22"}, version=0, fingerprint=seen["C-5"].fingerprint)
    assert service.save_sheet(db_session, second, CITY_A, [untouched, changed]).changed == ["C-5"]


def test_state_on_a_past_date_replays_history(db_session, actor):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    clock.freeze(dt.datetime(2015, 10, 1, 1, 0, tzinfo=dt.UTC))
    service.save_sheet(db_session, staff, CITY_A, [row("J-2", None, planned_start="2015-06-01", planned_end="2015-09-30")])
    clock.freeze(dt.datetime(2015, 11, 20, 1, 0, tzinfo=dt.UTC))
    service.save_sheet(db_session, staff, CITY_A, [row("J-2", None, planned_start="2015-06-01", planned_end="2015-12-18",
                                                       actual_start="2015-06-10")])
    clock.freeze(dt.datetime(2015, 12, 15, 1, 0, tzinfo=dt.UTC))

    def j2(on):
        return next(r for r in service.load_sheet(db_session, staff, CITY_A, on).rows if r.subtask.code == "J-2")

    assert j2(dt.date(2015, 9, 30)).values.planned_end is None
    october = j2(dt.date(2015, 10, 31))
    assert october.values.planned_end.value == dt.date(2015, 9, 30) and october.status == "not_started"
    november = j2(dt.date(2015, 11, 30))
    assert november.values.planned_end.value == dt.date(2015, 12, 18) and november.status == "in_progress"
    assert j2(None).values.actual_start.value == dt.date(2015, 6, 10)


def test_history_lists_what_changed(db_session, actor):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    service.save_sheet(db_session, staff, CITY_A, [row("H-4", None, planned_end="2015-09-30")])
    service.save_sheet(db_session, staff, CITY_A, [row("H-4", None, planned_end="2015-10-30")])
    newest = service.plan_history(db_session, staff, CITY_A)[0]
    assert newest["subtask"] == "H-4" and newest["changes"] == [("計画終了日", "2015-09-30", "2015-10-30")]


def test_monthly_close_freezes_every_body(db_session, actor, body):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    _, officer = actor(Role.MINISTRY_OFFICER, ministry="mic")
    clock.freeze(dt.datetime(2015, 11, 10, 1, 0, tzinfo=dt.UTC))
    service.save_sheet(db_session, staff, CITY_A, [row("E-4", None, planned_end="2015-12-11", actual_start="2015-11-02")])
    clock.freeze(dt.datetime(2015, 12, 2, 1, 0, tzinfo=dt.UTC))
    service.save_sheet(db_session, staff, CITY_A, [row("E-4", None, planned_end="2015-12-11", actual_start="2015-11-02",
                                                       actual_end="2015-12-01")])
    snapshot = service.close_month(db_session, officer, dt.date(2015, 11, 1))
    assert snapshot.as_of == dt.date(2015, 11, 30) and snapshot.row_count > 52_000
    e4 = db_session.scalar(select(SnapshotRow).where(SnapshotRow.snapshot_id == snapshot.id,
                                                     SnapshotRow.body_id == body(CITY_A).id,
                                                     SnapshotRow.subtask_id == service.subtasks_on(db_session, clock.today())[11].id))
    assert e4 is not None
    states = dict(db_session.execute(select(SnapshotRow.status, func.count()).where(
        SnapshotRow.snapshot_id == snapshot.id, SnapshotRow.body_id == body(CITY_A).id).group_by(SnapshotRow.status)).all())
    assert states == {"in_progress": 1, "not_started": 28}  # the December end is not in November's close
    with pytest.raises(ValidationFailed, match="締め済み"):
        service.close_month(db_session, officer, dt.date(2015, 11, 1))
    with pytest.raises(ValidationFailed, match="終わっていない"):
        service.close_month(db_session, officer, dt.date(2015, 12, 1))
    with pytest.raises(PermissionDenied):
        service.close_month(db_session, staff, dt.date(2015, 10, 1))
    assert db_session.scalar(select(func.count()).select_from(MonthlySnapshot)) == 1


def test_prefecture_summary_and_comments(db_session, actor):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    service.save_sheet(db_session, staff, CITY_A, [row("A-6", None, planned_start="2015-04", planned_end="2016-03")])
    _, pref = actor(Role.PREFECTURE_STAFF, PREF_X)
    rows = {r.body.code: r for r in service.prefecture_summaries(db_session, pref)}
    assert len(rows) == 181 and rows[CITY_A].after_milestone == 1 and rows[CITY_A].no_plan == 28
    service.add_comment(db_session, pref, CITY_A, "A-6の期限超過について相談してください。", "A-6", "道 担当", "北海道")
    assert service.list_comments(db_session, rows[CITY_A].body)[0].subtask.code == "A-6"
    with pytest.raises(PermissionDenied):
        service.add_comment(db_session, staff, CITY_A, "自分にはコメントできない")


def _plan(db_session, body_id, subtask_id, **values):  # type: ignore[no-untyped-def]
    """Store a plan row directly, so states the screen would refuse (an actual end this month) exist too."""
    precisions = {}
    for name in ("planned_start", "planned_end", "actual_start", "actual_end"):
        text = values.pop(name, None)
        if text is not None:
            partial = PartialDate.from_isoformat(text)
            values[name], precisions[f"{name}_precision"] = partial.value, DatePrecision(partial.precision)
    db_session.add(Plan(body_id=body_id, subtask_id=subtask_id, updated_dt=clock.now(), **values, **precisions))


@pytest.mark.parametrize("today", [dt.date(2015, 12, 15), dt.date(2015, 11, 30)])
def test_prefecture_summary_counts_agree_with_each_body_sheet(db_session, actor, body, today):
    """The summary is counted in SQL; each body's sheet derives the same figures row by row in Python."""
    clock.freeze(dt.datetime.combine(today, dt.time(12), clock.JST))
    ids = {st.code: st.id for st in service.subtasks_on(db_session, today)}
    a, b, pref = body(CITY_A).id, body(CITY_B).id, body(PREF_X).id
    cases = [
        (a, "B-2", {"planned_end": "2015-10"}),  # a month past the 10/5 milestone: late
        (a, "B-3", {"planned_end": "2015-11", "actual_start": "2015-11", "actual_end": "2015-11"}),  # ends with 11/30
        (a, "B-4", {"planned_end": "2016-01", "actual_start": "2015-12-01", "actual_end": "2015-12"}),  # late; open month
        (a, "B-5", {"planned_end": "2016-01-01", "actual_end": "2015-11-30", "actual_start": "2015-11-01"}),
        (a, "A-6", {"planned_end": "2016-01-02", "not_applicable_reason": "委託先が対応"}),  # 対象外 is never late
        (a, "C-3", {"progress": 0, "planned_start": "2015-12"}),  # 0 % is not started; a start is no plan
        (a, "C-4", {"progress": 40}),
        (a, "C-5", {"not_applicable_reason": ""}),
        (b, "B-2", {"planned_end": "2015-10-05", "actual_start": "2015-12-16"}),  # on the milestone; starts later
        (b, "B-3", {"planned_end": "2015-12", "actual_start": "2015-12-15", "actual_end": "2015-12-15"}),
        (b, "E-4", {"planned_end": "2015-12-31", "actual_start": "2015-11", "actual_end": "2015-11-30"}),
        (pref, "B-2", {"planned_end": "2016-03", "progress": 50}),  # B does not apply to a prefecture: ignored
        (pref, "A-6", {"planned_end": "2016-02", "actual_start": "2015-10-01"}),
    ]
    for body_id, code, values in cases:
        _plan(db_session, body_id, ids[code], **values)
    db_session.flush()
    _, officer = actor(Role.PREFECTURE_STAFF, PREF_X)
    summaries = {r.body.code: r for r in service.prefecture_summaries(db_session, officer)}
    assert len(summaries) == 181
    for code in (CITY_A, CITY_B, PREF_X, "012041"):
        sheet = service.load_sheet(db_session, officer, code)
        expected_counts = sheet.counts()
        got = summaries[code]
        assert got.total == len(sheet.rows), code
        assert got.counts == expected_counts, code
        assert got.no_plan == sum(1 for r in sheet.rows if not r.values.is_not_applicable and r.values.planned_end is None)
        assert got.after_milestone == sum(1 for r in sheet.rows if r.after_milestone), code
        assert got.completion_rate == pytest.approx(sheet.completion_rate)
        assert (got.last_update is not None) == any(r.updated_dt for r in sheet.rows)
    assert summaries[CITY_A].after_milestone == 2 and summaries[CITY_A].counts["not_applicable"] == 1
    assert summaries[CITY_A].counts["done"] == 2  # B-3 (November, ended by 11/30) and B-5; not B-4 (December)
    assert summaries[CITY_B].counts["done"] == (2 if today.day == 15 else 1)  # B-3 ends on 12/15
