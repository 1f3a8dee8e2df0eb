"""Document library through the real endpoints: publishing, versions, downloads (FILE-01…07), INP-02."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.audit.models import AuditEntry
from pmo.core.tabular import SheetSpec, write_xlsx
from pmo.documents.models import Document, DocumentStatus, DocumentVersion
from tests.conftest import CITY_A, CITY_B, PREF_X, AuthActions
from tests.documents.helpers import add_version, created_id, document_count, docx, pdf, upload, xlsx_with


@pytest.fixture
def officer(make_user):
    return make_user(Role.MINISTRY_OFFICER, ministry="mhlw")


@pytest.fixture
def city_user(make_user):
    return make_user(Role.BODY_STAFF, CITY_A)


def test_officer_publishes_and_a_body_downloads_both_versions_with_japanese_names(client, auth, officer, city_user,
                                                                                   db_session):
    auth.login(officer)
    first = pdf("version one")
    doc_id = created_id(upload(client, first, "報告書.pdf", title="番号制度の手引き"))
    second = docx("第2版 改訂内容")
    assert add_version(client, doc_id, second, "令和6年度_進捗報告.docx", "別表を修正").status_code == 302
    auth.logout()

    auth.login(city_user)
    listing = client.get("/documents/").get_data(as_text=True)
    assert "番号制度の手引き" in listing and UNREAD in listing
    page = client.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert "最新版" in page and "第2版" in page and "別表を修正" in page
    assert UNREAD not in client.get("/documents/").get_data(as_text=True)

    for number, data, name, mime in ((1, first, "報告書.pdf", "application/pdf"),
                                     (2, second, "令和6年度_進捗報告.docx",
                                      "application/vnd.openxmlformats-officedocument.wordprocessingml.document")):
        response = client.get(f"/documents/{doc_id}/versions/{number}/download")
        assert response.status_code == 200
        assert response.data == data
        assert response.headers["Content-Type"] == mime
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment; filename=\"")
        assert f"filename*=UTF-8''{quote(name)}" in disposition
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "private, no-store"

    versions = db_session.scalars(sa.select(DocumentVersion).where(DocumentVersion.document_id == doc_id)
                                  .order_by(DocumentVersion.number)).all()
    assert [v.sha256 for v in versions] == [hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()]


def test_files_are_stored_under_generated_names_in_the_instance_folder(app, client, auth, officer, db_session):
    auth.login(officer)
    data = write_xlsx([SheetSpec(name="進捗", headers=["団体", "進捗率"], rows=[["小樽市", 50]])])
    doc_id = created_id(upload(client, data, "令和6年度_進捗報告.xlsx"))
    version = db_session.scalar(sa.select(DocumentVersion).where(DocumentVersion.document_id == doc_id))
    assert version.display_name == "令和6年度_進捗報告.xlsx"
    stored = [p for p in (Path(app.instance_path) / "uploads").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [version.storage_key]
    assert all(len(p.name) == 32 and p.name.isalnum() for p in stored)
    assert not list(Path(app.static_folder).rglob(version.storage_key))


@pytest.mark.parametrize("path", [
    "/documents/{id}/versions/../../etc/passwd", "/documents/{id}/versions/%2e%2e%2fetc%2fpasswd/download",
    "/documents/{id}/versions/..%5c..%5cwin.ini/download", "/documents/{id}/versions/NUL/download",
    "/documents/{id}/versions/CON.txt/download", "/documents/{id}/versions//etc/passwd/download",
    "/documents/{id}/versions/99/download", "/documents/{id}/versions/-1/download", "/documents/../../etc/passwd",
])
def test_download_path_tricks_are_404(client, auth, officer, path):
    auth.login(officer)
    doc_id = created_id(upload(client, pdf(), "報告書.pdf"))
    assert client.get(path.format(id=doc_id)).status_code == 404


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _zeros_zip(megabytes: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.bin", "w", force_zip64=True) as entry:
        chunk = bytes(1024 * 1024)
        for _ in range(megabytes):
            entry.write(chunk)
    return buffer.getvalue()


EXE = b"MZ\x90\x00" + bytes(200)
BAD_FILES = [
    ("report.pdf", b"<html><script>alert(1)</script></html>", "内容が一致しません"),
    ("image.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "受け付けられません"),
    ("tool.xlsx", EXE, "内容が一致しません"),
    ("macro.xlsm", b"PK\x03\x04", "xlsm"),
    ("macro.docm", b"PK\x03\x04", "docm"),
    ("binary.xlsb", b"PK\x03\x04", "xlsb"),
    ("page.html", b"<html></html>", "受け付けられません"),
    ("app.js", b"alert(1)", "受け付けられません"),
    ("a.pdf.exe", EXE, "受け付けられません"),
    ("empty.pdf", b"", "空です"),
    ("old.xls", b"\xd0\xcf\x11\xe0" + bytes(100), "旧形式"),
]


@pytest.mark.parametrize("filename,data,phrase", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_rejected_with_a_reason_and_nothing_is_saved(client, auth, officer, db_session, filename, data,
                                                                  phrase):
    auth.login(officer)
    before = document_count(db_session)
    response = upload(client, data, filename)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "入力内容を確認してください" in html and phrase in html
    assert document_count(db_session) == before


def test_archive_bombs_and_tricks_are_rejected(client, auth, officer, db_session):
    auth.login(officer)
    before = document_count(db_session)
    cases = {
        "bomb.zip": _zeros_zip(64),
        "many.zip": _zip({f"f{i}.txt": b"x" for i in range(10_000)}),
        "nested.zip": _zip({"inner.zip": _zip({"a.txt": b"a"})}),
        "traversal.zip": _zip({"../../app.py": b"print(1)"}),
        "absolute.zip": _zip({"/etc/passwd": b"root"}),
        "drive.zip": _zip({"C:\\x.txt": b"x"}),
    }
    for name, data in cases.items():
        html = upload(client, data, name).get_data(as_text=True)
        assert "入力内容を確認してください" in html, name
    assert document_count(db_session) == before
    assert not (Path("/etc") / "app.py").exists()


ENTITY_ATTACKS = {
    "xxe": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&e;</t></is></c></row></sheetData></worksheet>',
    "laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol3;</t></is></c></row></sheetData></worksheet>',
    "dtd": b'<?xml version="1.0"?><!DOCTYPE worksheet SYSTEM "http://127.0.0.1:9/evil.dtd"><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData/></worksheet>',
}


@pytest.mark.parametrize("attack", list(ENTITY_ATTACKS))
def test_xlsx_entity_attacks_are_refused_without_reading_files(client, auth, officer, db_session, attack, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("outbound connection attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    auth.login(officer)
    before = document_count(db_session)
    html = upload(client, xlsx_with(ENTITY_ATTACKS[attack]), "進捗.xlsx").get_data(as_text=True)
    assert "入力内容を確認してください" in html
    assert "root:" not in html
    assert document_count(db_session) == before


def test_a_document_that_is_withdrawn_cannot_be_downloaded_any_more(client, auth, officer, city_user, db_session):
    auth.login(officer)
    doc_id = created_id(upload(client, pdf(), "報告書.pdf"))
    auth.logout()
    auth.login(city_user)
    assert client.get(f"/documents/{doc_id}/versions/1/download").status_code == 200
    auth.logout()
    auth.login(officer)
    assert client.post_form(f"/documents/{doc_id}/withdraw", {}, token_from=f"/documents/{doc_id}").status_code == 302
    auth.logout()
    auth.login(city_user)
    assert client.get(f"/documents/{doc_id}/versions/1/download").status_code == 404
    assert client.get(f"/documents/{doc_id}").status_code == 404
    denied = db_session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "authz.denied",
                                                           AuditEntry.target_id == str(doc_id)))
    assert denied is not None


@pytest.mark.parametrize("audience,publish,visible_to_city,visible_to_pref", [
    ("all", False, False, False),
    ("ministries", True, False, False),
    ("prefectures", True, False, True),
    ("all", True, True, True),
])
def test_drafts_and_narrow_audiences_are_hidden_from_bodies(client, auth, officer, make_user, audience, publish,
                                                            visible_to_city, visible_to_pref):
    auth.login(officer)
    doc_id = created_id(upload(client, pdf(), "報告書.pdf", title="範囲の確認", audience=audience, publish=publish))
    auth.logout()
    for user, visible in ((make_user(Role.BODY_STAFF, CITY_A), visible_to_city),
                          (make_user(Role.PREFECTURE_STAFF, PREF_X), visible_to_pref)):
        auth.login(user)
        assert client.get(f"/documents/{doc_id}").status_code == (200 if visible else 404)
        assert client.get(f"/documents/{doc_id}/versions/1/download").status_code == (200 if visible else 404)
        assert ("範囲の確認" in client.get("/documents/").get_data(as_text=True)) is visible
        auth.logout()


def test_scheduled_publication_and_end_date(app, client, auth, officer, city_user, make_user):
    import datetime as dt

    from pmo.core import clock

    clock.freeze(dt.datetime(2015, 12, 1, 3, 0, tzinfo=dt.UTC))
    auth.login(officer)
    doc_id = created_id(upload(client, pdf(), "報告書.pdf", title="予約公開", publish_from="平成27年12月10日",
                               publish_until="2015-12-20"))
    auth.logout()
    auth.login(city_user)
    assert client.get(f"/documents/{doc_id}").status_code == 404
    for moment, status in ((dt.datetime(2015, 12, 10, 0, 0), 200), (dt.datetime(2015, 12, 21, 0, 0), 404)):
        clock.freeze(moment.replace(tzinfo=dt.UTC))
        later = app.test_client()  # days later: a new login
        AuthActions(later, make_user).login(city_user)
        assert later.get(f"/documents/{doc_id}").status_code == status


def test_another_ministry_cannot_add_a_version(client, auth, officer, make_user):
    auth.login(officer)
    doc_id = created_id(upload(client, pdf(), "報告書.pdf"))
    auth.logout()
    auth.login(make_user(Role.MINISTRY_OFFICER, ministry="mic"))
    assert add_version(client, doc_id, pdf("x"), "x.pdf").status_code == 403


UNREAD = 'badge--notice">未読'
SCRIPT_TITLE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>＜script＞'


def test_script_in_titles_and_file_names_is_rendered_inert(client, auth, officer, city_user):
    auth.login(officer)
    doc_id = created_id(upload(client, pdf(), "<img src=x onerror=alert(1)>＜script＞.pdf", title=SCRIPT_TITLE,
                               summary="<script>alert(2)</script>"))
    auth.logout()
    auth.login(city_user)
    for url in ("/documents/", f"/documents/{doc_id}", "/"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    disposition = client.get(f"/documents/{doc_id}/versions/1/download").headers["Content-Disposition"]
    assert "\n" not in disposition and "<img" not in disposition


def test_a_body_registers_practice_that_a_ministry_approves(client, auth, city_user, officer, make_user, db_session):
    auth.login(city_user)
    response = client.post_form("/documents/practices/new", {
        "title": "小樽市の業務フロー見直し", "summary": "窓口の受付手順", "field": "public_assistance", "tags": "業務フロー",
        "file": (io.BytesIO(docx("業務フロー 見直し")), "業務フロー.docx")}, token_from="/documents/practices/new",
        content_type="multipart/form-data")
    doc_id = created_id(response)
    auth.logout()
    other = make_user(Role.BODY_STAFF, CITY_B)
    auth.login(other)
    assert client.get(f"/documents/{doc_id}").status_code == 404
    auth.logout()
    auth.login(officer)
    assert "小樽市の業務フロー見直し" in client.get("/documents/").get_data(as_text=True)
    assert client.post_form(f"/documents/{doc_id}/review", {"decision": "approve", "note": ""},
                            token_from=f"/documents/{doc_id}").status_code == 302
    auth.logout()
    auth.login(other)
    assert client.get(f"/documents/{doc_id}").status_code == 200
    assert db_session.get(Document, doc_id).status is DocumentStatus.PUBLISHED


def test_subscriptions_filter_the_home_feed_and_mark_unread(client, auth, officer, city_user):
    auth.login(officer)
    created_id(upload(client, pdf(), "a.pdf", title="介護の文書", field="ltc"))
    created_id(upload(client, pdf(), "b.pdf", title="年金の文書", field="pension"))
    auth.logout()
    auth.login(city_user)
    home = client.get("/").get_data(as_text=True)
    assert "介護の文書" in home and "年金の文書" in home
    assert client.post_form("/documents/subscriptions", {"fields": ["ltc"]},
                            token_from="/documents/subscriptions").status_code == 302
    home = client.get("/").get_data(as_text=True)
    assert "介護の文書" in home and "年金の文書" not in home and UNREAD in home


def test_a_stale_edit_shows_both_values_and_keeps_the_newer_one(client, auth, officer, db_session):
    auth.login(officer)
    doc_id = created_id(upload(client, pdf(), "報告書.pdf", title="元のタイトル"))
    version = db_session.get(Document, doc_id).version
    fields = {"summary": "", "field": "common", "audience": "all", "tags": "", "publish_from": "", "publish_until": ""}
    assert client.post_form(f"/documents/{doc_id}/edit", {**fields, "title": "先に保存したタイトル", "version": version},
                            token_from=f"/documents/{doc_id}/edit").status_code == 302
    page = client.post_form(f"/documents/{doc_id}/edit", {**fields, "title": "古い画面のタイトル", "version": version},
                            token_from=f"/documents/{doc_id}/edit").get_data(as_text=True)
    assert "他のユーザーがこの文書を更新しました" in page
    assert "先に保存したタイトル" in page and "古い画面のタイトル" in page
    db_session.expire_all()
    assert db_session.get(Document, doc_id).title == "先に保存したタイトル"


def test_indexing_does_not_bump_the_edit_version(app, client, auth, officer, db_session):
    from pmo.documents.service import search_doc

    auth.login(officer)
    doc_id = created_id(upload(client, pdf(), "報告書.pdf"))
    version = db_session.get(Document, doc_id).version

    search_doc(db_session, doc_id)
    db_session.flush()
    db_session.expire_all()
    doc = db_session.get(Document, doc_id)
    assert doc.version == version and doc.indexed_dt is not None
