"""AUTH-01…04, AUTH-06: login answers, throttling, password rules, initial passwords, disabling."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from pmo.accounts.models import LoginAttempt, Role, User
from pmo.accounts.service import LOGIN_FAILED_MESSAGE, THROTTLED_MESSAGE
from pmo.audit.models import AuditEntry
from pmo.core import clock
from tests.conftest import CITY_A, CITY_B, TEST_PASSWORD, second_step

T0 = dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)


def page_version(client, path):
    """The record version the page shows in its forms (what a real admin would send back)."""
    return re.search(r'name="version" value="(\d+)"', page_text(client.get(path))).group(1)


def try_login(client, login_id, password, **kwargs):
    return client.post_form("/login", {"login_id": login_id, "password": password}, token_from="/login", **kwargs)


def login_with_code(client, user, db_session):
    """Password, then the TOTP code (accounts that must use MFA)."""
    return second_step(client, db_session, user, try_login(client, user.login_id, TEST_PASSWORD))


def page_text(response):
    return response.get_data(as_text=True)


def normalised(html, login_id):
    html = re.sub(r'name="csrf_token"[^>]*value="[^"]+"', "CSRF", html)
    html = re.sub(r'value="[^"]+"[^>]*name="csrf_token"', "CSRF", html)
    return html.replace(login_id, "LOGIN")


def audit_actions(db_session, **where):
    stmt = sa.select(AuditEntry.action).order_by(AuditEntry.id)
    for key, value in where.items():
        stmt = stmt.where(getattr(AuditEntry, key) == value)
    return list(db_session.scalars(stmt))


# --- AUTH-01 -------------------------------------------------------------------------------------


def test_unknown_user_and_wrong_password_get_the_same_answer(app, client, make_user):
    app.config.update(LOGIN_MAX_FAILURES_PER_USER=1000, LOGIN_MAX_FAILURES_PER_IP=1000)
    user = make_user(Role.BODY_STAFF, CITY_A, login_id="yamada-taro")
    wrong = try_login(client, user.login_id, "not the password at all")
    unknown = try_login(client, "nobody-here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 200
    assert LOGIN_FAILED_MESSAGE in page_text(wrong)
    assert normalised(page_text(wrong), user.login_id) == normalised(page_text(unknown), "nobody-here")
    assert wrong.headers.get("Set-Cookie") is None or "pmo_session" in wrong.headers.get("Set-Cookie", "")


def test_unknown_user_and_wrong_password_cost_the_same_argon2_work(app, client, make_user, monkeypatch):
    """An unknown login ID must not answer faster than a wrong password: both verify one argon2 hash of
    the same parameters. Counted, not timed (timings are for bench/, and CI machines are noisy)."""
    from argon2 import extract_parameters

    from pmo.accounts import service as accounts

    app.config.update(LOGIN_MAX_FAILURES_PER_USER=1000, LOGIN_MAX_FAILURES_PER_IP=1000)
    user = make_user(Role.BODY_STAFF, CITY_A)
    token = client.csrf_token("/login")
    real, verified = accounts._hasher, []

    class CountingHasher:
        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(real, name)

        def verify(self, password_hash, password):  # type: ignore[no-untyped-def]
            verified.append(extract_parameters(password_hash))
            return real.verify(password_hash, password)

    monkeypatch.setattr(accounts, "_hasher", CountingHasher())
    for login_id in (user.login_id, "nobody-at-all"):
        response = client.post("/login", data={"login_id": login_id, "password": "wrong password 1", "csrf_token": token})
        assert response.status_code == 200 and "正しくありません" in response.get_data(as_text=True)
    assert len(verified) == 2 and verified[0] == verified[1], verified


# --- AUTH-02 -------------------------------------------------------------------------------------


def test_five_wrong_passwords_then_the_right_one_is_throttled(client, make_user, db_session):
    user = make_user(Role.BODY_STAFF, CITY_A)
    for _ in range(5):
        assert try_login(client, user.login_id, "wrong password!").status_code == 200
    response = try_login(client, user.login_id, TEST_PASSWORD)
    assert response.status_code == 429
    assert THROTTLED_MESSAGE in page_text(response)
    assert client.get("/").status_code == 302  # not logged in
    actions = audit_actions(db_session, actor_login=user.login_id)
    assert actions.count("auth.login_failed") == 5
    assert "auth.account_locked" in actions and "auth.login_throttled" in actions


def test_password_spraying_from_one_address_is_throttled(client, make_user):
    victim = make_user(Role.BODY_STAFF, CITY_A)
    for n in range(20):
        try_login(client, f"sprayed-{n:02d}", "Summer2015!")
    response = try_login(client, victim.login_id, TEST_PASSWORD)
    assert response.status_code == 429
    assert THROTTLED_MESSAGE in page_text(response)


def test_a_spoofed_forwarded_for_does_not_escape_the_throttle(client, make_user, db_session):
    user = make_user(Role.BODY_STAFF, CITY_A)
    for n in range(20):
        try_login(client, f"sprayed-{n:02d}", "Summer2015!", headers={"X-Forwarded-For": f"203.0.113.{n}"})
    response = try_login(client, user.login_id, TEST_PASSWORD, headers={"X-Forwarded-For": "198.51.100.7"})
    assert response.status_code == 429
    ips = set(db_session.scalars(sa.select(LoginAttempt.ip)))
    assert not any(ip.startswith(("203.0.113.", "198.51.100.")) for ip in ips)


def test_the_throttle_ends_after_the_window(client, make_user):
    clock.freeze(T0)
    user = make_user(Role.BODY_STAFF, CITY_A)
    for _ in range(5):
        try_login(client, user.login_id, "wrong password!")
    assert try_login(client, user.login_id, TEST_PASSWORD).status_code == 429
    clock.advance(dt.timedelta(minutes=5, seconds=1))
    response = try_login(client, user.login_id, TEST_PASSWORD)
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_a_body_admin_unlocks_a_throttled_account(app, make_user, db_session):
    user = make_user(Role.BODY_STAFF, CITY_A)
    admin = make_user(Role.BODY_ADMIN, CITY_A)
    victim_client, admin_client = app.test_client(), app.test_client()
    for _ in range(5):
        try_login(victim_client, user.login_id, "wrong password!")
    assert try_login(victim_client, user.login_id, TEST_PASSWORD).status_code == 429
    assert login_with_code(admin_client, admin, db_session).status_code == 302
    response = admin_client.post_form(f"/accounts/users/{user.id}/unlock", token_from=f"/accounts/users/{user.id}")
    assert response.status_code == 302
    assert try_login(victim_client, user.login_id, TEST_PASSWORD).status_code == 302
    assert "account.unlocked" in audit_actions(db_session, actor_login=admin.login_id)


def test_thresholds_are_settings(app, client, make_user):
    app.config["LOGIN_MAX_FAILURES_PER_USER"] = 3
    user = make_user(Role.BODY_STAFF, CITY_A)
    for _ in range(3):
        try_login(client, user.login_id, "wrong password!")
    assert try_login(client, user.login_id, TEST_PASSWORD).status_code == 429


# --- AUTH-03 -------------------------------------------------------------------------------------


def change_password(client, current, new, confirm=None):
    return client.post_form("/account/password", {
        "current_password": current, "new_password": new, "confirm_password": new if confirm is None else confirm,
    })


@pytest.mark.parametrize("password, message", [
    ("abcdefg", "8文字以上"),
    ("password123456", "よく使われるパスワード"),
    ("PASSWORD123456", "よく使われるパスワード"),
    ("{login}-2015-secret", "ログインID"),
    ("小樽市の職員です2015年", "団体名"),
    ("x" * 129, "128文字以内"),
])
def test_weak_passwords_are_refused_with_a_reason(client, auth, db_session, password, message):
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    before = user.password_hash
    response = change_password(client, TEST_PASSWORD, password.format(login=user.login_id))
    assert response.status_code == 200
    assert message in page_text(response)
    db_session.refresh(user)
    assert user.password_hash == before


@pytest.mark.parametrize("new_password, near_misses", [
    # 64 characters of kana, spaces and emoji: no composition rule, nothing folded away
    (("あいうえお カキクケコ 🍣🗾 " * 5)[:64], ["あいうえお カキクケコ 🍣🗾 " * 4]),
    # 128 characters: accepted whole; the 127-character prefix and a case-folded variant are refused
    (("Tr0ub4dor&3-longer " * 7)[:128], [("Tr0ub4dor&3-longer " * 7)[:127], ("Tr0ub4dor&3-longer " * 7)[:128].lower()]),
])
def test_long_passwords_are_kept_byte_exact(app, client, auth, db_session, new_password, near_misses):
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    response = change_password(client, TEST_PASSWORD, new_password)
    assert response.status_code == 302, page_text(response)[:2000]
    db_session.refresh(user)
    assert user.password_hash.startswith("$argon2id$")
    auth.logout()
    for miss in near_misses + [new_password.strip(), new_password[:72]]:
        if miss == new_password:
            continue
        assert try_login(app.test_client(), user.login_id, miss).status_code == 200, miss
    assert try_login(app.test_client(), user.login_id, new_password).status_code == 302


def test_the_database_holds_argon2_hashes_only(client, auth, db_session):
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    secret = "a quiet harbour in winter 1997"
    assert change_password(client, TEST_PASSWORD, secret).status_code == 302
    hashes = list(db_session.scalars(sa.select(User.password_hash)))
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    salts = [h.split("$")[4] for h in hashes]
    assert len(set(salts)) == len(salts)  # a salt per user
    dump = " ".join(str(row) for table in ("users", "user_sessions", "login_attempts", "audit_entries")
                    for row in db_session.execute(sa.text(f"SELECT * FROM {table}")))
    assert secret not in dump and TEST_PASSWORD not in dump
    assert user.login_id in dump  # the dump did read the tables


def test_changing_a_password_needs_the_current_one(client, auth, db_session):
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    before = user.password_hash
    response = change_password(client, "not my current password", "a brand new passphrase 2016")
    assert "現在のパスワードが正しくありません" in page_text(response)
    db_session.refresh(user)
    assert user.password_hash == before
    response = change_password(client, TEST_PASSWORD, "a brand new passphrase 2016", confirm="something else")
    assert "一致しません" in page_text(response)


# --- AUTH-04 -------------------------------------------------------------------------------------


def issue(admin_client, login_id, email=None, role="body_staff"):
    response = admin_client.post_form("/accounts/users/new", {
        "login_id": login_id, "display_name": "新任 職員", "email": email or f"{login_id}@city.otaru.example",
        "role": role, "body_code": CITY_A,
    }, token_from="/accounts/users/new")
    html = page_text(response)
    match = re.search(r'id="initial-password">([^<]+)<', html)
    return response, (match.group(1) if match else None)


def test_an_initial_password_is_random_shown_once_and_single_use(app, make_user, db_session):
    from pmo.accounts.rules import PasswordPolicy, password_problems

    admin = make_user(Role.BODY_ADMIN, CITY_A)
    admin_client = app.test_client()
    login_with_code(admin_client, admin, db_session)
    _, first = issue(admin_client, "otaru-sato")
    _, second = issue(admin_client, "otaru-suzuki")
    assert first and second and first != second
    assert not password_problems(first, PasswordPolicy(), [])
    user = db_session.scalar(sa.select(User).where(User.login_id == "otaru-sato"))
    assert user.must_change_password and user.password_hash.startswith("$argon2id$")
    # shown once: neither the user's page nor the list shows it again
    assert first not in page_text(admin_client.get(f"/accounts/users/{user.id}"))
    assert first not in page_text(admin_client.get("/accounts/users"))

    staff = app.test_client()
    response = try_login(staff, "otaru-sato", first)
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/password")
    # every page sends the user to the change form first
    for path in ("/", "/bodies/", "/account", f"/bodies/{CITY_A}", "/accounts/users"):
        response = staff.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/account/password"), path
    # the initial value cannot be kept
    response = staff.post_form("/account/password", {
        "current_password": first, "new_password": first, "confirm_password": first})
    assert "異なるもの" in page_text(response)
    response = staff.post_form("/account/password", {
        "current_password": first, "new_password": "my own passphrase 2016", "confirm_password": "my own passphrase 2016"})
    assert response.status_code == 302
    assert staff.get("/").status_code == 200
    # single use: the initial password no longer logs in
    assert try_login(app.test_client(), "otaru-sato", first).status_code == 200


def test_an_initial_password_expires_after_72_hours(app, make_user, db_session):
    clock.freeze(T0)
    admin = make_user(Role.BODY_ADMIN, CITY_A)
    admin_client = app.test_client()
    login_with_code(admin_client, admin, db_session)
    _, password = issue(admin_client, "otaru-takahashi")
    clock.advance(dt.timedelta(hours=72, minutes=1))
    response = try_login(app.test_client(), "otaru-takahashi", password)
    assert response.status_code == 200 and LOGIN_FAILED_MESSAGE in page_text(response)
    clock.freeze(T0 + dt.timedelta(hours=71))
    assert try_login(app.test_client(), "otaru-takahashi", password).status_code == 302


# --- AUTH-06 -------------------------------------------------------------------------------------


def test_disabling_ends_the_users_sessions_on_the_next_request(app, make_user, db_session):
    admin = make_user(Role.BODY_ADMIN, CITY_A)
    user = make_user(Role.BODY_STAFF, CITY_A)
    admin_client, user_client = app.test_client(), app.test_client()
    login_with_code(admin_client, admin, db_session)
    try_login(user_client, user.login_id, TEST_PASSWORD)
    assert user_client.get("/bodies/").status_code == 200
    detail = f"/accounts/users/{user.id}"
    response = admin_client.post_form(f"{detail}/disable", {"version": page_version(admin_client, detail)},
                                      token_from=detail)
    assert response.status_code == 302
    response = user_client.get("/bodies/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = try_login(app.test_client(), user.login_id, TEST_PASSWORD)
    assert response.status_code == 200 and LOGIN_FAILED_MESSAGE in page_text(response)
    entry = db_session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "account.disabled"))
    assert entry.before["is_active"] is True and entry.after["is_active"] is False


@pytest.mark.parametrize("login_id", ["soumu01", "admin", "jinji3", "tanto"])
def test_generic_login_ids_are_refused(app, make_user, db_session, login_id):
    admin = make_user(Role.BODY_ADMIN, CITY_A)
    client = app.test_client()
    login_with_code(client, admin, db_session)
    response, password = issue(client, login_id)
    assert password is None
    assert "共用の名前" in page_text(response)
    assert db_session.scalar(sa.select(User).where(User.login_id == login_id)) is None


def test_a_second_account_with_the_same_email_is_refused(app, make_user, db_session):
    admin = make_user(Role.BODY_ADMIN, CITY_A)
    client = app.test_client()
    login_with_code(client, admin, db_session)
    response, password = issue(client, "otaru-ito", email=admin.email.upper())
    assert password is None
    assert "既に別のアカウントで使われています" in page_text(response)
    assert db_session.scalar(sa.select(User).where(User.login_id == "otaru-ito")) is None


def test_the_review_list_shows_accounts_unused_for_90_days(app, make_user, db_session):
    clock.freeze(T0)
    admin = make_user(Role.BODY_ADMIN, CITY_A, login_id="otaru-admin")
    stale = make_user(Role.BODY_STAFF, CITY_A, login_id="otaru-stale")
    fresh = make_user(Role.BODY_STAFF, CITY_A, login_id="otaru-fresh")
    elsewhere = make_user(Role.BODY_STAFF, CITY_B, login_id="hakodate-stale")
    stale.last_login_dt = T0 - dt.timedelta(days=91)
    elsewhere.last_login_dt = T0 - dt.timedelta(days=200)
    fresh.last_login_dt = T0 - dt.timedelta(days=89)
    db_session.commit()
    client = app.test_client()
    login_with_code(client, admin, db_session)
    html = page_text(client.get("/accounts/users?show=review")).split("<tbody>")[1].split("</tbody>")[0]
    assert "otaru-stale" in html
    assert "otaru-fresh" not in html and "hakodate-stale" not in html and "otaru-admin" not in html


def test_the_last_admin_of_a_body_can_be_neither_disabled_nor_demoted(app, make_user, db_session):
    admin = make_user(Role.BODY_ADMIN, CITY_A)
    sysadmin = make_user(Role.SYSTEM_ADMIN, ministry="cas")
    client = app.test_client()
    login_with_code(client, sysadmin, db_session)
    detail = f"/accounts/users/{admin.id}"
    response = client.post_form(f"{detail}/disable", {"version": page_version(client, detail)}, token_from=detail)
    assert "最後の管理者" in page_text(client.get(response.headers["Location"]))
    response = client.post_form(f"{detail}/role", {"version": page_version(client, detail), "role": "body_staff"},
                                token_from=detail)
    assert "最後の管理者" in page_text(client.get(response.headers["Location"]))
    db_session.refresh(admin)
    assert admin.is_active and admin.role is Role.BODY_ADMIN
    # with a second admin, the first may be demoted
    make_user(Role.BODY_ADMIN, CITY_A)
    client.post_form(f"{detail}/role", {"version": page_version(client, detail), "role": "body_staff"},
                     token_from=detail)
    db_session.refresh(admin)
    assert admin.role is Role.BODY_STAFF


def test_the_portal_hashes_with_argon2_default_costs():
    # The suite swaps in a cheap hasher; a fresh one is what the portal uses.
    from argon2 import PasswordHasher
    from argon2.profiles import RFC_9106_LOW_MEMORY

    hasher = PasswordHasher()
    assert hasher.time_cost >= RFC_9106_LOW_MEMORY.time_cost
    assert hasher.memory_cost >= RFC_9106_LOW_MEMORY.memory_cost


def test_logging_in_is_not_an_edit_of_the_account(app, make_user, db_session):
    # Found by bench/load.py: concurrent logins to one account raised StaleDataError (500)
    # because recording the login time bumped the optimistic-lock version.
    user = make_user(Role.BODY_STAFF, CITY_A)
    version = user.version
    for terminal in (app.test_client(), app.test_client()):
        response = terminal.post_form("/login", {"login_id": user.login_id, "password": TEST_PASSWORD},
                                      token_from="/login")
        assert response.status_code == 302
    db_session.expire_all()
    assert db_session.get(type(user), user.id).version == version
    assert db_session.get(type(user), user.id).last_login_dt is not None
