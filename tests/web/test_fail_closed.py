"""AC-09: authorisation fails closed. A policy function that raises, a database that fails while the
user's permissions are read, and a user without a body: a generic error or an empty answer, never
another body's data with 2xx."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pmo.accounts import permissions
from pmo.accounts.models import Role, User
from pmo.accounts.service import actor_for
from pmo.plans import service as plans
from tests.conftest import CITY_A, CITY_B
from tests.plans.conftest import row

PAGES = [f"/plans/{CITY_A}", f"/plans/{CITY_A}/export", "/plans/prefecture", "/delays/", "/documents/", "/"]


@pytest.fixture
def otaru_plan(db_session, make_user):
    staff = actor_for(make_user(Role.BODY_STAFF, CITY_A))
    plans.save_sheet(db_session, staff, CITY_A, [row("C-4", 0, planned_end="2015-11-30", comment="小樽の秘密メモ")])
    db_session.commit()


def test_a_policy_function_that_raises_gives_a_generic_500(client, auth, otaru_plan, monkeypatch):
    """AC-09: the permission check raising is a 500 page with a request id and no data."""
    auth.login(role=Role.BODY_STAFF, body=CITY_A)

    def broken(actor, permission):
        raise RuntimeError("policy store unavailable")

    monkeypatch.setattr(permissions, "scope_of", broken)
    for path in PAGES[:2]:
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 500, path
        assert "システムエラーが発生しました" in html and "小樽の秘密メモ" not in html and "RuntimeError" not in html


def test_a_database_failure_while_reading_permissions_gives_a_generic_500(client, auth, otaru_plan, monkeypatch):
    """AC-09: the database failing while the user's role and body are loaded: 500, never 2xx with data."""
    from pmo.accounts import service as accounts

    auth.login(role=Role.BODY_STAFF, body=CITY_A)

    def db_down(user):
        raise sa.exc.OperationalError("SELECT role FROM users", {}, Exception("server closed the connection"))

    monkeypatch.setattr(accounts, "actor_for", db_down)
    for path in PAGES[:2]:
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 500, path
        assert "小樽の秘密メモ" not in html and "SELECT" not in html and "OperationalError" not in html


def test_a_user_without_a_body_sees_nothing_body_scoped(client, auth, make_user, otaru_plan, db_session):
    """AC-09: body staff whose body is unset (e.g. mid-transfer) get 404 or an empty page for every
    body-scoped screen, and no other body's figures."""
    user = make_user(Role.BODY_STAFF, CITY_A)
    auth.login(user)
    db_session.get(User, user.id).body_id = None
    db_session.commit()
    for path in PAGES:
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code in (200, 302, 403, 404), (path, response.status_code)
        assert "小樽の秘密メモ" not in html, path
        if path.startswith("/plans/"):
            assert response.status_code in (403, 404), path
    assert client.get(f"/plans/{CITY_B}").status_code in (403, 404)
    assert client.get("/plans/").status_code in (403, 404)
