"""Delay screens, follow-up case screens and the delays API and CLI through HTTP / click."""

from __future__ import annotations

import datetime as dt
import json
import re

import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for, create_api_token
from pmo.audit.models import AuditEntry
from pmo.delays.models import CaseStatus, FollowupCase
from tests.conftest import CITY_A, CITY_B, CITY_C, PREF_X

from .factories import add_plan

D = dt.date


def _late_b2(db_session, code=CITY_A):
    add_plan(db_session, code, "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 9, 30), vendor="北斗システム")
    db_session.commit()


def test_body_page_explains_each_signal_and_draws_the_gantt(client, auth, db_session):
    _late_b2(db_session)
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    html = client.get(f"/delays/bodies/{CITY_A}?as_of=2015-10-15").get_data(as_text=True)
    assert "B-2 は計画終了日を15日過ぎても完了していません" in html
    assert "B-3 の計画終了日が入力されていません" in html
    assert 'data-figure="' in html and "マイルストーン" in html
    assert client.get(f"/delays/bodies/{CITY_B}?as_of=2015-10-15").status_code == 404


def test_a_bad_as_of_date_is_reported_in_japanese(client, auth):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    html = client.get(f"/delays/bodies/{CITY_A}?as_of=2015-02-30").get_data(as_text=True)
    assert "基準日「2015-02-30」は日付として読めません" in html


def test_officer_opens_cases_for_two_bodies_and_the_body_answers(client, auth, db_session, make_user):
    _late_b2(db_session)
    officer = auth.login(role=Role.MINISTRY_OFFICER)
    form = client.get(f"/delays/cases/new?body={CITY_A}&body={CITY_C}&as_of=2015-10-15").get_data(as_text=True)
    assert "対象の団体（2団体）" in form
    response = client.post_form("/delays/cases/new", {
        "body": [CITY_A, CITY_C], "title": "遅延の原因確認", "cause": "vendor", "owner_id": "0",
        "next_contact_date": "2015-10-30", "note": "", "as_of": "2015-10-15", "vendor": "",
    })
    assert response.status_code == 302
    opened = db_session.scalars(sa.select(FollowupCase).order_by(FollowupCase.id)).all()
    assert len(opened) == 2 and opened[0].owner_id == officer.id and opened[0].next_contact_date == D(2015, 10, 30)
    case_id = opened[0].id

    auth.logout()
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    listing = client.get("/delays/cases").get_data(as_text=True)
    assert "遅延の原因確認" in listing and f"/delays/cases/{opened[1].id}\"" not in listing
    response = client.post_form(f"/delays/cases/{case_id}/entries", {"text": "委託先の体制を増強しました。"})
    assert response.status_code == 302
    assert "委託先の体制を増強しました。" in client.get(f"/delays/cases/{case_id}").get_data(as_text=True)
    assert client.get(f"/delays/cases/{opened[1].id}").status_code == 404
    assert client.post_form(f"/delays/cases/{case_id}/update", {"status": "resolved", "cause": "vendor",
                                                                "owner_id": "0", "version": "2"}).status_code == 403


def test_update_with_a_stale_version_shows_both_values(client, auth, db_session):
    _late_b2(db_session)
    officer = auth.login(role=Role.MINISTRY_OFFICER)
    from pmo.delays import cases
    from pmo.delays.models import CaseCause

    case = cases.open_cases(db_session, actor_for(officer), [CITY_A], cases.CaseInput("確認", CaseCause.OTHER), D(2015, 10, 15))[0]
    db_session.commit()
    ok = client.post_form(f"/delays/cases/{case.id}/update", {"status": "watching", "cause": "budget", "owner_id": "0",
                                                             "next_contact_date": "", "note": "", "version": "1"})
    assert ok.status_code == 302
    stale = client.post_form(f"/delays/cases/{case.id}/update", {"status": "resolved", "cause": "other", "owner_id": "0",
                                                                "next_contact_date": "", "note": "解決", "version": "1"})
    html = stale.get_data(as_text=True)
    assert stale.status_code == 409
    assert "他のユーザーが先にこのフォローを更新しました" in html and "経過観察" in html and "解決" in html
    db_session.refresh(case)
    assert case.status is CaseStatus.WATCHING


def test_prefecture_sees_its_municipalities_cases_and_comments(client, auth, db_session, make_user):
    _late_b2(db_session)
    officer = make_user(Role.MINISTRY_OFFICER, ministry="mic")
    from pmo.delays import cases
    from pmo.delays.models import CaseCause

    a, c = cases.open_cases(db_session, actor_for(officer), [CITY_A, CITY_C], cases.CaseInput("確認", CaseCause.OTHER),
                            D(2015, 10, 15))
    db_session.commit()
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    listing = client.get("/delays/cases").get_data(as_text=True)
    assert f"/delays/cases/{a.id}\"" in listing and f"/delays/cases/{c.id}\"" not in listing
    assert client.post_form(f"/delays/cases/{a.id}/entries", {"text": "県も支援します。"}).status_code == 302
    assert db_session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "case.commented")).first() is not None


