"""The JSON API base: personal tokens (Bearer only), the OpenAPI document, problem details."""

from __future__ import annotations

import datetime as dt
import json
import re

import sqlalchemy as sa

from pmo.accounts.models import ApiToken, Role
from pmo.api.openapi import build_spec
from pmo.core import clock
from tests.conftest import CITY_A, CITY_C, PREF_X


def new_token(client, name="集計スクリプト"):
    response = client.post_form("/account/tokens", {"name": name}, token_from="/account")
    assert response.status_code == 200
    secrets = re.findall(r"pmo_[A-Za-z0-9_-]{30,}", response.get_data(as_text=True))
    assert len(set(secrets)) == 1
    return secrets[0]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response, status):
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["request_id"] == response.headers["X-Request-ID"]
    assert re.search(r"[ぁ-んァ-ン一-龥]", body["title"]) and re.search(r"[ぁ-んァ-ン一-龥]", body["detail"])
    return body


def test_a_token_is_shown_once_hashed_at_rest_and_acts_as_its_owner(app, client, auth, db_session):
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    token = new_token(client)
    assert token not in client.get("/account").get_data(as_text=True)
    row = db_session.scalar(sa.select(ApiToken))
    assert row.token_hash != token and len(row.token_hash) == 64 and token.startswith(row.prefix)
    dump = json.dumps([list(r) for r in db_session.execute(sa.text("SELECT * FROM api_tokens"))], default=str)
    assert token not in dump
    api = app.test_client()
    me = api.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200 and me.get_json()["login_id"] == user.login_id
    assert api.get(f"/api/v1/bodies/{CITY_A}", headers=bearer(token)).status_code == 200
    assert_problem(api.get(f"/api/v1/bodies/{CITY_C}", headers=bearer(token)), 404)
    assert_problem(api.get(f"/api/v1/bodies/{PREF_X}", headers=bearer(token)), 404)
    listing = api.get("/api/v1/bodies", headers=bearer(token)).get_json()
    assert listing["total"] == 1 and listing["items"][0]["code"] == CITY_A


def test_a_prefecture_token_reaches_its_prefecture_only(app, client, auth):
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    token = new_token(client)
    api = app.test_client()
    listing = api.get("/api/v1/bodies?page=1", headers=bearer(token)).get_json()
    assert 150 < listing["total"] < 200 and all(b["prefecture_code"] == "01" for b in listing["items"])
    assert api.get("/api/v1/bodies?prefecture=02", headers=bearer(token)).get_json()["total"] == 0
    assert_problem(api.get(f"/api/v1/bodies/{CITY_C}", headers=bearer(token)), 404)


def test_a_revoked_token_is_refused(app, client, auth, db_session):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    token = new_token(client)
    row = db_session.scalar(sa.select(ApiToken))
    response = client.post_form(f"/account/tokens/{row.id}/revoke", token_from="/account")
    assert response.status_code == 302
    assert_problem(app.test_client().get("/api/v1/me", headers=bearer(token)), 401)


def test_an_expired_token_is_refused(app, client, auth):
    clock.freeze(dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    token = new_token(client)
    api = app.test_client()
    clock.advance(dt.timedelta(days=364))
    assert api.get("/api/v1/me", headers=bearer(token)).status_code == 200
    clock.advance(dt.timedelta(days=2))
    assert_problem(api.get("/api/v1/me", headers=bearer(token)), 401)


def test_a_disabled_owner_ends_the_token(app, client, auth, db_session):
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    token = new_token(client)
    db_session.execute(sa.text("UPDATE users SET is_active = :f WHERE id = :id"), {"f": False, "id": user.id})
    db_session.commit()
    assert_problem(app.test_client().get("/api/v1/me", headers=bearer(token)), 401)


def test_another_users_token_cannot_be_revoked(app, client, auth, make_user, db_session):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    token = new_token(client)
    row = db_session.scalar(sa.select(ApiToken))
    other = app.test_client()
    other_user = make_user(Role.BODY_STAFF, CITY_A)
    other.post_form("/login", {"login_id": other_user.login_id, "password": "correct horse battery staple 2015"},
                    token_from="/login")
    assert other.post_form(f"/account/tokens/{row.id}/revoke", token_from="/account").status_code == 404
    assert app.test_client().get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_the_api_takes_bearer_tokens_only(client, auth):
    auth.login(role=Role.SYSTEM_ADMIN)
    assert client.get("/bodies/").status_code == 200  # the cookie works for pages
    for path in ("/api/v1/me", "/api/v1/bodies", f"/api/v1/bodies/{CITY_A}"):
        assert_problem(client.get(path), 401)
    for header in ("Bearer ", "Bearer pmo_not-a-real-token", "Basic dXNlcjpwYXNz", "pmo_xyz"):
        assert_problem(client.get("/api/v1/me", headers={"Authorization": header}), 401)


def test_api_errors_are_japanese_problem_details(client):
    assert_problem(client.get("/api/v1/no-such-thing"), 404)
    body = assert_problem(client.post("/api/v1/me"), 405)
    assert body["instance"] == "/api/v1/me"
    assert_problem(client.get("/api/v1/me"), 401)


def test_the_openapi_document_lists_every_api_route(app, client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec == json.loads(json.dumps(build_spec(app)))
    listed = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    routes = {
        (re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert listed == routes and len(routes) >= 4
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["summary"] != op["operationId"].rsplit(".", 1)[0], (path, method)
            assert "401" in op["responses"] or op["security"] == []
