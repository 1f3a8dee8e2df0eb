"""Full-text search behind one small interface, with a Whoosh implementation.

Callers (an outbox indexer, the rebuild command, the search view) only see
``SearchBackend`` and the plain dataclasses below, so the engine can be swapped
(pmo.search.pg is the PostgreSQL one). Whoosh is unmaintained; nothing outside
this module (and the analyzer) imports it.

Matching reads Whoosh's posting blocks directly (``_match``) instead of running
Whoosh's query matchers: the same uni+bigram index, the same exact substring
semantics and the same BM25F scores, with far fewer Python calls per document.

Rules this module keeps (SECURITY.md REL-09, AC-04; SEARCH.md):
- scoping happens inside ``search``: counts, facets and snippets only ever see
  documents sharing a visibility token with the query;
- user input is never parsed as query syntax;
- ``search`` degrades (``degraded=True`` plus a Japanese message), never raises;
- exactly one process writes: ``index_documents``/``delete_documents`` fail fast
  with ``IndexBusy`` when the write lock is held, for the caller to retry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import heapq
import html
import logging
import math
import os
import re
import shutil
import threading
import uuid
import zlib
from bisect import bisect_left
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Protocol, runtime_checkable

from markupsafe import Markup
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield
from whoosh.fields import ID, KEYWORD, STORED, TEXT, Schema
from whoosh.filedb.filestore import FileStorage
from whoosh.index import LockError
from whoosh.query import And, Or, Query, Term
from whoosh.util.numeric import byte_to_length

from pmo.core import clock
from pmo.search.analysis import (
    JA_GAP,
    japanese_analyzer,
    normalize,
    normalize_with_map,
    parse_query,
    query_grams,
)

__all__ = [
    "DEGRADED_MESSAGE",
    "FACET_FIELDS",
    "KINDS",
    "IndexBusy",
    "IndexUnavailable",
    "RebuildReport",
    "SearchBackend",
    "SearchDoc",
    "SearchHit",
    "SearchIndexError",
    "SearchQuery",
    "SearchResults",
    "WhooshBackend",
    "make_snippet",
]

log = logging.getLogger(__name__)

KINDS = ("document", "faq", "inquiry", "procedure")
FACET_FIELDS = ("kind", "field", "ministry", "fiscal_year")
DEGRADED_MESSAGE = "検索索引を再構築中です。しばらくしてから再度お試しください。"
EMPTY_QUERY_MESSAGE = "検索語を入力してください。"
TRUNCATED_MESSAGE = "検索語が長すぎるため、先頭の部分だけで検索しました。"
MAX_PER_PAGE = 50
MAX_PAGE = 200
SNIPPET_CHARS = 120
TITLE_BOOST = 2.0

_TOKEN_RE = re.compile(r"[^\s,]+")
_SPACE_RE = re.compile(r"\s+")
# Dropped from snippets: control characters, and bidi overrides that can reorder
# the displayed text (Trojan Source style).
_UNSAFE_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_GEN_PREFIX = "gen-"
_GEN_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
_CURRENT = "current"


# ---------------------------------------------------------------------------
# Errors


class SearchIndexError(Exception):
    """Base class for index write failures the caller should retry later."""

    default_message = "検索索引を更新できませんでした。"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class IndexBusy(SearchIndexError):
    """Another process holds the write lock: keep the outbox rows and retry later."""

    default_message = "検索索引は他の処理が更新中です。しばらくしてから再試行してください。"


class IndexUnavailable(SearchIndexError):
    """The index is missing or unreadable: a rebuild is needed before updates can apply."""

    default_message = "検索索引がないか壊れています。索引を再構築してください。"


# ---------------------------------------------------------------------------
# Data passed in and out


def _tokens(values: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(values, str):
        raise TypeError(f"{what} は文字列ではなく集合で渡してください。")
    tokens = frozenset(values)
    for token in tokens:
        if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            raise ValueError(f"{what} の値が不正です（空白・カンマは使えません）: {token!r}")
    return tokens


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """One searchable record, flattened by the owning domain.

    ``visibility`` holds audience tokens chosen by the caller ({'public'},
    {'audience:bodies'}, {'body:012033'} …); a query sees the document only
    when it carries at least one of them.
    """

    key: str
    kind: str
    id: int
    title: str
    body: str = ""
    summary: str = ""
    url: str = ""
    field: str | None = None
    ministry: str | None = None
    fiscal_year: int | None = None
    visibility: frozenset[str] = frozenset({"public"})

    def __post_init__(self) -> None:
        if not self.key or not _TOKEN_RE.fullmatch(self.key):
            raise ValueError(f"key が不正です: {self.key!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind が不正です: {self.kind!r}")
        visibility = _tokens(self.visibility, "visibility")
        if not visibility:
            # A document nobody may see should be deleted from the index, not indexed.
            raise ValueError("visibility が空です。")
        object.__setattr__(self, "visibility", visibility)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A user's search: free text, the actor's audience tokens, facet filters, page."""

    text: str
    tokens: frozenset[str]
    kind: str | None = None
    field: str | None = None
    ministry: str | None = None
    fiscal_year: int | None = None
    page: int = 1
    per_page: int = 10
    facets: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", _tokens(self.tokens, "tokens"))
        object.__setattr__(self, "page", min(max(int(self.page), 1), MAX_PAGE))
        object.__setattr__(self, "per_page", min(max(int(self.per_page), 1), MAX_PER_PAGE))


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result; ``title_html`` and ``snippet`` are escaped HTML with <mark> around matches."""

    key: str
    kind: str
    id: int
    title: str
    url: str
    summary: str
    title_html: Markup
    snippet: Markup
    score: float


@dataclass(slots=True)
class SearchResults:
    """A page of hits plus exact totals and facet counts over the visible matches."""

    total: int = 0
    hits: list[SearchHit] = dc_field(default_factory=list)
    facets: dict[str, dict[str | int, int]] = dc_field(default_factory=dict)
    page: int = 1
    per_page: int = 10
    parts: tuple[str, ...] = ()
    degraded: bool = False
    message: str | None = None

    @property
    def pages(self) -> int:
        """Return the number of pages (at least 1, so templates can loop safely)."""
        return max(1, math.ceil(self.total / self.per_page))


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild did; replay outbox rows queued since ``started_at`` afterwards."""

    doc_count: int
    skipped_duplicates: int
    started_at: dt.datetime
    seconds: float


