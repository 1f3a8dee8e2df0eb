"""Search use cases: the outbox queue, the single indexer that drains it, rebuilds, scoped queries.

Flow (SEARCH.md, SECURITY.md REL-09): a write saves its record and an outbox row in one
transaction (``enqueue``); after the commit one indexer drains the queue in batches (``drain``);
``rebuild`` builds a fresh generation and swaps it in, then replays rows queued meanwhile. The
search itself runs inside the backend with the actor's audience tokens, so counts, facets and
snippets only ever see what the actor may see.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from sqlalchemy import select, update
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


@dataclass
class DrainReport:
    indexed: int = 0
    deleted: int = 0
    rows: int = 0
    busy: bool = False
    unavailable: bool = False


def _documents_for(session: Session, keys: list[tuple[str, int]]) -> tuple[list[Any], list[str]]:
    docs, deletes = [], []
    for kind, record_id in keys:
        doc = _resolve(SOURCES[kind][0])(session, record_id)
        if doc is None:
            deletes.append(f"{kind}:{record_id}")
        else:
            docs.append(doc)
    return docs, deletes


def enqueue_due(session: Session) -> int:
    """Queue documents whose scheduled publication or 掲載終了日 has passed (time changes visibility)."""
    from pmo.documents.service import due_for_reindex

    due = due_for_reindex(session)
    for doc_id in due:
        enqueue(session, "document", doc_id)
    return len(due)


def drain(session: Session, backend: Any, batch: int = BATCH, max_batches: int | None = None,
          retries: int = 0, retry_wait: float = 0.5) -> DrainReport:
    """Index queued records in batches and mark them done; commits after each batch.

    On a busy index (another writer holds the lock) the rows stay queued; with ``retries`` the
    batch is tried again after a pause. A missing index is built from the database first.
    """
    from pmo.search.engine import IndexBusy, IndexUnavailable

    report = DrainReport()
    if enqueue_due(session):
        session.commit()
    done_batches = 0
    while max_batches is None or done_batches < max_batches:
        rows = list(session.scalars(select(SearchOutbox).where(SearchOutbox.done_dt.is_(None))
                                    .order_by(SearchOutbox.id).limit(batch)))
        if not rows:
            break
        keys = list(dict.fromkeys((r.kind, r.record_id) for r in rows))
        docs, deletes = _documents_for(session, keys)
        attempt = 0
        while True:
            try:
                report.indexed += backend.index_documents(docs)
                report.deleted += backend.delete_documents(deletes)
                break
            except IndexBusy as exc:
                attempt += 1
                if attempt > retries:
                    _failed(session, rows, str(exc))
                    report.busy = True
                    return report
                time.sleep(retry_wait * attempt)
            except IndexUnavailable:
                session.rollback()
                if backend.status().get("state") == "missing" and not report.unavailable:
                    report.unavailable = True
                    rebuild(session, backend)
                    return report
                _failed(session, rows, "index unavailable")
                report.unavailable = True
                return report
        now = clock.now()
        for row in rows:
            row.done_dt = now
            row.attempts += 1
        report.rows += len(rows)
        session.commit()
        done_batches += 1
    return report


def _failed(session: Session, rows: list[SearchOutbox], message: str) -> None:
    session.rollback()
    ids = [r.id for r in rows]
    session.execute(update(SearchOutbox).where(SearchOutbox.id.in_(ids))
                    .values(attempts=SearchOutbox.attempts + 1, last_error=message[:500]))
    session.commit()


def _all_docs(session: Session) -> Iterator[Any]:
    for kind, (loader, lister) in SOURCES.items():
        load = _resolve(loader)
        for record_id in list(_resolve(lister)(session)):
            doc = load(session, record_id)
            if doc is not None:
                yield doc


def rebuild(session: Session, backend: Any) -> Any:
    """Build a new index generation from the database, swap it in, then replay newer queue rows."""
    started = clock.now()
    report = backend.rebuild(_all_docs(session))
    session.execute(update(SearchOutbox).where(SearchOutbox.done_dt.is_(None), SearchOutbox.queued_dt < started)
                    .values(done_dt=clock.now()))
    session.commit()  # also keeps indexed_dt written by the loaders
    drain(session, backend)
    return report


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


