"""Dashboards, downloads, the steering-meeting report and the summary API."""

from __future__ import annotations

import csv
import datetime as dt
import io

import openpyxl

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for, create_api_token
from tests.conftest import CITY_A, PREF_X, PREF_Y
from tests.delays.factories import add_plan, close_month, fill_bodies

D = dt.date


def _data(db_session):
    fill_bodies(db_session, [CITY_A, "012025", PREF_X, "022012"])
    add_plan(db_session, "012041", "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 10, 31))  # 旭川市: late plan
    close_month(db_session, D(2015, 9, 1))
    db_session.commit()


def test_national_dashboard_has_every_figure_with_table_definition_and_downloads(client, auth, db_session):
    _data(db_session)
    auth.login(role=Role.MINISTRY_OFFICER)
    html = client.get("/reports/national?as_of=2015-10-01").get_data(as_text=True)
    for title in ("状況別の団体数", "作業項目別の完了率", "都道府県別の完了率", "都道府県 × 作業項目の完了率", "月次の推移"):
        assert title in html
    assert html.count("この数値の定義") == 5 and html.count("表で見る") == 5
    assert "js/plotly.min.js" in html and "<script>" not in html
    assert "/reports/export/heatmap.xlsx" in html
    assert "2015年9月" in html  # the monthly close appears in the trend


def test_followup_list_filters_and_exports(client, auth, db_session):
    _data(db_session)
    auth.login(role=Role.MINISTRY_OFFICER)
    html = client.get("/reports/national?as_of=2015-10-01&prefecture=01&signal=plan_after_milestone").get_data(as_text=True)
    assert "旭川市" in html and 'value="012041"' in html
    everyone = client.get("/reports/national?as_of=2015-10-01").get_data(as_text=True)  # no plans: all 遅延
    assert "全1,8" in everyone and "次へ" in everyone
    second = client.get("/reports/national?as_of=2015-10-01&page=2").get_data(as_text=True)
    assert 'aria-current="page">2<' in second
    data = client.get("/reports/export/followup.csv?as_of=2015-10-01&prefecture=02").data
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["団体コード", "都道府県", "団体名"]
    assert all(r[1] == "青森県" for r in rows[1:]) and len(rows) > 1
    book = openpyxl.load_workbook(io.BytesIO(client.get("/reports/export/status.xlsx?as_of=2015-10-01").data))
    sheet = book.active
    assert sheet.cell(row=3, column=1).value == "状況" and sheet.cell(row=4, column=1).value == "順調"


def test_prefecture_staff_sees_its_prefecture_only(client, auth, db_session):
    _data(db_session)
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    assert client.get("/reports/national").status_code == 403
    html = client.get("/reports/prefectures/01?as_of=2015-10-01").get_data(as_text=True)
    assert "北海道の進捗ダッシュボード" in html and "団体別の完了率" in html
    assert client.get("/reports/prefectures/02?as_of=2015-10-01").status_code == 404
    assert client.get("/reports/export/followup.csv?scope=02").status_code == 404
    assert client.get("/reports/prefecture").headers["Location"].endswith("/reports/prefectures/01")


def test_steering_report_page_and_xlsx(client, auth, db_session):
    _data(db_session)
    auth.login(role=Role.MINISTRY_OFFICER)
    html = client.get("/reports/steering?as_of=2015-10-15").get_data(as_text=True)
    for heading in ("全国の状況", "作業項目別", "都道府県別", "前回報告からの変化", "重大な遅延のある団体とフォロー状況"):
        assert heading in html
    assert "2015年9月30日時点の月次締め" in html or "平成27年9月30日" in html
    response = client.get("/reports/steering.xlsx?as_of=2015-10-15")
    assert response.mimetype.endswith("spreadsheetml.sheet")
    book = openpyxl.load_workbook(io.BytesIO(response.data))
    assert book.sheetnames[:3] == ["概要", "全国の状況", "遅延の兆候の内訳"]
    assert "前回報告から状況が変わった団体" in book.sheetnames
    assert book["概要"].cell(row=4, column=2).value == "2015-10-15"


def test_body_staff_cannot_produce_the_report(client, auth):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    assert client.get("/reports/steering").status_code == 403


def test_summary_api(client, db_session, make_user):
    _data(db_session)
    officer = make_user(Role.MINISTRY_OFFICER, ministry="mic")
    _t, secret = create_api_token(db_session, actor_for(officer), "t")
    staff = make_user(Role.BODY_STAFF, CITY_A)
    _t2, staff_secret = create_api_token(db_session, actor_for(staff), "t")
    db_session.commit()
    data = client.get("/api/v1/reports/summary?as_of=2015-10-01", headers={"Authorization": f"Bearer {secret}"}).get_json()
    assert data["bodies"] > 1700 and sum(data["by_status"].values()) == data["bodies"]
    assert len(data["by_prefecture"]) == 47 and data["by_item"][0]["item"] == "A"
    assert client.get("/api/v1/reports/summary", headers={"Authorization": f"Bearer {staff_secret}"}).status_code == 403
    bad = client.get("/api/v1/reports/summary?as_of=x", headers={"Authorization": f"Bearer {secret}"})
    assert bad.status_code == 422


def test_home_panels(client, auth, db_session):
    _data(db_session)
    auth.login(role=Role.MINISTRY_OFFICER)
    assert "全国の状況" in client.get("/").get_data(as_text=True)
    auth.logout()
    auth.login(role=Role.BODY_STAFF, body=PREF_Y)
    assert "自団体の遅延の兆候" in client.get("/").get_data(as_text=True)
