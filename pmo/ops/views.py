"""`/healthz` for the load balancer and `/metrics` in Prometheus format."""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from pathlib import Path
from threading import Lock
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, render_template, request
from sqlalchemy import text

from pmo.accounts.permissions import Permission
from pmo.core import clock
from pmo.web.auth import public, require

bp = Blueprint("ops", __name__)

BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_lock = Lock()
_requests: dict[tuple[str, str, int], int] = defaultdict(int)
_durations: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
_duration_sum: dict[str, float] = defaultdict(float)


def init_app(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("started")
        if started is None:
            return response
        elapsed = time.perf_counter() - started
        endpoint = request.endpoint or "unknown"
        with _lock:
            _requests[(endpoint, request.method, response.status_code)] += 1
            buckets = _durations[endpoint]
            for i, bound in enumerate(BUCKETS):
                if elapsed <= bound:
                    buckets[i] += 1
            buckets[-1] += 1
            _duration_sum[endpoint] += elapsed
        return response


def _check_database() -> bool:
    try:
        with current_app.extensions["pmo_db"].session(write=False) as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure means unhealthy; the reason goes to the log, not the answer
        current_app.logger.exception("health check: database")
        return False


@bp.route("/healthz")
@public
def healthz() -> Any:
    """Say whether the portal can serve: database, disk, search index, age of the last backup."""
    from pmo.ops.backup import last_backup_age
    from pmo.settings.service import get_setting

    checks: dict[str, Any] = {"database": "ok" if _check_database() else "error"}
    free = shutil.disk_usage(Path(current_app.instance_path)).free
    checks["disk"] = "ok" if free > 1 << 30 else "low"
    status_fn = current_app.extensions.get("pmo_search_status")
    checks["search_index"] = status_fn() if status_fn else "not_configured"
    try:
        with current_app.extensions["pmo_db"].session(write=False) as session:
            checks["last_backup_age_hours"] = last_backup_age(get_setting(session, "last_backup"), clock.now())
    except Exception:
        checks["last_backup_age_hours"] = None
    from pmo.web.scanning import scanner_status

    # FILE-08: "not_configured" | "ok" | "error" (uploads are then refused; the pages still serve).
    checks["virus_scanner"] = scanner_status(current_app)[0]
    healthy = checks["database"] == "ok" and checks["disk"] == "ok"
    response = jsonify({"status": "ok" if healthy else "error", "checks": checks})
    response.status_code = 200 if healthy else 503
    return response


@bp.route("/ops/status")
@require(Permission.SYSTEM_SETTINGS)
def status() -> Any:
    """システム状態: what /healthz checks, in words, for system admins (with the scanner's version)."""
    from pmo.ops.backup import last_backup_age
    from pmo.settings.service import get_setting
    from pmo.web.scanning import scanner_status, status_label

    scan_state, scan_version = scanner_status(current_app)
    status_fn = current_app.extensions.get("pmo_search_status")
    try:
        with current_app.extensions["pmo_db"].session(write=False) as session:
            backup_age = last_backup_age(get_setting(session, "last_backup"), clock.now())
    except Exception:  # noqa: BLE001 - no answer is shown as "no record"
        backup_age = None
    free = shutil.disk_usage(Path(current_app.instance_path)).free
    return render_template(
        "ops/status.html", database_ok=_check_database(), free_gb=free / (1 << 30),
        search_state=status_fn() if status_fn else "not_configured", backup_age=backup_age,
        scan_state=scan_state, scan_label=status_label(scan_state), scan_version=scan_version,
    )


@bp.route("/metrics")
@public
def metrics() -> Any:
    """Per-process request counters and latency histograms (Prometheus text format).

    Reachable from the loopback address, or with the bearer token PMO_METRICS_TOKEN.
    """
    token = current_app.config.get("METRICS_TOKEN")
    given = request.headers.get("Authorization", "")
    if not (request.remote_addr in ("127.0.0.1", "::1") or (token and given == f"Bearer {token}")):
        return Response("forbidden\n", status=403, mimetype="text/plain")
    lines = [
        "# HELP pmo_http_requests_total HTTP requests by endpoint, method and status.",
        "# TYPE pmo_http_requests_total counter",
    ]
    with _lock:
        for (endpoint, method, status), count in sorted(_requests.items()):
            lines.append(f'pmo_http_requests_total{{endpoint="{endpoint}",method="{method}",status="{status}"}} {count}')
        lines += [
            "# HELP pmo_http_request_duration_seconds Request latency by endpoint.",
            "# TYPE pmo_http_request_duration_seconds histogram",
        ]
        for endpoint, buckets in sorted(_durations.items()):
            for bound, count in zip(BUCKETS, buckets):
                lines.append(f'pmo_http_request_duration_seconds_bucket{{endpoint="{endpoint}",le="{bound}"}} {count}')
            lines.append(f'pmo_http_request_duration_seconds_bucket{{endpoint="{endpoint}",le="+Inf"}} {buckets[-1]}')
            lines.append(f'pmo_http_request_duration_seconds_sum{{endpoint="{endpoint}"}} {_duration_sum[endpoint]:.6f}')
            lines.append(f'pmo_http_request_duration_seconds_count{{endpoint="{endpoint}"}} {buckets[-1]}')
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
