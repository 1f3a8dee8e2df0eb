"""`/healthz` for the load balancer and `/metrics` in Prometheus format."""

from __future__ import annotations

import hmac
import shutil
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, render_template, request
from sqlalchemy import text

from pmo.accounts.permissions import Permission
from pmo.config import upload_dir
from pmo.core import clock
from pmo.web.auth import public, require

bp = Blueprint("ops", __name__)


def init_app(app: Flask) -> None:
    from pmo.ops.metrics import make_counters

    counters = make_counters(app.config)
    app.extensions["pmo_metrics"] = counters

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("started")
        if started is not None:
            counters.record(request.endpoint or "unknown", request.method, response.status_code,
                            time.perf_counter() - started)
        return response


def _check_database() -> bool:
    try:
        with current_app.extensions["pmo_db"].session(write=False) as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure means unhealthy; the reason goes to the log, not the answer
        current_app.logger.exception("health check: database")
        return False


def _free_disk() -> int:
    """Free bytes on the fuller of the instance folder and the (shared) uploads folder."""
    folders = {Path(current_app.instance_path), upload_dir(current_app.config, current_app.instance_path)}
    return min(shutil.disk_usage(folder).free for folder in folders if folder.exists())


@bp.route("/healthz")
@public
def healthz() -> Any:
    """Say whether the portal can serve: database, disk, search index, age of the last backup."""
    from pmo.ops.backup import last_backup_age
    from pmo.settings.service import get_setting

    checks: dict[str, Any] = {"database": "ok" if _check_database() else "error"}
    free = _free_disk()
    checks["disk"] = "ok" if free > 1 << 30 else "low"  # the instance folder and the (shared) uploads
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


def peer_address() -> str:
    """The address of the TCP peer itself: before ProxyFix rewrote it from X-Forwarded-For."""
    original = request.environ.get("werkzeug.proxy_fix.orig") or {}
    return str(original.get("REMOTE_ADDR") or request.environ.get("REMOTE_ADDR") or "")


def _may_scrape() -> bool:
    """A Bearer PMO_METRICS_TOKEN, or a peer listed in PMO_METRICS_ALLOW.

    Behind a reverse proxy every request arrives from the proxy (often loopback), so a peer address
    is only trusted when explicitly listed, and a forwarded header never counts.
    """
    token = current_app.config.get("METRICS_TOKEN") or ""
    given = request.headers.get("Authorization", "")
    if token and given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode()):
        return True
    allowed = current_app.config.get("METRICS_ALLOW") or []
    if isinstance(allowed, str):
        allowed = [part for part in allowed.split(",") if part.strip()]
    return peer_address() in {address.strip() for address in allowed}


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
    free = _free_disk()
    return render_template(
        "ops/status.html", database_ok=_check_database(), free_gb=free / (1 << 30),
        search_state=status_fn() if status_fn else "not_configured", backup_age=backup_age,
        scan_state=scan_state, scan_label=status_label(scan_state), scan_version=scan_version,
    )


@bp.route("/metrics")
@public
def metrics() -> Any:
    """Request counters and latency histograms (Prometheus text format; see pmo.ops.metrics).

    Only for the scraper: a Bearer token (PMO_METRICS_TOKEN) or an allowlisted peer (PMO_METRICS_ALLOW).
    """
    if not _may_scrape():
        return Response("forbidden\n", status=403, mimetype="text/plain")
    from pmo.ops.metrics import render

    counters = current_app.extensions["pmo_metrics"]
    return Response(render(counters.snapshot(), counters.shared), mimetype="text/plain; version=0.0.4")
