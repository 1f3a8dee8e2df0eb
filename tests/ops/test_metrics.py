"""Metrics in Prometheus format, for the scraper only: a Bearer token or an allowlisted peer address.

Behind a reverse proxy every request reaches the portal from the proxy (usually loopback), so being
local proves nothing; and X-Forwarded-For is the client's claim, so it never opens /metrics.
"""

from __future__ import annotations

import pytest

from pmo import create_app
from tests.conftest import SECRET

TOKEN = "m" * 40
PROXY, SCRAPER, OUTSIDER = "127.0.0.1", "10.0.0.9", "203.0.113.5"


@pytest.fixture
def portal(connection, tmp_path):
    """The portal behind one trusted reverse proxy, as DEPLOYMENT.md sets it up."""

    def build(**settings):
        return create_app({
            "TESTING": True, "DB_BIND": connection, "SECRET_KEY": SECRET,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": connection.engine.url.render_as_string(hide_password=False),
            "TRUSTED_PROXIES": 1, **settings,
        })

    return build


def _get(app, peer, headers=None):
    return app.test_client().get("/metrics", headers=headers or {}, environ_base={"REMOTE_ADDR": peer})


def test_the_token_opens_metrics_and_they_count_requests(portal):
    app = portal(METRICS_TOKEN=TOKEN)
    app.test_client().get("/login", environ_base={"REMOTE_ADDR": PROXY})
    response = _get(app, PROXY, {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": OUTSIDER})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'pmo_http_requests_total{endpoint="accounts.login",method="GET",status="200"}' in text
    assert "pmo_http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("authorization", ["", "Bearer ", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN])
def test_a_wrong_or_missing_token_is_refused(portal, authorization):
    app = portal(METRICS_TOKEN=TOKEN)
    response = _get(app, OUTSIDER, {"Authorization": authorization} if authorization else None)
    assert response.status_code == 403
    assert "pmo_http_requests_total" not in response.get_data(as_text=True)


def test_a_request_through_the_proxy_is_refused_although_it_comes_from_loopback(portal):
    # Every proxied request has the proxy's loopback address as its peer: that alone must not open metrics.
    app = portal(METRICS_TOKEN=TOKEN)
    for forwarded in (None, OUTSIDER, "127.0.0.1", f"{OUTSIDER}, 127.0.0.1"):
        response = _get(app, PROXY, {"X-Forwarded-For": forwarded} if forwarded else None)
        assert response.status_code == 403, forwarded
    assert _get(portal(), PROXY).status_code == 403  # nothing configured: nobody


def test_the_allowlist_is_checked_on_the_real_peer_not_on_forwarded_headers(portal):
    app = portal(METRICS_ALLOW=[SCRAPER])
    assert _get(app, SCRAPER).status_code == 200  # the scraper connects directly
    # Through the proxy, claiming to be the scraper: ProxyFix makes it the client address, still refused.
    assert _get(app, PROXY, {"X-Forwarded-For": SCRAPER}).status_code == 403
    assert _get(app, OUTSIDER, {"X-Forwarded-For": SCRAPER}).status_code == 403


def test_the_allowlist_reads_a_comma_separated_environment_value(portal, monkeypatch):
    monkeypatch.setenv("PMO_METRICS_ALLOW", f"{SCRAPER},192.0.2.1")
    app = portal()
    assert app.config["METRICS_ALLOW"] == [SCRAPER, "192.0.2.1"]
    assert _get(app, "192.0.2.1").status_code == 200
    assert _get(app, PROXY).status_code == 403
