"""FAQ and inquiries through the screens: seeds, votes, suggestions, the inquiry → answer → FAQ step."""

from __future__ import annotations

import re

import json

import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.faq.models import Faq, FaqStatus, Inquiry, InquiryStatus
from pmo.paths import data_dir
from tests.conftest import CITY_A, CITY_B


@pytest.fixture
def officer(make_user):
    return make_user(Role.MINISTRY_OFFICER, ministry="mhlw")


@pytest.fixture
def city_user(make_user):
    return make_user(Role.BODY_STAFF, CITY_A)


def test_at_least_fifty_seeded_faqs_each_cite_a_slide(db_session):
    seeded = db_session.scalars(sa.select(Faq).where(Faq.seed_key.is_not(None))).all()
    assert len(seeded) >= 50
    assert all(f.status is FaqStatus.PUBLISHED and f.source.startswith("説明会資料6 スライド") for f in seeded)
    items = json.loads((data_dir("seed") / "faq" / "faqs.json").read_text(encoding="utf-8"))
    assert len({i["question"] for i in items}) == len(items)


def test_seeding_faqs_twice_changes_nothing(db_session):
    from pmo.faq.service import seed_faqs

    assert seed_faqs(db_session, data_dir("seed")) == {"created": 0, "updated": 0}


@pytest.mark.parametrize("question,phrase", [
    ("補助対象外の経費は何か", "特定個人情報保護評価（PIA）"),
    ("情報連携はいつ始まるか", "平成29年7月"),
    ("中間サーバーは自前で調達するのか", "中間サーバー・プラットフォーム"),
    ("本人確認に必要な書類は何か", "運転免許証"),
])
def test_the_questions_staff_ask_are_answered(client, auth, city_user, question, phrase):
    auth.login(city_user)
    found = client.get("/faq/suggest", query_string={"q": question}).get_json()["items"]
    assert found, question
    page = client.get(found[0]["url"]).get_data(as_text=True)
    assert phrase in page


def test_helpful_is_counted_once_per_user(client, auth, city_user, db_session):
    faq = db_session.scalar(sa.select(Faq).where(Faq.seed_key == "src-001"))
    before = faq.helpful_count
    auth.login(city_user)
    for _ in range(2):
        assert client.post_form(f"/faq/{faq.id}/helpful", {}, token_from=f"/faq/{faq.id}").status_code == 302
    db_session.refresh(faq)
    assert faq.helpful_count == before + 1


