"""Subsidy in the browser: a body applies, its prefecture checks, the ministry approves; a body uploads
two vendors' estimates and sees the flags and the peer charts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pmo.accounts.models import Role
from pmo.subsidy import service
from pmo.subsidy.rules import System

from .conftest import login, logout

pytestmark = pytest.mark.browser

OTARU, HAKODATE, KUSHIRO, OBIHIRO, TOMAKOMAI = "012033", "012025", "012068", "012076", "012131"


def test_body_applies_prefecture_checks_ministry_approves(page, new_page, live_server):
    staff = live_server.make_user(Role.BODY_STAFF, OTARU)
    pref = live_server.make_user(Role.PREFECTURE_STAFF, "010006")
    finance = live_server.make_user(Role.FINANCE_OFFICER, None, "mhlw")

    login(page, staff.login_id)
    page.get_by_role("link", name="補助金").first.click()
    page.get_by_role("link", name="平成27年度事業").click()
    page.get_by_role("link", name="登録・配分・移管").click()
    page.get_by_label("国民健康保険を登録").check()
    page.get_by_label("国民年金を登録").check()
    page.get_by_role("button", name="登録（様式1）を保存する").click()
    assert "登録（様式1）を保存しました" in page.locator("main").inner_text()
    page.get_by_role("button", name="交付申請を作成する").click()
    page.get_by_label("国民健康保険の経費").fill("1,500,000")
    page.get_by_label("国民年金の経費").fill("９００，０００")
    page.get_by_role("button", name="経費を保存して再計算する").click()
    main = page.locator("main").inner_text()
    assert "1,000,000円" in main and "900,000円" in main  # 2/3 × 1,500,000; 10/10 × 900,000
    page.get_by_label("コメント").fill("1次申請を提出します")
    page.get_by_role("button", name="提出する").click()
    assert "「提出」にしました" in page.locator("main").inner_text()
    url = page.url
    logout(page)

    checker = new_page()
    login(checker, pref.login_id)
    checker.goto("/subsidy/")
    checker.get_by_role("link", name="2015年度事業 1次交付申請").first.click()
    assert checker.url == url
    checker.get_by_label("コメント").fill("内容を確認しました")
    checker.get_by_role("button", name="都道府県確認済みにする").click()
    assert "「都道府県確認」にしました" in checker.locator("main").inner_text()

    approver = new_page()
    login(approver, finance.login_id)
    approver.goto(url)
    approver.get_by_role("button", name="承認する").click()
    text = approver.locator("main").inner_text()
    assert "承認済み: 一般分 1,000,000円・国民年金・特別児童扶養手当分 900,000円" in text
    for step in ("提出", "都道府県確認", "承認"):
        assert step in approver.locator("table").last.inner_text()
    approver.screenshot(path="test-artifacts/subsidy_approved.png", full_page=True)


def _peer_estimates(live_server):
    """Three peers of 小樽市's class (10万〜30万) with ordinary rates, made through the service."""
    from sqlalchemy import select

    from pmo.accounts.permissions import Actor
    from pmo.orgs.models import Body

    with live_server.session() as session:
        for code, scale in ((HAKODATE, "1.0"), (KUSHIRO, "1.2"), (OBIHIRO, "0.9"), (TOMAKOMAI, "1.1")):
            body = session.scalar(select(Body).where(Body.code == code))
            actor = Actor(user_id=0, login_id="setup", role=Role.BODY_STAFF, body=service.body_ref(body))
            k = Decimal(scale)
            lines = [
                service.EstimateLineInput("設計", "基本設計", "SE", 1_000_000, "人月", 2 * k, int(2_000_000 * k)),
                service.EstimateLineInput("開発", "検索機能の開発", "PG", 800_000, "人月", 3 * k, int(2_400_000 * k)),
                service.EstimateLineInput("単体テスト", "単体テスト", "PG", 800_000, "人月", 1 * k, int(800_000 * k)),
            ]
            service.create_estimate(session, actor, body, service.EstimateInput(
                System.NATIONAL_HEALTH_INSURANCE, 2014, f"同規模{code}", None, lines))
        session.commit()


