"""AC-01, CSRF-01…03 over every route of the URL map."""

from __future__ import annotations

import datetime as dt

import flask_wtf.csrf
import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from pmo.accounts.models import ApiToken, Role
from pmo.core import clock
from pmo.web.auth import PUBLIC_ENDPOINTS
from tests.conftest import CITY_A, TEST_PASSWORD, second_step
from tests.web.routes import UNSAFE, method_cases, rules, sample_url

# Reachable without login. Anything not listed here must declare a permission with @require.
PUBLIC = {
    "static", "home.index", "accounts.login", "api.openapi",
    "accounts.mfa_verify", "accounts.mfa_enroll",  # the second step of the login (AUTH-05)
    "ops.healthz",  # health for the load balancer, no internals
    "ops.metrics",  # checks its own token or a local caller
}
CSRF_PAGE = "画面を再読み込みしてください"


class OldSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return super().get_timestamp() - 13 * 3600


class OldSerializer(URLSafeTimedSerializer):
    default_signer = OldSigner


def view_of(app, endpoint):
    return app.view_functions[endpoint]


def test_every_endpoint_is_public_or_declares_a_permission(app):
    undeclared, public = [], set()
    for rule in rules(app):
        view = view_of(app, rule.endpoint)
        if getattr(view, "_pmo_public", False) or rule.endpoint in PUBLIC_ENDPOINTS:
            public.add(rule.endpoint)
        elif not hasattr(view, "_pmo_permission"):
            undeclared.append(rule.endpoint)
    assert not undeclared, f"routes without @require or @public: {undeclared}"
    assert public == PUBLIC


def test_a_new_route_without_a_declaration_is_caught(app):
    @app.route("/forgotten")
    def forgotten():  # pragma: no cover - never requested
        return "open to all"

    view = view_of(app, "forgotten")
    assert not getattr(view, "_pmo_public", False) and not hasattr(view, "_pmo_permission")


def anonymous_cases(app):
    return [(e, m, r) for e, m, r in method_cases(app, ("GET",) + UNSAFE) if e not in PUBLIC]


def test_anonymous_requests_are_sent_to_login_or_refused(app, client):
    token = client.csrf_token("/login")
    wrong = []
    for endpoint, method, rule in anonymous_cases(app):
        url = sample_url(rule)
        response = client.open(url, method=method, data={"csrf_token": token} if method != "GET" else None)
        if url.startswith("/api/"):
            ok = response.status_code == 401 and response.mimetype == "application/problem+json"
        else:
            ok = response.status_code == 302 and response.headers["Location"].startswith("/login")
        if not ok:
            wrong.append(f"{method} {url} → {response.status_code}")
    assert not wrong
    assert len(anonymous_cases(app)) >= 15


def test_automatic_options_answers_carry_no_data(app, client):
    for rule in rules(app):
        response = client.open(sample_url(rule), method="OPTIONS")
        assert response.status_code in (200, 404) and not response.get_data(), rule.rule


# --- CSRF-01 -------------------------------------------------------------------------------------


def login(client, user, session=None):
    response = client.post_form("/login", {"login_id": user.login_id, "password": TEST_PASSWORD}, token_from="/login")
    assert response.status_code == 302
    return second_step(client, session, user, response)


def csrf_cases(app):
    return [(e, m, r) for e, m, r in method_cases(app, UNSAFE) if not r.rule.startswith("/api/")]


def test_every_unsafe_route_refuses_a_missing_or_foreign_or_expired_token(app, make_user, monkeypatch, db_session):
    sysadmin = make_user(Role.SYSTEM_ADMIN, ministry="cas")
    other = make_user(Role.BODY_STAFF, CITY_A)
    target = make_user(Role.BODY_STAFF, CITY_A)
    mine, theirs = app.test_client(), app.test_client()
    login(mine, sysadmin, db_session)
    login(theirs, other)
    foreign_token = theirs.csrf_token("/account")
    with monkeypatch.context() as patch:  # a token signed 13 hours ago (only the CSRF signer is old)
        patch.setattr(flask_wtf.csrf, "URLSafeTimedSerializer", OldSerializer)
        expired_token = mine.csrf_token("/account")
    typed = {"display_name": "入力した氏名 小樽 花子", "name": "集計用トークン"}
    cases = csrf_cases(app)
    assert {e for e, _, _ in cases} >= {"accounts.login", "accounts.logout", "accounts.issue", "accounts.user_action"}
    for endpoint, method, rule in cases:
        url = sample_url(rule, {"user_id": target.id})
        for label, token in (("none", None), ("foreign", foreign_token), ("expired", expired_token)):
            data = dict(typed)
            if token:
                data["csrf_token"] = token
            response = mine.open(url, method=method, data=data)
            html = response.get_data(as_text=True)
            assert response.status_code == 400, (endpoint, label, response.status_code)
            assert CSRF_PAGE in html, (endpoint, label)
            assert "入力した氏名 小樽 花子" in html, (endpoint, label)  # the input is kept for the user
        assert mine.get("/account").status_code == 200  # still logged in, nothing happened