def test_the_faq_list_comes_in_pages_of_twenty_in_category_order(client, auth, city_user, db_session):
    from pmo.faq.models import CATEGORIES, FaqStatus

    published = db_session.scalars(sa.select(Faq).where(Faq.status == FaqStatus.PUBLISHED)).all()
    assert len(published) > 20  # the seeded FAQ
    expected = sorted(published, key=lambda f: (CATEGORIES.index(f.category) if f.category in CATEGORIES else 99, f.id))
    auth.login(city_user)
    seen = []
    for page in range(1, (len(published) + 19) // 20 + 1):
        html = client.get(f"/faq/?page={page}").get_data(as_text=True)
        ids = [int(i) for i in re.findall(r'<details class="faq panel" id="faq-(\d+)"', html)]
        assert len(ids) == min(20, len(published) - 20 * (page - 1))
        assert f"{len(published)}件" in html and f"{page}/{(len(published) + 19) // 20}ページ" in html
        seen += ids
    assert seen == [f.id for f in expected]
    beyond = client.get(f"/faq/?page={len(published)}").get_data(as_text=True)
    assert '<details class="faq panel"' not in beyond and "該当するFAQはありません" in beyond


def test_rich_text_is_sanitised_when_saved_and_shown(client, auth, officer, city_user, db_session):
    auth.login(officer)
    client.post_form("/faq/new", {"category": "その他", "question": "<script>alert(1)</script>質問", "publish": "1",
                                  "answer_html": '<p>回答</p><script>alert(2)</script><img src=x onerror=alert(3)>'
                                                 '<a href="javascript:alert(4)">link</a>＜script＞'},
                     token_from="/faq/new")
    faq = db_session.scalar(sa.select(Faq).where(Faq.question == "<script>alert(1)</script>質問"))
    assert "<script" not in faq.answer_html and "onerror" not in faq.answer_html and "javascript:" not in faq.answer_html
    auth.logout()
    auth.login(city_user)
    for url in (f"/faq/{faq.id}", "/faq/?q=alert"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert" not in html and "onerror=alert" not in html and "javascript:alert" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;質問" in html


def test_a_body_asks_the_officer_answers_and_the_answer_becomes_a_faq(client, auth, officer, city_user, make_user,
                                                                     db_session):
    auth.login(city_user)
    response = client.post_form("/faq/inquiries/new", {
        "subject": "宛名番号の付番", "category": "システム改修", "ministry_id": officer.ministry_id,
        "question": f"小樽市の宛名システムで、団体内統合宛名番号は既存の宛名番号を流用できますか。担当 {city_user.display_name}"
                    " otaru@example.jp"},
        token_from="/faq/inquiries/new")
    assert response.status_code == 302
    inquiry = db_session.scalar(sa.select(Inquiry).where(Inquiry.subject == "宛名番号の付番"))
    assert inquiry.status is InquiryStatus.OPEN and inquiry.due_date > inquiry.asked_dt.date()
    auth.logout()

    auth.login(make_user(Role.BODY_STAFF, CITY_B))
    assert client.get(f"/faq/inquiries/{inquiry.id}").status_code == 404
    auth.logout()

    auth.login(officer)
    worklist = client.get("/faq/inquiries/").get_data(as_text=True)
    assert "1週間以内" in worklist and "宛名番号の付番" in worklist
    assert client.post_form(f"/faq/inquiries/{inquiry.id}", {"answer": "小樽市の既存の宛名番号を流用できます。", "version": inquiry.version},
                            token_from=f"/faq/inquiries/{inquiry.id}").status_code == 302
    draft = client.get(f"/faq/inquiries/{inquiry.id}/to-faq").get_data(as_text=True)
    form = draft.split("<form", 1)[1]
    assert "小樽市" not in form and city_user.display_name not in form and "otaru@" not in form
    assert "当団体の宛名システム" in form
    db_session.refresh(inquiry)
    assert client.post_form(f"/faq/inquiries/{inquiry.id}/to-faq", {
        "category": "システム改修", "question": "団体内統合宛名番号に既存の宛名番号を流用できますか。",
        "answer_html": "<p>流用できます。</p>", "version": inquiry.version, "source": "", "related": "",
        "publish": "1"}, token_from=f"/faq/inquiries/{inquiry.id}/to-faq").status_code == 302
    db_session.refresh(inquiry)
    faq = db_session.get(Faq, inquiry.faq_id)
    assert faq.status is FaqStatus.PUBLISHED and faq.source_inquiry_id == inquiry.id
    auth.logout()

    auth.login(city_user)
    page = client.get(f"/faq/inquiries/{inquiry.id}").get_data(as_text=True)
    assert "既存の宛名番号を流用できます" in page and "回答済み" in page
    assert "団体内統合宛名番号に既存の宛名番号" in client.get("/faq/", query_string={"q": "宛名番号"}).get_data(as_text=True)


def test_a_stale_answer_is_refused(client, auth, officer, city_user, db_session):
    auth.login(city_user)
    client.post_form("/faq/inquiries/new", {"subject": "同時回答", "category": "その他", "ministry_id": officer.ministry_id,
                                            "question": "二人が同時に回答した場合"}, token_from="/faq/inquiries/new")
    inquiry = db_session.scalar(sa.select(Inquiry).where(Inquiry.subject == "同時回答"))
    auth.logout()
    auth.login(officer)
    client.post_form(f"/faq/inquiries/{inquiry.id}", {"answer": "最初の回答", "version": inquiry.version},
                     token_from=f"/faq/inquiries/{inquiry.id}")
    page = client.post_form(f"/faq/inquiries/{inquiry.id}", {"answer": "古い画面からの回答", "version": inquiry.version},
                            token_from=f"/faq/inquiries/{inquiry.id}", follow_redirects=True).get_data(as_text=True)
    assert "他の担当者がこの問い合わせを更新しました" in page
    db_session.refresh(inquiry)
    assert inquiry.answer == "最初の回答"


def test_body_staff_cannot_manage_faqs(client, auth, city_user):
    auth.login(city_user)
    assert client.get("/faq/new").status_code == 403
    assert client.get("/faq/misses").status_code == 403
