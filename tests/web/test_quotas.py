"""INP-04 (d): per-user quotas of 50 uploads and 20 full exports a minute: 429 with a Japanese page,
the hit logged and audited, limits as settings, counts shared through Redis across app processes."""

from __future__ import annotations

import datetime as dt
import io
import logging
import secrets

import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.audit.models import AuditEntry
from pmo.core import clock
from pmo.web import quotas
from tests.conftest import CITY_A, CITY_B, SECRET, PortalClient


def _quota_entries(db_session, login_id: str) -> list[AuditEntry]:
    db_session.expire_all()
    return list(db_session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "quota.exceeded",
                                                              AuditEntry.actor_login == login_id)))


def test_the_default_quotas_are_the_documented_ones(app):
    """INP-04 (d): 50 uploads and 20 full exports per user and minute."""
    assert app.config["UPLOAD_QUOTA_PER_MINUTE"] == 50
    assert app.config["EXPORT_QUOTA_PER_MINUTE"] == 20
    assert app.config["QUOTA_WINDOW_SECONDS"] == 60


def test_every_export_route_is_counted_or_exempt_by_name(app):
    """INP-04 (d): a new export or download route must be added to one of the two lists."""
    names = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert quotas.EXPORT_ENDPOINTS <= names and quotas.EXEMPT_DOWNLOADS <= names
    looks_like_export = {
        rule.endpoint for rule in app.url_map.iter_rules()
        if not rule.rule.startswith("/api/") and "GET" in (rule.methods or set())
        and any(word in rule.endpoint + rule.rule for word in ("export", "xlsx", ".csv", "download", "<fmt>", "<ext>"))
    }
    assert looks_like_export - quotas.EXPORT_ENDPOINTS - quotas.EXEMPT_DOWNLOADS == set()


def test_twenty_exports_a_minute_then_429(app, client, auth, make_user, db_session, caplog):
    """INP-04 (d): the 21st full export within a minute is refused in Japanese, logged and audited;
    another user is not affected; the window slides."""
    clock.freeze(dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.UTC))
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    urls = [f"/plans/{CITY_A}/export", "/procedures/export.csv", f"/plans/{CITY_A}/export?format=csv"]
    for n in range(20):
        response = client.get(urls[n % 3])
        assert response.status_code == 200, (n, response.status_code)
        clock.advance(dt.timedelta(seconds=1))
    with caplog.at_level(logging.WARNING, logger="pmo.quota"):
        refused = client.get("/procedures/export.xlsx")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    assert "1分間に出力できるのは20件までです" in html and "アクセスが集中しています" in html
    assert any("quota exceeded kind=export" in r.getMessage() for r in caplog.records)
    [entry] = _quota_entries(db_session, user.login_id)
    assert entry.outcome == "denied" and entry.target_id == "procedures.export" and entry.actor_body_code == CITY_A
    # a non-export page still works, and a refused export does not count
    assert client.get("/").status_code == 200
    # another user has a quota of their own
    other = app.test_client()
    other_user = make_user(Role.BODY_STAFF, CITY_B)
    other.post_form("/login", {"login_id": other_user.login_id, "password": "correct horse battery staple 2015"},
                    token_from="/login")
    assert other.get(f"/plans/{CITY_B}/export").status_code == 200
    # the window slides: 40 s after the first export it is still full; 60.5 s after it, one place is free
    clock.advance(dt.timedelta(seconds=20))
    assert client.get("/procedures/export.csv").status_code == 429
    clock.advance(dt.timedelta(seconds=20.5))
    assert client.get("/procedures/export.csv").status_code == 200
    assert client.get("/procedures/export.csv").status_code == 429


