"""Search engine: Japanese normalisation, safe query handling, scoping, rebuild, degradation.

Every test that is not about Whoosh's files runs against each backend: Whoosh always, PostgreSQL
when PMO_TEST_DATABASE_URL points at PostgreSQL (each test then gets its own table).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from whoosh.filedb.filestore import FileStorage

from pmo.search.analysis import normalize, parse_query
from pmo.search.engine import (
    DEGRADED_MESSAGE,
    IndexBusy,
    IndexUnavailable,
    SearchBackend,
    SearchDoc,
    SearchQuery,
    WhooshBackend,
    make_snippet,
)
from pmo.search.pg import PostgresBackend

PUBLIC = frozenset({"public", "audience:bodies"})


def doc(n: int, title: str, body: str = "", **kw) -> SearchDoc:
    kw.setdefault("kind", "document")
    return SearchDoc(key=f"{kw['kind']}:{n}", id=n, title=title, body=body, url=f"/x/{n}", **kw)


CORPUS = [
    doc(1, "よくある質問 FAQ 一覧", "問い合わせの多い事項をまとめました。", field="総合", ministry="デジタル庁", fiscal_year=2023),
    doc(2, "表記の統一", "カタカナ表記と漢字表記の例。", field="総合", ministry="デジタル庁", fiscal_year=2023),
    doc(3, "件数の集計", "対象は123件です。", field="税", ministry="総務省", fiscal_year=2015),
    doc(4, "制度の概要", "マイナンバー制度の導入に向けた準備。", field="社会保障", ministry="内閣府", fiscal_year=2015),
    doc(5, "カードの交付", "個人番号カードの交付を開始します。", field="社会保障", ministry="総務省", fiscal_year=2016),
    doc(6, "地方税の手続", "地方税の賦課徴収事務。", field="税", ministry="総務省", fiscal_year=2016),
    doc(7, "給付事務", "生活保護、児童手当、介\n\n護保険といった社会保障分野の事務。", field="社会保障", ministry="厚生労働省"),
    doc(8, "利⽤開始", "番号の利⽤の開始に向けて。", field="社会保障", ministry="厚生労働省", fiscal_year=2016),
    doc(9, "不正な<b>タグ</b>", "本文に<script>alert('x')</script>を含む危険な資料。", field="総合", ministry="総務省"),
    doc(10, "ＦＡＱ（全角）", "全角英字で書かれたＦＡＱの資料。", kind="faq", field="総合", ministry="デジタル庁"),
    doc(11, "省内限定の検討メモ", "極秘の検討事項と地方税の論点。", ministry="財務省", fiscal_year=2017,
        visibility={"audience:ministries"}),
    doc(12, "団体向け通知", "地方公共団体向けの通知。", kind="procedure", field="税", ministry="総務省",
        fiscal_year=2017, visibility={"audience:bodies", "audience:ministries"}),
]


def keys(results) -> set[str]:
    return {hit.key for hit in results.hits}


def search(backend, text: str, tokens=PUBLIC, **kw):
    results = backend.search(SearchQuery(text, tokens, per_page=50, **kw))
    assert not results.degraded, results.message
    return results


PG_URL = os.environ.get("PMO_TEST_DATABASE_URL", "")
ON_POSTGRESQL = PG_URL.startswith("postgresql")
# The PostgreSQL backend needs a PostgreSQL database: its cases exist on the PostgreSQL run only.
BACKENDS = ["whoosh", "postgresql"] if ON_POSTGRESQL else ["whoosh"]


class Backends:
    """Makes backends of one kind in fresh places, and a second instance ("another worker") on one."""

    def __init__(self, kind: str, root: Path, engine: sa.Engine | None) -> None:
        self.kind, self.root, self.engine = kind, root, engine
        self.tables: list[str] = []

    def new(self, docs=None, **kw):
        if self.kind == "whoosh":
            backend = WhooshBackend(self.root / uuid.uuid4().hex / "index", **kw)
        else:
            table = f"search_t{uuid.uuid4().hex[:12]}"
            self.tables.append(table)
            backend = PostgresBackend(self.engine, table=table, **kw)
        if docs is not None:
            backend.rebuild(docs)
        return backend

    def reopen(self, backend):
        if self.kind == "whoosh":
            return WhooshBackend(backend.index_root)
        return PostgresBackend(self.engine, table=backend.table)

    def delete_index(self, backend) -> None:
        if self.kind == "whoosh":
            shutil.rmtree(backend.index_root)
        else:
            with self.engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE {backend.table}"))

    @contextlib.contextmanager
    def hold_write_lock(self, backend):
        """Another process holds the write lock (Whoosh's lock file, or a lock on the table)."""
        if self.kind == "whoosh":
            lock = FileStorage(str(backend.index_root / "current")).lock("MAIN_WRITELOCK")
            assert lock.acquire()
            try:
                yield
            finally:
                lock.release()
        else:
            with self.engine.connect() as conn, conn.begin():
                conn.execute(sa.text(f"LOCK TABLE {backend.table} IN SHARE ROW EXCLUSIVE MODE"))
                yield

    def cleanup(self) -> None:
        if self.engine is not None and self.tables:
            with self.engine.begin() as conn:
                for table in self.tables:
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}_build"))


