"""OPT-01: a 個人番号 typed into a form, a file import or the API is refused, says where it is, is
never stored, and never reaches the logs or the audit trail."""

from __future__ import annotations

import datetime as dt
import io
import logging

import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for, create_api_token
from pmo.audit.models import AuditEntry
from pmo.core import clock
from pmo.core.tabular import write_csv
from pmo.faq.models import Inquiry
from pmo.plans import imports
from pmo.plans.models import ImportJob, ImportStatus, Plan, PlanComment
from tests.conftest import CITY_A, PREF_X
from tests.plans.test_views import sheet_form

NUMBER = "123456789018"  # passes the check digit
TYPED = "１２３４－５６７８－９０１８"  # the same number as people also type it
NOW = dt.datetime(2015, 12, 15, 3, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def demo_clock():
    clock.freeze(NOW)
    yield


@pytest.fixture
def watched(caplog, db_session):
    """Capture every log record; afterwards assert that neither logs nor audit rows hold the number."""
    caplog.set_level(logging.DEBUG)
    first_audit = db_session.scalar(sa.select(sa.func.max(AuditEntry.id))) or 0
    yield
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    db_session.expire_all()
    audit_rows = db_session.scalars(sa.select(AuditEntry).where(AuditEntry.id > first_audit)).all()
    stored = "\n".join(repr((a.before, a.after, a.detail, a.target_id)) for a in audit_rows)
    for digits in ("123456789018", "9018", "９０１８"):
        assert digits not in logged
        assert digits not in stored


def count(db_session, model) -> int:
    return db_session.scalar(sa.select(sa.func.count()).select_from(model))


def test_plan_sheet_refuses_the_number_beside_its_field(client, auth, db_session, watched):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    form = sheet_form(client.get(f"/plans/{CITY_A}").get_data(as_text=True))
    form["B-2__planned_start"] = "2015-04-01"
    form["B-2__comment"] = f"担当者の個人番号 {TYPED} を控える"
    response = client.post(f"/plans/{CITY_A}", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="B-2__comment-error">備考に個人番号と思われる12桁の数字が含まれています。' in html
    assert count(db_session, Plan) == 0


def test_support_comment_form_refuses_the_number(client, auth, db_session, watched):
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    response = client.post_form(f"/plans/{CITY_A}/comments", {"text": f"住民 {NUMBER} の件", "subtask": ""},
                                token_from=f"/plans/{CITY_A}")
    assert response.status_code == 302
    page = client.get(f"/plans/{CITY_A}").get_data(as_text=True)
    assert "個人番号と思われる12桁の数字が含まれています" in page
    assert count(db_session, PlanComment) == 0


def test_inquiry_form_names_the_field_and_keeps_the_input(client, auth, db_session, make_user, watched):
    officer = make_user(Role.MINISTRY_OFFICER, ministry="mic")
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    response = client.post_form("/faq/inquiries/new", {
        "subject": "転入者の確認", "category": "その他", "ministry_id": officer.ministry_id,
        "question": f"転入者（個人番号 {NUMBER}）の宛名登録について教えてください。"}, token_from="/faq/inquiries/new")
    html = response.get_data(as_text=True)
    assert response.status_code in (200, 422)
    assert "質問の内容" in html and "個人番号と思われる12桁の数字が含まれています" in html
    assert "転入者の確認" in html  # the rest of the input is kept
    assert count(db_session, Inquiry) == 0


def test_plan_import_rejects_the_file_naming_row_and_column(client, auth, db_session, watched):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    data = write_csv(imports.HEADERS, [
        [CITY_A, "小樽市", "E-4", "2015-09-01", "2015-12-11", "", "", "", "", ""],
        [CITY_A, "小樽市", "E-5", "2015-09-01", "", "", "", "", "", f"番号{NUMBER}"],
    ])
    token = client.csrf_token("/plans/import")
    client.post("/plans/import", data={"csrf_token": token, "batch_id": "mn0001", "file": (io.BytesIO(data), "p.csv")},
                content_type="multipart/form-data")
    job = db_session.scalar(sa.select(ImportJob).where(ImportJob.batch_id == "mn0001"))
    assert job.status is ImportStatus.REJECTED
    assert [(e[1], e[2]) for e in job.errors] == [(3, "備考")]
    assert "個人番号と思われる12桁の数字" in job.errors[0][4] and NUMBER not in repr(job.errors)
    html = client.get("/plans/import/mn0001").get_data(as_text=True)
    assert "3行目" in html or ">3<" in html
    report = client.get("/plans/import/mn0001/errors.csv").data.decode("utf-8-sig")
    assert "備考" in report and NUMBER not in report and "9018" not in report
    assert count(db_session, Plan) == 0  # all or nothing: the good row E-4 is not imported either


def test_api_answers_422_naming_the_field(client, db_session, make_user, watched):
    _, secret = create_api_token(db_session, actor_for(make_user(Role.BODY_STAFF, CITY_A)), "test")
    db_session.commit()
    response = client.put(f"/api/v1/bodies/{CITY_A}/plans", headers={"Authorization": f"Bearer {secret}"},
                          json={"plans": [{"subtask": "F-2", "version": 0, "planned_start": "2015-10-01",
                                           "vendor": f"{TYPED}"}]})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    errors = response.get_json()["errors"]
    assert [e["field"] for e in errors] == ["F-2.vendor"]
    assert errors[0]["message"].startswith("ベンダー名に個人番号と思われる12桁の数字")
    assert NUMBER not in response.get_data(as_text=True) and "９０１８" not in response.get_data(as_text=True)
    assert count(db_session, Plan) == 0


def test_a_number_failing_the_check_digit_is_accepted(client, auth, db_session):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    form = sheet_form(client.get(f"/plans/{CITY_A}").get_data(as_text=True))
    form["B-2__planned_start"] = "2015-04-01"
    form["B-2__comment"] = "契約番号 123456789012（TEL 0134-32-4111）"
    assert client.post(f"/plans/{CITY_A}", data=form).status_code == 302
    assert db_session.scalar(sa.select(Plan.comment)) == "契約番号 123456789012（TEL 0134-32-4111）"


def test_faq_cli_import_refuses_the_number(app, db_session, watched):
    from pmo.faq.models import Faq

    runner = app.test_cli_runner()
    result = runner.invoke(args=["faq", "add", "--question", "番号の確認方法", "--answer", f"例: {NUMBER} のように"])
    assert result.exit_code == 1
    assert "回答に個人番号と思われる12桁の数字が含まれています" in result.output and NUMBER not in result.output
    assert db_session.scalar(sa.select(Faq.id).where(Faq.question == "番号の確認方法")) is None


def test_estimate_upload_names_file_row_and_column(client, auth, db_session, watched):
    from pmo.subsidy.models import Estimate

    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    data = ("工程,作業項目,作業者区分,単価,単位,工数,金額\n設計,基本設計,SE,1000000,人月,2,2000000\n"
            f"開発,{TYPED}の宛名移行,PG,500000,人月,1,500000\n")
    url = f"/subsidy/bodies/{CITY_A}/estimates/new"
    response = client.post_form(url, {"fy": "2014", "system": "国民健康保険", "vendor": "A社",
                                      "file": (io.BytesIO(data.encode()), "見積.csv")}, token_from=url,
                                content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "見積.csv 3行目 作業項目: 作業項目に個人番号と思われる12桁の数字が含まれています" in html
    assert "９０１８" not in html
    assert db_session.scalar(sa.select(Estimate.id)) is None


def test_estimate_vendor_typed_on_screen_is_refused(client, auth, db_session, watched):
    from pmo.subsidy.models import Estimate

    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    url = f"/subsidy/bodies/{CITY_A}/estimates/new"
    response = client.post_form(url, {"fy": "2014", "system": "国民健康保険", "vendor": f"A社 {NUMBER}",
                                      "l-1-phase": "設計", "l-1-item": "基本設計", "l-1-worker": "SE",
                                      "l-1-amount": "100000"}, token_from=url)
    assert response.status_code == 422
    assert "事業者名に個人番号と思われる12桁の数字が含まれています" in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(Estimate.id)) is None
