"""Metrics in Prometheus format, for the loopback address or a token only."""


def test_metrics_count_requests_from_loopback(client):
    client.get("/login")
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'pmo_http_requests_total{endpoint="accounts.login",method="GET",status="200"}' in text
    assert "pmo_http_request_duration_seconds_bucket" in text


def test_metrics_refused_from_elsewhere_without_token(client):
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert response.status_code == 403
    assert "pmo_http_requests_total" not in response.get_data(as_text=True)
