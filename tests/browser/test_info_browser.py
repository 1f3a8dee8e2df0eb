"""Information flows in a real browser: publishing versions that bodies download, and an inquiry that
becomes a FAQ which search then finds."""

from __future__ import annotations

import pytest

from pmo.accounts.models import Role
from tests.documents.helpers import docx, pdf

from .conftest import ARTIFACTS, login, logout

pytestmark = pytest.mark.browser


def test_officer_publishes_two_versions_and_a_body_downloads_both(page, new_page, live_server):
    officer = live_server.make_user(Role.MINISTRY_OFFICER, ministry="mhlw")
    staff = live_server.make_user(Role.BODY_STAFF, "012033")
    login(page, officer.login_id)
    page.get_by_role("link", name="文書", exact=True).first.click()
    page.get_by_role("link", name="文書を登録する").click()
    page.get_by_label("ファイル").set_input_files({"name": "介護保険システム改修の手引き.pdf", "mimeType": "application/pdf",
                                                   "buffer": pdf("first edition")})
    page.get_by_label("タイトル").fill("介護保険システム改修の手引き")
    page.get_by_label("概要").fill("第1号被保険者の資格取得届に個人番号欄を追加する改修の留意点")
    page.get_by_label("分野").select_option(label="介護保険")
    page.get_by_label("登録と同時に公開する").check()
    page.get_by_role("button", name="登録する").click()
    assert "公開しました" in page.locator(".alert--success").inner_text()

    page.get_by_label("新しいファイル").set_input_files({
        "name": "介護保険システム改修の手引き_第2版.docx",
        "mimeType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "buffer": docx("第2版 別表の誤りを修正")})
    page.get_by_label("変更内容").fill("別表の誤りを修正")
    page.get_by_role("button", name="新しい版を登録する").click()
    assert "第2版を登録しました" in page.locator(".alert--success").inner_text()
    logout(page)

    body = new_page()
    login(body, staff.login_id)
    body.screenshot(path=str(ARTIFACTS.mkdir(exist_ok=True) or ARTIFACTS / "info_home_feed_unread.png"), full_page=True)
    feed = body.locator("section.panel", has_text="新着・更新された文書")
    row = feed.locator("li", has_text="介護保険システム改修の手引き")
    assert "未読" in row.inner_text()
    row.get_by_role("link").click()
    table = body.locator("table.doc-versions")
    assert "最新版" in table.locator("tr", has_text="第2版").inner_text()
    names = []
    for label in ("介護保険システム改修の手引き_第2版.docx", "介護保険システム改修の手引き.pdf"):
        with body.expect_download() as info:
            table.get_by_role("link", name=label).click()
        names.append(info.value.suggested_filename)
    assert names == ["介護保険システム改修の手引き_第2版.docx", "介護保険システム改修の手引き.pdf"]
    ARTIFACTS.mkdir(exist_ok=True)
    body.screenshot(path=str(ARTIFACTS / "info_document_versions_as_body.png"), full_page=True)
    body.goto("/")
    body.screenshot(path=str(ARTIFACTS / "info_home_feed_after_reading.png"), full_page=True)
    assert "未読" not in body.locator("section.panel", has_text="新着・更新された文書").locator(
        "li", has_text="介護保険システム改修の手引き").inner_text()


def test_a_question_is_answered_turned_into_a_faq_and_found_by_search(page, new_page, live_server):
    officer = live_server.make_user(Role.MINISTRY_OFFICER, ministry="mhlw")
    staff = live_server.make_user(Role.BODY_STAFF, "012033")
    login(page, staff.login_id)
    page.get_by_role("link", name="FAQ・問い合わせ").first.click()
    page.get_by_role("link", name="問い合わせる").click()
    page.get_by_label("件名").fill("中間サーバーの調達について")
    page.get_by_label("質問の内容").fill("中間サーバーは自前で調達する必要がありますか。小樽市では予算要求の時期が迫っています。")
    suggestions = page.locator(".faq-suggest")
    suggestions.wait_for(state="visible")
    page.screenshot(path=str(ARTIFACTS.mkdir(exist_ok=True) or ARTIFACTS / "info_inquiry_form_suggestions.png"), full_page=True)
    assert "中間サーバーは自前で調達する必要がありますか" in suggestions.inner_text()
    page.get_by_label("件名").fill("中間サーバー接続端末の台数の決め方")
    page.get_by_label("質問の内容").fill("庁内に置く中間サーバー接続端末は何台用意すればよいですか。小樽市の窓口は3か所です。")
    page.get_by_role("button", name="送信する").click()
    assert "問い合わせを送信しました" in page.locator(".alert--success").inner_text()
    inquiry_url = page.url
    logout(page)

    desk = new_page()
    login(desk, officer.login_id)
    desk.goto("/faq/inquiries/")
    desk.get_by_role("link", name="中間サーバー接続端末の台数の決め方").first.click()
    desk.get_by_role("textbox", name="回答").fill("小樽市の窓口の数と情報照会の件数を目安に、業務に支障のない台数を用意してください。")
    desk.get_by_role("button", name="回答を送信する").click()
    desk.get_by_role("link", name="この回答をFAQにする").click()
    assert "小樽市" not in desk.locator("#answer_html").input_value()
    desk.locator("#question").fill("中間サーバー接続端末は何台用意すればよいですか。")
    desk.get_by_role("button", name="承認してFAQとして公開する").click()
    assert "FAQとして公開しました" in desk.locator(".alert--success").inner_text()

    login(page, staff.login_id)
    page.goto(inquiry_url)
    assert "業務に支障のない台数" in page.locator(".inquiry-answer").inner_text()
    page.get_by_role("searchbox", name="検索語").fill("接続端末 台数")
    page.get_by_role("button", name="検索", exact=True).first.click()
    hit = page.locator("article.hit", has=page.locator("h3", has_text="中間サーバー接続端末は何台用意すればよいですか"))
    assert hit.count() == 1
    assert "FAQ" in hit.locator(".hit__kind").inner_text()
    assert "<mark>" in hit.inner_html()
    # The asker's own answered inquiry is found too; another body would not see it.
    assert page.locator("article.hit", has=page.locator("h3", has_text="中間サーバー接続端末の台数の決め方")).count() == 1
