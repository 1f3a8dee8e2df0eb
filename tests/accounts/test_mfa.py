"""AUTH-05 (TOTP second factor), SESS-06 (re-authentication for one's own MFA), LOG-01/05 for MFA."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pyotp
import pytest
import sqlalchemy as sa

from pmo import create_app
from pmo.accounts import mfa
from pmo.accounts.models import LoginAttempt, MfaCredential, MfaRecoveryCode, Role, User, UserSession
from pmo.audit.models import AuditEntry
from pmo.config import ConfigError
from pmo.core import clock
from tests.conftest import CITY_A, SECRET, TEST_PASSWORD, TEST_TOTP_SECRET

T0 = dt.datetime(2026, 4, 1, 0, 0, 10, tzinfo=dt.UTC)
COOKIE = "__Host-pmo_session"
PRIVILEGED = [
    (Role.MINISTRY_OFFICER, {"ministry": "mic"}),  # publishes documents, FAQs and datasets
    (Role.FINANCE_OFFICER, {"ministry": "mhlw"}),
    (Role.SYSTEM_ADMIN, {"ministry": "cas"}),
    (Role.BODY_ADMIN, {"body_code": CITY_A}),
]


@pytest.fixture(autouse=True)
def frozen():
    clock.freeze(T0)


def password_step(client, user, password=TEST_PASSWORD):
    return client.post_form("/login", {"login_id": user.login_id, "password": password}, token_from="/login")


def send_code(client, code, path="/login/mfa"):
    return client.post_form(path, {"code": code}, token_from=path)


def code(offset=0, secret=TEST_TOTP_SECRET):
    return mfa.code_at(secret, mfa.time_step(clock.now()) + offset)


def text(response):
    return response.get_data(as_text=True)


def logged_in(client):
    return client.get("/account").status_code == 200


def actions(db_session, user, prefix="auth.mfa"):
    rows = db_session.scalars(sa.select(AuditEntry).where(AuditEntry.target_id == str(user.id),
                                                          AuditEntry.action.startswith(prefix)).order_by(AuditEntry.id))
    return [(e.action, e.outcome, e.detail) for e in rows]


@pytest.mark.parametrize("role, where", PRIVILEGED, ids=lambda v: getattr(v, "value", ""))
def test_privileged_roles_need_the_code_and_the_session_id_changes(client, make_user, db_session, role, where):
    user = make_user(role, **where)
    response = password_step(client, user)
    assert response.status_code == 302 and response.headers["Location"] == "/login/mfa"
    pending_cookie = client.get_cookie(COOKIE).value
    assert not logged_in(client)  # the password alone authenticates nothing
    assert db_session.scalar(sa.select(sa.func.count()).select_from(UserSession)
                             .where(UserSession.user_id == user.id)) == 0
    assert "確認コード" in text(client.get("/login/mfa"))
    response = send_code(client, code())
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get_cookie(COOKIE).value != pending_cookie
    assert logged_in(client)
    row = db_session.scalar(sa.select(UserSession).where(UserSession.user_id == user.id))
    assert row.mfa_verified
    assert ("auth.mfa_success", "success", "totp") in actions(db_session, user)


def test_a_code_cannot_be_replayed_in_its_window(app, make_user, db_session):
    user = make_user(Role.SYSTEM_ADMIN, ministry="cas")
    first, second = app.test_client(), app.test_client()
    used = code()
    password_step(first, user)
    assert send_code(first, used).status_code == 302
    password_step(second, user)
    response = send_code(second, used)
    assert response.status_code == 200 and "既に使われています" in text(response)
    assert not logged_in(second)
    # an older code of the window is a replay too; the next step's code is fresh
    assert "既に使われています" in text(send_code(second, code(-1)))
    assert send_code(second, code(+1)).status_code == 302
    assert ("auth.mfa_failed", "failure", "replayed") in actions(db_session, user)


def test_wrong_codes_are_throttled_per_account(client, make_user, db_session):
    user = make_user(Role.FINANCE_OFFICER, ministry="mhlw")
    password_step(client, user)
    wrong = "000000" if code() != "000000" else "111111"
    for _ in range(5):
        response = send_code(client, wrong)
        assert response.status_code == 200 and "確認コードが正しくありません" in text(response)
    response = send_code(client, code())
    assert response.status_code == 429 and "試行回数が上限" in text(response)
    assert not logged_in(client)
    assert actions(db_session, user)[-1][:2] == ("auth.mfa_throttled", "denied")
    clock.advance(dt.timedelta(minutes=6))  # the window passes: a fresh password step, a fresh code
    password_step(client, user)
    assert send_code(client, code()).status_code == 302


def test_wrong_codes_are_throttled_per_address(app, make_user):
    app.config["MFA_MAX_FAILURES_PER_IP"] = 4
    users = [make_user(Role.MINISTRY_OFFICER, ministry="mic") for _ in range(3)]
    for user in users[:2]:
        client = app.test_client()
        password_step(client, user)
        for _ in range(2):
            send_code(client, "000000" if code() != "000000" else "111111")
    client = app.test_client()
    password_step(client, users[2])
    assert send_code(client, code()).status_code == 429


def test_code_failures_do_not_lock_the_password_and_vice_versa(client, make_user, db_session):
    user = make_user(Role.MINISTRY_OFFICER, ministry="mic")
    password_step(client, user)
    for _ in range(4):
        send_code(client, "000000" if code() != "000000" else "111111")
    kinds = db_session.scalars(sa.select(LoginAttempt.kind).where(LoginAttempt.login_id == user.login_id,
                                                                  LoginAttempt.success.is_(False)))
    assert set(kinds) == {"totp"}
    assert password_step(client, user).status_code == 302  # the password throttle counts only passwords


def test_first_login_of_a_privileged_user_enrols_before_any_page(client, make_user, db_session, caplog):
    caplog.set_level(logging.DEBUG)
    user = make_user(Role.MINISTRY_OFFICER, ministry="mic", mfa=False)
    response = password_step(client, user)
    assert response.headers["Location"] == "/login/mfa/setup"
    for path in ("/", "/account", "/plans/", "/account/mfa"):
        assert client.get(path).status_code == 302, path
    page = text(client.get("/login/mfa/setup"))
    assert "<svg" in page and "二要素認証の登録用QRコード" in page
    secret = re.search(r'<span class="secret"[^>]*>([A-Z2-7 ]+)</span>', page).group(1).replace(" ", "")
    assert secret == re.search(r'<span class="secret"[^>]*>([A-Z2-7 ]+)</span>',
                               text(client.get("/login/mfa/setup"))).group(1).replace(" ", "")  # reload: same key
    cred = db_session.scalar(sa.select(MfaCredential).where(MfaCredential.user_id == user.id))
    assert cred.confirmed_dt is None and secret not in cred.secret_enc  # kept encrypted
    assert mfa.decrypt_secret(cred.secret_enc, [SECRET]) == secret
    assert "確認コードが正しくありません" in text(send_code(client, "123456" if code(0, secret) != "123456" else "654321",
                                                            "/login/mfa/setup"))
    assert not logged_in(client)
    response = send_code(client, pyotp.TOTP(secret).at(clock.now()), "/login/mfa/setup")  # any RFC 6238 app
    assert response.status_code == 200
    codes = re.findall(r'<span class="secret">([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</span>', text(response))
    assert len(codes) == 10 and len(set(codes)) == 10
    assert logged_in(client)
    # the recovery codes are kept hashed, and the key is never shown again
    hashes = list(db_session.scalars(sa.select(MfaRecoveryCode.code_hash).where(MfaRecoveryCode.user_id == user.id)))
    assert len(hashes) == 10 and not set(codes) & set(hashes) and all(h.startswith("$argon2id$") for h in hashes)
    assert secret not in text(client.get("/account/mfa"))
    assert client.get("/login/mfa/setup").status_code == 302
    assert ("auth.mfa_enrolled", "success", "totp") in actions(db_session, user)
    # LOG-05: neither the secret nor a code is in a log line or an audit row
    rows = " ".join(str([e.detail, e.before, e.after, e.actor_login]) for e in db_session.scalars(sa.select(AuditEntry)))
    for needle in [secret, *codes, TEST_TOTP_SECRET]:
        assert needle not in caplog.text and needle not in rows


def test_recovery_codes_work_once(app, make_user, db_session):
    user = make_user(Role.SYSTEM_ADMIN, ministry="cas", mfa=False)
    client = app.test_client()
    password_step(client, user)
    secret = re.search(r'<span class="secret"[^>]*>([A-Z2-7 ]+)</span>',
                       text(client.get("/login/mfa/setup"))).group(1).replace(" ", "")
    codes = re.findall(r'([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})', text(send_code(client, code(0, secret), "/login/mfa/setup")))
    again = app.test_client()
    password_step(again, user)
    assert send_code(again, codes[3].upper().replace("-", " ")).status_code == 302  # typed loosely
    third = app.test_client()
    password_step(third, user)
    assert "確認コードが正しくありません" in text(send_code(third, codes[3]))
    assert ("auth.mfa_success", "success", "recovery code") in actions(db_session, user)
    assert ("auth.mfa_failed", "failure", "bad_recovery_code") in actions(db_session, user)


def test_the_pending_step_expires(client, make_user):
    user = make_user(Role.SYSTEM_ADMIN, ministry="cas")
    password_step(client, user)
    token = client.csrf_token("/login/mfa")
    clock.advance(dt.timedelta(minutes=6))
    response = client.post("/login/mfa", data={"code": code(), "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not logged_in(client)


def test_staff_follow_the_setting(app, client, make_user):
    staff = make_user(Role.BODY_STAFF, CITY_A)
    assert password_step(client, staff).headers["Location"] == "/"  # default: off for body staff
    app.config["MFA_FOR_STAFF"] = True
    # the open session no longer counts: the staff member logs in again, with MFA
    assert not logged_in(client)
    assert password_step(client, staff).headers["Location"] == "/login/mfa/setup"


def test_a_session_raised_to_a_privileged_role_must_log_in_again(client, make_user, db_session):
    user = make_user(Role.BODY_STAFF, CITY_A)
    make_user(Role.BODY_ADMIN, CITY_A)
    password_step(client, user)
    assert logged_in(client)
    db_session.execute(sa.update(User).where(User.id == user.id).values(role=Role.BODY_ADMIN))
    db_session.commit()
    assert not logged_in(client)
    assert db_session.scalar(sa.select(UserSession.end_reason).where(UserSession.user_id == user.id)) == "mfa_required"


def test_staff_enrol_voluntarily_then_need_the_code(app, client, make_user, db_session):
    staff = make_user(Role.BODY_STAFF, CITY_A)
    password_step(client, staff)
    page = text(client.get("/account/mfa/setup"))
    assert "設定を始める" in page and "<svg" not in page  # a GET writes nothing
    client.post_form("/account/mfa/setup", {"start": "1"}, token_from="/account/mfa/setup")
    secret = re.search(r'<span class="secret"[^>]*>([A-Z2-7 ]+)</span>',
                       text(client.get("/account/mfa/setup"))).group(1).replace(" ", "")
    assert "リカバリーコード" in text(send_code(client, code(0, secret), "/account/mfa/setup"))
    assert logged_in(client)  # this session passed the code just now
    other = app.test_client()
    assert password_step(other, staff).headers["Location"] == "/login/mfa"


def test_changing_own_mfa_needs_re_authentication(client, make_user, db_session):
    staff = make_user(Role.BODY_STAFF, CITY_A, mfa=True)
    password_step(client, staff)
    send_code(client, code())
    clock.advance(dt.timedelta(minutes=10))
    for path in ("/account/mfa/remove", "/account/mfa/recovery-codes"):
        response = client.post_form(path, token_from="/account/mfa")
        assert response.status_code == 302 and response.headers["Location"].startswith("/account/reauth")
    response = client.get("/account/mfa/setup")
    assert response.headers["Location"].startswith("/account/reauth")
    assert db_session.scalar(sa.select(MfaCredential.id).where(MfaCredential.user_id == staff.id))
    # the password alone is not enough when MFA is on
    response = client.post_form("/account/reauth", {"password": TEST_PASSWORD, "code": "", "next": "/account/mfa"},
                                token_from="/account/reauth")
    assert response.status_code == 200 and "確認コード" in text(response)
    response = client.post_form("/account/reauth", {"password": "wrong wrong wrong", "code": code(1),
                                                    "next": "/account/mfa"}, token_from="/account/reauth")
    assert "パスワードが正しくありません" in text(response)
    response = client.post_form("/account/reauth", {"password": TEST_PASSWORD, "code": code(1),
                                                    "next": "/account/mfa"}, token_from="/account/reauth")
    assert response.status_code == 302 and response.headers["Location"] == "/account/mfa"
    assert client.post_form("/account/mfa/remove", token_from="/account/mfa").headers["Location"] == "/account/mfa"
    assert db_session.scalar(sa.select(MfaCredential.id).where(MfaCredential.user_id == staff.id)) is None
    assert [a for a, _, _ in actions(db_session, staff, "auth.")][-2:] == ["auth.reauthenticated", "auth.mfa_removed"]


def test_a_privileged_user_cannot_remove_their_mfa(client, auth, db_session):
    user = auth.login(role=Role.MINISTRY_OFFICER)
    assert client.post_form("/account/mfa/remove", token_from="/account/mfa").status_code == 403
    assert db_session.scalar(sa.select(MfaCredential.id).where(MfaCredential.user_id == user.id))


def test_a_system_admin_resets_a_users_mfa(app, make_user, auth, db_session):
    officer = make_user(Role.MINISTRY_OFFICER, ministry="mic")
    officer_client = app.test_client()
    password_step(officer_client, officer)
    send_code(officer_client, code())
    assert logged_in(officer_client)
    admin = auth.login(role=Role.SYSTEM_ADMIN)
    detail = f"/accounts/users/{officer.id}"
    assert "二要素認証をリセット" in text(auth.client.get(detail))
    response = auth.client.post_form(f"{detail}/mfa-reset", token_from=detail)
    assert response.status_code == 302
    assert not logged_in(officer_client)
    assert db_session.scalar(sa.select(MfaCredential.id).where(MfaCredential.user_id == officer.id)) is None
    entry = db_session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "account.mfa_reset"))
    assert entry.actor_user_id == admin.id and entry.target_id == str(officer.id) and entry.before == {"mfa": True}
    assert password_step(app.test_client(), officer).headers["Location"] == "/login/mfa/setup"


def test_a_body_admin_cannot_reset_mfa(app, make_user, auth, db_session):
    other_admin = make_user(Role.BODY_ADMIN, CITY_A)
    auth.login(role=Role.BODY_ADMIN, body=CITY_A)
    detail = f"/accounts/users/{other_admin.id}"
    assert "二要素認証をリセット" not in text(auth.client.get(detail))
    assert auth.client.post_form(f"{detail}/mfa-reset", token_from=detail).status_code == 403
    assert db_session.scalar(sa.select(MfaCredential.id).where(MfaCredential.user_id == other_admin.id))


def test_production_refuses_to_switch_mfa_off(tmp_path):
    key = "k" * 40
    with pytest.raises(ConfigError, match="MFA"):
        create_app({"ENV": "production", "SECRET_KEY": key, "MFA_ENFORCE": False,
                    "INSTANCE_PATH": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"})


def test_with_enforcement_off_the_demo_says_so_and_lets_privileged_users_in(app, client, make_user):
    app.config["MFA_ENFORCE"] = False
    assert "デモ環境：二要素認証は無効" in text(client.get("/login"))
    user = make_user(Role.SYSTEM_ADMIN, ministry="cas", mfa=False)
    assert password_step(client, user).headers["Location"] == "/"
    assert "デモ環境：二要素認証は無効" in text(client.get("/account"))
    app.config["MFA_ENFORCE"] = True
    assert "デモ環境" not in text(app.test_client().get("/login"))


def test_secrets_survive_a_secret_key_rotation(app, client, make_user):
    user = make_user(Role.SYSTEM_ADMIN, ministry="cas")
    app.config.update(SECRET_KEY="n" * 64, SECRET_KEY_FALLBACKS=[SECRET])
    client = app.test_client()
    password_step(client, user)
    assert send_code(client, code()).status_code == 302


def test_the_operator_resets_mfa_from_the_console(app, make_user, db_session):
    officer = make_user(Role.FINANCE_OFFICER, ministry="mhlw")
    result = app.test_cli_runner().invoke(args=["users", "mfa-reset", officer.login_id])
    assert result.exit_code == 0, result.output
    assert "リセットしました" in result.output
    assert db_session.scalar(sa.select(MfaCredential.id).where(MfaCredential.user_id == officer.id)) is None
    assert db_session.scalar(sa.select(AuditEntry.action).where(AuditEntry.action == "account.mfa_reset"))


def test_the_demo_enrols_a_given_authenticator_for_benchmarks(app, make_user, db_session):
    from pmo.cli import _demo_mfa

    users = [make_user(role, **where, mfa=False) for role, where in PRIVILEGED]
    users.append(make_user(Role.BODY_STAFF, CITY_A))
    with app.app_context():
        note = _demo_mfa(db_session, users, TEST_TOTP_SECRET)
    db_session.commit()
    assert "指定の秘密鍵を登録しました" in note
    enrolled = set(db_session.scalars(sa.select(MfaCredential.user_id)))
    assert {u.id for u in users[:4]} <= enrolled and users[4].id not in enrolled
    client = app.test_client()
    password_step(client, users[0])
    assert send_code(client, code()).status_code == 302  # the benchmark's codes work
