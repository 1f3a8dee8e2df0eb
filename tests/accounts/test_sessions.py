"""SESS-01…05: server-side sessions that logout, timeouts, password changes and admins can end."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from pmo.accounts.models import Role, User
from pmo.core import clock
from pmo.orgs.models import Body
from tests.conftest import CITY_A, CITY_C, TEST_PASSWORD, second_step

COOKIE = "__Host-pmo_session"
T0 = dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)


def login(client, user, password=TEST_PASSWORD, session=None):
    """Password, then the TOTP code for accounts that must use MFA (give ``session`` for those)."""
    response = client.post_form("/login", {"login_id": user.login_id, "password": password}, token_from="/login")
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return second_step(client, session, user, response)


def cookie(client):
    found = client.get_cookie(COOKIE)
    return found.value if found else None


def replay(app, value):
    """A fresh client presenting a copied session cookie."""
    other = app.test_client()
    other.set_cookie(COOKIE, value, domain="localhost", secure=True)
    return other


def logged_out(response):
    return response.status_code == 302 and "/login" in response.headers["Location"]


def test_login_issues_a_new_session_and_the_old_cookie_stays_anonymous(app, client, make_user):
    user = make_user(Role.BODY_STAFF, CITY_A)
    client.get("/login")
    before = cookie(client)
    assert before
    login(client, user)
    after = cookie(client)
    assert after and after != before
    assert client.get("/bodies/").status_code == 200
    assert logged_out(replay(app, before).get("/bodies/"))


def test_a_copied_cookie_is_dead_after_logout(app, client, make_user):
    user = make_user(Role.BODY_STAFF, CITY_A)
    login(client, user)
    copied = cookie(client)
    assert replay(app, copied).get("/bodies/").status_code == 200  # the copy works while logged in
    response = client.post_form("/logout", token_from="/account")
    assert logged_out(response)
    assert logged_out(replay(app, copied).get("/bodies/"))
    assert logged_out(client.get("/bodies/"))


def test_idle_timeout(client, make_user):
    clock.freeze(T0)
    user = make_user(Role.BODY_STAFF, CITY_A)
    login(client, user)
    clock.advance(dt.timedelta(minutes=29))
    assert client.get("/bodies/").status_code == 200
    clock.advance(dt.timedelta(minutes=29))  # still within 30 minutes of the last request
    assert client.get("/bodies/").status_code == 200
    clock.advance(dt.timedelta(minutes=31))
    response = client.get("/bodies/")
    assert logged_out(response) and "expired=1" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "一定時間操作がなかった" in page
    assert logged_out(client.get("/bodies/"))


def test_absolute_timeout_of_12_hours(client, make_user):
    clock.freeze(T0)
    user = make_user(Role.BODY_STAFF, CITY_A)
    login(client, user)
    for _ in range(12 * 3 - 1):  # active every 20 minutes for 11 h 40 min
        clock.advance(dt.timedelta(minutes=20))
        assert client.get("/bodies/").status_code == 200
    clock.advance(dt.timedelta(minutes=20))
    assert logged_out(client.get("/bodies/"))


def test_a_password_change_ends_the_other_sessions_but_keeps_this_one(app, make_user):
    user = make_user(Role.BODY_STAFF, CITY_A)
    a, b = app.test_client(), app.test_client()
    login(a, user)
    login(b, user)
    response = a.post_form("/account/password", {
        "current_password": TEST_PASSWORD, "new_password": "rivers of hokkaido 2016",
        "confirm_password": "rivers of hokkaido 2016"})
    assert response.status_code == 302
    assert a.get("/bodies/").status_code == 200
    assert logged_out(b.get("/bodies/"))


def test_an_admin_ends_all_sessions_of_a_user(app, make_user, db_session):
    user = make_user(Role.BODY_STAFF, CITY_A)
    admin = make_user(Role.SYSTEM_ADMIN, ministry="cas")
    a, b, admin_client = app.test_client(), app.test_client(), app.test_client()
    login(a, user)
    login(b, user)
    login(admin_client, admin, session=db_session)
    detail = f"/accounts/users/{user.id}"
    response = admin_client.post_form(f"{detail}/end-sessions", token_from=detail)
    assert response.status_code == 302
    assert logged_out(a.get("/bodies/")) and logged_out(b.get("/bodies/"))
    assert admin_client.get("/bodies/").status_code == 200


def test_a_role_change_in_the_database_applies_on_the_next_request(app, make_user, db_session):
    user = make_user(Role.BODY_ADMIN, CITY_A)
    make_user(Role.BODY_ADMIN, CITY_A)
    b = app.test_client()
    login(b, user, session=db_session)
    assert b.get("/accounts/users").status_code == 200
    db_session.execute(sa.update(User).where(User.id == user.id).values(role=Role.BODY_STAFF))
    db_session.commit()
    assert b.get("/accounts/users").status_code == 403
    assert b.get(f"/bodies/{CITY_A}").status_code == 200
    aomori = db_session.scalar(sa.select(Body.id).where(Body.code == CITY_C))
    db_session.execute(sa.update(User).where(User.id == user.id).values(body_id=aomori))
    db_session.commit()
    assert b.get(f"/bodies/{CITY_A}").status_code == 404
    assert b.get(f"/bodies/{CITY_C}").status_code == 200


def test_a_user_lists_and_ends_own_sessions(app, make_user, db_session):
    import re

    user = make_user(Role.BODY_STAFF, CITY_A)
    other = make_user(Role.BODY_STAFF, CITY_A)
    a, b, c = app.test_client(), app.test_client(), app.test_client()
    login(a, user)
    login(b, user)
    login(c, other)
    page = a.get("/account").get_data(as_text=True)
    assert "この端末" in page
    ends = re.findall(r'action="(/account/sessions/(\d+)/end)"', page)
    assert len(ends) == 1  # the other client's session, not this one
    # another user's session cannot be ended from here
    c_page = c.get("/account").get_data(as_text=True)
    assert not re.findall(r'action="/account/sessions/\d+/end"', c_page)
    from pmo.accounts.models import UserSession

    foreign = db_session.scalar(sa.select(UserSession.id).where(UserSession.user_id == other.id))
    assert a.post_form(f"/account/sessions/{foreign}/end", token_from="/account").status_code == 404
    assert c.get("/bodies/").status_code == 200
    response = a.post_form(ends[0][0], token_from="/account")
    assert response.status_code == 302
    assert logged_out(b.get("/bodies/"))
    assert a.get("/bodies/").status_code == 200


def set_cookies(response):
    return response.headers.getlist("Set-Cookie")


def test_every_cookie_is_secure_httponly_lax_host_only(app, client, make_user):
    user = make_user(Role.BODY_STAFF, CITY_A)
    seen = []
    seen += set_cookies(client.get("/login"))
    seen += set_cookies(login(client, user))
    seen += set_cookies(client.get("/"))
    seen += set_cookies(client.post_form("/logout", token_from="/account"))
    seen += set_cookies(client.post_form("/login", {"login_id": "x", "password": "y"}, token_from="/login"))
    assert seen
    for header in seen:
        parts = [p.strip() for p in header.split(";")]
        name = parts[0].split("=", 1)[0]
        flags = {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else True) for p in parts[1:]}
        assert name.startswith("__Host-"), header
        assert flags.get("secure") and flags.get("httponly"), header
        assert flags.get("samesite") in ("Lax", "Strict"), header
        assert flags.get("path") == "/", header
        assert "domain" not in flags, header
        assert "remember" not in name.lower(), header


def test_there_is_no_remember_me(app):
    assert app.config["REMEMBER_COOKIE_DURATION"] <= dt.timedelta(hours=12)
    assert app.config["PERMANENT_SESSION_LIFETIME"] <= dt.timedelta(hours=12)
    assert app.config["REMEMBER_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SAMESITE"] in ("Lax", "Strict")
    assert "remember" not in app.test_client().get("/login").get_data(as_text=True).lower()
