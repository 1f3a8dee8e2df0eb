"""Search through the portal: Japanese normalisation, scoping by audience, the outbox under a held lock,
rebuild, a missing or broken index (REL-09), misses, CLI and API.

Every test runs with the Whoosh backend, and with the PostgreSQL backend when PMO_TEST_DATABASE_URL is
PostgreSQL (its own table, written on its own connection as in production).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.search.models import SearchMiss, SearchOutbox
from tests.conftest import CITY_A
from tests.documents.helpers import created_id, docx, upload

PG_URL = os.environ.get("PMO_TEST_DATABASE_URL", "")


# The PostgreSQL backend needs a PostgreSQL database: its cases exist on the PostgreSQL run only.
@pytest.fixture(params=["whoosh", "postgresql"] if PG_URL.startswith("postgresql") else ["whoosh"])
def search_kind(request) -> str:
    return request.param


@pytest.fixture
def pg_search_engine(search_kind):
    if search_kind != "postgresql":
        yield None
        return
    engine = sa.create_engine(PG_URL)
    yield engine
    engine.dispose()


@pytest.fixture
def app(app, search_kind, pg_search_engine):
    """The portal with the backend under test (PostgreSQL: a table of its own, dropped afterwards)."""
    if search_kind == "whoosh":
        yield app
        return
    from pmo.search.pg import PostgresBackend

    table = f"search_p{uuid.uuid4().hex[:12]}"
    app.extensions["pmo_search"] = PostgresBackend(pg_search_engine, table=table, lock_timeout=0.3)
    yield app
    with pg_search_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}_build"))


def faq(client, question: str, answer: str) -> None:
    response = client.post_form("/faq/new", {"category": "その他", "question": question, "answer_html": answer,
                                             "publish": "1"}, token_from="/faq/new")
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]


def api(client, q: str, **params) -> dict:
    response = client.get("/api/v1/search", query_string={"q": q, **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture(autouse=True)
def _bearer_on_login(auth, client, db_session, monkeypatch):
    """Every login in these tests also carries a personal API token for /api/v1/search."""
    from pmo.accounts.service import actor_for, create_api_token

    original = auth.login

    def login(user=None, **kwargs):
        user = original(user, **kwargs)
        _token, secret = create_api_token(db_session, actor_for(user), "test")
        db_session.commit()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
        return user

    monkeypatch.setattr(auth, "login", login)


@pytest.fixture
def officer(make_user):
    return make_user(Role.MINISTRY_OFFICER, ministry="mhlw")


@pytest.fixture
def city_user(make_user):
    return make_user(Role.BODY_STAFF, CITY_A)


def test_japanese_normalisation_cases(client, auth, officer, city_user):
    auth.login(officer)
    faq(client, "ＦＡＱの使い方カタカナ", "<p>地方税の情報と個人番号、受付番号123を確認します。</p>")
    auth.logout()
    auth.login(city_user)
    for query in ("FAQ", "ＦＡＱ", "ｶﾀｶﾅ", "かたかな", "１２３", "地方税 個人番号", "税 ＦＡＱ", "番号 かたかな"):
        found = api(client, query)
        assert any(item["title"] == "ＦＡＱの使い方カタカナ" for item in found["items"]), query
    assert any("個人<mark>番号</mark>" in item["snippet"] for item in api(client, "番号")["items"])
    assert any("<mark>税</mark>" in item["snippet"] for item in api(client, "税")["items"])
    for query in ('field:x AND NOT *', '"unbalanced', "' OR 1=1 --", "%_", "x" * 10_000, "(((", "title:FAQ"):
        assert api(client, query)["degraded"] is False


def test_snippets_highlight_and_escape(client, auth, officer, city_user):
    auth.login(officer)
    faq(client, "<script>alert(1)</script>中間サーバーの質問", "<p>中間サーバー・プラットフォームを利用します。</p><script>x</script>")
    auth.logout()
    auth.login(city_user)
    html = client.get("/search/", query_string={"q": "中間サーバー"}).get_data(as_text=True)
    assert "<mark>中間サーバー</mark>" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_drafts_and_ministry_only_documents_never_reach_body_staff(client, auth, officer, city_user, make_user):
    auth.login(officer)
    created_id(upload(client, docx("秘密草案の本文"), "草案.docx", title="草案の資料", publish=False, field="ltc"))
    created_id(upload(client, docx("府省限定資料の本文"), "限定.docx", title="府省向けの資料", audience="ministries",
                      field="pension"))
    created_id(upload(client, docx("都道府県限定資料の本文"), "県.docx", title="県向けの資料", audience="prefectures"))
    assert api(client, "秘密草案")["total"] == 1  # the owning ministry sees its draft
    auth.logout()

    auth.login(city_user)
    for query in ("秘密草案", "府省限定資料", "都道府県限定資料"):
        found = api(client, query)
        assert found["total"] == 0 and found["items"] == [] and found["facets"] == {name: {} for name in found["facets"]}
    broad = api(client, "資料")
    assert "草案の資料" not in json.dumps(broad, ensure_ascii=False)
    assert "府省向けの資料" not in json.dumps(broad, ensure_ascii=False)
    assert "介護保険" not in broad["facets"].get("field", {}) and "国民年金" not in broad["facets"].get("field", {})
    page = client.get("/search/", query_string={"q": "秘密草案"}).get_data(as_text=True)
    assert "草案の資料" not in page and "0件" in page
    auth.logout()

    auth.login(make_user(Role.MINISTRY_OFFICER, ministry="mic"))
    assert api(client, "秘密草案")["total"] == 0  # another ministry's draft
    assert api(client, "府省限定資料")["total"] == 1


def test_answered_inquiries_are_found_by_the_asking_body_only(client, auth, officer, city_user, make_user, db_session):
    from pmo.faq.models import Inquiry

    auth.login(city_user)
    client.post_form("/faq/inquiries/new", {"subject": "宛名システムの照会", "category": "その他",
                                            "ministry_id": officer.ministry_id, "question": "団体内統合宛名番号の付番方法は？"},
                     token_from="/faq/inquiries/new")
    inquiry = db_session.scalar(sa.select(Inquiry).where(Inquiry.subject == "宛名システムの照会"))
    assert api(client, "宛名システムの照会")["total"] == 0  # not answered yet
    auth.logout()
    auth.login(officer)
    client.post_form(f"/faq/inquiries/{inquiry.id}", {"answer": "団体内で一意に付番してください。", "version": inquiry.version},
                     token_from=f"/faq/inquiries/{inquiry.id}")
    auth.logout()
    auth.login(city_user)
    assert api(client, "宛名システムの照会")["items"][0]["kind"] == "inquiry"
    auth.logout()
    auth.login(make_user(Role.BODY_STAFF, "012025"))
    assert api(client, "宛名システムの照会")["total"] == 0


def _backend(app):
    from pmo.search.views import backend

    return backend(app)


@contextlib.contextmanager
def held_write_lock(app, engine):
    """Another process holds the index's write lock (Whoosh's lock file, or a lock on the search table)."""
    backend = _backend(app)
    if engine is None:
        from whoosh.index import open_dir

        holder = open_dir(str(Path(backend.index_root) / "current")).writer()
        try:
            yield
        finally:
            holder.cancel()
        return
    with engine.connect() as conn, conn.begin():
        conn.execute(sa.text(f"LOCK TABLE {backend.table} IN SHARE ROW EXCLUSIVE MODE"))
        yield


def break_index(app, engine) -> None:
    backend = _backend(app)
    if engine is None:
        target = (Path(backend.index_root) / "current").resolve()
        for segment in target.glob("*.seg"):
            segment.write_bytes(b"garbage" * 100)
        for toc in target.glob("*.toc"):
            toc.write_bytes(b"garbage")
    else:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {backend.table} DROP COLUMN grams"))


def delete_index(app, engine) -> None:
    backend = _backend(app)
    if engine is None:
        shutil.rmtree(Path(backend.index_root))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {backend.table}"))


def test_a_held_write_lock_never_loses_a_saved_record(app, client, auth, officer, db_session, pg_search_engine):
    auth.login(officer)
    faq(client, "最初のFAQ", "<p>索引を作る</p>")
    assert api(client, "最初のFAQ")["total"] == 1  # the first search builds the missing index
    with held_write_lock(app, pg_search_engine):
        faq(client, "ロック中に保存したFAQ", "<p>保存は成功する</p>")
        pending = db_session.scalar(sa.select(sa.func.count()).select_from(SearchOutbox)
                                    .where(SearchOutbox.done_dt.is_(None)))
        assert pending >= 1
        assert api(client, "ロック中に保存")["total"] == 0
    result = app.test_cli_runner().invoke(args=["search", "index"])
    assert result.exit_code == 0, result.output
    assert api(client, "ロック中に保存")["total"] == 1


def test_missing_or_broken_index_degrades_search_but_not_the_pages(app, client, auth, officer, city_user,
                                                                   pg_search_engine):
    auth.login(officer)
    faq(client, "壊れる前のFAQ", "<p>本文</p>")
    assert api(client, "壊れる前")["total"] == 1
    auth.logout()
    auth.login(city_user)
    break_index(app, pg_search_engine)
    page = client.get("/search/", query_string={"q": "壊れる前"})
    assert page.status_code == 200 and "検索索引を再構築中" in page.get_data(as_text=True)
    assert api(client, "壊れる前")["degraded"] is True
    delete_index(app, pg_search_engine)
    assert client.get("/search/", query_string={"q": "壊れる前"}).status_code == 200
    assert client.get("/faq/").status_code == 200 and client.get("/documents/").status_code == 200
    result = app.test_cli_runner().invoke(args=["search", "rebuild"])
    assert result.exit_code == 0, result.output
    assert api(client, "壊れる前")["total"] == 1


def test_rebuild_matches_the_database_and_is_idempotent(app, client, auth, officer):
    from pmo.faq.models import Faq, FaqStatus

    auth.login(officer)
    faq(client, "再構築のFAQ", "<p>再構築</p>")
    runner = app.test_cli_runner()
    for _ in range(2):
        assert runner.invoke(args=["search", "rebuild"]).exit_code == 0
    from pmo.faq.rules import html_to_text

    with app.extensions["pmo_db"].session() as session:
        faqs = session.scalars(sa.select(Faq).where(Faq.status == FaqStatus.PUBLISHED)).all()
        expected = sum(1 for f in faqs if "補助" in f.question + html_to_text(f.answer_html))
    assert expected > 5
    assert api(client, "補助", kind="faq")["total"] == expected
    assert api(client, "再構築のFAQ")["total"] == 1


def test_queries_that_find_nothing_are_listed_for_faq_writers(client, auth, officer, city_user, db_session):
    auth.login(city_user)
    assert api(client, "存在しない言葉ぴよぴよ")["total"] == 0
    assert api(client, "存在しない言葉ぴよぴよ")["total"] == 0
    miss = db_session.scalar(sa.select(SearchMiss).where(SearchMiss.query == "存在しない言葉ぴよぴよ"))
    assert miss is not None and miss.count == 2
    assert client.get("/faq/misses").status_code == 403
    auth.logout()
    auth.login(officer)
    assert "存在しない言葉ぴよぴよ" in client.get("/faq/misses").get_data(as_text=True)


def test_cli_search_prints_json_items(app, client, auth, officer):
    auth.login(officer)
    faq(client, "CLIで探すFAQ", "<p>コマンド</p>")
    result = app.test_cli_runner().invoke(args=["search", "CLIで探す", "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)["items"]
    assert items[0]["title"] == "CLIで探すFAQ"
    assert set(items[0]) == {"kind", "id", "title", "snippet", "url"}


def test_search_api_is_documented(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "q" in [p["name"] for p in spec["paths"]["/api/v1/search"]["get"]["parameters"]]


def test_a_scheduled_document_becomes_searchable_when_its_day_comes(app, client, auth, officer, make_user):
    import datetime as dt

    from pmo.core import clock
    from tests.conftest import AuthActions

    clock.freeze(dt.datetime(2015, 12, 1, 3, 0, tzinfo=dt.UTC))
    auth.login(officer)
    created_id(upload(client, docx("予約公開の本文"), "予約.docx", title="予約公開の文書", publish_from="2015-12-10"))
    for moment, expected in ((dt.datetime(2015, 12, 2), 0), (dt.datetime(2015, 12, 10, 1), 1)):
        clock.freeze(moment.replace(tzinfo=dt.UTC))
        reader = app.test_client()
        AuthActions(reader, make_user).login(make_user(Role.BODY_STAFF, CITY_A))
        page = reader.get("/search/", query_string={"q": "予約公開"}).get_data(as_text=True)
        assert "検索索引を再構築中" not in page
        assert ("<mark>予約公開</mark>の文書" in page) is bool(expected), moment


def test_index_status_for_operators_only(app, client, auth, make_user):
    auth.login(make_user(Role.SYSTEM_ADMIN, ministry="cas"))
    report = client.get("/api/v1/search/status").get_json()
    assert set(report) == {"state", "doc_count", "generation_age_seconds", "built_at", "queued"}
    assert app.instance_path not in json.dumps(report)  # no internals such as paths
    auth.logout()
    auth.login(make_user(Role.BODY_STAFF, CITY_A))
    assert client.get("/api/v1/search/status").status_code == 403


def test_search_backend_setting(connection, tmp_path):
    """SEARCH_BACKEND picks the engine; PostgreSQL search on a SQLite database refuses to start."""
    from pmo import create_app
    from pmo.config import ConfigError
    from pmo.search.views import backend
    from tests.conftest import SECRET

    settings = {"TESTING": True, "DB_BIND": connection, "SECRET_KEY": SECRET,
                "INSTANCE_PATH": str(tmp_path / "instance"),
                "DATABASE_URL": str(connection.engine.url.render_as_string(hide_password=False))}
    with pytest.raises(ConfigError):
        create_app({**settings, "SEARCH_BACKEND": "elastic"})
    if connection.dialect.name != "postgresql":
        with pytest.raises(ConfigError):
            create_app({**settings, "SEARCH_BACKEND": "postgresql"})
        return
    from pmo.search.engine import SearchDoc, SearchQuery
    from pmo.search.pg import PostgresBackend

    app = create_app({**settings, "SEARCH_BACKEND": "postgresql"})
    found = backend(app)
    assert isinstance(found, PostgresBackend)
    found.rebuild([SearchDoc(key="faq:1", kind="faq", id=1, title="設定で選んだ検索", body="本文")])
    assert found.search(SearchQuery("設定", frozenset({"public"}))).total == 1