@runtime_checkable
class SearchBackend(Protocol):
    """The whole surface the portal uses, so the engine can be replaced."""

    def index_documents(self, docs: Iterable[SearchDoc]) -> int:
        """Add or replace documents by key; raise SearchIndexError to be retried."""
        ...

    def delete_documents(self, keys: Iterable[str]) -> int:
        """Remove documents by key; raise SearchIndexError to be retried."""
        ...

    def search(self, query: SearchQuery) -> SearchResults:
        """Return visible matches; degrade instead of raising."""
        ...

    def rebuild(self, docs: Iterable[SearchDoc]) -> RebuildReport:
        """Build a fresh index from all documents and switch to it atomically."""
        ...

    def status(self) -> dict[str, object]:
        """Report health for a status endpoint, without internals such as paths."""
        ...


# ---------------------------------------------------------------------------
# Snippets


def _find_spans(norm_text: str, parts: Iterable[str], limit: int = 100) -> list[tuple[int, int]]:
    spans = []
    for part in parts:
        start = norm_text.find(part)
        while start >= 0 and len(spans) < limit:
            spans.append((start, start + len(part)))
            start = norm_text.find(part, start + len(part))
    return spans


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or touching spans."""
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _render(text: str, start: int, end: int, marks: list[tuple[int, int]]) -> str:
    """Escape text[start:end] and wrap the marked ranges in <mark>.

    Whitespace inside Japanese text (PDF line breaks) is dropped, other runs of
    whitespace become one space, control and bidi-override characters go.
    """
    window = text[start:end]
    # Length-preserving, so mark offsets stay valid: gaps become NULs, removed below.
    window = JA_GAP.sub(lambda gap: "\0" * len(gap.group()), window)
    cuts = sorted({0, len(window)} | {min(max(p - start, 0), len(window)) for span in marks for p in span})
    out: list[str] = []
    for a, b in zip(cuts, cuts[1:]):
        piece = _UNSAFE_RE.sub("", _SPACE_RE.sub(" ", window[a:b].replace("\0", "")))
        if not piece:
            continue
        inside = any(m_start <= start + a and start + b <= m_end for m_start, m_end in marks)
        out.append(f"<mark>{html.escape(piece)}</mark>" if inside else html.escape(piece))
    return "".join(out).replace("</mark><mark>", "")


def make_snippet(text: str, parts: Iterable[str], width: int | None = SNIPPET_CHARS) -> Markup:
    """Return escaped HTML around the first match in ``text``, matches in <mark>.

    Document text is never trusted: every character is escaped here and the
    only markup added is <mark>. ``width=None`` renders the whole text (titles).
    Returns an empty Markup when ``width`` is set and nothing matches.
    """
    parts = [p for p in parts if p]
    if not text:
        return Markup("")
    # Map offsets only for the first chunk with a match: the map is built in
    # Python, the quick check per chunk is not.
    chunk = 400 if width is not None else len(text)
    overlap = 2 * max(map(len, parts), default=0) + 100
    for offset in range(0, len(text), chunk):
        piece = text[offset : offset + chunk + overlap]
        quick = normalize(piece)
        if not any(p in quick for p in parts):
            continue
        norm = normalize_with_map(piece)
        spans = _merge(
            (offset + norm.starts[a], offset + norm.ends[b - 1]) for a, b in _find_spans(norm.text, parts)
        )
        if width is None:
            return Markup(_render(text, 0, len(text), spans))
        first_start, first_end = spans[0]
        start = max(0, first_start - width // 4)
        end = min(len(text), max(start + width, first_end))
        prefix = "…" if start > 0 else ""
        suffix = "…" if end < len(text) else ""
        return Markup(prefix + _render(text, start, end, spans) + suffix)
    if width is None:
        return Markup(_render(text, 0, len(text), []))
    return Markup("")


def _excerpt(text: str, width: int = SNIPPET_CHARS) -> Markup:
    end = min(len(text), width)
    return Markup(_render(text, 0, end, []) + ("…" if end < len(text) else ""))


# ---------------------------------------------------------------------------
# Whoosh


def _schema() -> Schema:
    analyzer = japanese_analyzer()
    return Schema(
        key=ID(stored=True, unique=True),
        kind=ID(stored=True, sortable=True),
        doc_id=STORED(),
        title=TEXT(analyzer=analyzer, phrase=True, stored=True),
        body=TEXT(analyzer=analyzer, phrase=True),
        # The body is stored compressed for snippets; Japanese text shrinks ~3x.
        body_z=STORED(),
        summary=STORED(),
        url=STORED(),
        field=ID(stored=True, sortable=True),
        ministry=ID(stored=True, sortable=True),
        fiscal_year=ID(stored=True, sortable=True),
        visibility=KEYWORD(commas=True, scorable=False, lowercase=False),
    )


def _fields(doc: SearchDoc) -> dict[str, object]:
    body = doc.body or ""
    fields: dict[str, object] = {
        "key": doc.key,
        "kind": doc.kind,
        "doc_id": doc.id,
        "title": doc.title or "",
        "body": body,
        "body_z": zlib.compress(body.encode("utf-8"), 6),
        "summary": doc.summary or "",
        "url": doc.url or "",
        "visibility": ",".join(sorted(doc.visibility)),
    }
    # Empty facet values are left out so they neither match nor get counted.
    if doc.field:
        fields["field"] = doc.field
    if doc.ministry:
        fields["ministry"] = doc.ministry
    if doc.fiscal_year is not None:
        fields["fiscal_year"] = str(doc.fiscal_year)
    return fields


def _cover(freqs: list[int]) -> set[int]:
    """Return the gram offsets to check: every character covered, fewest postings to read.

    Positions count characters of the normalised text, so bigrams at offsets at most 2 apart,
    first and last included, pin the whole string. Among those covers this picks the one with
    the smallest sum of document frequencies (dynamic programming over the offsets), because
    reading postings is what a query costs.
    """
    last = len(freqs) - 1
    best: list[tuple[int, int]] = []  # (cost of the cheapest cover of 0..i ending at i, previous offset)
    for i, freq in enumerate(freqs):
        if i == 0:
            best.append((freq, -1))
            continue
        prev = min((j for j in (i - 1, i - 2) if j >= 0), key=lambda j: best[j][0])
        best.append((best[prev][0] + freq, prev))
    chosen = set()
    i = last
    while i >= 0:
        chosen.add(i)
        i = best[i][1]
    return chosen


# BM25F as Whoosh's default weighting computes it (whoosh.scoring.bm25), with the same parameters.
_BM25_B = 0.75
_BM25_K1 = 1.2


class _Postings:
    """Block-wise reader over one term's postings in one segment.

    Whoosh's matchers step through postings one Python call at a time (skip_to, id, next,
    score per document); reading whole blocks and bisecting inside them does the same work
    with a fraction of the calls. Relies on whoosh-reloaded 2.7.5's W3LeafMatcher internals
    (``_ids``, ``_weights``, ``_values``, ``_maxid``, ``_next_block``), pinned in pyproject.
    """

    __slots__ = ("m",)

    def __init__(self, reader, fieldname: str, gram: str) -> None:
        matcher = reader.postings(fieldname, gram)
        # Deleted documents are filtered by the caller (the allowed set never holds them).
        self.m = getattr(matcher, "child", matcher)

    def read_all(self, values: bool) -> dict[int, tuple[float, object]]:
        """Return {docnum: (weight, encoded positions or None)} for every posting."""
        m = self.m
        out: dict[int, tuple[float, object]] = {}
        while not m._atend and m._i < m._blocklength:
            if m._ids is None:
                m._read_ids()
            if m._weights is None:
                m._read_weights()
            if values:
                if m._values is None:
                    m._read_values()
                out.update(zip(m._ids, zip(m._weights, m._values)))
            else:
                out.update(zip(m._ids, zip(m._weights, m._ids)))
            m._next_block()
        return out

    def seek_many(self, docnums: list[int], values: bool) -> dict[int, tuple[float, object]]:
        """Return the postings of the given (sorted) docnums only, skipping blocks by their max id."""
        m = self.m
        out: dict[int, tuple[float, object]] = {}
        for doc in docnums:
            while not m._atend and m._maxid < doc:
                m._next_block()
            if m._atend or m._i >= m._blocklength:
                break
            if m._ids is None:
                m._read_ids()
            ids = m._ids
            i = bisect_left(ids, doc, m._i)
            m._i = i
            if i < m._blocklength and ids[i] == doc:
                if m._weights is None:
                    m._read_weights()
                if values and m._values is None:
                    m._read_values()
                out[doc] = (m._weights[i], m._values[i] if values else None)
        return out


def _match_field(state: _SearcherState, reader, seg: int, fieldname: str, part: str,
                 allowed: set[int], boost: float) -> dict[int, float]:
    """Return {segment docnum: BM25F score} of the allowed documents whose field contains ``part``."""
    grams = query_grams(part)
    freqs = []
    for gram in grams:
        if (fieldname, gram) not in reader:
            return {}
        freqs.append(reader.doc_frequency(fieldname, gram))
    needs_positions = len(grams) > 1
    offsets = sorted(_cover(freqs), key=freqs.__getitem__) if needs_positions else [0]
    found: dict[int, tuple[float, object]] | None = None
    per_gram: list[dict[int, tuple[float, object]]] = []
    for offset in offsets:
        postings = _Postings(reader, fieldname, grams[offset])
        if found is None:
            got = postings.read_all(needs_positions)
            if len(got) > len(allowed):
                found = {doc: got[doc] for doc in allowed if doc in got}
            else:
                found = {doc: v for doc, v in got.items() if doc in allowed}
        elif freqs[offset] <= 4 * len(found):
            got = postings.read_all(needs_positions)
            found = {doc: v for doc, v in found.items() if doc in got}
        else:
            got = postings.seek_many(sorted(found), needs_positions)
            found = {doc: v for doc, v in found.items() if doc in got}
        per_gram.append(got)
        if not found:
            return {}
    assert found is not None
    docs = list(found)
    if needs_positions:
        decode = state.decoder(fieldname)
        kept = []
        for doc in docs:
            starts: set[int] | None = None
            for offset, got in zip(offsets, per_gram):
                shifted = {pos - offset for pos in decode(got[doc][1])}
                starts = shifted if starts is None else starts & shifted
                if not starts:
                    break
            if starts:
                kept.append(doc)
        docs = kept
    lengths = state.lengths(seg, fieldname)
    avgfl = state.searcher.avg_field_length(fieldname) or 1
    scores = dict.fromkeys(docs, 0.0)
    for offset, got in zip(offsets, per_gram):
        idf = state.searcher.idf(fieldname, grams[offset])
        for doc in docs:
            tf = got[doc][0]
            norm = (1 - _BM25_B) + _BM25_B * lengths[doc] / avgfl
            scores[doc] += boost * idf * (tf * (_BM25_K1 + 1)) / (tf + _BM25_K1 * norm)
    return scores


def _match(state: _SearcherState, query: SearchQuery, parts: tuple[str, ...]) -> dict[int, float]:
    """Return {global docnum: score} of visible documents holding every part in title or body.

    Exact substring semantics (the bigrams' positions are checked for every candidate, so counts
    are exact), scoring as Whoosh's BM25F over the same gram cover, title boosted.
    """
    out: dict[int, float] = {}
    for seg, (sub, offset) in enumerate(state.searcher.leaf_searchers()):
        allowed = state.allowed_local(query, seg)
        if not allowed:
            continue
        reader = sub.reader()
        matched: dict[int, float] | None = None
        for part in sorted(parts, key=len, reverse=True):  # long parts are the most selective
            title = _match_field(state, reader, seg, "title", part, allowed, TITLE_BOOST)
            body = _match_field(state, reader, seg, "body", part, allowed, 1.0)
            for doc, score in title.items():
                body[doc] = body.get(doc, 0.0) + score
            if matched is None:
                matched = body
            else:
                matched = {doc: score + body[doc] for doc, score in matched.items() if doc in body}
            if not matched:
                break
            allowed = matched.keys()
        for doc, score in (matched or {}).items():
            out[offset + doc] = score
    return out


class _IndexMissing(Exception):
    pass


class _SearcherState:
    """A searcher plus caches that are valid exactly as long as that searcher."""

    def __init__(self, searcher, target: str, files: dict[str, tuple[int, int]]) -> None:  # noqa: ANN001
        self.searcher = searcher
        self.target = target
        self.files = files
        self._columns: dict[str, list[str]] = {}
        self._allowed: OrderedDict[tuple, list[set[int]]] = OrderedDict()
        self._lengths: dict[tuple[int, str], list[int]] = {}

    def column(self, name: str) -> list[str]:
        """Return the facet column's value for every docnum ('' when unset)."""
        if name not in self._columns:
            values: list[str] = []
            # Per leaf: a segment without any value for the field has no column at all.
            for sub, offset in self.searcher.leaf_searchers():
                reader = sub.reader()
                size = reader.doc_count_all()
                del values[offset:]
                values.extend([""] * (offset - len(values)))
                leaf = list(reader.column_reader(name)) if reader.has_column(name) else []
                values.extend(leaf[:size] + [""] * (size - len(leaf)))
            self._columns[name] = values
        return self._columns[name]

    def allowed_local(self, query: SearchQuery, seg: int) -> set[int]:
        """Return the segment's docnums the actor may see that pass the facet filters (do not mutate).

        Cached per scope and filters: the visibility tokens of one role repeat across users.
        """
        key = (query.tokens, query.kind, query.field, query.ministry, query.fiscal_year)
        if key in self._allowed:
            self._allowed.move_to_end(key)
        else:
            clauses: list[Query] = [Or([Term("visibility", t) for t in sorted(query.tokens)])]
            for name in FACET_FIELDS:
                value = getattr(query, name)
                if value is not None and value != "":
                    clauses.append(Term(name, str(value)))
            docs = sorted(self.searcher.docs_for_query(And(clauses)))
            per_segment = []
            for _sub, offset in self.searcher.leaf_searchers():
                per_segment.append(offset)
            bounds = [*per_segment[1:], float("inf")]
            self._allowed[key] = [
                {doc - start for doc in docs if start <= doc < end} for start, end in zip(per_segment, bounds)]
            if len(self._allowed) > 64:
                self._allowed.popitem(last=False)
        return self._allowed[key][seg]

    def lengths(self, seg: int, fieldname: str) -> list[int]:
        """Return the field length (as Whoosh stores it, one byte) of every docnum of a segment."""
        key = (seg, fieldname)
        if key not in self._lengths:
            sub, _offset = self.searcher.leaf_searchers()[seg]
            reader = sub.reader()
            size = reader.doc_count_all()
            column = reader._perdoc._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
            raw = list(column) if column is not None else []
            raw = raw[:size] + [0] * (size - len(raw))
            self._lengths[key] = [byte_to_length(b) if b else 1 for b in raw]
        return self._lengths[key]

    def decoder(self, fieldname: str) -> Callable[[bytes], list[int]]:
        return self.searcher.schema[fieldname].format.decode_positions


