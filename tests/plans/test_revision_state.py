"""Every writer of plan history fills a revision's typed state columns from its JSON (replay reads only them)."""

from __future__ import annotations

import datetime as dt

import openpyxl
from sqlalchemy import select

from pmo.accounts.models import Role
from pmo.plans import imports, service
from pmo.plans.models import REVISION_STATE_FIELDS, Plan, PlanRevision, revision_state
from tests.conftest import CITY_A
from tests.plans.conftest import row
from tests.plans.test_imports import run_import


def _assert_typed_state_matches_json(db_session) -> int:
    revisions = list(db_session.scalars(select(PlanRevision)))
    for revision in revisions:
        expected = revision_state(revision.after)
        assert {name: getattr(revision, name) for name in REVISION_STATE_FIELDS} == expected, revision.after
    return len(revisions)


def test_a_saved_sheet_and_an_import_both_fill_the_typed_state(db_session, actor, tmp_path):
    import io

    _, staff = actor(Role.BODY_STAFF, CITY_A)
    service.save_sheet(db_session, staff, CITY_A, [
        row("A-6", None, planned_start="2015-04", planned_end="2015-12-25", progress="40"),
        row("B-2", None, planned_start="2014-10-01", planned_end="2015-09-30", actual_start="2014-10-03",
            vendor="株式会社中央電算"),
        row("D-3", None, not_applicable="1", not_applicable_reason="中間サーバーを利用"),
    ])
    data = imports.export_file(db_session, staff, CITY_A, "xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb[imports.SHEET_NAME]
    ws["G3"] = dt.datetime(2015, 9, 28)  # B-2 actual end, through the import
    out = io.BytesIO()
    wb.save(out)
    job = run_import(db_session, staff, out.getvalue(), "mine.xlsx", tmp_path)
    assert job.applied["updated"] == 1
    assert _assert_typed_state_matches_json(db_session) == 4
    b2 = db_session.scalar(select(PlanRevision).where(PlanRevision.channel == "import"))
    plan = db_session.get(Plan, b2.plan_id)
    assert (b2.actual_end, b2.vendor, b2.planned_start) == (dt.date(2015, 9, 28), "株式会社中央電算", dt.date(2014, 10, 1))
    assert plan.actual_end == b2.actual_end