def test_a_valid_token_passes_on_every_unsafe_route(app, make_user, db_session):
    sysadmin = make_user(Role.SYSTEM_ADMIN, ministry="cas")
    target = make_user(Role.BODY_STAFF, CITY_A)
    for endpoint, method, rule in csrf_cases(app):
        client = app.test_client()
        login(client, sysadmin, db_session)
        url = sample_url(rule, {"user_id": target.id})
        response = client.open(url, method=method, data={"csrf_token": client.csrf_token("/account")})
        assert CSRF_PAGE not in response.get_data(as_text=True), endpoint
        assert response.status_code != 400, endpoint


def test_the_login_form_is_protected_and_keeps_the_login_id_but_never_the_password(client):
    response = client.post("/login", data={"login_id": "otaru-yamada", "password": "my secret passphrase"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and CSRF_PAGE in html
    assert "otaru-yamada" in html and "my secret passphrase" not in html


def test_logout_removes_the_token(app, client, make_user, db_session):
    user = make_user(Role.BODY_STAFF, CITY_A)
    login(client, user)
    old = client.csrf_token("/account")
    client.post("/logout", data={"csrf_token": old})
    login(client, user)
    response = client.post("/account/tokens", data={"csrf_token": old, "name": "古いトークンで"})
    assert response.status_code == 400
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_the_token_outlives_the_idle_timeout(app):
    assert app.config["WTF_CSRF_TIME_LIMIT"] >= app.config["SESSION_IDLE_MINUTES"] * 60


# --- CSRF-02 -------------------------------------------------------------------------------------


@pytest.fixture
def write_spy(connection):
    writes: list[str] = []

    def spy(_conn, _cursor, statement, _params, _context, _many):
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            writes.append(statement.split("\n")[0][:120])

    sa.event.listen(connection, "before_cursor_execute", spy)
    yield writes
    sa.event.remove(connection, "before_cursor_execute", spy)


@pytest.mark.parametrize("role, where", [
    (None, None), (Role.SYSTEM_ADMIN, {"ministry": "cas"}), (Role.BODY_ADMIN, {"body_code": CITY_A}),
    (Role.PREFECTURE_STAFF, {"body_code": "010006"}),
])
def test_safe_methods_never_write(app, client, make_user, write_spy, role, where, db_session):
    clock.freeze(dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
    subject = make_user(Role.BODY_STAFF, CITY_A)
    if role is not None:
        login(client, make_user(role, **where), db_session)
    token = client.get("/account")  # warm up: the login itself may write
    assert token.status_code in (200, 302)
    write_spy.clear()
    for rule in rules(app):
        url = sample_url(rule, {"user_id": subject.id})
        for method in ("GET", "HEAD"):
            if method in (rule.methods or ()):
                response = client.open(url, method=method)
                assert response.status_code < 500, (method, url)
                # A refusal may be audited (authz.denied); nothing else may change.
                other = [w for w in write_spy if not w.startswith("INSERT INTO audit_entries")]
                assert not other, (method, url, other)
                write_spy.clear()


def test_state_changing_routes_answer_405_to_get(app, client, auth):
    auth.login(role=Role.SYSTEM_ADMIN)
    only_unsafe = [r for r in rules(app) if not ({"GET", "HEAD"} & set(r.methods or ()))]
    assert any(r.endpoint == "accounts.logout" for r in only_unsafe)
    for rule in only_unsafe:
        response = client.get(sample_url(rule))
        assert response.status_code == 405, rule.rule
        assert "この方法ではアクセスできません" in response.get_data(as_text=True) or rule.rule.startswith("/api/")
    assert client.get("/account").status_code == 200  # GET /logout did not log out


# --- CSRF-03 -------------------------------------------------------------------------------------


def test_a_cross_origin_or_missing_referer_is_refused(client, auth, db_session):
    auth.login(role=Role.BODY_STAFF)
    token = client.csrf_token("/account")
    for headers in ({"Referer": "https://evil.example/"}, {"Referer": "http://localhost/"}, {"Referer": ""}):
        response = client.post("/account/tokens", data={"csrf_token": token, "name": "x"}, headers=headers)
        assert response.status_code == 400, headers
    response = client.post("/account/tokens", data={"csrf_token": token, "name": "x"},
                           headers={"Referer": "https://localhost/account"})
    assert response.status_code == 200
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 1


def test_the_referrer_policy_keeps_same_origin_referers(client):
    for path in ("/login", "/", "/nowhere", "/static/css/pmo.css"):
        policy = client.get(path).headers.get("Referrer-Policy")
        assert policy in ("strict-origin-when-cross-origin", "same-origin"), path


def test_metrics_refuse_a_remote_caller_without_the_token(app):
    remote = app.test_client()
    remote.environ_base["REMOTE_ADDR"] = "203.0.113.5"
    assert remote.get("/metrics").status_code == 403
    assert remote.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 403


def test_the_only_write_of_a_get_is_the_sessions_last_seen_once_a_minute(app, client, make_user, write_spy):
    """The deliberate exception to CSRF-02: the idle timeout needs last_seen, written at most each minute."""
    clock.freeze(dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
    login(client, make_user(Role.BODY_STAFF, CITY_A))
    write_spy.clear()
    client.get("/bodies/")
    assert write_spy == []
    clock.advance(dt.timedelta(seconds=app.config["SESSION_TOUCH_SECONDS"] + 1))
    client.get("/bodies/")
    client.get("/bodies/")
    assert len(write_spy) == 1 and write_spy[0].startswith("UPDATE user_sessions")