def test_vendor_view_lists_late_bodies_and_opens_cases_for_all(client, auth, db_session):
    _late_b2(db_session, CITY_A)
    _late_b2(db_session, CITY_C)
    add_plan(db_session, CITY_B, "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 9, 30),
             actual_start=D(2015, 4, 1), actual_end=D(2015, 9, 20), vendor="北斗システム")
    db_session.commit()
    auth.login(role=Role.MINISTRY_OFFICER)
    html = client.get("/delays/vendors?vendor=北斗システム&as_of=2015-10-15").get_data(as_text=True)
    assert "この2団体すべてのフォローを開始" in html
    assert re.search(rf'name="body" value="{CITY_A}"', html) and re.search(rf'name="body" value="{CITY_C}"', html)
    assert f'value="{CITY_B}"' not in html  # finished on time


def test_api_delays_is_scoped_and_reports_bad_dates(client, db_session, make_user):
    _late_b2(db_session)
    user = make_user(Role.BODY_STAFF, CITY_A)
    _token, secret = create_api_token(db_session, actor_for(user), "test")
    db_session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    data = client.get("/api/v1/delays?as_of=2015-10-15", headers=headers).get_json()
    assert data["as_of"] == "2015-10-15"
    assert {"body_code": CITY_A, "subtask": "B-2", "signal": "late_finish", "days": 15, "severity": "notice"} in data["items"]
    assert {i["body_code"] for i in data["items"]} == {CITY_A}
    assert client.get(f"/api/v1/delays?as_of=2015-10-15&body={CITY_B}", headers=headers).status_code == 404
    bad = client.get("/api/v1/delays?as_of=2015-13-01", headers=headers)
    assert bad.status_code == 422 and bad.mimetype == "application/problem+json"
    assert "基準日" in bad.get_json()["detail"]
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/delays" in spec["paths"] and "/api/v1/reports/summary" in spec["paths"]


def test_cli_prints_items_as_json(app, db_session):
    _late_b2(db_session)
    result = app.test_cli_runner().invoke(args=["delays", "--as-of", "2015-10-15", "--body", CITY_A, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"body_code": CITY_A, "subtask": "B-2", "signal": "late_finish", "days": 15, "severity": "notice"} in data["items"]
    text = app.test_cli_runner().invoke(args=["delays", "--as-of", "2015-10-15", "--body", CITY_A])
    assert "B-2\tlate_finish\t15日\tnotice" in text.output
    bad = app.test_cli_runner().invoke(args=["delays", "--as-of", "2015-10-32"])
    assert bad.exit_code != 0 and "基準日「2015-10-32」" in bad.output
    unknown = app.test_cli_runner().invoke(args=["delays", "--as-of", "2015-10-15", "--body", "999999"])
    assert unknown.exit_code != 0 and "999999" in unknown.output


def test_system_admin_changes_thresholds_and_the_definition_follows(client, auth, db_session):
    auth.login(role=Role.SYSTEM_ADMIN)
    bad = client.post_form("/delays/thresholds", {"delayed_days": "60", "critical_days": "30", "no_plan": "delayed",
                                                   "finished_late_cap": "notice"})
    assert "1 ≦「遅延」≦「重大」" in bad.get_data(as_text=True)
    ok = client.post_form("/delays/thresholds", {"delayed_days": "45", "critical_days": "120", "no_plan": "critical",
                                                  "finished_late_cap": "notice"})
    assert ok.status_code == 302
    entry = db_session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "delays.thresholds_changed")).one()
    assert entry.after["delayed_days"] == 45
    auth.logout()
    auth.login(role=Role.MINISTRY_OFFICER)
    html = client.get("/reports/national?as_of=2015-10-01").get_data(as_text=True)
    assert "遅延：45日以上、重大：120日以上" in html and "「計画未入力」は重大" in html
    assert client.get("/delays/thresholds").status_code == 403