def test_fifty_uploads_a_minute_then_429(app, client, auth, make_user, db_session):
    """INP-04 (d): the 51st upload within a minute is refused before the handler runs (nothing stored)."""
    from tests.documents.helpers import document_count, upload

    app.config["SEARCH_INDEX_AFTER_COMMIT"] = False
    clock.freeze(dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.UTC))
    officer = auth.login(make_user(Role.MINISTRY_OFFICER, ministry="mhlw"))
    for n in range(50):
        assert upload(client, f"a,b\n{n},1\n".encode(), f"{n}.csv", title=f"一覧{n}").status_code == 302, n
    before = document_count(db_session)
    refused = upload(client, b"a,b\n1,2\n", "51.csv", title="一覧51")
    assert refused.status_code == 429
    assert "1分間にアップロードできるのは50件までです" in refused.get_data(as_text=True)
    assert document_count(db_session) == before
    assert len(_quota_entries(db_session, officer.login_id)) == 1
    # a form without a file is not an upload
    assert client.get("/documents/").status_code == 200
    clock.advance(dt.timedelta(seconds=61))
    assert upload(client, b"a,b\n1,2\n", "52.csv", title="一覧52").status_code == 302


def test_limits_are_settings_and_zero_turns_a_quota_off(app, client, auth):
    """INP-04 (d): the limits come from settings (PMO_EXPORT_QUOTA_PER_MINUTE, ...)."""
    app.config["EXPORT_QUOTA_PER_MINUTE"] = 2
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    assert [client.get("/procedures/export.csv").status_code for _ in range(3)] == [200, 200, 429]
    assert "1分間に出力できるのは2件までです" in client.get("/procedures/export.csv").get_data(as_text=True)
    app.config["EXPORT_QUOTA_PER_MINUTE"] = 0
    assert client.get("/procedures/export.csv").status_code == 200


def test_any_request_carrying_a_file_counts_even_a_refused_one(app, client, auth):
    """INP-04 (d): the quota counts requests carrying a file before any check of the file."""
    app.config["UPLOAD_QUOTA_PER_MINUTE"] = 1
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    token = client.csrf_token("/plans/import")

    def send():
        return client.post("/plans/import", data={"csrf_token": token, "file": (io.BytesIO(b"x"), "p.csv")},
                           content_type="multipart/form-data")

    assert send().status_code == 302
    assert send().status_code == 429


def _redis_or_skip(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:  # noqa: BLE001 - any failure means no Redis here
        pytest.skip("Redis is not running at 127.0.0.1:6379 (.ci/run starts it)")


def test_counts_are_shared_across_app_processes_through_redis(connection, tmp_path, make_user):
    """INP-04 (d): two app instances (as two workers) with one Redis share a user's count; a Redis that
    stops answering falls back to counting in the process (never a 500)."""
    from pmo import create_app

    url = "redis://127.0.0.1:6379/0"
    _redis_or_skip(url)
    prefix = f"pmo-test-{secrets.token_hex(4)}:"
    user = make_user(Role.BODY_STAFF, CITY_A)
    clients = []
    for n in range(2):
        app = create_app({"TESTING": True, "DB_BIND": connection, "SECRET_KEY": SECRET,
                          "INSTANCE_PATH": str(tmp_path / f"instance{n}"), "REDIS_URL": url,
                          "QUOTA_REDIS_PREFIX": prefix, "EXPORT_QUOTA_PER_MINUTE": 3,
                          "DATABASE_URL": str(connection.engine.url.render_as_string(hide_password=False))})
        app.test_client_class = PortalClient
        client = app.test_client()
        assert client.post_form("/login", {"login_id": user.login_id, "password": "correct horse battery staple 2015"},
                                token_from="/login").status_code == 302
        clients.append((app, client))
    (app_a, a), (app_b, b) = clients
    statuses = [a.get("/procedures/export.csv").status_code, b.get("/procedures/export.csv").status_code,
                a.get("/procedures/export.csv").status_code, b.get("/procedures/export.csv").status_code]
    assert statuses == [200, 200, 200, 429]
    import redis

    keys = redis.Redis.from_url(url).keys(prefix + "*")
    assert keys == [f"{prefix}export:{user.id}".encode()]
    redis.Redis.from_url(url).delete(*keys)
    # Redis gone: each process counts on its own, and nothing fails
    for app in (app_a, app_b):
        app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    assert [a.get("/procedures/export.csv").status_code for _ in range(4)] == [200, 200, 200, 429]
