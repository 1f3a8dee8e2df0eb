"""Per-user quotas on uploads and full exports (SECURITY.md INP-04 d).

A logged-in user may send ``UPLOAD_QUOTA_PER_MINUTE`` requests carrying a file and fetch
``EXPORT_QUOTA_PER_MINUTE`` generated exports within any ``QUOTA_WINDOW_SECONDS`` (a sliding window;
0 turns a quota off). Past that the request is refused with 429 and a Japanese page (problem
details on the API) before the handler runs; each refusal is logged and audited
(``quota.exceeded``). Refused requests do not count.

The counts live in Redis when ``PMO_REDIS_URL`` is set, so every worker and app server shares them
(one sorted set per user and kind, updated atomically by a Lua script); otherwise in this process's
memory, which is exact for one process. If Redis stops answering, the process falls back to its own
memory and logs it, so a Redis outage neither blocks users nor lifts the quotas entirely.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import deque
from typing import Any

from flask import Flask, Response, request
from flask_login import current_user

from pmo.core import clock

log = logging.getLogger("pmo.quota")

# Endpoints that generate a file from the database (what "a full export" costs). Downloads of
# stored files and small fixed templates are not exports; the test of the URL map keeps this
# list and EXEMPT_DOWNLOADS complete.
EXPORT_ENDPOINTS = frozenset({
    "audit.export", "plans.export", "plans.export_national", "procedures.export", "reports.export",
    "reports.steering_xlsx", "subsidy.base_table_csv", "subsidy.reports_xlsx",
})
EXEMPT_DOWNLOADS = frozenset({
    "documents.download", "procedures.dataset_download", "subsidy.estimate_template", "plans.job_errors",
})

MESSAGES = {
    "upload": "1分間にアップロードできるのは{limit}件までです。しばらく待ってから再度お試しください。",
    "export": "1分間に出力できるのは{limit}件までです。しばらく待ってから再度お試しください。",
}

_LUA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  return 0
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
return 1
"""


class MemoryCounter:
    """Sliding windows in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def take(self, key: str, now: float, window: float, limit: int) -> bool:
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now)
            return True


class RedisCounter:
    """Sliding windows in Redis, shared by every worker; falls back to memory when Redis fails."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.prefix = prefix
        self.script = self.client.register_script(_LUA)
        self.fallback = MemoryCounter()

    def take(self, key: str, now: float, window: float, limit: int) -> bool:
        try:
            return bool(self.script(keys=[self.prefix + key], args=[now, window, limit, f"{now}:{secrets.token_hex(4)}"]))
        except Exception as exc:  # noqa: BLE001 - redis.RedisError, OSError: keep counting in this process
            log.error("quota store unavailable, counting in this process: %s", type(exc).__name__)
            return self.fallback.take(key, now, window, limit)


def counter_of(app: Flask) -> MemoryCounter | RedisCounter:
    url = app.config.get("REDIS_URL")
    prefix = str(app.config.get("QUOTA_REDIS_PREFIX") or f"{app.config.get('REDIS_PREFIX', 'pmo:')}quota:")
    found = app.extensions.get("pmo_quota_counter")
    wanted = ("redis", url, prefix) if url else ("memory",)
    if found is None or found[0] != wanted:
        found = (wanted, RedisCounter(url, prefix) if url else MemoryCounter())
        app.extensions["pmo_quota_counter"] = found
    return found[1]


def kind_of_request() -> str | None:
    if request.method == "GET" and request.endpoint in EXPORT_ENDPOINTS:
        return "export"
    carries_file = request.method in ("POST", "PUT") and request.mimetype == "multipart/form-data"
    if carries_file and any(f.filename for f in request.files.values()):
        return "upload"
    return None


def init_app(app: Flask) -> None:
    @app.before_request
    def _check_quota() -> Any:
        kind = kind_of_request()
        if kind is None or not current_user.is_authenticated:
            return None
        limit = int(app.config.get(f"{kind.upper()}_QUOTA_PER_MINUTE") or 0)
        if limit <= 0:
            return None
        window = float(app.config.get("QUOTA_WINDOW_SECONDS") or 60)
        actor = current_user.actor
        now = clock.now().timestamp()
        if counter_of(app).take(f"{kind}:{actor.user_id}", now, window, limit):
            return None
        return _refuse(kind, limit, window, actor)


def _refuse(kind: str, limit: int, window: float, actor: Any) -> Response:
    from pmo.audit import service as audit
    from pmo.db import get_session
    from pmo.web.errors import error_page, problem, wants_json

    log.warning("quota exceeded kind=%s limit=%s user=%s endpoint=%s", kind, limit, actor.login_id, request.endpoint)
    try:
        session = get_session()
        session.rollback()
        audit.record(session, actor, "quota.exceeded", outcome="denied", target_type="endpoint",
                     target_id=request.endpoint, target_body_code=actor.body.code if actor.body else None,
                     detail=f"{kind} {limit}/{int(window)}s")
        session.commit()
    except Exception:
        log.exception("could not audit a quota refusal")
    message = MESSAGES[kind].format(limit=limit)
    if wants_json():
        response = problem(429, message)
    else:
        html, status = error_page(429, message)
        response = Response(html, status=status, mimetype="text/html")
    response.headers["Retry-After"] = str(int(window))
    return response
