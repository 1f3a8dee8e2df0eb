"""SESS-06: after REAUTH_MINUTES a sensitive action is refused, with nothing written, until the user
re-authenticates on the real re-authentication page; a fresh login proceeds directly.

Covered here: one's own password and API tokens, issuing (or raising to, or resetting the password
of) an admin-level account, and the exports that span every body. One's own MFA: test_mfa.py.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from pmo.accounts.mfa import PRIVILEGED_ROLES
from pmo.accounts.models import ApiToken, MfaCredential, Role, User
from pmo.accounts.permissions import ADMIN_LEVEL_ROLES, is_admin_level
from pmo.audit.models import AuditEntry
from pmo.core import clock
from tests.conftest import CITY_A, CITY_B, TEST_PASSWORD, next_totp_code

T0 = dt.datetime(2026, 4, 1, 0, 0, 10, tzinfo=dt.UTC)
NEW_PASSWORD = "a brand new passphrase for 2026"
# What an action could write; user_sessions is left out (its last-seen time moves on any request).
WATCHED = ("users", "api_tokens", "mfa_credentials", "audit_entries", "import_jobs")


@pytest.fixture(autouse=True)
def frozen():
    clock.freeze(T0)


def go_stale(app):
    clock.advance(dt.timedelta(minutes=app.config["REAUTH_MINUTES"], seconds=1))


def snapshot(db_session):
    """Every row of the tables an action could change, read afresh from the database."""
    db_session.expire_all()
    return {t: db_session.execute(sa.text(f"SELECT * FROM {t} ORDER BY id")).all() for t in WATCHED}


def assert_sent_to_reauth(client, response, back, what):
    """The refusal: a redirect to the re-authentication page that returns to ``back``, saying why."""
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = urlsplit(response.headers["Location"])
    assert location.path == "/account/reauth" and parse_qs(location.query)["next"] == [back]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"{what}には本人確認（再認証）が必要です" in page and "本人確認" in page


def reauthenticate(client, db_session, user, back):
    """The real re-authentication page: the password, and a TOTP code when the user has MFA."""
    enrolled = db_session.scalar(sa.select(MfaCredential.id).where(MfaCredential.user_id == user.id)) is not None
    data = {"password": TEST_PASSWORD, "next": back,
            "code": next_totp_code(db_session, user.id) if enrolled else ""}
    response = client.post_form("/account/reauth", data, token_from="/account/reauth")
    assert response.status_code == 302 and response.headers["Location"] == back
    actions = db_session.scalars(sa.select(AuditEntry.action).where(AuditEntry.target_id == str(user.id))
                                 .order_by(AuditEntry.id.desc()).limit(1)).all()
    assert actions == ["auth.reauthenticated"]


def test_admin_level_roles_are_the_roles_that_must_use_mfa():
    assert ADMIN_LEVEL_ROLES == PRIVILEGED_ROLES
    assert is_admin_level("body_admin") and is_admin_level(Role.SYSTEM_ADMIN)
    assert not is_admin_level("body_staff") and not is_admin_level(None) and not is_admin_level("root")


# --- one's own account ------------------------------------------------------------------------------


def change_password(client, token_from="/account"):
    return client.post_form("/account/password", {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD,
                                                  "confirm_password": NEW_PASSWORD}, token_from=token_from)


def password_hash(db_session, user):
    return db_session.scalar(sa.select(User.password_hash).where(User.id == user.id)
                             .execution_options(populate_existing=True))


@pytest.mark.parametrize("role", [Role.BODY_STAFF, Role.BODY_ADMIN])
def test_changing_own_password_after_a_while_needs_re_authentication(app, client, auth, db_session, role):
    user = auth.login(role=role, body=CITY_A)
    go_stale(app)
    before = snapshot(db_session)
    assert_sent_to_reauth(client, client.get("/account/password"), "/account/password", "パスワードの変更")
    response = change_password(client)  # the form was opened in time, sent too late
    assert_sent_to_reauth(client, response, "/account/password", "パスワードの変更")
    assert snapshot(db_session) == before
    reauthenticate(client, db_session, user, "/account/password")
    assert client.get("/account/password").status_code == 200
    assert change_password(client).headers["Location"] == "/"
    assert password_hash(db_session, user) not in {row.password_hash for row in before["users"]}


def test_a_fresh_login_changes_the_password_directly(client, auth, db_session):
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    old = password_hash(db_session, user)
    assert change_password(client).headers["Location"] == "/"
    assert password_hash(db_session, user) != old


def test_the_forced_change_of_an_initial_password_is_not_held_up(app, client, make_user, db_session):
    """Right after the login with an initial password nothing else is reachable: no second prompt."""
    user = make_user(Role.BODY_STAFF, CITY_A, must_change=True)
    client.post_form("/login", {"login_id": user.login_id, "password": TEST_PASSWORD}, token_from="/login")
    go_stale(app)
    assert client.get("/account/password").status_code == 200
    old = password_hash(db_session, user)
    assert change_password(client, token_from="/account/password").headers["Location"] == "/"
    assert password_hash(db_session, user) != old


def test_an_api_token_is_issued_only_after_a_recent_login(app, client, auth, db_session):
    user = auth.login(role=Role.BODY_ADMIN, body=CITY_A)
    go_stale(app)
    before = snapshot(db_session)
    response = client.post_form("/account/tokens", {"name": "集計スクリプト"}, token_from="/account")
    assert_sent_to_reauth(client, response, "/account", "APIトークンの発行")
    assert snapshot(db_session) == before
    reauthenticate(client, db_session, user, "/account")
    response = client.post_form("/account/tokens", {"name": "集計スクリプト"}, token_from="/account")
    assert response.status_code == 200 and "pmo_" in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id)) == 1


def test_a_bearer_token_is_not_asked_to_re_authenticate(app, client, auth, db_session):
    """The API is another channel (DECISIONS.md 1): a token has no login to go stale."""
    auth.login(role=Role.BODY_ADMIN, body=CITY_A)
    page = client.post_form("/account/tokens", {"name": "集計"}, token_from="/account").get_data(as_text=True)
    secret = re.search(r'<span class="secret">([^<]+)</span>', page).group(1).strip()
    go_stale(app)
    go_stale(app)
    response = app.test_client().get("/api/v1/bodies", headers={"Authorization": f"Bearer {secret}"},
                                     base_url="https://localhost")
    assert response.status_code == 200 and response.get_json()


def test_a_ministry_officer_without_a_body_issues_and_uses_an_api_token(app, client, auth, db_session):
    """API tokens belong to the account, not to a body: officers (no body) issue them too."""
    user = auth.login(role=Role.MINISTRY_OFFICER, ministry="mic")
    page = client.post_form("/account/tokens", {"name": "全国集計"}, token_from="/account")
    assert page.status_code == 200
    secret = re.search(r'<span class="secret">([^<]+)</span>', page.get_data(as_text=True)).group(1).strip()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id)) == 1
    response = app.test_client().get("/api/v1/bodies", headers={"Authorization": f"Bearer {secret}"},
                                     base_url="https://localhost")
    assert response.status_code == 200 and len(response.get_json()["items"]) > 1  # every body, as the officer


# --- admin-level accounts ------------------------------------------------------------------------


def issue(client, login_id, role, body_code=CITY_A, ministry_code=""):
    return client.post_form("/accounts/users/new", {
        "login_id": login_id, "display_name": "新規 利用者", "email": f"{login_id}@example.jp", "role": role.value,
        "body_code": body_code, "ministry_code": ministry_code}, token_from="/accounts/users/new")


def user_count(db_session, login_id):
    return db_session.scalar(sa.select(sa.func.count()).select_from(User).where(User.login_id == login_id))


@pytest.mark.parametrize("issuer, role, body_code, ministry_code", [
    (Role.BODY_ADMIN, Role.BODY_ADMIN, CITY_A, ""),
    (Role.SYSTEM_ADMIN, Role.MINISTRY_OFFICER, "", "mic"),
    (Role.SYSTEM_ADMIN, Role.FINANCE_OFFICER, "", "mhlw"),
    (Role.SYSTEM_ADMIN, Role.SYSTEM_ADMIN, "", "cas"),
])
def test_issuing_an_admin_level_account_needs_a_recent_login(app, client, auth, db_session, issuer, role, body_code,
                                                             ministry_code):
    admin = auth.login(role=issuer, body=CITY_A if issuer is Role.BODY_ADMIN else None,
                       ministry=None if issuer is Role.BODY_ADMIN else "cas")
    go_stale(app)
    page = client.get("/accounts/users/new")  # the form opens and says so; the POST is checked
    assert page.status_code == 200 and "先に<a" in page.get_data(as_text=True)
    before = snapshot(db_session)
    response = issue(client, "new-admin", role, body_code, ministry_code)
    assert_sent_to_reauth(client, response, "/accounts/users/new", "管理者権限のアカウントの発行")
    assert snapshot(db_session) == before and user_count(db_session, "new-admin") == 0
    reauthenticate(client, db_session, admin, "/accounts/users/new")
    response = issue(client, "new-admin", role, body_code, ministry_code)
    assert response.status_code == 200 and "初期パスワード" in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(User.role).where(User.login_id == "new-admin")) is role


def test_a_fresh_login_issues_an_admin_and_a_stale_one_still_issues_staff(app, client, auth, db_session):
    auth.login(role=Role.BODY_ADMIN, body=CITY_A)
    assert "本人確認（再認証）</a>" not in client.get("/accounts/users/new").get_data(as_text=True)
    assert issue(client, "fresh-admin", Role.BODY_ADMIN).status_code == 200
    assert user_count(db_session, "fresh-admin") == 1
    go_stale(app)
    assert issue(client, "late-staff", Role.BODY_STAFF).status_code == 200  # staff reach one body only
    assert user_count(db_session, "late-staff") == 1


def test_raising_a_role_to_admin_level_needs_a_recent_login(app, client, auth, make_user, db_session):
    admin = auth.login(role=Role.BODY_ADMIN, body=CITY_A)
    staff = make_user(Role.BODY_STAFF, CITY_A)
    back = f"/accounts/users/{staff.id}"
    go_stale(app)
    before = snapshot(db_session)
    response = client.post_form(f"/accounts/users/{staff.id}/role", {"role": "body_admin", "version": staff.version},
                                token_from=back)
    assert_sent_to_reauth(client, response, back, "管理者権限の付与（役割の変更・初期パスワードの再発行）")
    assert snapshot(db_session) == before
    reauthenticate(client, db_session, admin, back)
    response = client.post_form(f"/accounts/users/{staff.id}/role", {"role": "body_admin", "version": staff.version},
                                token_from=back)
    assert response.headers["Location"] == back
    assert db_session.scalar(sa.select(User.role).where(User.id == staff.id)
                             .execution_options(populate_existing=True)) is Role.BODY_ADMIN
    go_stale(app)  # lowering a role again gives nobody more reach: not held up
    version = db_session.scalar(sa.select(User.version).where(User.id == staff.id))
    response = client.post_form(f"/accounts/users/{staff.id}/role", {"role": "body_staff", "version": version},
                                token_from=back)
    assert response.headers["Location"] == back
    assert db_session.scalar(sa.select(User.role).where(User.id == staff.id)
                             .execution_options(populate_existing=True)) is Role.BODY_STAFF


def test_a_new_initial_password_of_an_admin_needs_a_recent_login(app, client, auth, make_user, db_session):
    admin = auth.login(role=Role.BODY_ADMIN, body=CITY_A)
    other_admin = make_user(Role.BODY_ADMIN, CITY_A)
    staff = make_user(Role.BODY_STAFF, CITY_A)
    back = f"/accounts/users/{other_admin.id}"
    go_stale(app)
    before = snapshot(db_session)
    response = client.post_form(f"{back}/reset", token_from=back)
    assert_sent_to_reauth(client, response, back, "管理者権限の付与（役割の変更・初期パスワードの再発行）")
    assert snapshot(db_session) == before
    response = client.post_form(f"/accounts/users/{staff.id}/reset", token_from=back)  # staff: not held up
    assert response.status_code == 200 and "初期パスワード" in response.get_data(as_text=True)
    reauthenticate(client, db_session, admin, back)
    response = client.post_form(f"{back}/reset", token_from=back)
    assert response.status_code == 200 and "初期パスワード" in response.get_data(as_text=True)
    assert password_hash(db_session, other_admin) not in {row.password_hash for row in before["users"]}


def test_a_stale_login_does_not_tell_which_account_of_another_body_is_an_admin(app, client, auth, make_user):
    auth.login(role=Role.BODY_ADMIN, body=CITY_A)
    elsewhere = make_user(Role.BODY_ADMIN, CITY_B)
    go_stale(app)
    assert client.post_form(f"/accounts/users/{elsewhere.id}/reset", token_from="/account").status_code == 404


# --- exports of every body -------------------------------------------------------------------------


NATIONAL_EXPORTS = [
    # (who, what the message names, export URL, the page re-authentication returns to)
    ({"role": Role.MINISTRY_OFFICER, "ministry": "mic"}, "全団体分の計画・実績の出力",
     "/plans/national/export?format=csv&job=abcdef0123456789", "/plans/national"),
    ({"role": Role.SYSTEM_ADMIN, "ministry": "cas"}, "全団体分の監査ログの出力",
     "/audit/export.csv?action=auth.", "/audit/?action=auth."),
    ({"role": Role.MINISTRY_OFFICER, "ministry": "mic"}, "全国ダッシュボードの表（全団体分）の出力",
     "/reports/export/status.csv", "/reports/national"),
    ({"role": Role.MINISTRY_OFFICER, "ministry": "mic"}, "全体推進会議報告（全団体分）の出力",
     "/reports/steering.xlsx?as_of=2015-10-15", "/reports/steering?as_of=2015-10-15"),
    ({"role": Role.FINANCE_OFFICER, "ministry": "mhlw"}, "全国の補助金集計の出力",
     "/subsidy/reports.xlsx?fy=2015", "/subsidy/reports?fy=2015"),
]

EXPORT_IDS = ["plans", "audit", "dashboard", "steering", "subsidy"]


def downloaded(response):
    return response.status_code == 200 and "attachment" in response.headers.get("Content-Disposition", "")


@pytest.mark.parametrize("who, what, url, back", NATIONAL_EXPORTS, ids=EXPORT_IDS)
def test_an_export_of_every_body_needs_a_recent_login(app, client, auth, db_session, who, what, url, back):
    user = auth.login(**who)
    go_stale(app)
    before = snapshot(db_session)
    assert_sent_to_reauth(client, client.get(url), back, what)
    assert snapshot(db_session) == before  # not even the export job row
    reauthenticate(client, db_session, user, back)
    assert client.get(back).status_code == 200
    assert downloaded(client.get(url))


@pytest.mark.parametrize("who, what, url, back", NATIONAL_EXPORTS, ids=EXPORT_IDS)
def test_a_fresh_login_exports_every_body_directly(client, auth, who, what, url, back):
    auth.login(**who)
    assert downloaded(client.get(url))


@pytest.mark.parametrize("who, url", [
    ({"role": Role.BODY_ADMIN, "body": CITY_A}, "/audit/export.csv"),  # own body's entries
    ({"role": Role.BODY_STAFF, "body": CITY_A}, f"/plans/{CITY_A}/export?format=csv"),
    ({"role": Role.MINISTRY_OFFICER, "ministry": "mic"}, f"/plans/{CITY_A}/export?format=csv"),  # one body
    ({"role": Role.PREFECTURE_STAFF, "body": "010006"}, "/subsidy/reports.xlsx?fy=2015"),  # one prefecture
    ({"role": Role.PREFECTURE_STAFF, "body": "010006"}, "/reports/export/status.csv?scope=01"),
])
def test_an_export_of_one_body_or_prefecture_is_not_held_up(app, client, auth, who, url):
    auth.login(**who)
    go_stale(app)
    assert downloaded(client.get(url))
