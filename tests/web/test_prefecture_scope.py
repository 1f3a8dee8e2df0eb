"""AC-04 over HTTP: prefecture staff of 県X (北海道) read 市A and 市B, but 市C (青森市, 県Y) is absent
from their lists, counts and exports, not only from detail pages; editing 市A's plan is refused."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for
from pmo.plans import service as plans
from pmo.plans.models import Plan
from tests.conftest import CITY_A, CITY_B, CITY_C, PREF_X, PREF_Y
from tests.plans.conftest import row
from tests.plans.test_views import sheet_form


def test_prefecture_staff_see_their_municipalities_and_nothing_of_another_prefecture(client, auth, make_user,
                                                                                      db_session):
    """AC-04."""
    for code in (CITY_A, CITY_B, CITY_C):
        staff = actor_for(make_user(Role.BODY_STAFF, code))
        plans.save_sheet(db_session, staff, code, [row("C-4", 0, planned_end="2015-11-30", comment=f"メモ{code}")])
    db_session.commit()
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    assert client.get(f"/plans/{CITY_A}").status_code == 200 and client.get(f"/plans/{CITY_B}").status_code == 200
    assert "メモ" + CITY_A in client.get(f"/plans/{CITY_A}").get_data(as_text=True)
    for path in (f"/plans/{CITY_C}", f"/plans/{CITY_C}/export", f"/plans/{CITY_C}/history",
                 f"/reports/prefectures/{PREF_Y[:2]}", f"/subsidy/bodies/{CITY_C}?fy=2014"):
        assert client.get(path).status_code == 404, path
    lists = {path: client.get(path).get_data(as_text=True)
             for path in ("/plans/prefecture", "/delays/", "/reports/prefecture", "/subsidy/", "/orgs/")}
    lists.update({path: client.get(path, follow_redirects=True).get_data(as_text=True)
                  for path in ("/reports/prefecture",)})
    for path, html in lists.items():
        assert "青森市" not in html and f"メモ{CITY_C}" not in html, path
    assert "小樽市" in lists["/plans/prefecture"] and "函館市" in lists["/plans/prefecture"]
    for fmt in ("csv",):
        for scope in (PREF_X[:2], PREF_Y[:2]):
            response = client.get(f"/reports/export/followup.{fmt}", query_string={"scope": scope})
            if scope == PREF_Y[:2]:
                assert response.status_code == 404, scope
            else:
                assert response.status_code == 200
    exported = client.get(f"/plans/{CITY_A}/export", query_string={"format": "csv"}).data.decode("utf-8-sig")
    assert all(r[0] == CITY_A for r in list(csv.reader(io.StringIO(exported)))[1:])
    # reading is not editing
    form = sheet_form(client.get(f"/plans/{CITY_A}").get_data(as_text=True))
    form["C-4__planned_end"] = "2016-03-31"
    form["csrf_token"] = client.csrf_token("/account/password")
    assert client.post(f"/plans/{CITY_A}", data=form).status_code == 403
    db_session.expire_all()
    a_id = db_session.scalar(sa.text("SELECT id FROM bodies WHERE code = :c"), {"c": CITY_A})
    assert str(db_session.scalar(sa.select(Plan.planned_end).where(Plan.body_id == a_id))) == "2015-11-30"
