"""The search box (HTML and JSON API), the index backend of the process, and the after-commit indexer."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, render_template, request
from sqlalchemy import event
from sqlalchemy.orm import Session

from pmo.accounts.permissions import Permission
from pmo.api.openapi import document, query_param
from pmo.config import search_index_dir
from pmo.db import get_session
from pmo.documents.models import FIELD_LABELS
from pmo.search import indexer, service
from pmo.web.auth import current_actor, require

bp = Blueprint("search", __name__, url_prefix="/search")
api_bp = Blueprint("search_api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)


SEARCH_BACKENDS = ("whoosh", "postgresql")


def backend(app: Flask | None = None) -> Any:
    """The process's search backend, chosen by ``SEARCH_BACKEND`` (whoosh: one searcher per process)."""
    app = app or current_app
    found = app.extensions.get("pmo_search")
    if found is None:
        timeout = float(app.config.get("SEARCH_LOCK_TIMEOUT", 1.0))
        if _backend_name(app) == "postgresql":
            from pmo.search.pg import PostgresBackend

            found = PostgresBackend(app.extensions["pmo_db"].session_factory, lock_timeout=timeout)
        else:
            from pmo.search.engine import WhooshBackend

            root = str(search_index_dir(app.config, app.instance_path))
            found = WhooshBackend(root, lock_timeout=timeout)
        app.extensions["pmo_search"] = found
    return found


def _backend_name(app: Flask) -> str:
    """Check ``SEARCH_BACKEND`` at start-up: an unknown name or PostgreSQL search on SQLite refuses to start."""
    from pmo.config import ConfigError

    name = str(app.config.get("SEARCH_BACKEND") or "whoosh").strip().lower()
    if name not in SEARCH_BACKENDS:
        raise ConfigError(f"SEARCH_BACKEND must be one of {', '.join(SEARCH_BACKENDS)}, not {name!r}")
    if name == "postgresql" and app.extensions["pmo_db"].engine.dialect.name != "postgresql":
        raise ConfigError("SEARCH_BACKEND=postgresql needs a PostgreSQL DATABASE_URL")
    return name


@event.listens_for(Session, "after_commit")
def _remember_commit(session: Session) -> None:
    if session.info.pop("search_pending", False):
        session.info["search_committed"] = True


def catch_up(app: Flask) -> None:
    """Before searching, index what is still queued (seeds, a lock that was busy, a missing index)."""
    if not app.config.get("SEARCH_INDEX_AFTER_COMMIT", True):
        return
    try:
        with app.extensions["pmo_db"].session() as session:
            if service.pending_count(session) or service.enqueue_due(session):
                indexer.drain(session, backend(app), max_batches=20)
            session.commit()
    except Exception:
        log.exception("search catch-up indexing failed")
    # The request's own session may hold a read snapshot taken before those writes (loading the
    # token's owner and body); on SQLite a write from a stale snapshot fails at once with "database
    # is locked" (SQLITE_BUSY_SNAPSHOT), e.g. recording a search that found nothing. End it here.
    request_session = g.get("pmo_session")
    if request_session is not None and request_session.in_transaction():
        request_session.commit()


def drain_after_request(app: Flask) -> None:
    """Embedded default: after a request committed queued records, index them in this process.

    Also tells ``/healthz`` how the index is (ok / missing / broken).
    """
    _backend_name(app)  # refuse to start on a bad SEARCH_BACKEND
    app.extensions["pmo_search_status"] = lambda: str(backend(app).status().get("state"))

    @app.after_request
    def _drain(response: Any) -> Any:
        session = g.get("pmo_session")
        if session is None or not session.info.pop("search_committed", False):
            return response
        if not app.config.get("SEARCH_INDEX_AFTER_COMMIT", True):
            return response
        try:
            with app.extensions["pmo_db"].session() as drain_session:
                # A missing index is not rebuilt here: the user's save must stay fast.
                indexer.drain(drain_session, backend(app), max_batches=5, rebuild_missing=False)
        except Exception:
            log.exception("search indexing after commit failed; rows stay queued")
        return response


def _args() -> dict[str, Any]:
    year = request.args.get("year", "")
    page = request.args.get("page", "1")
    return {
        "text": request.args.get("q", "")[:1000],
        "kind": request.args.get("kind") or None,
        "field": request.args.get("field") or None,
        "ministry": request.args.get("ministry") or None,
        "fiscal_year": int(year) if year.isdigit() and len(year) == 4 else None,
        "page": int(page) if page.isdigit() and 0 < int(page) < 1000 else 1,
    }


@bp.route("/")
@require(Permission.SEARCH)
def index() -> Any:
    args = _args()
    results = None
    if args["text"].strip():
        catch_up(current_app)
        db = get_session()
        results = service.search(db, current_actor(), backend(), **args)
        db.commit()
    return render_template("search/index.html", results=results, args=args, kind_labels=service.KIND_LABELS,
                           field_labels=list(FIELD_LABELS.values()))


HIT_SCHEMA = {"type": "object", "properties": {
    "kind": {"type": "string"}, "id": {"type": "integer"}, "title": {"type": "string"},
    "snippet": {"type": "string", "description": "HTML（エスケープ済み、一致箇所は<mark>）"}, "url": {"type": "string"}}}


def results_json(results: Any) -> dict[str, Any]:
    return {
        "total": results.total, "page": results.page, "pages": results.pages, "degraded": results.degraded,
        "message": results.message,
        "facets": {name: {str(k): v for k, v in counts.items()} for name, counts in results.facets.items()},
        "items": [{"kind": h.kind, "id": h.id, "title": h.title, "snippet": str(h.snippet), "url": h.url}
                  for h in results.hits],
    }


@api_bp.route("/search")
@require(Permission.SEARCH)
@document(
    "全文検索（文書・FAQ・問い合わせ・事務手続。閲覧できるものだけ）",
    params=[query_param("q", "検索語（空白区切りでAND）", required=True), query_param("kind", "document / faq / inquiry / procedure"),
            query_param("field", "分野"), query_param("ministry", "府省"), query_param("year", "年度（西暦）"),
            query_param("page", "ページ番号", schema={"type": "integer", "minimum": 1})],
    response={"type": "object", "properties": {"total": {"type": "integer"}, "degraded": {"type": "boolean"},
                                                 "items": {"type": "array", "items": HIT_SCHEMA}}},
)
def api_search() -> Any:
    catch_up(current_app)
    db = get_session()
    results = service.search(db, current_actor(), backend(), **_args())
    db.commit()
    return jsonify(results_json(results))


@api_bp.route("/search/status")
@require(Permission.SYSTEM_SETTINGS)
@document("検索索引の状態（ok / missing / broken、件数、作成からの経過秒、未反映のキュー件数）",
          response={"type": "object", "properties": {"state": {"type": "string"}, "doc_count": {"type": ["integer", "null"]},
                                                       "generation_age_seconds": {"type": ["integer", "null"]},
                                                       "queued": {"type": "integer"}}})
def api_status() -> Any:
    report = service.status(get_session(), backend())
    return jsonify({k: report.get(k) for k in ("state", "doc_count", "generation_age_seconds", "built_at", "queued")})
