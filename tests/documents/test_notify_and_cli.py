"""E-mail notices to subscribers (built in the transaction, sent after the commit) and the CLI commands."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for
from pmo.documents import notify, service
from pmo.documents.models import Audience, Document, Field
from pmo.documents.storage import FileStore
from pmo.faq.models import Faq
from tests.conftest import CITY_A
from tests.documents.helpers import created_id, pdf, upload


@pytest.fixture
def store(tmp_path):
    return FileStore(tmp_path / "uploads")


def _publish(db_session, officer, store, audience=Audience.ALL, title="介護保険の手引き"):
    actor = actor_for(officer)
    doc = service.create_document(db_session, actor, service.DocumentInput(title=title, field=Field.LONG_TERM_CARE,
                                                                           audience=audience),
                                  service.Upload(pdf(), "手引き.pdf"), store)
    service.publish_document(db_session, actor, doc.id)
    return doc


def test_subscribers_who_may_see_the_document_get_a_plain_text_notice(db_session, make_user, store):
    officer = make_user(Role.MINISTRY_OFFICER, ministry="mhlw")
    reader = make_user(Role.BODY_STAFF, CITY_A)
    service.set_subscriptions(db_session, actor_for(reader), [Field.LONG_TERM_CARE], [])
    doc = _publish(db_session, officer, store, title="<script>x</script>介護保険の手引き\r\nBcc: evil@example.com")
    messages = notify.build_messages(db_session, doc, "published", "https://pmo.example.jp/", "noreply@pmo.example.jp")
    assert [m["To"] for m in messages] == [reader.email]
    message = messages[0]
    assert "\n" not in message["Subject"] and "Bcc" not in message.keys()
    assert message.get_content_type() == "text/plain"
    assert f"https://pmo.example.jp/documents/{doc.id}" in message.get_content()


def test_a_ministry_only_document_is_not_announced_to_bodies(db_session, make_user, store):
    officer = make_user(Role.MINISTRY_OFFICER, ministry="mhlw")
    reader = make_user(Role.BODY_STAFF, CITY_A)
    service.set_subscriptions(db_session, actor_for(reader), [Field.LONG_TERM_CARE], [])
    doc = _publish(db_session, officer, store, audience=Audience.MINISTRIES)
    assert notify.build_messages(db_session, doc, "published", "https://x/", "a@b") == []


def test_mail_is_sent_after_the_commit_only_when_smtp_is_configured(app, client, auth, make_user, db_session,
                                                                    monkeypatch):
    sent = []

    class FakeSMTP:
        def __init__(self, host, port, timeout):
            sent.append(("connect", host, port))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def send_message(self, message):
            sent.append(("send", message["To"]))

    monkeypatch.setattr(notify.smtplib, "SMTP", FakeSMTP)
    reader = make_user(Role.BODY_STAFF, CITY_A)
    service.set_subscriptions(db_session, actor_for(reader), [Field.COMMON], [])
    db_session.commit()
    auth.login(role=Role.MINISTRY_OFFICER, ministry="mhlw")
    created_id(upload(client, pdf(), "a.pdf", title="SMTPなし"))
    assert sent == []
    app.config["SMTP_HOST"] = "127.0.0.1"
    app.config["SMTP_PORT"] = 2525
    created_id(upload(client, pdf(), "b.pdf", title="SMTPあり"))
    assert sent == [("connect", "127.0.0.1", 2525), ("send", reader.email)]
    bad = upload(client, b"not a pdf", "c.pdf", title="失敗")
    assert bad.status_code == 200 and len(sent) == 2  # nothing saved, nothing sent


def test_cli_adds_a_document_and_a_faq(app, db_session, tmp_path):
    path = tmp_path / "通知.pdf"
    path.write_bytes(pdf())
    runner = app.test_cli_runner()
    result = runner.invoke(args=["documents", "add", str(path), "--title", "CLIの文書", "--field", "国民年金",
                                 "--ministry", "厚労省", "--publish"])
    assert result.exit_code == 0, result.output
    doc = db_session.scalar(sa.select(Document).where(Document.title == "CLIの文書"))
    assert doc.field is Field.NATIONAL_PENSION and doc.latest.display_name == "通知.pdf"
    assert runner.invoke(args=["documents", "add", str(path), "--title", "x", "--field", "税"]).exit_code != 0
    bad = tmp_path / "tool.xlsx"
    bad.write_bytes(b"MZ" + bytes(100))
    result = runner.invoke(args=["documents", "add", str(bad), "--title", "x"])
    assert result.exit_code == 1 and "内容が一致しません" in result.output
    result = runner.invoke(args=["faq", "add", "--question", "CLIの質問", "--answer", "CLIの回答", "--category", "補助金",
                                 "--publish"])
    assert result.exit_code == 0, result.output
    faq = db_session.scalar(sa.select(Faq).where(Faq.question == "CLIの質問"))
    assert faq.answer_html == "<p>CLIの回答</p>" and faq.category == "補助金"


def test_the_demo_publishes_the_source_deck_and_links_the_seeded_faqs(db_session, tmp_path):
    import datetime as dt

    from pmo.faq.models import FaqDocument
    from pmo.paths import data_dir
    from pmo.seeding import DemoContext

    ctx = DemoContext(seed_dir=data_dir("seed"), password="x", demo_date=dt.date(2015, 12, 15), upload_dir=tmp_path)
    service.seed_demo_documents(db_session, ctx)
    service.seed_demo_documents(db_session, ctx)  # idempotent
    docs = db_session.scalars(sa.select(Document).where(Document.title == service.SOURCE_TITLE)).all()
    assert len(docs) == 1
    doc = docs[0]
    assert doc.latest.file_kind == "docx" and "中間サーバー" in doc.latest.text
    assert db_session.scalar(sa.select(sa.func.count()).select_from(FaqDocument)
                             .where(FaqDocument.document_id == doc.id)) >= 50
