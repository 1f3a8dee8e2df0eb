"""Japanese error pages (HTML) and problem details (JSON, RFC 9457) with the request id."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from pmo.core.errors import DomainError, ValidationFailed

log = logging.getLogger("pmo.errors")

TITLES = {
    400: "リクエストが正しくありません",
    401: "ログインが必要です",
    403: "この操作を行う権限がありません",
    404: "ページが見つかりません",
    405: "この方法ではアクセスできません",
    409: "他のユーザーが先に更新しました",
    413: "送信されたデータが大きすぎます",
    422: "入力内容に誤りがあります",
    429: "アクセスが集中しています",
    500: "システムエラーが発生しました",
    503: "ただいま利用できません",
}
DETAILS = {
    400: "送信内容を確認してください。",
    401: "ログインしてから操作してください。",
    403: "必要な場合は、所属団体の番号制度主管課またはシステム管理者にお問い合わせください。",
    404: "URLが正しいか確認してください。削除された、または閲覧権限のない情報の可能性があります。",
    405: "画面のボタンやリンクから操作してください。",
    409: "画面を再読み込みして、最新の内容を確認してから操作してください。",
    413: "ファイルの大きさや入力内容の量を確認してください。",
    429: "しばらく時間をおいてから再度お試しください。",
    500: "時間をおいて再度お試しください。解決しない場合は、下記の受付番号を添えて問い合わせてください。",
    503: "時間をおいて再度お試しください。",
}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def _log_error(status: int) -> None:
    """One line per error answer, with the request id the user sees on the page (CFG-03)."""
    log.log(logging.WARNING if status >= 500 else logging.INFO, "error status=%s request_id=%s method=%s path=%s",
            status, g.get("request_id"), request.method, request.path)


def problem(status: int, detail: str | None = None, errors: list[dict[str, str]] | None = None) -> Response:
    """Return an RFC 9457 problem document in Japanese."""
    _log_error(status)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "エラー"),
        "status": status,
        "detail": detail or DETAILS.get(status, ""),
        "instance": request.path,
        "request_id": g.get("request_id"),
    }
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def error_page(status: int, detail: str | None = None, **extra: Any) -> tuple[str, int]:
    _log_error(status)
    template = "errors/csrf.html" if extra.get("csrf") else "errors/error.html"
    html = render_template(
        template, status=status, title=TITLES.get(status, "エラー"), detail=detail or DETAILS.get(status, ""),
        request_id=g.get("request_id", "-"), **extra,
    )
    return html, status


def _keep_denials() -> None:
    """Roll back the failed request's changes but commit its ``authz.denied`` audit entries (AC-03)."""
    from pmo.audit.models import AuditEntry

    session = g.get("pmo_session")
    if session is None:
        return
    denials = [obj for obj in session.new if isinstance(obj, AuditEntry) and obj.outcome == "denied"]
    session.rollback()
    if denials:
        session.add_all(denials)
        session.commit()


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        if wants_json():
            return problem(400, "CSRFトークンが無効です。")
        kept = [
            (key, value) for key, value in request.form.items(multi=True)
            if key not in ("csrf_token",) and "password" not in key and len(value) < 20000
        ]
        log.info("csrf rejected path=%s reason=%s", request.path, exc.description)
        return error_page(400, "画面の有効期限が切れたか、不正な送信の可能性があります。画面を再読み込みしてから、もう一度操作してください。",
                          csrf=True, kept=kept)

    @app.errorhandler(ValidationFailed)
    def _validation(exc: ValidationFailed) -> Any:
        if wants_json():
            return problem(422, "入力内容に誤りがあります。",
                           [{"field": p.field, "message": p.message} for p in exc.problems])
        return error_page(422, "；".join(p.message for p in exc.problems))

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Any:
        if exc.status in (403, 404):
            _keep_denials()
        if wants_json():
            return problem(exc.status, exc.message or None)
        return error_page(exc.status, exc.message or None)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        status = exc.code or 500
        if wants_json():
            response = problem(status)
        else:
            html, _ = error_page(status)
            response = Response(html, status=status, mimetype="text/html")
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception) -> Any:
        log.exception("unhandled error request_id=%s path=%s", g.get("request_id"), request.path)
        if wants_json():
            return problem(500)
        try:
            return error_page(500)
        except Exception:  # the template itself failed (DB down in a context processor, …)
            return Response(f"システムエラーが発生しました。受付番号: {g.get('request_id', '-')}", 500,
                            mimetype="text/plain")
