"""Metrics in Prometheus format, for the scraper only: a Bearer token or an allowlisted peer address.

Behind a reverse proxy every request reaches the portal from the proxy (usually loopback), so being
local proves nothing; and X-Forwarded-For is the client's claim, so it never opens /metrics.
"""

from __future__ import annotations

import os
import secrets
import socket
import time

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


REDIS_URL = os.environ.get("PMO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own in the shared Redis; its keys are deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"pmo-test-{secrets.token_hex(4)}:"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_with_redis_one_scrape_counts_the_requests_of_every_worker(portal, redis_prefix):
    settings = {"METRICS_TOKEN": TOKEN, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": redis_prefix,
                "METRICS_INSTANCE": "app1", "METRICS_FLUSH_SECONDS": 0.05}
    worker_1, worker_2 = portal(**settings), portal(**settings)  # two gunicorn workers of one machine
    for _ in range(3):
        worker_1.test_client().get("/login", environ_base={"REMOTE_ADDR": PROXY})
    worker_2.test_client().get("/login", environ_base={"REMOTE_ADDR": PROXY})
    deadline = time.monotonic() + 5  # worker 1 sends its counts in the background
    while True:
        text = _get(worker_2, PROXY, {"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
        if 'pmo_http_requests_total{endpoint="accounts.login",method="GET",status="200"} 4' in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    assert "pmo_metrics_shared 1" in text
    assert 'pmo_http_request_duration_seconds_count{endpoint="accounts.login"} 4' in text
    assert 'pmo_http_request_duration_seconds_bucket{endpoint="accounts.login",le="+Inf"} 4' in text
    # Another machine keeps its own counters (Prometheus scrapes each machine).
    other = portal(**{**settings, "METRICS_INSTANCE": "app2"})
    assert 'endpoint="accounts.login"' not in _get(other, PROXY, {"Authorization": f"Bearer {TOKEN}"}).get_data(
        as_text=True)
    for app in (worker_1, worker_2, other):  # send what is pending (the scrapes), then the fixture cleans up
        assert app.extensions["pmo_metrics"].flush()


def test_without_redis_each_process_counts_for_itself(portal):
    worker_1, worker_2 = portal(METRICS_TOKEN=TOKEN), portal(METRICS_TOKEN=TOKEN)
    worker_1.test_client().get("/login", environ_base={"REMOTE_ADDR": PROXY})
    text = _get(worker_2, PROXY, {"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    assert "pmo_metrics_shared 0" in text
    assert 'endpoint="accounts.login"' not in text


def test_an_unreachable_redis_costs_no_request_and_no_count(portal, caplog):
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = portal(METRICS_TOKEN=TOKEN, REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert app.test_client().get("/login", environ_base={"REMOTE_ADDR": PROXY}).status_code == 200
    text = _get(app, PROXY, {"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    assert 'pmo_http_requests_total{endpoint="accounts.login",method="GET",status="200"} 1' in text
    assert any("Redis unreachable" in record.getMessage() for record in caplog.records)


def test_a_hanging_redis_does_not_slow_requests(portal):
    # Redis that accepts connections and never answers: each call to it waits for its 0.5 s timeout.
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(64)
        app = portal(METRICS_TOKEN=TOKEN, REDIS_URL=f"redis://127.0.0.1:{hanging.getsockname()[1]}/0",
                     METRICS_FLUSH_SECONDS=0.05)
        client = app.test_client()
        started = time.monotonic()
        for _ in range(5):
            assert client.get("/login", environ_base={"REMOTE_ADDR": PROXY}).status_code == 200
        assert time.monotonic() - started < 2.5  # waiting for Redis in the request would take 5 × 0.5 s
