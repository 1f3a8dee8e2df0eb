"""CFG-01 security headers, CFG-02 no caching of authenticated pages, CFG-03 error pages."""

from __future__ import annotations

import io
import logging
import re

import pytest

from pmo.accounts.models import Role
from pmo.web.auth import public
from tests.conftest import CITY_A
from tests.web.routes import rules, sample_url


def csp_directives(header):
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def assert_security_headers(response, label):
    h = response.headers
    csp = csp_directives(h.get("Content-Security-Policy", ""))
    assert csp.get("default-src") in (["'self'"], ["'none'"]), label
    assert csp.get("object-src") == ["'none'"] or csp.get("default-src") == ["'none'"], label
    assert csp.get("frame-ancestors") == ["'none'"] or "sandbox" in csp, label
    if csp.get("default-src") == ["'self'"]:
        assert csp.get("base-uri") == ["'none'"], label
    scripts = csp.get("script-src", csp.get("default-src"))
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, label
    hsts = h.get("Strict-Transport-Security", "")
    assert int(re.search(r"max-age=(\d+)", hsts).group(1)) >= 31536000 and "includeSubDomains" in hsts, label
    assert h.get("X-Content-Type-Options") == "nosniff", label
    assert h.get("Referrer-Policy") == "strict-origin-when-cross-origin", label
    assert h.get("X-Frame-Options") == "DENY", label
    assert "X-Powered-By" not in h, label
    assert not re.search(r"\d", h.get("Server", "")), label


@pytest.fixture
def failing_app(app):
    @app.route("/boom")
    @public
    def boom():
        raise RuntimeError("secret detail /srv/pmo/app.py SELECT * FROM users")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def test_every_kind_of_response_carries_the_security_headers(failing_app, make_user):
    client = failing_app.test_client()
    responses = {
        "html": client.get("/login"),
        "json": client.get("/api/v1/openapi.json"),
        "redirect": client.get("/"),
        "404": client.get("/no-such-page"),
        "500": client.get("/boom"),
        "static": client.get("/static/css/pmo.css"),
        "api 401": client.get("/api/v1/me"),
        "405": client.get("/logout"),
    }
    assert [r.status_code for r in responses.values()] == [200, 200, 302, 404, 500, 200, 401, 405]
    for label, response in responses.items():
        assert_security_headers(response, label)
        response.close()
    user = make_user(Role.BODY_STAFF, CITY_A)
    client.post_form("/login", {"login_id": user.login_id, "password": "correct horse battery staple 2015"},
                     token_from="/login")
    assert_security_headers(client.get("/bodies/"), "authenticated html")


def test_pages_use_no_inline_script(client, auth):
    auth.login(role=Role.BODY_ADMIN)
    for path in ("/login", "/", "/bodies/", "/account", "/accounts/users", "/audit/"):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+=\"", html), path


def test_authenticated_pages_are_not_cached(app, client, auth):
    auth.login(role=Role.SYSTEM_ADMIN)
    checked = 0
    for rule in rules(app):
        if "GET" in (rule.methods or ()) and rule.endpoint != "static":
            response = client.get(sample_url(rule))
            if response.status_code == 200:
                assert "no-store" in response.headers.get("Cache-Control", ""), rule.rule
                checked += 1
    assert checked >= 8
    url = "/audit/export.csv"
    assert "no-store" in client.get(url).headers["Cache-Control"]
    auth.logout()
    again = client.get(url)
    assert again.status_code == 302 and "/login" in again.headers["Location"]


# --- CFG-03 --------------------------------------------------------------------------------------

LEAKS = ("Traceback", "File \"", "SELECT", "/srv/", "sqlalchemy", "werkzeug", "Werkzeug", "Python/")


def test_error_pages_are_japanese_with_a_request_id_that_is_in_the_log(failing_app, make_user, caplog):
    app = failing_app
    caplog.set_level(logging.INFO, logger="pmo")
    staff = make_user(Role.BODY_STAFF, CITY_A)
    client = app.test_client()
    client.post_form("/login", {"login_id": staff.login_id, "password": "correct horse battery staple 2015"},
                     token_from="/login")
    app.config["MAX_CONTENT_LENGTH"] = 1024
    cases = {
        403: (client.get("/accounts/users"), "この操作を行う権限がありません"),
        404: (client.get("/no-such-page"), "ページが見つかりません"),
        405: (client.get("/logout"), "この方法ではアクセスできません"),
        413: (client.post("/login", data={"f": (io.BytesIO(b"x" * 4096), "a.txt")}, content_type="multipart/form-data"),
              "送信されたデータが大きすぎます"),
        400: (client.post("/account/tokens", data={"name": "x"}), "画面を再読み込みしてください"),
        500: (client.get("/boom"), "システムエラーが発生しました"),
    }
    for status, (response, title) in cases.items():
        html = response.get_data(as_text=True)
        assert response.status_code == status
        assert title in html, status
        request_id = response.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{16}", request_id)
        assert request_id in html, status
        assert request_id in caplog.text, status
        for leak in LEAKS:
            assert leak not in html, (status, leak)
    assert "secret detail" not in cases[500][0].get_data(as_text=True)
    assert "secret detail" in caplog.text  # the operator still gets the traceback, in the log


@pytest.mark.parametrize("path", ["/console", "/.git/config", "/static/../app.py", "/static/../../pyproject.toml",
                                  "/static/%2e%2e/app.py", "/.env", "/docs", "/admin"])
def test_probing_paths_are_not_found(client, path):
    response = client.get(path)
    assert response.status_code == 404, path
    assert "ページが見つかりません" in response.get_data(as_text=True)


def test_trace_is_not_allowed(client):
    response = client.open("/", method="TRACE")
    assert response.status_code == 405
    assert "TRACE" not in response.headers.get("Allow", "")


def test_debug_is_off_by_default(app):
    assert not app.debug
