"""REL-02 beyond two sessions (tests/plans/test_views.py): a tampered hidden version is a conflict that
saves nothing, and an import (the bulk write path) bumps each row's version so an open form goes stale."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for
from pmo.plans import service
from pmo.plans.forms import name
from pmo.plans.models import Plan, PlanRevision
from tests.conftest import CITY_A
from tests.plans.conftest import row
from tests.plans.test_imports import run_import
from tests.plans.test_views import sheet_form


def test_a_tampered_version_is_a_conflict_and_saves_nothing(client, auth, db_session):
    """REL-02: the hidden version set to 999 (or to a past value) answers 409 and writes nothing."""
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    form = sheet_form(client.get(f"/plans/{CITY_A}").get_data(as_text=True))
    form["G-3__planned_end"] = "2015-11-30"
    assert client.post(f"/plans/{CITY_A}", data=form).status_code == 302
    plan = db_session.scalar(sa.select(Plan))
    revisions = db_session.scalar(sa.select(sa.func.count()).select_from(PlanRevision))
    for forged in ("999", "0"):
        tampered = sheet_form(client.get(f"/plans/{CITY_A}").get_data(as_text=True))
        tampered[name("G-3", "version")] = forged
        tampered["G-3__planned_end"] = "2015-12-25"
        response = client.post(f"/plans/{CITY_A}", data=tampered)
        assert response.status_code == 409, forged
        assert "他のユーザーが先に保存しました。何も保存していません。" in response.get_data(as_text=True)
        db_session.refresh(plan)
        assert plan.planned_end == dt.date(2015, 11, 30) and plan.version == 1
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PlanRevision)) == revisions


def test_an_import_bumps_versions_so_an_open_form_is_stale(db_session, make_user, tmp_path):
    """REL-02: imports write with bulk UPDATEs, which SQLAlchemy's version counter does not see; they
    set version + 1 themselves, so a form opened before the import gets the conflict."""
    from pmo.core.tabular import write_csv
    from pmo.plans import imports

    staff = actor_for(make_user(Role.BODY_STAFF, CITY_A))
    service.save_sheet(db_session, staff, CITY_A, [row("C-4", 0, planned_end="2015-11-30")])
    seen = {r.subtask.code: r for r in service.load_sheet(db_session, staff, CITY_A).rows}
    assert seen["C-4"].version == 1
    data = write_csv(imports.HEADERS, [[CITY_A, "", "C-4", "", "2016-01-31", "", "", "", "", "取込"]])
    job = run_import(db_session, staff, data, "p.csv", tmp_path)
    assert job.applied["updated"] == 1
    assert db_session.scalar(sa.select(Plan.version)) == 2
    try:
        service.save_sheet(db_session, staff, CITY_A, [row("C-4", seen["C-4"].version, planned_end="2015-12-20")])
    except service.PlanConflict as conflict:
        assert conflict.rows[0].theirs.planned_end.value == dt.date(2016, 1, 31)
    else:
        raise AssertionError("a save from the form opened before the import was not refused")
