"""Security headers, request ids, cache control and the audit context of each request."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, Response, abort, g, request
from flask_login import current_user

from pmo.audit import service as audit

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
FILE_CSP = "default-src 'none'; sandbox"
log = logging.getLogger("pmo.request")


def init_app(app: Flask) -> None:
    @app.before_request
    def _request_context() -> None:
        g.request_id = uuid.uuid4().hex[:16]
        g.audit_token = audit.current_context.set(
            audit.RequestContext(
                ip=request.remote_addr,
                user_agent=request.headers.get("User-Agent", "")[:300],
                request_id=g.request_id,
                channel="api" if request.path.startswith("/api/") else "ui",
            )
        )

    @app.before_request
    def _limit_body() -> None:
        # Only file uploads (multipart) may approach MAX_CONTENT_LENGTH; a form or JSON body larger
        # than one text field may be is refused before any parsing or handler work (INP-04).
        length = request.content_length or 0
        if length > app.config["MAX_FORM_MEMORY_SIZE"] and request.mimetype != "multipart/form-data":
            abort(413)

    @app.before_request
    def _refuse_nul() -> None:
        # PostgreSQL cannot hold a NUL character in text; no user types one. Refuse it in the path,
        # the query and form fields with a 400 before it reaches a query (INP-03).
        fields = list(request.args.items(multi=True))
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            fields += list(request.form.items(multi=True))
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in fields):
            abort(400)

    @app.teardown_request
    def _reset_context(_exc: BaseException | None) -> None:
        token = g.pop("audit_token", None)
        if token is not None:
            audit.current_context.reset(token)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["X-Request-ID"] = g.get("request_id", "-")
        headers.pop("Server", None)
        headers.pop("X-Powered-By", None)
        try:
            authenticated = bool(getattr(current_user, "is_authenticated", False))
        except Exception:  # noqa: BLE001 - the user could not be loaded (database down): treat as private (AC-09)
            authenticated = True
        if not request.path.startswith("/static/") and (authenticated or "Cache-Control" not in headers):
            if "private" not in headers.get("Cache-Control", ""):  # file downloads set "private, no-store"
                headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        return response
