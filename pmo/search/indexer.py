"""The one indexer: drains the search outbox in batches and rebuilds the index.

A batch helper for the CLI and the after-commit hook, so it commits after each batch (a service
never commits). Rows are marked done only after the index accepted them; a busy index leaves
them queued for the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from pmo.core import clock
from pmo.search.models import SearchOutbox
from pmo.search.service import BATCH, SOURCES, _resolve, enqueue_due

log = logging.getLogger(__name__)


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
        try:
            doc = _resolve(SOURCES[kind][0])(session, record_id)
        except Exception:  # a record that cannot be flattened must not block the queue
            log.exception("search: cannot index %s:%s; skipped", kind, record_id)
            continue
        if doc is None:
            deletes.append(f"{kind}:{record_id}")
        else:
            docs.append(doc)
    return docs, deletes


def drain(session: Session, backend: Any, batch: int = BATCH, max_batches: int | None = None,
          retries: int = 0, retry_wait: float = 0.5, rebuild_missing: bool = True) -> DrainReport:
    """Index queued records in batches and mark them done; commits after each batch.

    On a busy index (another writer holds the lock) the rows stay queued; with ``retries`` the
    batch is tried again after a pause. A missing index is built from the database first, unless
    ``rebuild_missing`` is False (after a user's write: the rows wait for a search or the CLI).
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
                if rebuild_missing and backend.status().get("state") == "missing" and not report.unavailable:
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


REBUILD_COMMIT_EVERY = 100


def _all_docs(session: Session, commit_every: int = REBUILD_COMMIT_EVERY) -> Iterator[Any]:
    """Every record's search document; commits the loaders' ``indexed_dt`` marks every few records.

    A loader's mark is a write: on SQLite one transaction over the whole rebuild would hold the
    database's write lock for minutes, and users' requests that write (a session's last_seen, a
    search miss) would wait out the busy timeout and fail.
    """
    loaded = 0
    for kind, (loader, lister) in SOURCES.items():
        load = _resolve(loader)
        for record_id in list(_resolve(lister)(session)):
            doc = load(session, record_id)
            loaded += 1
            if loaded % commit_every == 0:
                session.commit()
            if doc is not None:
                yield doc
    session.commit()


def rebuild(session: Session, backend: Any) -> Any:
    """Build a new index generation from the database, swap it in, then replay newer queue rows."""
    started = clock.now()
    report = backend.rebuild(_all_docs(session))
    session.execute(update(SearchOutbox).where(SearchOutbox.done_dt.is_(None), SearchOutbox.queued_dt < started)
                    .values(done_dt=clock.now()))
    session.commit()  # also keeps indexed_dt written by the loaders
    drain(session, backend)
    return report


INDEXER_LOCK_KEY = 0x706D6F5F696478  # "pmo_idx": the PostgreSQL advisory lock of the one indexer


class IndexerRunning(RuntimeError):
    """Another indexer process already holds the indexer lock."""


@contextlib.contextmanager
def single_indexer(engine: Engine, index_root: Any) -> Iterator[Callable[[], bool]]:
    """Hold the lock that makes this process the only indexer of the deployment.

    On PostgreSQL an advisory lock on a dedicated connection (released when the process dies, on any
    machine); on SQLite, where every process is on one machine, an flock beside the index. Yields a
    check that the lock is still held: a PostgreSQL restart ends the session and with it the lock.
    """
    from pathlib import Path

    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": INDEXER_LOCK_KEY}).scalar():
                raise IndexerRunning("another indexer holds the advisory lock")
            conn.commit()

            def held() -> bool:
                try:
                    alive = conn.execute(text("SELECT 1")).scalar() == 1
                    conn.commit()
                    return alive
                except Exception:  # noqa: BLE001 - a lost connection has lost the lock too
                    log.exception("search indexer: the connection holding the indexer lock is gone")
                    return False

            try:
                yield held
            finally:
                with contextlib.suppress(Exception):
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": INDEXER_LOCK_KEY})
                    conn.commit()
        return
    root = Path(index_root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".indexer.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise IndexerRunning("another indexer holds the lock file") from exc
        try:
            yield lambda: True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
