"""The procedures catalog: seeded rows of slides 75–86, filters, exports, data sets."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.procedures.models import OrdinanceItem, Procedure
from tests.conftest import CITY_A
from tests.documents.helpers import pdf

SYSTEMS = ["生活保護システム", "障害者福祉システム", "児童福祉システム", "国民健康保険システム", "後期高齢者医療システム",
           "介護保険システム", "健康管理システム", "国民年金システム"]


@pytest.fixture
def city_user(make_user):
    return make_user(Role.BODY_STAFF, CITY_A)


def test_seed_holds_every_system_of_the_slides(db_session):
    rows = db_session.scalars(sa.select(Procedure)).all()
    assert len(rows) == 64
    assert {r.system for r in rows} == set(SYSTEMS)
    welfare = next(r for r in rows if r.name == "生活保護の申請")
    assert (welfare.article, welfare.submitter, welfare.omissible) == ("法24", "申請者（要保護者）",
                                                                      "所得証明書、年金証書、被保険者証、雇用保険受給資格者証")
    assert welfare.has_linkage
    special = [r for r in rows if r.name == "保険料の特別徴収"]
    assert special and not any(r.has_linkage for r in special)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(OrdinanceItem)) == 7


def test_filters_by_system_destination_and_linkage(client, auth, city_user):
    auth.login(city_user)
    html = client.get("/procedures/", query_string={"system": "介護保険システム", "linkage": "no"}).get_data(as_text=True)
    assert "居宅サービス計画作成依頼の届出" in html and "住所変更後の要介護認定の申請" not in html
    html = client.get("/procedures/", query_string={"submit_to": "市町村経由で都道府県"}).get_data(as_text=True)
    assert "身体障害者手帳の交付申請" in html and "生活保護の申請" not in html


def test_csv_export_opens_in_japanese_excel_and_is_formula_safe(client, auth, city_user, db_session):
    db_session.add(Procedure(system="健康管理システム", field="health", seq=99, name='=HYPERLINK("http://evil","x")',
                             article="-2+3", submitter="@SUM(1)", submit_to="市町村", number_entry="+1+1", linkage="－",
                             omissible="－", has_linkage=False, source="テスト"))
    db_session.commit()
    auth.login(city_user)
    response = client.get("/procedures/export.csv", query_string={"system": "健康管理システム"})
    assert response.status_code == 200
    assert response.data.startswith(b"\xef\xbb\xbf")
    assert "attachment;" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["システム", "手続", "条項"]
    evil = next(r for r in rows if "HYPERLINK" in r[1])
    assert evil[1].startswith("'=") and evil[2].startswith("'-") and evil[3].startswith("'@")


def test_xlsx_export_has_both_sheets(client, auth, city_user):
    auth.login(city_user)
    response = client.get("/procedures/export.xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(response.data), read_only=True)
    assert workbook.sheetnames[:2] == ["番号利用事務・手続", "主務省令事項の整理（例）"]
    rows = list(workbook["番号利用事務・手続"].values)
    assert len(rows) == 65 and rows[1][1] == "生活保護の申請"


def test_ministry_publishes_dataset_versions_and_bodies_download_them(client, auth, make_user, city_user):
    officer = make_user(Role.MINISTRY_OFFICER, ministry="mhlw")
    auth.login(officer)
    response = client.post_form("/procedures/datasets/new", {
        "title": "特定個人情報データ標準レイアウト（事務手続対応版）", "description": "",
        "file": (io.BytesIO(pdf("v1")), "データ標準レイアウト_第1版.pdf"), "change_note": "初版"},
        token_from="/procedures/datasets/new", content_type="multipart/form-data")
    assert response.status_code == 302
    dataset_url = response.headers["Location"]
    dataset_id = int(dataset_url.rstrip("/").rsplit("/", 1)[1])
    response = client.post_form(f"/procedures/datasets/{dataset_id}/versions", {
        "file": (io.BytesIO(pdf("v2")), "データ標準レイアウト_第2版.pdf"), "change_note": "平成27年2月6日版"},
        token_from=f"/procedures/datasets/{dataset_id}/versions", content_type="multipart/form-data")
    assert response.status_code == 302
    auth.logout()
    auth.login(city_user)
    page = client.get(f"/procedures/datasets/{dataset_id}").get_data(as_text=True)
    assert "最新版" in page and "平成27年2月6日版" in page
    assert client.get(f"/procedures/datasets/{dataset_id}/versions/1/download").data == pdf("v1")
    assert client.get("/procedures/datasets/new").status_code == 403