@pytest.fixture(scope="module")
def pg_engine():
    if not PG_URL.startswith("postgresql"):
        yield None
        return
    engine = sa.create_engine(PG_URL)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_backends(request, tmp_path_factory, pg_engine):
    made = Backends(request.param, tmp_path_factory.mktemp("shared"), pg_engine)
    yield made
    made.cleanup()


@pytest.fixture(scope="module")
def built(shared_backends):
    """One index over CORPUS, shared by the read-only tests."""
    return shared_backends.new(CORPUS)


@pytest.fixture(params=BACKENDS)
def backends(request, tmp_path, pg_engine):
    made = Backends(request.param, tmp_path, pg_engine)
    yield made
    made.cleanup()


@pytest.fixture
def backend(backends):
    return backends.new(CORPUS, lock_timeout=0.2)


def test_backend_satisfies_protocol(built):
    assert isinstance(built, SearchBackend)


# --- normalisation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＦＡＱ", "faq"),
        ("ｶﾀｶﾅ", "カタカナ"),
        ("ｶﾞｲﾄﾞ", "ガイド"),
        ("１２３", "123"),
        ("まいなんばー", "マイナンバー"),
        ("介\n護保険", "介護保険"),
        ("介　護", "介護"),
        ("⽤語", "用語"),
        ("国⺠", "国民"),
        ("FAQ 一覧", "faq 一覧"),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("ＦＡＱ", "document:1"),
        ("FAQ", "faq:10"),
        ("faq", "document:1"),
        ("faq", "faq:10"),
        ("ｶﾀｶﾅ", "document:2"),
        ("１２３", "document:3"),
        ("まいなんばー", "document:4"),
        ("番号", "document:5"),
        ("税", "document:6"),
        ("介護保険", "document:7"),
        ("利用", "document:8"),
        ("手当 事務", "document:7"),
    ],
)
def test_normalised_forms_find_each_other(built, query, key):
    assert key in keys(search(built, query))


def test_parts_are_anded_and_phrases_are_exact(built):
    assert keys(search(built, "地方税 賦課")) == {"document:6"}
    assert search(built, "地方税 存在しない語").total == 0
    assert search(built, "税地方").total == 0
    assert search(built, "ナンバーナ").total == 0