class WhooshBackend:
    """Whoosh index under ``index_root``; ``current`` is a symlink to a generation dir.

    Searching: one searcher per process, reused until the committed files or the
    ``current`` link change (see ``_get_state``); searches within a process are
    serialised by a lock, because the searcher shares file handles. Writing: only
    one indexer process should call ``index_documents``/``delete_documents``/``rebuild``.
    """

    def __init__(
        self,
        index_root: Path | str,
        *,
        lock_timeout: float = 1.0,
        use_mmap: bool = False,
        build_limitmb: int = 256,
        now: Callable[[], dt.datetime] = clock.now,
    ) -> None:
        # use_mmap=False: a segment file truncated under a running worker then
        # raises (and degrades) instead of killing the process with SIGBUS.
        self.index_root = Path(index_root)
        self.lock_timeout = lock_timeout
        self.use_mmap = use_mmap
        self.build_limitmb = build_limitmb
        self._now = now
        self._schema = _schema()
        self._state: _SearcherState | None = None
        self._lock = threading.RLock()

    # -- paths and opening ------------------------------------------------

    @property
    def _current(self) -> Path:
        return self.index_root / _CURRENT

    def _current_target(self) -> str:
        try:
            target = os.readlink(self._current)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise _IndexMissing from exc
        if not (self.index_root / target).is_dir():
            raise _IndexMissing
        return target

    def _open(self, target: str):  # noqa: ANN202 - whoosh FileIndex
        storage = FileStorage(str(self.index_root / target), supports_mmap=self.use_mmap)
        # Our schema, not the pickled one: the index then survives module renames.
        return storage.open_index(schema=self._schema)

    def _files(self, target: str) -> dict[str, tuple[int, int]]:
        """Size and mtime of the committed files (.toc, .seg) of a generation."""
        files = {}
        with os.scandir(self.index_root / target) as entries:
            for entry in entries:
                if entry.name.endswith((".toc", ".seg")):
                    stat = entry.stat()
                    files[entry.name] = (stat.st_size, stat.st_mtime_ns)
        return files

    def _get_state(self) -> _SearcherState:
        """Return the process's searcher, reopened when the index changed on disk.

        Whoosh's ``Searcher.refresh()`` is not used: in whoosh-reloaded 2.7.5 it
        reuses segment readers by segment id, so documents deleted or replaced
        since the last open stay visible (an unpublished document would still be
        found) and merged-away segments come back. A change is detected from the
        committed files instead (.toc/.seg names, sizes, mtimes), which also
        catches files overwritten in place (REL-09 b). The old searcher is not
        closed explicitly; it is dropped.
        """
        target = self._current_target()
        files = self._files(target)
        state = self._state
        if state is None or state.target != target or state.files != files:
            self._state = None
            state = _SearcherState(self._open(target).searcher(), target, files)
            self._state = state
        return state

    # -- reading ----------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResults:
        """Return one page of visible matches; on any index failure, degraded results."""
        parsed = parse_query(query.text)
        results = SearchResults(page=query.page, per_page=query.per_page, parts=parsed.parts)
        if parsed.truncated:
            results.message = TRUNCATED_MESSAGE
        if not parsed.parts:
            results.message = EMPTY_QUERY_MESSAGE
            return results
        if not query.tokens:
            return results
        try:
            with self._lock:
                state = self._get_state()
                self._run(state, query, parsed.parts, results)
        except _IndexMissing:
            log.warning("search index is missing")
            return self._degraded(query, parsed.parts)
        except Exception:  # noqa: BLE001 - corrupt files raise almost anything
            log.exception("search index unreadable; search degraded")
            with self._lock:
                self._state = None
            return self._degraded(query, parsed.parts)
        return results

    @staticmethod
    def _degraded(query: SearchQuery, parts: tuple[str, ...]) -> SearchResults:
        return SearchResults(
            page=query.page, per_page=query.per_page, parts=parts, degraded=True, message=DEGRADED_MESSAGE
        )

    def _run(self, state: _SearcherState, query: SearchQuery, parts: tuple[str, ...], out: SearchResults) -> None:
        scores = _match(state, query, parts)
        out.total = len(scores)
        if not scores:
            return
        out.page = min(query.page, out.pages)
        start = (out.page - 1) * out.per_page
        # Best score first, then the lower docnum, as Whoosh's top collector orders ties.
        ranked = heapq.nsmallest(start + out.per_page, scores.items(), key=lambda kv: (-kv[1], kv[0]))
        out.hits = [self._hit(state, doc, score, parts) for doc, score in ranked[start:]]
        if query.facets:
            docset = scores.keys()
            out.facets = {name: self._facet(state, name, docset) for name in FACET_FIELDS}

    @staticmethod
    def _facet(state: _SearcherState, name: str, docset: set[int]) -> dict[str | int, int]:
        counts = Counter(map(state.column(name).__getitem__, docset))
        counts.pop("", None)
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if name == "fiscal_year":
            return {int(value): n for value, n in ordered}
        return dict(ordered)

    @staticmethod
    def _hit(state: _SearcherState, docnum: int, score: float, parts: tuple[str, ...]) -> SearchHit:
        stored = state.searcher.stored_fields(docnum)
        title = stored.get("title", "")
        summary = stored.get("summary", "")
        body = zlib.decompress(stored["body_z"]).decode("utf-8") if stored.get("body_z") else ""
        snippet = make_snippet(body, parts) or _excerpt(summary or body)
        return SearchHit(
            key=stored["key"],
            kind=stored["kind"],
            id=stored["doc_id"],
            title=title,
            url=stored.get("url", ""),
            summary=summary,
            title_html=make_snippet(title, parts, width=None),
            snippet=snippet,
            score=float(score),
        )

    def status(self) -> dict[str, object]:
        """Return {'state': ok|missing|broken, 'doc_count', 'generation_age_seconds', 'built_at'}."""
        report: dict[str, object] = {
            "state": "missing",
            "doc_count": None,
            "generation_age_seconds": None,
            "built_at": None,
        }
        try:
            with self._lock:
                state = self._get_state()
                report["doc_count"] = state.searcher.doc_count()
                # Touch postings and columns so a corrupt segment shows up here too.
                state.searcher.search(Term("kind", "faq"), limit=1)
                built = _generation_time(state.target)
        except _IndexMissing:
            return report
        except Exception:  # noqa: BLE001
            log.exception("search index status check failed")
            with self._lock:
                self._state = None
            report["state"] = "broken"
            report["doc_count"] = None
            return report
        report["state"] = "ok"
        if built is not None:
            report["built_at"] = built.isoformat()
            report["generation_age_seconds"] = max(0, int((self._now() - built).total_seconds()))
        return report

    # -- writing ----------------------------------------------------------

    @contextlib.contextmanager
    def _writer(self) -> Iterator[object]:
        try:
            ix = self._open(self._current_target())
        except _IndexMissing as exc:
            raise IndexUnavailable() from exc
        except LockError as exc:
            raise IndexBusy() from exc
        except Exception as exc:  # noqa: BLE001 - a corrupt TOC raises anything
            raise IndexUnavailable() from exc
        try:
            writer = ix.writer(timeout=self.lock_timeout)
        except LockError as exc:
            raise IndexBusy() from exc
        try:
            yield writer
        except BaseException:
            writer.cancel()
            raise
        writer.commit()

    def index_documents(self, docs: Iterable[SearchDoc]) -> int:
        """Add or replace ``docs`` by key in one commit; raise IndexBusy/IndexUnavailable to retry."""
        docs = list(docs)
        if not docs:
            return 0
        with self._writer() as writer:
            for doc in docs:
                writer.update_document(**_fields(doc))
        return len(docs)

    def delete_documents(self, keys: Iterable[str]) -> int:
        """Delete documents by key in one commit; return how many were found."""
        keys = list(keys)
        if not keys:
            return 0
        deleted = 0
        with self._writer() as writer:
            for key in keys:
                deleted += writer.delete_by_term("key", key) or 0
        return deleted

    @contextlib.contextmanager
    def _rebuild_lock(self) -> Iterator[None]:
        with open(self.index_root / ".rebuild.lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise IndexBusy("検索索引の再構築は既に実行中です。") from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def rebuild(self, docs: Iterable[SearchDoc]) -> RebuildReport:
        """Index ``docs`` into a new generation dir, then swap ``current`` to it atomically.

        Searchers keep using the old generation until the swap; idempotent.
        Updates written to the old generation meanwhile are not carried over:
        replay outbox rows queued since ``started_at``. Duplicate keys keep the first.
        """
        self.index_root.mkdir(parents=True, exist_ok=True)
        with self._rebuild_lock():
            started = self._now()
            gen_dir = self._new_generation_dir(started)
            count = skipped = 0
            try:
                ix = FileStorage(str(gen_dir)).create_index(self._schema)
                writer = ix.writer(limitmb=self.build_limitmb)
                seen: set[str] = set()
                try:
                    for doc in docs:
                        if doc.key in seen:
                            skipped += 1
                            continue
                        seen.add(doc.key)
                        writer.add_document(**_fields(doc))
                        count += 1
                except BaseException:
                    writer.cancel()
                    raise
                writer.commit()
            except BaseException:
                shutil.rmtree(gen_dir, ignore_errors=True)
                raise
            try:
                previous = os.readlink(self._current)
            except OSError:
                previous = None
            self._swap_current(gen_dir.name)
            self._remove_old_generations(keep={gen_dir.name, previous})
            seconds = (self._now() - started).total_seconds()
        log.info("search index rebuilt: %d documents in %.1f s", count, seconds)
        return RebuildReport(count, skipped, started, seconds)

    def _new_generation_dir(self, moment: dt.datetime) -> Path:
        stamp = moment.astimezone(dt.timezone.utc).strftime(_GEN_TIME_FORMAT)
        for n in range(1000):
            path = self.index_root / (f"{_GEN_PREFIX}{stamp}" + (f"-{n}" if n else ""))
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
        raise IndexBusy("検索索引の世代ディレクトリを作成できませんでした。")

    def _swap_current(self, target: str) -> None:
        temp = self.index_root / f".current-{uuid.uuid4().hex}.tmp"
        # Relative target: the index root can be moved or restored elsewhere.
        os.symlink(target, temp)
        try:
            os.replace(temp, self._current)
        except OSError:
            temp.unlink(missing_ok=True)
            raise

    def _remove_old_generations(self, keep: set[str | None]) -> None:
        # The previous generation stays: a worker may be mid-search on it.
        # Rebuilds are serialised by the rebuild lock, so no other build is running.
        for entry in self.index_root.iterdir():
            if entry.name.startswith(_GEN_PREFIX) and entry.name not in keep and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(".current-") and entry.is_symlink():
                entry.unlink(missing_ok=True)


def _generation_time(name: str) -> dt.datetime | None:
    stamp = name.removeprefix(_GEN_PREFIX).split("-", 1)[0]
    try:
        return dt.datetime.strptime(stamp, _GEN_TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
