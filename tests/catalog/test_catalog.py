"""Catalog editing: every change is a new dated version; the past keeps its meaning."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for
from pmo.catalog import service
from pmo.catalog.models import CatalogVersion, Milestone
from pmo.core import clock
from pmo.core.errors import PermissionDenied, ValidationFailed


@pytest.fixture(autouse=True)
def _today():
    clock.freeze(dt.datetime(2015, 12, 15, 3, tzinfo=dt.UTC))


def by_code(views):
    return {v.code: v for v in views}


def test_seeded_catalog_has_29_subtasks_with_milestones(db_session):
    subtasks = by_code(service.subtasks_on(db_session, dt.date(2015, 12, 15)))
    assert len(subtasks) == 29
    assert subtasks["B-2"].milestone_date == dt.date(2015, 10, 5) and not subtasks["B-2"].applies_prefecture
    assert subtasks["K-2"].milestone_date == dt.date(2017, 4, 30)


def test_moving_a_milestone_creates_a_version_and_keeps_the_old_row(db_session, make_user):
    admin = actor_for(make_user(Role.SYSTEM_ADMIN, ministry="cas"))
    use_start = db_session.scalar(select(Milestone).where(Milestone.code == "use_start"))
    service.change_milestone_date(db_session, admin, use_start.id, dt.date(2016, 2, 1), dt.date(2016, 1, 1), "延期")
    db_session.refresh(use_start)
    assert use_start.due_date == dt.date(2016, 1, 1)  # never edited in place
    before = by_code(service.subtasks_on(db_session, dt.date(2015, 12, 31)))
    after = by_code(service.subtasks_on(db_session, dt.date(2016, 1, 1)))
    assert before["J-2"].milestone_date == dt.date(2016, 1, 1)
    assert after["J-2"].milestone_date == dt.date(2016, 2, 1) and after["B-2"].milestone_date == dt.date(2015, 10, 5)
    assert len(list(db_session.scalars(select(CatalogVersion)))) == 2


def test_past_effective_dates_and_other_roles_are_refused(db_session, make_user):
    admin = actor_for(make_user(Role.SYSTEM_ADMIN, ministry="cas"))
    with pytest.raises(ValidationFailed, match="過去の日付"):
        service.create_version(db_session, admin, dt.date(2015, 4, 1), "遡及", {})
    officer = actor_for(make_user(Role.MINISTRY_OFFICER, ministry="mic"))
    with pytest.raises(PermissionDenied):
        service.create_version(db_session, officer, dt.date(2016, 4, 1), "x", {})


def test_applicability_change_in_a_new_version(db_session, make_user):
    admin = actor_for(make_user(Role.SYSTEM_ADMIN, ministry="cas"))
    d3 = by_code(service.subtasks_on(db_session, clock.today()))["D-3"]
    terms = {d3.id: service.TermsInput(db_session.scalar(select(Milestone.id).where(Milestone.code == "systems_ready")),
                                       True, True, True)}
    service.create_version(db_session, admin, dt.date(2016, 4, 1), "D-3を一部事務組合にも適用", terms)
    assert not by_code(service.subtasks_on(db_session, dt.date(2016, 3, 31)))["D-3"].applies_union
    assert by_code(service.subtasks_on(db_session, dt.date(2016, 4, 1)))["D-3"].applies_union


def test_catalog_screen(client, auth, db_session):
    auth.login(role=Role.BODY_STAFF)
    assert client.get("/catalog/").status_code == 403
    auth.logout()
    auth.login(role=Role.SYSTEM_ADMIN, ministry="cas")
    html = client.get("/catalog/").get_data(as_text=True)
    assert "作業項目カタログ" in html and "既存住基システム改修・テスト（付番に向けた準備）" in html
    response = client.post_form("/catalog/versions", {"effective_from": "2015/01/01", "note": "x"}, token_from="/catalog/")
    assert response.status_code == 422 and "過去の日付" in response.get_data(as_text=True)
    st = service.subtasks_on(db_session, clock.today())[0]
    response = client.post_form(f"/catalog/subtasks/{st.id}/fields",
                                {"label": "広報紙掲載回数", "field_type": "integer", "required": "1"}, token_from="/catalog/")
    assert response.status_code == 302
    assert "広報紙掲載回数" in client.get("/catalog/").get_data(as_text=True)
