"""Every subsidy screen renders for the roles that use it."""

from __future__ import annotations

from pmo.accounts.models import Role
from tests.conftest import CITY_A


def test_pages_render_for_body_staff(client, auth):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    for url in ("/subsidy/", f"/subsidy/bodies/{CITY_A}?fy=2014", f"/subsidy/bodies/{CITY_A}/working/国民健康保険?fy=2014",
                f"/subsidy/bodies/{CITY_A}/estimates/new", "/subsidy/estimates/template.xlsx",
                "/subsidy/estimates/template.csv"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.get_data(as_text=True)[-2000:])


def test_pages_render_for_finance(client, auth):
    auth.login(role=Role.FINANCE_OFFICER, ministry="mhlw")
    for url in ("/subsidy/", "/subsidy/base-tables", "/subsidy/base-tables/2014/edit", "/subsidy/keywords",
                "/subsidy/reports?fy=2014", "/subsidy/reports.xlsx?fy=2014", "/subsidy/base-tables/2014.csv"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.get_data(as_text=True)[-2000:])


def test_union_page_renders_for_finance(client, auth, db_session):
    from sqlalchemy import select

    from pmo.orgs.models import Body, BodyKind

    union = db_session.scalar(select(Body).where(Body.kind == BodyKind.UNION, Body.prefecture_code == "01"))
    auth.login(role=Role.FINANCE_OFFICER, ministry="mhlw")
    response = client.get(f"/subsidy/bodies/{union.code}?fy=2014")
    assert response.status_code == 200 and "一部事務組合・広域連合" in response.get_data(as_text=True)
