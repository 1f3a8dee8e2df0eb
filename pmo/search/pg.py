"""A PostgreSQL search backend: the same ``SearchBackend`` surface as Whoosh, in the shared database.

For deployments with more than one app server (docs/DEPLOYMENT.md, ``SEARCH_BACKEND=postgresql``):
every worker reads and the single outbox indexer writes one table, so nothing lives on a local disk.

How a query runs (same meaning as the Whoosh backend, see analysis.py):
- each document row keeps the distinct uni- and bigrams of its normalised title and body in a
  ``text[]`` with a GIN index, plus the normalised title and body;
- a query part of 1-2 characters is exactly one gram: ``grams @> ARRAY[part]``;
- a longer part needs all of its bigrams (GIN), then an exact ``strpos`` on the normalised text of
  those candidates only, so partial words match exactly as they do in Whoosh;
- scoping (``visibility && tokens``) and facet filters are in the same WHERE clause, so counts,
  facets and snippets only ever see visible documents;
- ranking: parts found in the title first, then shorter documents;
- snippets and highlighting use ``make_snippet`` on the displayed page only.

Not pg_trgm: its trigrams need at least three characters (税, 番号 would scan every row) and its
notion of a word depends on the server's locale. The grams here come from our own ``normalize``.

Rebuild builds a new table in one transaction and swaps it in by rename (searches keep using the old
one until the commit); a missing table degrades search like a missing Whoosh index (REL-09).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from pmo.core import clock
from pmo.search.analysis import normalize, parse_query, query_grams
from pmo.search.engine import (
    DEGRADED_MESSAGE,
    EMPTY_QUERY_MESSAGE,
    FACET_FIELDS,
    TRUNCATED_MESSAGE,
    IndexBusy,
    IndexUnavailable,
    RebuildReport,
    SearchDoc,
    SearchHit,
    SearchQuery,
    SearchResults,
    _excerpt,
    make_snippet,
)

__all__ = ["PostgresBackend", "doc_grams"]

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_BATCH = 200
_REBUILD_LOCK = 0x5EA4C4  # pg advisory lock key: one rebuild at a time
TITLE_WEIGHT = 2.0
_COLUMNS = ("key", "kind", "doc_id", "title", "summary", "url", "body", "field", "ministry", "fiscal_year",
            "visibility", "title_norm", "body_norm", "body_len", "grams")


def _grams(norm: str) -> set[str]:
    grams = set()
    for i, char in enumerate(norm):
        if char.isspace():
            continue
        grams.add(char)
        if i + 1 < len(norm) and not norm[i + 1].isspace():
            grams.add(norm[i : i + 2])
    return grams


def doc_grams(title: str, body: str) -> list[str]:
    """Distinct uni- and bigrams of the normalised title and body (never across whitespace)."""
    return sorted(_grams(normalize(title)) | _grams(normalize(body)))


def _undefined_table(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "42P01"


def _lock_timeout(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in ("55P03", "57014")


class PostgresBackend:
    """Search documents kept in one PostgreSQL table (``table``, default ``search_index``).

    ``bind`` is an Engine (production) or a Connection (tests: joins the test's transaction through
    savepoints), or a session factory. The table is owned by this class, not by the migrations: it is
    created by ``rebuild`` (the first search or ``pmo search rebuild``) and replaced as a whole by it.
    """

    def __init__(
        self,
        bind: Engine | Connection | Callable[[], Session],
        *,
        table: str = "search_index",
        lock_timeout: float = 1.0,
        search_timeout: float = 5.0,
        now: Callable[[], dt.datetime] = clock.now,
    ) -> None:
        if not _NAME_RE.match(table):
            raise ValueError(f"table が不正です: {table!r}")
        if isinstance(bind, (Engine, Connection)):
            if bind.dialect.name != "postgresql":
                raise ValueError("PostgreSQL の検索バックエンドには PostgreSQL のデータベースが必要です。")
            join = {"join_transaction_mode": "create_savepoint"} if isinstance(bind, Connection) else {}
            self._sessions: Callable[[], Session] = sessionmaker(bind=bind, **join)
        else:
            self._sessions = bind
        self.table = table
        self.lock_timeout = lock_timeout
        self.search_timeout = search_timeout
        self._now = now

    # -- reading ----------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResults:
        """Return one page of visible matches; on any database failure, degraded results."""
        # PostgreSQL text cannot hold NUL: it is dropped from documents and queries alike.
        parsed = parse_query((query.text or "").replace("\0", ""))
        results = SearchResults(page=query.page, per_page=query.per_page, parts=parsed.parts)
        if parsed.truncated:
            results.message = TRUNCATED_MESSAGE
        if not parsed.parts:
            results.message = EMPTY_QUERY_MESSAGE
            return results
        if not query.tokens:
            return results
        try:
            with self._sessions() as session, session.begin():
                session.execute(text(f"SET LOCAL statement_timeout = {int(self.search_timeout * 1000)}"))
                # Always through the gram index: a sequential scan would unpack every row's gram array.
                session.execute(text("SET LOCAL enable_seqscan = off"))
                self._run(session, query, parsed.parts, results)
        except DBAPIError as exc:
            if _undefined_table(exc):
                log.warning("search table is missing")
            else:
                log.exception("search table unreadable; search degraded")
            return SearchResults(page=query.page, per_page=query.per_page, parts=parsed.parts, degraded=True,
                                 message=DEGRADED_MESSAGE)
        return results

    def _where(self, query: SearchQuery, parts: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        grams: set[str] = set()
        clauses = ["visibility && CAST(:tokens AS text[])"]
        params: dict[str, Any] = {"tokens": sorted(query.tokens)}
        for n, part in enumerate(parts):
            grams.update(query_grams(part))
            if len(part) > 2:
                params[f"p{n}"] = part
                clauses.append(f"(strpos(title_norm, :p{n}) > 0 OR strpos(body_norm, :p{n}) > 0)")
        clauses.insert(0, "grams @> CAST(:grams AS text[])")
        params["grams"] = sorted(grams)
        for name in FACET_FIELDS:
            value = getattr(query, name)
            if value is not None and value != "":
                clauses.append(f"{name} = :f_{name}")
                params[f"f_{name}"] = int(value) if name == "fiscal_year" else str(value)
        return " AND ".join(clauses), params

    def _run(self, session: Session, query: SearchQuery, parts: tuple[str, ...], out: SearchResults) -> None:
        """One pass over the matches (a materialised CTE) gives the total, the facets and the page's keys."""
        where, params = self._where(query, parts)
        score = self._score(parts, params)
        t = self.table
        if query.facets:
            counts = ("SELECT kind, field, ministry, fiscal_year, GROUPING(kind, field, ministry, fiscal_year) AS g, "
                      "count(*) AS n FROM m GROUP BY GROUPING SETS ((kind), (field), (ministry), (fiscal_year), ())")
        else:
            counts = "SELECT NULL AS kind, NULL AS field, NULL AS ministry, NULL AS fiscal_year, 15 AS g, count(*) AS n FROM m"
        params.update(per_page=out.per_page, offset=(out.page - 1) * out.per_page)
        rows = session.execute(text(
            f"WITH m AS MATERIALIZED (SELECT key, kind, field, ministry, fiscal_year, {score} AS score "
            f"FROM {t} WHERE {where}), "
            f"f AS ({counts}), "
            # A page past the end shows the last page, as with Whoosh.
            "p AS (SELECT key, score FROM m ORDER BY score DESC, key LIMIT :per_page "
            "OFFSET least(:offset, greatest((SELECT count(*) FROM m) - 1, 0) / :per_page * :per_page)) "
            "SELECT g, kind, field, ministry, fiscal_year, n, NULL AS key, NULL AS score FROM f "
            "UNION ALL SELECT -1, NULL, NULL, NULL, NULL, NULL, key, score FROM p"), params).all()
        facets: dict[str, dict[str | int, int]] = {name: {} for name in FACET_FIELDS}
        page: list[tuple[str, float]] = []
        for g, kind, field, ministry, year, count, key, value in rows:
            # GROUPING bits: kind=8, field=4, ministry=2, fiscal_year=1 (1 = not grouped by it).
            if g == -1:
                page.append((key, float(value or 0)))
            elif g == 15:
                out.total = count
            elif g == 7:
                facets["kind"][kind] = count
            elif g == 11 and field is not None:
                facets["field"][field] = count
            elif g == 13 and ministry is not None:
                facets["ministry"][ministry] = count
            elif g == 14 and year is not None:
                facets["fiscal_year"][int(year)] = count
        if query.facets:
            out.facets = {name: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for name, c in facets.items()}
        if not out.total:
            return
        out.page = min(query.page, out.pages)
        found = {row[0]: row for row in session.execute(text(
            f"SELECT key, kind, doc_id, title, summary, url, body FROM {t} WHERE key = ANY(CAST(:keys AS text[]))"),
            {"keys": [key for key, _ in page]})}
        out.hits = [_hit(found[key], value, parts) for key, value in page if key in found]

    @staticmethod
    def _score(parts: tuple[str, ...], params: dict[str, Any]) -> str:
        """Parts found in the title weigh TITLE_WEIGHT each; then shorter documents first.

        Nothing here reads the body again: a term count would decompress every matching body a
        second time, which is what made common queries slow.
        """
        terms = []
        for n, part in enumerate(parts):
            params[f"s{n}"] = part
            terms.append(f"(CASE WHEN strpos(title_norm, :s{n}) > 0 THEN {TITLE_WEIGHT} ELSE 0 END)")
        return "(" + " + ".join(terms) + " + 1000.0 / (body_len + 1000))"

    def status(self) -> dict[str, object]:
        """Return {'state': ok|missing|broken, 'doc_count', 'generation_age_seconds', 'built_at'}."""
        report: dict[str, object] = {"state": "missing", "doc_count": None, "generation_age_seconds": None,
                                     "built_at": None}
        try:
            with self._sessions() as session, session.begin():
                session.execute(text(f"SET LOCAL statement_timeout = {int(self.search_timeout * 1000)}"))
                count = session.execute(text(f"SELECT count(*) FROM {self.table}")).scalar_one()
                # Touch every column a search reads, so a damaged table shows up here too.
                session.execute(text(f"SELECT {', '.join(_COLUMNS)} FROM {self.table} LIMIT 1")).all()
                comment = session.execute(text("SELECT obj_description(CAST(:t AS regclass), 'pg_class')"),
                                          {"t": self.table}).scalar_one()
        except DBAPIError as exc:
            if _undefined_table(exc):
                return report
            log.exception("search table status check failed")
            report["state"] = "broken"
            return report
        report["state"] = "ok"
        report["doc_count"] = count
        built = _built_at(comment)
        if built is not None:
            report["built_at"] = built.isoformat()
            report["generation_age_seconds"] = max(0, int((self._now() - built).total_seconds()))
        return report

    # -- writing ----------------------------------------------------------

    def _write(self, work: Callable[[Session], int]) -> int:
        try:
            with self._sessions() as session, session.begin():
                session.execute(text(f"SET LOCAL lock_timeout = {max(1, int(self.lock_timeout * 1000))}"))
                # One writer at a time, as with Whoosh's write lock; searches are not blocked by it.
                session.execute(text(f"LOCK TABLE {self.table} IN SHARE ROW EXCLUSIVE MODE"))
                return work(session)
        except DBAPIError as exc:
            if _undefined_table(exc):
                raise IndexUnavailable() from exc
            if _lock_timeout(exc):
                raise IndexBusy() from exc
            raise

    def index_documents(self, docs: Iterable[SearchDoc]) -> int:
        """Add or replace ``docs`` by key in one transaction; raise IndexBusy/IndexUnavailable to retry."""
        docs = list(docs)
        if not docs:
            return 0

        def work(session: Session) -> int:
            _insert(session, self.table, docs, upsert=True)
            return len(docs)

        return self._write(work)

    def delete_documents(self, keys: Iterable[str]) -> int:
        """Delete documents by key in one transaction; return how many were found."""
        keys = list(keys)
        if not keys:
            return 0
        return self._write(lambda session: session.execute(
            text(f"DELETE FROM {self.table} WHERE key = ANY(CAST(:keys AS text[]))"), {"keys": keys}).rowcount)

    def rebuild(self, docs: Iterable[SearchDoc]) -> RebuildReport:
        """Fill a new table and swap it in by rename, in one transaction; idempotent.

        Searches use the old table until the commit. Rows written to the old table meanwhile are not
        carried over: replay outbox rows queued since ``started_at``. Duplicate keys keep the first.
        """
        started = self._now()
        build = f"{self.table}_build"
        count = skipped = 0
        with self._sessions() as session, session.begin():
            if not session.execute(text("SELECT pg_try_advisory_xact_lock(:k, hashtext(:t))"),
                                   {"k": _REBUILD_LOCK, "t": self.table}).scalar_one():
                raise IndexBusy("検索索引の再構築は既に実行中です。")
            session.execute(text(f"DROP TABLE IF EXISTS {build}"))
            # lz4 (PostgreSQL 14+) decompresses about three times faster than the default pglz; the
            # exact substring check reads body_norm of every candidate.
            lz4 = session.execute(text(
                "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")).first()
            packed = " COMPRESSION lz4" if lz4 else ""
            session.execute(text(
                f"CREATE TABLE {build} (key text NOT NULL, kind text NOT NULL, doc_id bigint NOT NULL, "
                f"title text NOT NULL, summary text NOT NULL, url text NOT NULL, body text{packed} NOT NULL, "
                "field text, ministry text, fiscal_year integer, visibility text[] NOT NULL, "
                f"title_norm text NOT NULL, body_norm text{packed} NOT NULL, body_len integer NOT NULL, "
                "grams text[] NOT NULL)"))
            # Index names are generated (not fixed), so the renamed table's names never collide next time.
            session.execute(text(f"CREATE UNIQUE INDEX ON {build} (key)"))
            seen: set[str] = set()
            batch: list[SearchDoc] = []
            for doc in docs:
                if doc.key in seen:
                    skipped += 1
                    continue
                seen.add(doc.key)
                batch.append(doc)
                count += 1
                if len(batch) >= _BATCH:
                    _insert(session, build, batch, upsert=False)
                    batch = []
            _insert(session, build, batch, upsert=False)
            session.execute(text(f"CREATE INDEX ON {build} USING gin (grams) WITH (fastupdate = off)"))
            # No index on visibility: the planner would prefer it and unpack the grams of every visible row.
            session.execute(text(f"ANALYZE {build}"))
            stamp = self._now().astimezone(dt.UTC).isoformat()
            session.execute(text(f"COMMENT ON TABLE {build} IS 'built_at={stamp}'"))
            session.execute(text(f"SET LOCAL lock_timeout = {max(1000, int(self.search_timeout * 2000))}"))
            session.execute(text(f"DROP TABLE IF EXISTS {self.table}"))
            session.execute(text(f"ALTER TABLE {build} RENAME TO {self.table}"))
        seconds = (self._now() - started).total_seconds()
        log.info("search table rebuilt: %d documents in %.1f s", count, seconds)
        return RebuildReport(count, skipped, started, seconds)