def test_hits_equal_a_substring_scan(backends):
    """Bigram covers, repeated grams and several segments give exactly the substring matches."""
    rng = random.Random(7)
    alphabet = "アイあ税地方の"
    docs = [doc(n, "", "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 30)))) for n in range(1, 46)]
    backend = backends.new(docs[:25])
    backend.index_documents(docs[25:])  # a second segment
    for length in range(1, 10):
        for _ in range(12):
            text = "".join(rng.choice(alphabet) for _ in range(length))
            expected = {d.key for d in docs if normalize(text) in normalize(d.body)}
            results = search(backend, text)
            assert (results.total, keys(results)) == (len(expected), expected), text


# --- query syntax is never interpreted ----------------------------------------


@pytest.mark.parametrize(
    "text",
    ["*", "AND NOT", "税 AND NOT 地方", "field:x", 'kind:faq "unbalanced', '"', "' OR 1=1 --", "%", "_", "\\",
     "()", "税^2", "x" * 10_000, "税 " * 500, "\x00", "<script>", "　", ""],
)
def test_query_syntax_never_errors(built, text):
    results = built.search(SearchQuery(text, PUBLIC))
    assert not results.degraded
    assert results.total >= 0


def test_long_query_is_cut_with_message():
    assert len("".join(parse_query("x" * 10_000).parts)) == 200
    assert parse_query("x" * 10_000).truncated


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_any_text_is_a_valid_query(built, text):
    results = built.search(SearchQuery(text, PUBLIC))
    assert not results.degraded


# --- scoping ------------------------------------------------------------------


def test_invisible_documents_never_leak(built):
    results = search(built, "地方税")
    assert "document:11" not in keys(results)
    assert keys(results) == {"document:6"} and results.total == 1
    assert "財務省" not in results.facets["ministry"]
    assert 2017 not in results.facets["fiscal_year"] or results.facets["fiscal_year"][2017] == 0
    assert all("極秘" not in hit.snippet and "省内" not in hit.title for hit in results.hits)
    assert search(built, "極秘").total == 0


def test_documents_visible_through_any_shared_token(built):
    ministries = frozenset({"audience:ministries"})
    assert keys(search(built, "極秘", tokens=ministries)) == {"document:11"}
    assert keys(search(built, "通知", tokens=ministries)) == {"procedure:12"}
    assert keys(search(built, "通知", tokens=frozenset({"audience:bodies"}))) == {"procedure:12"}
    assert search(built, "通知", tokens=frozenset({"public"})).total == 0
    assert search(built, "地方税", tokens=frozenset()).total == 0


# --- snippets -------------------------------------------------------------------


def test_snippets_escape_document_html(built):
    results = search(built, "危険")
    [hit] = results.hits
    assert "<script" not in hit.snippet and "&lt;script&gt;" in hit.snippet
    assert "<b>" not in hit.title_html and "&lt;b&gt;" in hit.title_html
    assert set(re.findall(r"<[^>]*>", hit.snippet + hit.title_html)) <= {"<mark>", "</mark>"}
    assert "<mark>危険</mark>" in hit.snippet


def test_snippet_highlights_original_text_of_normalised_match():
    assert make_snippet("生活保護、介\n\n護保険の事務", ["介護保険"]) == "生活保護、<mark>介護保険</mark>の事務"
    assert make_snippet("ｶﾀｶﾅで書く", ["カタカナ"]) == "<mark>ｶﾀｶﾅ</mark>で書く"
    assert make_snippet("a<b>ＦＡＱ</b>", ["faq"]) == "a&lt;b&gt;<mark>ＦＡＱ</mark>&lt;/b&gt;"
    long = "前置き。" * 200 + "目的の語" + "後書き。" * 200
    snippet = make_snippet(long, ["目的"])
    assert snippet.startswith("…") and snippet.endswith("…") and "<mark>目的</mark>" in snippet


# --- facets and pages -------------------------------------------------------------


def test_facets_count_the_visible_matching_set(built):
    results = search(built, "の")
    visible = [d for d in CORPUS if d.visibility & PUBLIC and normalize("の") in normalize(d.title + d.body)]
    assert results.total == len(visible)
    expected = {
        "kind": Counter(d.kind for d in visible),
        "field": Counter(d.field for d in visible if d.field),
        "ministry": Counter(d.ministry for d in visible if d.ministry),
        "fiscal_year": Counter(d.fiscal_year for d in visible if d.fiscal_year),
    }
    assert {name: dict(counts) for name, counts in expected.items()} == results.facets


def test_facet_filters_narrow_hits_and_counts(built):
    results = search(built, "の", ministry="総務省")
    assert results.hits and all(h.key in {"document:3", "document:5", "document:6", "document:9", "procedure:12"}
                                for h in results.hits)
    assert results.facets["ministry"] == {"総務省": results.total}
    assert keys(search(built, "の", kind="faq")) == {"faq:10"}
    assert keys(search(built, "の", fiscal_year=2015)) == {"document:3", "document:4"}


def test_results_without_facets_are_the_same_hits(built):
    with_facets = search(built, "の")
    without = search(built, "の", facets=False)
    assert without.facets == {} and with_facets.facets
    assert (without.total, [h.key for h in without.hits]) == (with_facets.total, [h.key for h in with_facets.hits])


def test_pagination_covers_every_hit_once(backends):
    backend = backends.new([doc(n, f"資料{n}", "共通の本文") for n in range(1, 26)])
    pages = [backend.search(SearchQuery("共通", PUBLIC, page=p, per_page=10)) for p in (1, 2, 3)]
    assert [len(p.hits) for p in pages] == [10, 10, 5]
    assert {p.total for p in pages} == {25} and pages[0].pages == 3
    assert len({h.key for p in pages for h in p.hits}) == 25
    assert backend.search(SearchQuery("共通", PUBLIC, page=99, per_page=10)).page == 3


# --- writes, rebuild ------------------------------------------------------------------


def test_update_and_delete(backend):
    assert keys(search(backend, "賦課徴収")) == {"document:6"}  # the searcher is now open and cached
    assert backend.index_documents([doc(6, "地方税の新しい題名", "改訂後の本文。", field="税")]) == 1
    assert keys(search(backend, "改訂後")) == {"document:6"}
    assert search(backend, "賦課徴収").total == 0  # whoosh's refresh() would still show the old version
    assert [h.key for h in search(backend, "地方税").hits] == ["document:6"]
    assert backend.status()["doc_count"] == len(CORPUS)
    assert backend.delete_documents(["document:6", "document:999"]) == 1
    assert search(backend, "改訂後").total == 0
    assert backend.status()["doc_count"] == len(CORPUS) - 1


def test_rebuild_swaps_generation_and_results_are_equal(backends, backend):
    queries = ["税", "地方税", "の", "番号", "faq"]
    before = {q: (search(backend, q).total, keys(search(backend, q))) for q in queries}
    other_worker = backends.reopen(backend)
    assert search(other_worker, "税").total == before["税"][0]
    if backends.kind == "whoosh":
        root = backend.index_root
        first = (root / "current").resolve()
    for _ in range(3):
        backend.rebuild(CORPUS)
    if backends.kind == "whoosh":
        assert (root / "current").is_symlink() and (root / "current").resolve() != first
        assert len(list(root.glob("gen-*"))) <= 2  # the current and the previous generation
    after = {q: (search(backend, q).total, keys(search(backend, q))) for q in queries}
    assert after == before
    assert {q: (search(other_worker, q).total, keys(search(other_worker, q))) for q in queries} == before
    backend.rebuild([*CORPUS, doc(99, "追加された資料", "新規")])
    assert keys(search(other_worker, "新規")) == {"document:99"}


def test_search_during_rebuild_never_degrades(backends, backend):
    failures: list[object] = []
    stop = threading.Event()

    def searching() -> None:
        reader = backends.reopen(backend)
        while not stop.is_set():
            results = reader.search(SearchQuery("地方税", PUBLIC))
            if results.degraded or results.total != 1:
                failures.append(results)

    thread = threading.Thread(target=searching)
    thread.start()
    try:
        for _ in range(4):
            backend.rebuild(CORPUS)
    finally:
        stop.set()
        thread.join()
    assert failures == []


def test_rebuild_failure_keeps_current_index(backend):
    def broken_docs():
        yield CORPUS[0]
        raise RuntimeError("DB went away")

    with pytest.raises(RuntimeError):
        backend.rebuild(broken_docs())
    assert search(backend, "地方税").total == 1
    assert backend.status()["doc_count"] == len(CORPUS)


# --- degradation (REL-09) -----------------------------------------------------------


def assert_degraded(results) -> None:
    assert results.degraded and results.message == DEGRADED_MESSAGE
    assert results.total == 0 and results.hits == []


def test_never_built_index_degrades(backends):
    backend = backends.new()
    assert_degraded(backend.search(SearchQuery("税", PUBLIC)))
    assert backend.status()["state"] == "missing"
    with pytest.raises(IndexUnavailable):
        backend.index_documents([CORPUS[0]])


def test_deleted_index_dir_degrades(backends, backend):
    assert search(backend, "税").total > 0
    backends.delete_index(backend)
    assert_degraded(backend.search(SearchQuery("税", PUBLIC)))
    assert backend.status()["state"] == "missing"
    backend.rebuild(CORPUS)
    assert search(backend, "税").total > 0


@pytest.mark.parametrize("same_size", [True, False])
@pytest.mark.parametrize("suffix", [".seg", ".toc"])
def test_garbage_segment_degrades(tmp_path, same_size, suffix):
    backend = WhooshBackend(tmp_path / "index")
    backend.rebuild(CORPUS)
    assert search(backend, "税").total > 0
    [target] = [p for p in (backend.index_root / "current").iterdir() if p.name.endswith(suffix)]
    size = target.stat().st_size
    target.write_bytes(bytes(range(256)) * (size // 256 if same_size else 1) + b"\xff" * (size % 256))
    restarted = WhooshBackend(backend.index_root)
    for instance in (backend, restarted):
        assert_degraded(instance.search(SearchQuery("税", PUBLIC)))
        status = instance.status()
        assert status["state"] == "broken"
        assert str(backend.index_root) not in repr(status)
    backend.rebuild(CORPUS)
    assert search(backend, "税").total > 0


def test_status_reports_without_paths(backend):
    status = backend.status()
    assert set(status) == {"state", "doc_count", "generation_age_seconds", "built_at"}
    assert status["state"] == "ok" and status["doc_count"] == len(CORPUS)
    assert 0 <= status["generation_age_seconds"] < 60
    internals = [str(backend.index_root), "gen-"] if isinstance(backend, WhooshBackend) else [backend.table]
    assert not any(internal in repr(status) for internal in internals)


def test_held_write_lock_fails_fast_while_search_works(backends, backend):
    with backends.hold_write_lock(backend):
        started = time.monotonic()
        with pytest.raises(IndexBusy) as excinfo:
            backend.index_documents([doc(50, "ロック中の追加", "本文")])
        assert time.monotonic() - started < 2
        assert "再試行" in str(excinfo.value)
        with pytest.raises(IndexBusy):
            backend.delete_documents(["document:1"])
        assert search(backend, "地方税").total == 1
    backend.index_documents([doc(50, "ロック中の追加", "本文")])
    assert keys(search(backend, "ロック中")) == {"document:50"}


def test_invalid_documents_are_rejected():
    with pytest.raises(ValueError):
        doc(1, "x", visibility=set())
    with pytest.raises(ValueError):
        doc(1, "x", kind="blog")
    with pytest.raises(ValueError):
        doc(1, "x", visibility={"a,b"})
    with pytest.raises(ValueError):
        doc(1, "x", visibility={"public\n"})
    with pytest.raises(TypeError):
        SearchQuery("x", "public")  # type: ignore[arg-type]