def test_body_uploads_two_vendors_and_sees_flags_and_peer_charts(page, live_server, tmp_path):
    _peer_estimates(live_server)
    staff = live_server.make_user(Role.BODY_STAFF, OTARU)
    vendor_a = tmp_path / "a社見積.csv"
    vendor_a.write_text(
        "工程,作業項目,作業者区分,単価,単位,工数,金額\n"
        "設計,基本設計,SE,1000000,人月,2,2000000\n"
        "開発,検索機能の開発,PG,800000,人月,3,2400000\n"
        "設計,システム影響度調査,SE,1000000,人月,1,1000000\n", encoding="utf-8")
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["工程", "作業項目", "作業者区分", "単価", "単位", "工数", "金額"])
    ws.append(["設計", "基本設計", "SE", 2500000, "人月", 4, 10000000])
    ws.append(["開発", "改修", "PG", 900000, "人月", 5, 4000000])
    ws.append(["総合運用テスト", "運用テスト支援", "SE", 1000000, "人月", 1, 1000000])
    ws.append(["開発", "システム改修費一式", "SE", None, None, None, 3000000])
    vendor_b = tmp_path / "b社見積.xlsx"
    wb.save(vendor_b)

    login(page, staff.login_id)
    for vendor, path in (("A情報システム", vendor_a), ("B総研", vendor_b)):
        page.goto(f"/subsidy/bodies/{OTARU}/estimates/new?fy=2014")
        page.get_by_label("システム").select_option("国民健康保険")
        page.get_by_label("事業者名").fill(vendor)
        page.get_by_label("見積明細ファイル（xlsx・CSV）").set_input_files(str(path))
        page.get_by_role("button", name="登録してチェックする").click()
        assert f"{vendor}の見積" in page.locator("main").inner_text()

    text = page.locator("main").inner_text()
    assert "計算不一致" in text and "金額4,000,000円が 単価900,000円 × 工数5人月 = 4,500,000円 と合いません" in text
    assert "年度事業違い" in text and "「総合運用テスト」は平成28年度事業の工程です" in text
    assert "一式計上" in text
    assert "単価が高い" in text and "SEの単価2,500,000円/人月" in text
    assert "総額が高い" in text
    for chart in ("unit_price", "effort", "cost"):
        page.wait_for_selector(f"[data-plotly='{chart}'][data-drawn='1']")
        assert page.locator(f"[data-plotly='{chart}'] .main-svg").count() > 0
    assert page.locator("[data-plotly='cost']").inner_text().count("この見積") == 1
    page.screenshot(path="test-artifacts/subsidy_estimate_b.png", full_page=True)

    page.get_by_role("link", name="事業者を比較（2社）").click()
    table = page.locator("table").inner_text()
    assert "A情報システム" in table and "B総研" in table and "総合運用テスト" in table and "対象外の工程" in table
    page.wait_for_selector("[data-plotly='vendors'][data-drawn='1']")

    page.goto(f"/subsidy/bodies/{OTARU}?fy=2014")
    page.get_by_role("link", name="国民健康保険・A情報システム").click()
    assert "補助対象外" in page.locator("main").inner_text()
    assert "「システム影響度調査」は補助対象外の作業" in page.locator("main").inner_text()
    assert "4,400,000円" in page.locator("main").inner_text()  # eligible: the 影響度調査 line is left out


def test_estimate_with_wrong_columns_is_refused_whole(page, live_server, tmp_path):
    staff = live_server.make_user(Role.BODY_STAFF, "012041")  # 旭川市
    bad = tmp_path / "bad.csv"
    bad.write_text("工程,作業,単価,金額\n設計,基本設計,1000000,1000000\n", encoding="utf-8")
    login(page, staff.login_id)
    page.goto("/subsidy/bodies/012041/estimates/new")
    page.get_by_label("事業者名").fill("C社")
    page.get_by_label("見積明細ファイル（xlsx・CSV）").set_input_files(str(bad))
    page.get_by_role("button", name="登録してチェックする").click()
    error = page.locator(".error-summary").inner_text()
    assert "bad.csv 1行目 列『作業項目』: 列『作業項目』がありません" in error
    assert "想定していない列『作業』があります" in error
    page.goto("/subsidy/bodies/012041?fy=2014")
    assert "見積はまだありません" in page.locator("main").inner_text()
