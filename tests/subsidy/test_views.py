"""Subsidy screens through the client: gates, what the page shows, and what is stored."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from pmo.accounts.models import Role
from pmo.subsidy import service
from pmo.subsidy.models import Application, ApplicationState, Estimate, Registration
from tests.conftest import CITY_A, CITY_B, PREF_X

BAD_TABLE = ("fiscal_year,body_kind,system,population,amount_thousand_yen\n"
             "2014,municipality,国民健康保険,0,3000\n2014,municipality,国民健康保険,10000,2000\n").encode()


@pytest.mark.parametrize("url", ["/subsidy/base-tables", "/subsidy/keywords", "/subsidy/base-tables/2014/edit"])
def test_body_staff_cannot_reach_base_table_management(client, auth, url):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    assert client.get(url).status_code == 403


def test_other_bodys_page_is_not_found(client, auth):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    assert client.get(f"/subsidy/bodies/{CITY_B}?fy=2014").status_code == 404
    assert client.get(f"/subsidy/bodies/{CITY_A}?fy=2014").status_code == 200


def test_working_page_shows_every_step(client, auth):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    html = client.get(f"/subsidy/bodies/{CITY_A}/working/国民健康保険?fy=2014").get_data(as_text=True)
    for step in ("人口", "111,299人", "前後の区切り", "補間", "千円未満切り捨て", "予算による調整", "例示"):
        assert step in html


def test_refused_upload_lists_row_and_reason_and_keeps_the_table(client, auth, db_session):
    auth.login(role=Role.FINANCE_OFFICER, ministry="mhlw")
    before = service.tables_in_force(db_session)[2014].id
    response = client.post_form("/subsidy/base-tables", {"file": (io.BytesIO(BAD_TABLE), "bad.csv")},
                                token_from="/subsidy/base-tables", content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "bad.csv は登録しませんでした" in html and "3行目" in html and "下回っています" in html
    assert service.tables_in_force(db_session)[2014].id == before


def test_upload_in_cp932_is_loaded(client, auth, db_session):
    auth.login(role=Role.FINANCE_OFFICER, ministry="mhlw")
    rows = ["fiscal_year,body_kind,system,population,amount_thousand_yen"]
    rows += ["2016,prefecture,生活保護,0,100", "2016,prefecture,生活保護,1000000,900"]
    response = client.post_form("/subsidy/base-tables", {"file": (io.BytesIO("\n".join(rows).encode("cp932")), "t.csv")},
                                token_from="/subsidy/base-tables", content_type="multipart/form-data")
    assert response.status_code == 302
    table = service.tables_in_force(db_session)[2016]
    assert [r.amount for r in table.rows] == [100_000, 900_000] and not table.illustrative


def test_registration_and_allocation_over_base_is_refused_on_screen(client, auth, db_session, body):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    page = f"/subsidy/bodies/{CITY_A}?fy=2014"
    token = service.registration_token({})
    response = client.post_form(f"/subsidy/bodies/{CITY_A}/registrations",
                                {"fy": "2014", "token": token, "systems": ["国民健康保険", "介護保険"]}, token_from=page)
    assert response.status_code == 302
    regs = service.registrations(db_session, body(CITY_A), 2014)
    response = client.post_form(f"/subsidy/bodies/{CITY_A}/allocations",
                                {"fy": "2014", "token": service.registration_token(regs), "alloc-国民健康保険": "999,999,999"},
                                token_from=page)
    assert response.status_code == 422
    assert "配分の合計" in response.get_data(as_text=True)
    assert all(r.allocated is None for r in db_session.scalars(select(Registration)))


def test_application_lines_refuse_negative_money_and_keep_stored_values(client, auth, db_session, body):
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    from pmo.accounts.service import actor_for

    staff = actor_for(user)
    regs = service.register_systems(db_session, staff, body(CITY_A), 2014, {service.System.NATIONAL_HEALTH_INSURANCE}, service.registration_token({}))
    app = service.create_application(db_session, staff, body(CITY_A), 2014)
    db_session.commit()
    url = f"/subsidy/applications/{app.id}"
    response = client.post_form(url + "/lines", {"version": str(app.version), "cost-国民健康保険": "-5"}, token_from=url)
    assert response.status_code == 422 and "0円以上" in response.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Application, app.id).lines[0].cost == 0
    response = client.post_form(url + "/lines", {"version": str(app.version), "cost-国民健康保険": "１，５００，０００円"},
                                token_from=url)
    assert response.status_code == 302
    db_session.expire_all()
    assert db_session.get(Application, app.id).lines[0].cost == 1_500_000


def test_stale_submit_from_the_screen_is_409(client, auth, db_session, body):
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    from pmo.accounts.service import actor_for

    staff = actor_for(user)
    service.register_systems(db_session, staff, body(CITY_A), 2014, {service.System.NATIONAL_PENSION}, service.registration_token({}))
    app = service.create_application(db_session, staff, body(CITY_A), 2014)
    service.update_lines(db_session, staff, app, [service.LineInput(service.System.NATIONAL_PENSION, 100_000, 0)], app.version)
    db_session.commit()
    url = f"/subsidy/applications/{app.id}"
    version = str(app.version)
    assert client.post_form(url + "/submit", {"version": version}, token_from=url).status_code == 302
    response = client.post_form(url + "/submit", {"version": version}, token_from=url)
    assert response.status_code == 409
    assert "現在の版" in response.get_data(as_text=True)
    assert "状態「提出」 ／ あなたの送信内容: 操作「提出」" in response.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Application, app.id).state is ApplicationState.SUBMITTED


def test_prefecture_sees_the_check_button_and_body_does_not(client, auth, db_session, body, make_user):
    from pmo.accounts.service import actor_for

    staff = actor_for(make_user(Role.BODY_STAFF, CITY_A))
    service.register_systems(db_session, staff, body(CITY_A), 2014, {service.System.NATIONAL_PENSION}, service.registration_token({}))
    app = service.create_application(db_session, staff, body(CITY_A), 2014)
    service.update_lines(db_session, staff, app, [service.LineInput(service.System.NATIONAL_PENSION, 100_000, 0)], app.version)
    service.submit_application(db_session, staff, app, app.version)
    db_session.commit()
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    html = client.get(f"/subsidy/applications/{app.id}").get_data(as_text=True)
    assert "都道府県確認済みにする" in html and "承認する" not in html
    assert "確認・承認を待っている申請" in client.get("/subsidy/").get_data(as_text=True)


def test_estimate_template_has_the_expected_columns(client, auth):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    text = client.get("/subsidy/estimates/template.csv").data.decode("utf-8-sig")
    assert text.splitlines()[0] == "工程,作業項目,作業者区分,単価,単位,工数,金額"
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(client.get("/subsidy/estimates/template.xlsx").data))
    assert [c.value for c in wb.worksheets[0][1]] == ["工程", "作業項目", "作業者区分", "単価", "単位", "工数", "金額"]


def test_estimate_upload_with_a_bad_row_stores_nothing(client, auth, db_session):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    data = "工程,作業項目,作業者区分,単価,単位,工数,金額\n設計,基本設計,SE,1000000,人月,2,2000000\n開発,,PG,x,人月,1,800000\n"
    url = f"/subsidy/bodies/{CITY_A}/estimates/new"
    response = client.post_form(url, {"fy": "2014", "system": "国民健康保険", "vendor": "A社",
                                      "file": (io.BytesIO(data.encode()), "a.csv")}, token_from=url,
                                content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "a.csv 3行目 作業項目" in html and "a.csv 3行目 単価" in html
    assert db_session.scalar(select(Estimate.id)) is None


def test_finance_report_totals_and_xlsx(client, auth, db_session, body, make_user):
    from openpyxl import load_workbook

    from pmo.accounts.service import actor_for

    staff = actor_for(make_user(Role.BODY_STAFF, CITY_A))
    service.register_systems(db_session, staff, body(CITY_A), 2014, {service.System.NATIONAL_PENSION}, service.registration_token({}))
    app = service.create_application(db_session, staff, body(CITY_A), 2014)
    service.update_lines(db_session, staff, app, [service.LineInput(service.System.NATIONAL_PENSION, 100_000, 0)], app.version)
    service.submit_application(db_session, staff, app, app.version)
    db_session.commit()
    auth.login(role=Role.FINANCE_OFFICER, ministry="mhlw")
    html = client.get("/subsidy/reports?fy=2014").get_data(as_text=True)
    assert "北海道" in html and "100,000円" in html
    wb = load_workbook(io.BytesIO(client.get("/subsidy/reports.xlsx?fy=2014").data))
    rows = [[c.value for c in r] for r in wb["区分別"].iter_rows(min_row=3)]
    national_pension = next(r for r in rows if r[0] == "全国" and r[1] == "国民年金・特別児童扶養手当分")
    assert national_pension[3] == 100_000 and national_pension[4] == 0


def test_estimate_upload_that_is_not_a_table_is_refused(client, auth, db_session):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    url = f"/subsidy/bodies/{CITY_A}/estimates/new"
    response = client.post_form(url, {"fy": "2014", "system": "国民健康保険", "vendor": "A社",
                                      "file": (io.BytesIO(b"PK\x03\x04 not really"), "a.xlsx")}, token_from=url,
                                content_type="multipart/form-data")
    assert response.status_code == 422 and "a.xlsx" in response.get_data(as_text=True)
    assert db_session.scalar(select(Estimate.id)) is None


def test_home_shows_waiting_applications_to_the_prefecture(client, auth, db_session, body, make_user):
    from pmo.accounts.service import actor_for

    staff = actor_for(make_user(Role.BODY_STAFF, CITY_A))
    service.register_systems(db_session, staff, body(CITY_A), 2014, {service.System.NATIONAL_PENSION}, service.registration_token({}))
    app = service.create_application(db_session, staff, body(CITY_A), 2014)
    service.update_lines(db_session, staff, app, [service.LineInput(service.System.NATIONAL_PENSION, 100_000, 0)], app.version)
    service.submit_application(db_session, staff, app, app.version)
    db_session.commit()
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    html = client.get("/").get_data(as_text=True)
    assert "補助金の手続" in html and "確認・承認を待っている申請が <strong>1件</strong>" in html


def test_estimate_entered_on_screen_is_stored_and_checked(client, auth, db_session):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    url = f"/subsidy/bodies/{CITY_A}/estimates/new"
    response = client.post_form(url, {"fy": "2014", "system": "国民健康保険", "vendor": "画面入力社",
                                      "l-1-phase": "設計", "l-1-item": "基本設計", "l-1-worker": "SE",
                                      "l-1-price": "1,000,000", "l-1-unit": "人月", "l-1-effort": "1.5", "l-1-amount": "1500000",
                                      "l-2-phase": "開発", "l-2-item": "改修一式", "l-2-worker": "SE", "l-2-amount": "900000"},
                                token_from=url)
    assert response.status_code == 302
    est = db_session.scalar(select(Estimate).where(Estimate.vendor == "画面入力社"))
    assert [line.amount for line in est.lines] == [1_500_000, 900_000]
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "一式計上" in html
