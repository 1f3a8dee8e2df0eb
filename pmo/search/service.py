"""Search use cases: the outbox queue, the single indexer that drains it, rebuilds, scoped queries.

Flow (SEARCH.md, SECURITY.md REL-09): a write saves its record and an outbox row in one
transaction (``enqueue``); after the commit one indexer drains the queue in batches (``drain``);
``rebuild`` builds a fresh generation and swaps it in, then replays rows queued meanwhile. The
search itself runs inside the backend with the actor's audience tokens, so counts, facets and
snippets only ever see what the actor may see.
"""

from __future__ import annotations

import importlib
import logging
import unicodedata
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pmo.accounts.permissions import Actor, Permission, can
from pmo.core import clock
from pmo.search.models import SearchMiss, SearchOutbox

log = logging.getLogger(__name__)

# kind -> (loader "module:function(session, id) -> SearchDoc | None", lister "module:function(session) -> ids")
SOURCES: dict[str, tuple[str, str]] = {
    "document": ("pmo.documents.service:search_doc", "pmo.documents.service:all_ids"),
    "faq": ("pmo.faq.service:search_doc", "pmo.faq.service:all_ids"),
    "inquiry": ("pmo.faq.service:inquiry_search_doc", "pmo.faq.service:all_inquiry_ids"),
    "procedure": ("pmo.procedures.service:search_doc", "pmo.procedures.service:all_ids"),
}
KIND_LABELS = {"document": "文書", "faq": "FAQ", "inquiry": "問い合わせ", "procedure": "事務・手続"}
BATCH = 200


def _resolve(path: str) -> Callable[..., Any]:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def enqueue(session: Session, kind: str, record_id: int) -> None:
    """Queue a record for (re)indexing in the caller's transaction."""
    if kind not in SOURCES:
        raise ValueError(kind)
    session.add(SearchOutbox(kind=kind, record_id=record_id, queued_dt=clock.now()))
    session.info["search_pending"] = True


def pending_count(session: Session) -> int:
    from sqlalchemy import func

    return session.scalar(select(func.count()).select_from(SearchOutbox).where(SearchOutbox.done_dt.is_(None))) or 0


def enqueue_due(session: Session) -> int:
    """Queue documents whose scheduled publication or 掲載終了日 has passed (time changes visibility)."""
    from pmo.documents.service import due_for_reindex

    due = due_for_reindex(session)
    for doc_id in due:
        enqueue(session, "document", doc_id)
    return len(due)


# --- querying -------------------------------------------------------------------------------------


def tokens_for(actor: Actor) -> frozenset[str]:
    from pmo.documents.rules import actor_tokens

    return actor_tokens(actor)


def search(session: Session, actor: Actor, backend: Any, text: str, *, kind: str | None = None,
           field: str | None = None, ministry: str | None = None, fiscal_year: int | None = None,
           page: int = 1, per_page: int = 10) -> Any:
    """Run a scoped search; a query that finds nothing is recorded for the FAQ writers."""
    from pmo.search.engine import SearchQuery, SearchResults

    if not can(actor, Permission.SEARCH):
        return SearchResults()
    query = SearchQuery(text=text or "", tokens=tokens_for(actor), kind=kind if kind in SOURCES else None,
                        field=field or None, ministry=ministry or None, fiscal_year=fiscal_year, page=page,
                        per_page=per_page)
    results = backend.search(query)
    if results.parts and not results.degraded and results.total == 0 and not (kind or field or ministry or fiscal_year):
        record_miss(session, text)
    return results


def record_miss(session: Session, text: str) -> None:
    """Count a query that found nothing (normalised, capped at 200 characters)."""
    query = " ".join(unicodedata.normalize("NFKC", text or "").split())[:200]
    if not query:
        return
    now = clock.now()
    row = session.scalar(select(SearchMiss).where(SearchMiss.query == query))
    if row is None:
        session.add(SearchMiss(query=query, count=1, first_dt=now, last_dt=now))
    else:
        row.count += 1
        row.last_dt = now
    session.flush()


def misses(session: Session, actor: Actor, limit: int = 100) -> list[SearchMiss]:
    if not can(actor, Permission.FAQ_MANAGE):
        return []
    return list(session.scalars(select(SearchMiss).order_by(SearchMiss.last_dt.desc()).limit(limit)))


def status(session: Session, backend: Any) -> dict[str, Any]:
    report = dict(backend.status())
    report["queued"] = pending_count(session)
    return report


