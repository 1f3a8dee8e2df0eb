"""The audit trail: one entry per event, in the change's transaction, browsed within scope; no secrets in logs."""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re

import pytest
import sqlalchemy as sa

from pmo.accounts import service
from pmo.accounts.models import Role, User
from pmo.accounts.permissions import Actor
from pmo.audit.models import AuditEntry
from pmo.web.logs import JsonFormatter
from tests.conftest import CITY_A, CITY_B, TEST_PASSWORD, second_step


def login(client, user, password=TEST_PASSWORD, session=None):
    """Password, then the TOTP code for accounts that must use MFA (give ``session`` for those)."""
    response = client.post_form("/login", {"login_id": user.login_id, "password": password}, token_from="/login")
    return second_step(client, session, user, response)


def entries(db_session, action):
    return list(db_session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_each_security_event_writes_one_complete_entry(app, make_user, db_session):
    # Entries written by the seed (from the CLI) are not this test's.
    first_id = (db_session.scalar(sa.select(sa.func.max(AuditEntry.id))) or 0) + 1
    admin = make_user(Role.BODY_ADMIN, CITY_A)
    staff = make_user(Role.BODY_STAFF, CITY_A)
    admin_client, staff_client = app.test_client(), app.test_client()
    login(staff_client, staff, "wrong password here")
    login(admin_client, admin, session=db_session)
    login(staff_client, staff)
    staff_client.get("/accounts/users")  # denied
    detail = f"/accounts/users/{staff.id}"
    version = re.search(r'name="version" value="(\d+)"', admin_client.get(detail).get_data(as_text=True)).group(1)
    admin_client.post_form(f"{detail}/role", {"version": version, "role": "body_admin"}, token_from=detail)
    version = re.search(r'name="version" value="(\d+)"', admin_client.get(detail).get_data(as_text=True)).group(1)
    admin_client.post_form(f"{detail}/disable", {"version": version}, token_from=detail)
    admin_client.post_form("/accounts/users/new", {
        "login_id": "otaru-kato", "display_name": "加藤 一", "email": "kato@otaru.example", "role": "body_staff",
    }, token_from="/accounts/users/new")
    admin_client.post_form("/logout", token_from="/account")

    failed, = entries(db_session, "auth.login_failed")
    assert failed.outcome == "failure" and failed.actor_login == staff.login_id and failed.target_body_code == CITY_A
    assert failed.detail == "bad_password"
    logins = entries(db_session, "auth.login")
    assert {e.actor_user_id for e in logins} == {admin.id, staff.id}
    denied, = entries(db_session, "authz.denied")
    assert denied.actor_user_id == staff.id and denied.outcome == "denied" and denied.target_id == "accounts.users"
    role, = entries(db_session, "account.role_changed")
    assert role.before["role"] == "body_staff" and role.after["role"] == "body_admin"
    assert role.actor_user_id == admin.id and role.target_id == str(staff.id) and role.target_body_code == CITY_A
    disabled, = entries(db_session, "account.disabled")
    assert disabled.before["is_active"] is True and disabled.after["is_active"] is False
    issued, = entries(db_session, "account.issued")
    assert issued.after["login_id"] == "otaru-kato" and issued.before is None
    logout, = entries(db_session, "auth.logout")
    assert logout.actor_user_id == admin.id
    for entry in db_session.scalars(sa.select(AuditEntry).where(AuditEntry.id >= first_id)):
        assert entry.at_dt is not None and entry.request_id and entry.ip == "127.0.0.1" and entry.channel == "ui", (entry.action, entry.request_id, entry.ip, entry.channel)


def test_a_rolled_back_change_leaves_no_audit_entry(db_session, make_user):
    admin = make_user(Role.BODY_ADMIN, CITY_A)
    staff = make_user(Role.BODY_STAFF, CITY_A)
    actor = service.actor_for(admin)
    count = db_session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
    service.disable_account(db_session, actor, staff.id)
    service.issue_account(db_session, actor, service.AccountInput("otaru-rollback", "戻 す", "rb@otaru.example",
                                                                  Role.BODY_STAFF), 72)
    db_session.flush()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == count + 2
    db_session.rollback()  # the request failed after the flush
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == count
    db_session.refresh(staff)
    assert staff.is_active
    assert db_session.scalar(sa.select(User).where(User.login_id == "otaru-rollback")) is None


@pytest.fixture
def events(app, make_user):
    """Logins at 小樽市 and at 函館市, and a failure of an unknown user."""
    otaru = make_user(Role.BODY_STAFF, CITY_A, login_id="otaru-event")
    hakodate = make_user(Role.BODY_STAFF, CITY_B, login_id="hakodate-event")
    for user in (otaru, hakodate):
        login(app.test_client(), user)
    login(app.test_client(), otaru, "not the password")
    login(app.test_client(), User(login_id="ghost-event"), "whatever")
    return otaru, hakodate


def csv_rows(response):
    """The export's rows as dicts by header (a UTF-8 BOM first, for Excel)."""
    data = response.get_data()
    assert data.startswith(codecs.BOM_UTF8)
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_a_body_admin_sees_and_exports_own_body_only(client, auth, events):
    admin = auth.login(role=Role.BODY_ADMIN, body=CITY_A)
    html = client.get("/audit/").get_data(as_text=True)
    assert "otaru-event" in html and admin.login_id in html
    assert "hakodate-event" not in html and "ghost-event" not in html
    response = client.get("/audit/export.csv")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = csv_rows(response)
    assert rows and {"日時", "操作", "操作者", "変更前", "変更後"} <= set(rows[0])
    logins = {row["操作者"] for row in rows}
    assert "otaru-event" in logins and "hakodate-event" not in logins and "ghost-event" not in logins
    # asking for another body by filter gives nothing more
    assert csv_rows(client.get(f"/audit/export.csv?body={CITY_B}")) == []


def test_filters(client, auth, events):
    auth.login(role=Role.SYSTEM_ADMIN)
    rows = csv_rows(client.get("/audit/export.csv?action=auth.login_failed"))
    assert {r["操作者"] for r in rows} == {"otaru-event", "ghost-event"}
    assert {r["操作コード"] for r in rows} == {"auth.login_failed"}
    rows = csv_rows(client.get("/audit/export.csv?login=hakodate-event"))
    assert [r["操作コード"] for r in rows] == ["auth.login"]
    rows = csv_rows(client.get(f"/audit/export.csv?body={CITY_B}"))
    assert {r["操作者"] for r in rows} == {"hakodate-event"}
    assert len(csv_rows(client.get("/audit/export.csv?outcome=failure"))) == 2
    assert csv_rows(client.get("/audit/export.csv?from=2100-01-01")) == []
    assert csv_rows(client.get("/audit/export.csv?to=2000-01-01")) == []
    html = client.get("/audit/?login=ghost-event").get_data(as_text=True)
    assert "1件" in html


@pytest.mark.parametrize("role, body", [(Role.BODY_STAFF, CITY_A), (Role.PREFECTURE_STAFF, "010006"),
                                        (Role.MINISTRY_OFFICER, None)])
def test_others_may_not_read_the_audit_trail(client, auth, role, body):
    auth.login(role=role, body=body)
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/export.csv").status_code == 403


def test_the_app_has_no_path_that_changes_an_audit_entry(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/audit"):
            assert not {"POST", "PUT", "PATCH", "DELETE"} & set(rule.methods or ()), rule.rule


# --- LOG-05, LOG-06 ------------------------------------------------------------------------------


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_no_password_or_cookie_reaches_the_logs_or_the_audit_trail(app, make_user, db_session, json_log, caplog):
    caplog.set_level(logging.DEBUG)
    user = make_user(Role.BODY_STAFF, CITY_A)
    client = app.test_client()
    wrong = "wrong-pass-Xy7#q"
    new = "new secret phrase for LOG-05"
    login(client, user, wrong)
    login(client, user)
    cookie = client.get_cookie("__Host-pmo_session").value
    csrf = client.csrf_token("/account")
    client.post("/account/password", data={"current_password": TEST_PASSWORD, "new_password": new,
                                           "confirm_password": new})  # no token: refused, logged
    client.post_form("/account/password", {"current_password": TEST_PASSWORD, "new_password": new,
                                           "confirm_password": new})
    client.post("/account/tokens", data={"csrf_token": csrf, "name": "t"})
    token_page = client.get("/account").get_data(as_text=True)
    client.post_form("/logout", token_from="/account")
    login(client, user, new + "x")
    audit_text = json.dumps([
        [getattr(e, c.key) for c in AuditEntry.__table__.columns]
        for e in db_session.scalars(sa.select(AuditEntry))
    ], default=str, ensure_ascii=False)
    logs = json_log.getvalue() + caplog.text
    assert "login failed" in logs and "csrf rejected" in logs  # the capture did see the events
    for secret in (wrong, TEST_PASSWORD, new, new + "x", cookie, csrf):
        assert secret not in logs, secret[:8]
        assert secret not in audit_text, secret[:8]
    api_tokens = re.findall(r"pmo_[A-Za-z0-9_-]{20,}", token_page)
    for token in api_tokens:
        assert token not in logs and token not in audit_text


def test_a_crlf_login_id_stays_one_escaped_log_line(client, json_log):
    forged = "x\r\n2025-01-01T00:00:00Z login success user=admin"
    client.post_form("/login", {"login_id": forged, "password": "whatever"}, token_from="/login",
                     headers={"X-Forwarded-For": "1.2.3.4"})
    lines = [line for line in json_log.getvalue().splitlines() if line]
    assert lines
    for line in lines:
        json.loads(line)  # each line is one complete JSON event
        assert not line.startswith("2025-01-01T00:00:00Z")
    failed = [json.loads(line) for line in lines if "login failed" in line]
    assert len(failed) == 1
    assert "\r\n2025-01-01T00:00:00Z login success" in failed[0]["msg"]  # kept, but inside the one event
    assert "ip=127.0.0.1" in failed[0]["msg"] and "1.2.3.4" not in failed[0]["msg"]


def test_ansi_escapes_are_escaped_in_log_lines():
    record = logging.LogRecord("pmo.test", logging.INFO, __file__, 1, "name=%s", ("\x1b[31m赤\x1b[0m\n次",), None)
    line = JsonFormatter().format(record)
    assert "\x1b" not in line and "\n" not in line
    assert json.loads(line)["msg"] == "name=\x1b[31m赤\x1b[0m\n次"


def test_a_cli_actor_change_is_audited_with_the_cli_channel(db_session, make_user):
    staff = make_user(Role.BODY_STAFF, CITY_A)
    cli = Actor(user_id=0, login_id="cli", role=Role.SYSTEM_ADMIN)
    service.disable_account(db_session, cli, staff.id)
    entry, = entries(db_session, "account.disabled")
    assert entry.channel == "cli" and entry.actor_login == "cli"


def test_a_refused_read_of_another_bodys_account_is_audited(client, auth, make_user, db_session):
    admin = auth.login(role=Role.BODY_ADMIN, body=CITY_A)
    foreign = make_user(Role.BODY_STAFF, CITY_B)
    assert client.get(f"/accounts/users/{foreign.id}").status_code == 404
    response = client.post_form(f"/accounts/users/{foreign.id}/disable", {"version": "1"}, token_from="/account")
    assert response.status_code == 404
    db_session.refresh(foreign)
    assert foreign.is_active
    denied = entries(db_session, "authz.denied")
    assert len(denied) == 2 and {e.actor_user_id for e in denied} == {admin.id}
    assert {e.target_body_code for e in denied} == {CITY_B}
