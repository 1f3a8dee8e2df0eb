"""FILE-07 and AC-08: every download re-checks the parent record's permission on each request (a user
moved to another body loses access at once); another ministry's drafts, their files and draft FAQs
are not found for anyone but their publishers; a cross-ministry edit is refused."""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role, User
from pmo.audit.models import AuditEntry
from pmo.orgs.models import Body
from tests.conftest import CITY_A, CITY_B
from tests.documents.helpers import created_id, docx, pdf, upload


@pytest.fixture
def officer(make_user):
    return make_user(Role.MINISTRY_OFFICER, ministry="mhlw")


def test_a_user_moved_to_another_body_loses_the_download_at_once(client, auth, make_user, db_session):
    """FILE-07: a body's pending practice is downloadable by that body's staff; move the uploader to
    another body (人事異動) and the same URL is 404 on the very next request, while a colleague who
    stayed keeps access; guessing the next id or version gives 404 too."""
    mover = make_user(Role.BODY_STAFF, CITY_A)
    colleague = make_user(Role.BODY_STAFF, CITY_A)
    auth.login(mover)
    response = client.post_form("/documents/practices/new", {
        "title": "小樽市の窓口改善", "summary": "受付手順", "field": "public_assistance", "tags": "",
        "file": (io.BytesIO(docx("窓口 改善")), "窓口改善.docx")}, token_from="/documents/practices/new",
        content_type="multipart/form-data")
    doc_id = created_id(response)
    url = f"/documents/{doc_id}/versions/1/download"
    assert client.get(url).status_code == 200
    user = db_session.get(User, mover.id)
    user.body_id = db_session.scalar(sa.select(Body.id).where(Body.code == CITY_B))
    db_session.commit()
    assert client.get(url).status_code == 404  # same session, next request
    assert client.get(f"/documents/{doc_id}").status_code == 404
    for guess in (f"/documents/{doc_id + 1}/versions/1/download", f"/documents/{doc_id}/versions/2/download"):
        assert client.get(guess).status_code == 404
    db_session.expire_all()
    assert db_session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "authz.denied",
                                                         AuditEntry.target_id == str(doc_id)))
    auth.logout()
    auth.login(colleague)
    assert client.get(url).status_code == 200


def test_another_ministrys_drafts_and_their_files_are_not_found(client, auth, officer, make_user, db_session):
    """AC-08: 省P's draft document and its file URL: anonymous → login, body staff and 省Q's publisher
    → 404 (also for the next id); a draft FAQ is 404 for body staff; 省Q cannot edit 省P's published
    document (403); unpublishing revokes the file at once (FILE-07)."""
    auth.login(officer)
    draft = created_id(upload(client, pdf("draft"), "草案.pdf", title="省Pの草案", publish=False))
    published = created_id(upload(client, pdf("pub"), "公開.pdf", title="省Pの公開文書"))
    faq = client.post_form("/faq/new", {"category": "その他", "question": "下書きの質問", "answer_html": "<p>下書き</p>"},
                           token_from="/faq/new")
    assert faq.status_code == 302
    faq_url = faq.headers["Location"]
    assert re.search(r"/faq/\d+$", faq_url), faq_url
    auth.logout()
    for path in (f"/documents/{draft}", f"/documents/{draft}/versions/1/download"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    auth.login(make_user(Role.BODY_STAFF, CITY_A))
    for path in (f"/documents/{draft}", f"/documents/{draft}/versions/1/download",
                 f"/documents/{published + 1}/versions/1/download", faq_url):
        assert client.get(path).status_code == 404, path
    assert "省Pの草案" not in client.get("/documents/").get_data(as_text=True)
    auth.logout()
    auth.login(make_user(Role.MINISTRY_OFFICER, ministry="mic"))
    assert client.get(f"/documents/{draft}").status_code == 404
    assert client.get(f"/documents/{draft}/versions/1/download").status_code == 404
    edit = client.post_form(f"/documents/{published}/edit", {
        "title": "書き換え", "summary": "", "field": "common", "audience": "all", "tags": "", "publish_from": "",
        "publish_until": "", "version": "1"}, token_from=f"/documents/{published}")
    assert edit.status_code in (403, 404)
    db_session.expire_all()
    from pmo.documents.models import Document

    assert db_session.get(Document, published).title == "省Pの公開文書"