def _insert(session: Session, table: str, docs: list[SearchDoc], *, upsert: bool) -> None:
    if not docs:
        return
    rows = []
    for doc in docs:
        body = (doc.body or "").replace("\0", "")
        title = (doc.title or "").replace("\0", "")
        body_norm = normalize(body)
        rows.append({
            "key": doc.key, "kind": doc.kind, "doc_id": doc.id, "title": title,
            "summary": (doc.summary or "").replace("\0", ""),
            "url": doc.url or "", "body": body, "field": doc.field or None, "ministry": doc.ministry or None,
            "fiscal_year": doc.fiscal_year, "visibility": sorted(doc.visibility), "title_norm": normalize(title),
            "body_norm": body_norm, "body_len": len(body_norm), "grams": doc_grams(title, body),
        })
    columns = list(rows[0])
    conflict = ""
    if upsert:
        conflict = " ON CONFLICT (key) DO UPDATE SET " + ", ".join(
            f"{c} = EXCLUDED.{c}" for c in columns if c != "key")
    values = ", ".join(
        f"CAST(:{c} AS text[])" if c in ("visibility", "grams") else f":{c}" for c in columns)
    session.execute(text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}){conflict}"), rows)


def _hit(row: Any, score: float, parts: tuple[str, ...]) -> SearchHit:
    key, kind, doc_id, title, summary, url, body = row
    snippet = make_snippet(body, parts) or _excerpt(summary or body)
    return SearchHit(key=key, kind=kind, id=int(doc_id), title=title, url=url, summary=summary,
                     title_html=make_snippet(title, parts, width=None), snippet=snippet, score=float(score or 0))


def _built_at(comment: str | None) -> dt.datetime | None:
    if not comment or not comment.startswith("built_at="):
        return None
    try:
        return dt.datetime.fromisoformat(comment.removeprefix("built_at="))
    except ValueError:
        return None
