"""The Excel/CSV round-trip: all-or-nothing imports listing every error (REL-03), idempotent re-imports
(REL-04), scope."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from sqlalchemy import func, select

from pmo.accounts.models import Role
from pmo.core import clock
from pmo.core.tabular import SheetSpec, write_csv, write_xlsx
from pmo.plans import imports, service
from pmo.plans.models import ImportStatus, Plan, PlanRevision
from tests.conftest import CITY_A, CITY_B, PREF_X
from tests.plans.conftest import row


def run_import(db_session, actor, data, filename, tmp_path, national=False):
    job = imports.start_job(db_session, actor, data, filename, national)
    imports.validate_job(db_session, actor, job, data, tmp_path)
    if job.status is ImportStatus.PREVIEWED:
        job.applied = imports.commit_job(db_session, actor, job, tmp_path)
    return job


def count(db_session, model):
    return db_session.scalar(select(func.count()).select_from(model))


def test_national_workbook_with_three_bad_rows_imports_nothing_then_twice_changes_nothing(db_session, actor, tmp_path):
    _, officer = actor(Role.MINISTRY_OFFICER, ministry="mic")
    rows = list(imports.export_rows(db_session, officer, None))
    assert len(rows) > 50_000
    for i, r in enumerate(rows):
        r[3], r[4] = dt.date(2015, 4, 1) + dt.timedelta(days=i % 30), dt.date(2015, 12, 1)
    bad = [list(r) for r in rows]
    bad[100][0] = "999999"                      # unknown body (row 102 in Excel)
    prefecture_row = next(i for i, r in enumerate(bad) if r[0] == PREF_X)
    bad[prefecture_row][2] = "B-2"              # B applies to municipalities only
    bad[40_000][5] = "2015-02-30"               # impossible date
    data = write_xlsx([SheetSpec(imports.SHEET_NAME, imports.HEADERS, bad)])
    job = run_import(db_session, officer, data, "national.xlsx", tmp_path, national=True)
    assert job.status is ImportStatus.REJECTED
    found = {(e[1], e[2]): e[4] for e in job.errors}
    assert len(job.errors) == 3
    assert "999999" in found[(102, "団体コード")]
    assert "都道府県" in found[(prefecture_row + 2, "サブタスク")]
    assert "存在しない" in found[(40_002, "実績開始日")]
    assert count(db_session, Plan) == 0 and count(db_session, PlanRevision) == 0

    good = write_xlsx([SheetSpec(imports.SHEET_NAME, imports.HEADERS, rows)])
    first = run_import(db_session, officer, good, "national.xlsx", tmp_path, national=True)
    assert first.status is ImportStatus.DONE
    assert first.applied == {"created": len(rows), "updated": 0, "unchanged": 0}
    revisions = count(db_session, PlanRevision)
    assert revisions == len(rows)
    from tests.plans.test_revision_chain import assert_chain

    assert assert_chain(db_session) == len(rows)
    second = run_import(db_session, officer, good, "national.xlsx", tmp_path, national=True)
    assert second.message == imports.DUPLICATE_WARNING
    assert second.counts["totals"] == {"created": 0, "updated": 0, "unchanged": len(rows)}
    assert second.applied == {"created": 0, "updated": 0, "unchanged": len(rows)}
    assert count(db_session, PlanRevision) == revisions


def test_body_download_edit_upload_round_trip(db_session, actor, tmp_path):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    service.save_sheet(db_session, staff, CITY_A, [
        row("A-6", None, planned_start="2015-04", planned_end="2015-12-25", comment="=SUM(A1)"),
        row("B-2", None, planned_start="2014-10-01", planned_end="2015-09-30", vendor="株式会社中央電算")])
    data = imports.export_file(db_session, staff, CITY_A, "xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb[imports.SHEET_NAME]
    assert [c.value for c in ws[1]] == imports.HEADERS
    assert ws.protection.sheet and ws["A1"].protection.locked and not ws["D2"].protection.locked
    assert "記入方法" in wb.sheetnames
    assert ws["D2"].value == "2015-04" and ws["J2"].value == "=SUM(A1)" and ws["J2"].data_type == "s"
    unchanged = run_import(db_session, staff, data, "mine.xlsx", tmp_path)
    assert unchanged.applied == {"created": 0, "updated": 0, "unchanged": 29}
    ws["G3"] = dt.datetime(2015, 9, 28)   # B-2 actual end
    ws["F3"] = "H26.10.1"                 # B-2 actual start, typed as 和暦 text
    ws["E4"] = "2015/11/30"               # B-3 planned end
    out = io.BytesIO()
    wb.save(out)
    job = run_import(db_session, staff, out.getvalue(), "mine.xlsx", tmp_path)
    assert job.counts["bodies"][CITY_A] | {"name": None} == {"name": None, "created": 1, "updated": 1, "unchanged": 27}
    sheet = {r.subtask.code: r for r in service.load_sheet(db_session, staff, CITY_A).rows}
    assert sheet["B-2"].status == "done" and sheet["B-2"].values.vendor == "株式会社中央電算"  # vendor kept
    assert sheet["A-6"].values.planned_start.precision == "month"
    assert sheet["B-3"].values.planned_end.value == dt.date(2015, 11, 30)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_csv_in_either_encoding(db_session, actor, tmp_path, encoding):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    data = write_csv(imports.HEADERS, [
        [CITY_A, "小樽市", "ｃ－３", "平成27年1月5日", "H27.3.31", "2015/1/5", "２０１５年３月２７日", "100", "", "入札済み"],
        [CITY_A, "小樽市", "D-3", "", "", "", "", "", "中間サーバー・プラットフォームを利用", ""],
    ], encoding=encoding)
    job = run_import(db_session, staff, data, "plans.csv", tmp_path)
    assert job.status is ImportStatus.DONE and job.applied["created"] == 2
    sheet = {r.subtask.code: r for r in service.load_sheet(db_session, staff, CITY_A).rows}
    assert sheet["C-3"].values.actual_end.value == dt.date(2015, 3, 27) and sheet["C-3"].values.comment == "入札済み"
    assert sheet["D-3"].status == "not_applicable"


def test_every_error_is_listed_with_location(db_session, actor, tmp_path):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    data = write_csv(imports.HEADERS, [
        [CITY_B, "函館市", "A-6", "2015-04-01", "", "", "", "", "", ""],          # another body: out of scope
        [CITY_A, "小樽市", "Z-9", "", "", "", "", "", "", ""],                    # unknown sub-task
        [CITY_A, "小樽市", "A-6", "2015-10-01", "2015-09-01", "", "", "", "", ""],  # end before start
        [CITY_A, "小樽市", "B-3", "", "", "2016-01-05", "", "150", "", ""],         # future actual, bad progress
        [CITY_A, "小樽市", "A-6", "", "", "", "", "", "", ""],                    # duplicate row
    ])
    job = run_import(db_session, staff, data, "plans.csv", tmp_path)
    assert job.status is ImportStatus.REJECTED
    assert [(e[1], e[2]) for e in job.errors] == [
        (2, "団体コード"), (3, "サブタスク"), (4, "計画終了日"), (5, "進捗率"), (5, "実績開始日"), (6, "サブタスク")]
    assert "権限がありません" in job.errors[0][4]
    assert count(db_session, Plan) == 0


def test_a_failed_commit_leaves_the_database_as_it_was(db_session, actor, tmp_path):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    service.save_sheet(db_session, staff, CITY_A, [row("A-6", None, planned_end="2015-12-25")])
    db_session.commit()
    data = write_csv(imports.HEADERS, [[CITY_A, "", "A-6", "", "2015-12-20", "", "", "", "", ""],
                                       [CITY_A, "", "B-2", "", "2015-09-30", "", "", "", "", ""]])
    job = imports.start_job(db_session, staff, data, "p.csv", False)
    imports.validate_job(db_session, staff, job, data, tmp_path)
    db_session.commit()

    def die(done, total):
        raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        imports.commit_job(db_session, staff, job, tmp_path, die)
    db_session.rollback()
    plans = {p.subtask_id: p for p in db_session.scalars(select(Plan))}
    assert len(plans) == 1 and next(iter(plans.values())).planned_end == dt.date(2015, 12, 25)
    job = imports.get_job(db_session, staff, job.batch_id)
    job.status = ImportStatus.RUNNING
    from pmo.core import clock

    clock.advance(dt.timedelta(minutes=5))
    assert imports.mark_if_stale(job) and job.status is ImportStatus.INTERRUPTED


def test_national_upload_needs_the_permission(db_session, actor, tmp_path):
    from pmo.core.errors import PermissionDenied

    _, staff = actor(Role.BODY_STAFF, CITY_A)
    with pytest.raises(PermissionDenied):
        imports.start_job(db_session, staff, b"x", "a.csv", national=True)


def test_import_keeps_completion_items_in_the_plan_and_in_its_history(db_session, actor, tmp_path):
    _, staff = actor(Role.BODY_STAFF, CITY_A)
    service.save_sheet(db_session, staff, CITY_A, [row("A-6", None, planned_start="2015-04-01", planned_end="2015-10-31",
                                                       actual_start="2015-04-01", actual_end="2015-10-30",
                                                       cf_help_desk="はい")])
    data = write_csv(imports.HEADERS, [[CITY_A, "", "A-6", "2015-04-01", "2015-10-31", "2015-04-01", "2015-10-30", "",
                                        "", "窓口は本庁舎1階"]])
    job = run_import(db_session, staff, data, "a6.csv", tmp_path)
    assert job.applied == {"created": 0, "updated": 1, "unchanged": 0}
    revision = db_session.scalars(select(PlanRevision).order_by(PlanRevision.id.desc())).first()
    assert revision.channel == "import" and revision.batch_id == job.batch_id
    assert revision.before["completion"] == revision.after["completion"] == {"help_desk": "はい"}
    assert revision.after["comment"] == "窓口は本庁舎1階"
    replayed = service.state_on(db_session, clock.today(), body_ids=[revision.body_id])[(revision.body_id, revision.subtask_id)]
    assert replayed.completion == (("help_desk", "はい"),) and replayed.comment == "窓口は本庁舎1階"
    sheet = {r.subtask.code: r for r in service.load_sheet(db_session, staff, CITY_A).rows}
    assert sheet["A-6"].values.completion_dict() == {"help_desk": "はい"}
