"""An officer filters the follow-up list and opens cases for two bodies; the body answers; the
prefecture sees it; the officer resolves it; the steering-meeting report downloads and opens."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest

from pmo.accounts.models import Role

from .conftest import ARTIFACTS, login, logout

pytestmark = pytest.mark.browser

D = dt.date
OTARU, HAKODATE, AOMORI, HOKKAIDO = "012033", "012025", "022012", "010006"


def _late_plans(live_server) -> None:
    from tests.delays.factories import add_plan

    with live_server.session() as session:
        from sqlalchemy import select

        from pmo.plans.models import Plan
        from pmo.orgs.models import Body

        have = {code for (code,) in session.execute(select(Body.code).join(Plan, Plan.body_id == Body.id))}
        for code in (OTARU, HAKODATE, AOMORI):
            if code not in have:
                add_plan(session, code, "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 9, 30),
                         vendor="北斗システム")
        session.commit()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"delays_{name}.png"), full_page=True)


def test_follow_up_from_list_to_resolution_and_the_report(page, new_page, live_server):
    _late_plans(live_server)
    officer = live_server.make_user(Role.MINISTRY_OFFICER, ministry="mic")
    login(page, officer.login_id)
    page.goto("/reports/national?as_of=2015-10-15")
    page.locator("[data-figure][data-drawn]").first.wait_for()  # Plotly drew the charts (no inline script)
    page.get_by_label("都道府県", exact=True).select_option(label="北海道")
    page.get_by_label("兆候").select_option(label="完了遅れ")
    page.get_by_role("button", name="絞り込む").click()
    table = page.locator("#followup-table")
    assert "小樽市" in table.inner_text() and "函館市" in table.inner_text()
    assert "青森市" not in table.inner_text()
    shot(page, "1_officer_filtered_list")
    page.get_by_label("小樽市を選択").check()
    page.get_by_label("函館市を選択").check()
    page.get_by_role("button", name="選択した団体のフォローを開始").click()
    assert "対象の団体（2団体）" in page.locator("main").inner_text()
    page.get_by_label("件名").fill("B-2 既存住基システム改修の遅れの確認")
    page.get_by_label("原因の区分").select_option(label="ベンダー")
    page.get_by_label("次回連絡日").fill("2015-10-30")
    page.get_by_label("最初の記録（確認したいこと・依頼事項）").fill("改修の完了見込みと、ベンダーの体制を確認してください。")
    shot(page, "2_open_cases_form")
    page.get_by_role("button", name="フォローを開始する").click()
    assert "2団体のフォローを開始しました" in page.locator(".alert--success").inner_text()
    rows = page.locator("#cases-table tbody tr")
    assert rows.count() == 2

    body = new_page()
    staff = live_server.make_user(Role.BODY_STAFF, OTARU)
    login(body, staff.login_id)
    assert "国からのフォロー" in body.locator("main").inner_text()
    body.get_by_role("navigation", name="メインメニュー").get_by_role("link", name="遅延・フォロー").click()
    body.get_by_role("link", name="B-2 既存住基システム改修の遅れの確認").click()
    assert "B-2 は計画終了日を15日過ぎても完了していません" in body.locator(".signal-summary").inner_text()
    body.get_by_label("回答").fill("ベンダーの要員が不足していました。11月20日に完了する見込みです。")
    body.get_by_role("button", name="回答を記入する").click()
    assert "記録しました" in body.locator(".alert--success").inner_text()
    shot(body, "3_body_answered")

    # A 府省内メモ: the officer sees it marked as internal; the body does not see it at all (AC-06).
    page.goto("/delays/cases")
    page.locator("#cases-table tr", has_text="小樽市").get_by_role("link").first.click()
    page.get_by_label("対応の記録").fill("ベンダー本社に体制の増強を打診済み（省内のみ）。")
    page.get_by_label("府省内メモにする（団体・都道府県には表示しません）").check()
    page.get_by_role("button", name="対応の記録を記入する").click()
    note = page.locator(".timeline__entry--note")
    assert "体制の増強を打診済み" in note.inner_text() and "府省内のみ" in note.inner_text()
    shot(page, "3b_officer_internal_note")
    body.reload()
    assert "11月20日に完了する見込み" in body.locator("#timeline").inner_text()
    assert "体制の増強" not in body.locator("main").inner_text() and body.locator(".timeline__entry--note").count() == 0

    pref = new_page()
    pref_user = live_server.make_user(Role.PREFECTURE_STAFF, HOKKAIDO)
    login(pref, pref_user.login_id)
    pref.goto("/delays/cases")
    assert pref.locator("#cases-table").inner_text().count("B-2 既存住基システム改修の遅れの確認") == 2
    pref.locator("#cases-table").get_by_role("link").filter(has_text="B-2").first.click()
    timeline = pref.locator("#timeline").inner_text()
    assert "団体からの回答" in timeline and "11月20日に完了する見込み" in timeline
    shot(pref, "4_prefecture_sees_answer")

    page.goto("/delays/cases")
    page.locator("#cases-table tr", has_text="小樽市").get_by_role("link").first.click()
    assert "11月20日に完了する見込み" in page.locator("#timeline").inner_text()
    page.get_by_label("対応状況").select_option(label="解決")
    page.get_by_label("記録（任意）").fill("11月20日の完了を確認した。")
    page.get_by_role("button", name="状況を保存する").click()
    assert page.locator("#case-status").inner_text() == "解決"
    assert "状況：対応中 → 解決" in page.locator("#timeline").inner_text()
    shot(page, "5_officer_resolved")

    page.goto("/reports/steering?as_of=2015-10-15")
    assert "重大な遅延のある団体とフォロー状況" in page.locator("main").inner_text()
    shot(page, "6_steering_report")
    with page.expect_download() as info:
        page.get_by_role("link", name="Excel（xlsx）でダウンロード").click()
    download = info.value
    assert download.suggested_filename == "全体推進会議報告_2015-10-15.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(open(download.path(), "rb").read()))
    assert "概要" in book.sheetnames and "作業項目別" in book.sheetnames
    summary = {row[0].value: row[1].value for row in book["概要"].iter_rows(min_row=4)}
    assert summary["基準日"] == "2015-10-15" and summary["フォロー解決"] >= 1
    logout(page)


def test_body_page_draws_the_gantt_and_explains_signals(page, live_server):
    _late_plans(live_server)
    staff = live_server.make_user(Role.BODY_STAFF, AOMORI)
    login(page, staff.login_id)
    page.goto(f"/delays/bodies/{AOMORI}?as_of=2015-10-15")
    page.locator(".chart--gantt[data-drawn]").wait_for()
    assert "B-2 は計画終了日を15日過ぎても完了していません" in page.locator("#signals").inner_text()
    assert page.locator(".chart--gantt .main-svg").count() >= 1
