"""Virus scanning of every upload when ``PMO_CLAMD_SOCKET`` names clamd's socket (FILE-08).

``pmo.core.files.inspect_upload`` asks the provider installed here for the current app's scan, so
documents, data sets, estimates, base tables and plan imports are all scanned, from the screens,
the API and the CLI. A refused upload is logged (``pmo.files``) and, in a request, audited as
``file.infected`` or ``file.scan_unavailable`` in its own transaction after the view has rolled its
own work back. Without the setting nothing is scanned and the status pages say so.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, g, has_app_context, has_request_context

from pmo.core import files
from pmo.core.scanner import ClamdScanner, ScannerUnavailable

log = logging.getLogger("pmo.files")

STATUS_LABELS = {
    "not_configured": "無効（PMO_CLAMD_SOCKET が設定されていません。アップロードは検査されません）",
    "ok": "有効・稼働中",
    "error": "停止中（ウイルス検査ができないため、アップロードはすべて拒否されます）",
}


def init_app(app: Flask) -> None:
    files.set_scan_provider(_provider)
    app.after_request(_audit_refusals)


def scanner_of(app: Flask) -> ClamdScanner | None:
    """The app's scanner, following its ``CLAMD_SOCKET`` setting (None: scanning is off)."""
    socket_path = app.config.get("CLAMD_SOCKET")
    if not socket_path:
        return None
    found = app.extensions.get("pmo_scanner")
    if found is None or found.socket_path != str(socket_path):
        found = ClamdScanner(str(socket_path), timeout=float(app.config.get("CLAMD_TIMEOUT") or 30))
        app.extensions["pmo_scanner"] = found
    return found


def _provider() -> files.ScanHook | None:
    if not has_app_context():
        return None
    scanner = scanner_of(current_app)  # type: ignore[arg-type]
    if scanner is None:
        return None

    def scan(data: bytes, display: str, digest: str) -> None:
        try:
            files.scan_upload(scanner, data, display, digest)
        except files.UploadRejected as exc:
            if has_request_context():
                g.setdefault("pmo_scan_refusals", []).append((exc.code, exc.detail, display, digest))
            raise

    return scan


def _audit_refusals(response: Response) -> Response:
    refusals = g.pop("pmo_scan_refusals", None)
    if not refusals:
        return response
    from flask_login import current_user

    from pmo.audit import service as audit
    from pmo.db import get_session

    try:
        session = get_session()
        session.rollback()  # the view has committed or abandoned its own work by now
        actor = current_user.actor if current_user.is_authenticated else None
        for code, detail, display, digest in refusals:
            infected = code == "infected"
            audit.record(
                session, actor, "file.infected" if infected else "file.scan_unavailable", outcome="denied",
                target_type="upload", target_body_code=actor.body.code if actor and actor.body else None,
                after={"file": display, "sha256": digest, "signature": detail if infected else None},
                detail=(f"ウイルス検出: {detail}" if infected else "ウイルス検査が利用できないため拒否"),
            )
        session.commit()
    except Exception:  # the refusal itself stands; the log line above is the record
        log.exception("could not audit a refused upload")
    return response


def scanner_status(app: Flask) -> tuple[str, str | None]:
    """(``not_configured`` | ``ok`` | ``error``, the engine's version when it answers)."""
    scanner = scanner_of(app)
    if scanner is None:
        return "not_configured", None
    try:
        return "ok", scanner.version()
    except ScannerUnavailable:
        log.warning("virus scanner is not answering")
        return "error", None


def status_label(status: str) -> Any:
    return STATUS_LABELS.get(status, status)
