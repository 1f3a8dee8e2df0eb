"""Body staff enter plans and actuals with 和暦, meet a concurrent edit, and round-trip the Excel sheet."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select

from pmo.accounts.models import Role
from pmo.orgs.models import Body
from pmo.plans.models import Plan

from .conftest import login

pytestmark = pytest.mark.browser


def plan_of(live_server, code, subtask_code):
    from pmo.catalog.models import Subtask

    with live_server.session() as session:
        return session.scalar(select(Plan).join(Body, Body.id == Plan.body_id).join(Subtask, Subtask.id == Plan.subtask_id)
                              .where(Body.code == code, Subtask.code == subtask_code))


def test_staff_enter_a_plan_with_wareki_dates_then_the_actuals(page, live_server):
    user = live_server.make_user(Role.BODY_STAFF, "012025")  # 函館市
    login(page, user.login_id)
    page.get_by_role("navigation", name="メインメニュー").get_by_role("link", name="進捗入力").click()
    assert "函館市の計画・実績" in page.get_by_role("heading", level=1).inner_text()
    page.fill('input[name="I-3__planned_start"]', "H27.4.1")
    page.fill('input[name="I-3__planned_end"]', "平成27年9月30日")
    page.fill('input[name="J-2__planned_start"]', "２０１５年６月")
    page.fill('input[name="J-2__planned_end"]', "H27.9")
    page.get_by_role("button", name="保存する").click()
    assert "保存しました（2件のサブタスク: I-3、J-2）" in page.locator(".alert--success").inner_text()
    plan = plan_of(live_server, "012025", "I-3")
    assert (plan.planned_start, plan.planned_end) == (dt.date(2015, 4, 1), dt.date(2015, 9, 30))

    # the actuals: the completion item appears once the actual end is typed, and is required
    assert page.locator('[data-completion-for="I-3"]').is_hidden()
    page.fill('input[name="I-3__actual_start"]', "H27.4.6")
    page.fill('input[name="I-3__actual_end"]', "H27.9.25")
    assert page.locator('[data-completion-for="I-3"]').is_visible()
    page.get_by_role("button", name="保存する").click()
    assert "完了時には「評価書公表日」の入力が必要です。" in page.locator("main").inner_text()
    assert page.input_value('input[name="I-3__actual_end"]') == "H27.9.25"  # what was typed is kept
    page.fill('input[name="I-3__cf_published_on"]', "平成27年9月30日")
    page.get_by_role("button", name="保存する").click()
    assert "保存しました" in page.locator(".alert--success").inner_text()
    assert page.locator("#row-I-3 .badge--done").inner_text() == "完了"
    plan = plan_of(live_server, "012025", "I-3")
    assert plan.actual_end == dt.date(2015, 9, 25) and plan.version == 2
    page.locator("#row-I-3").scroll_into_view_if_needed()


def test_second_session_gets_the_conflict_screen(page, new_page, live_server):
    first = live_server.make_user(Role.BODY_STAFF, "022012")  # 青森市
    second = live_server.make_user(Role.BODY_STAFF, "022012")
    login(page, first.login_id)
    page.goto("/plans/022012")
    other = new_page()
    login(other, second.login_id)
    other.goto("/plans/022012")
    other.fill('input[name="C-4__planned_end"]', "H27.11.30")
    other.get_by_role("button", name="保存する").click()
    assert "保存しました" in other.locator(".alert--success").inner_text()
    page.fill('input[name="C-4__planned_end"]', "H27.12.25")
    page.get_by_role("button", name="保存する").click()
    conflict = page.locator("#conflict")
    assert "他のユーザーが先に保存しました。何も保存していません。" in conflict.inner_text()
    assert conflict.locator(".theirs").inner_text() == "2015-11-30"
    assert conflict.locator(".yours").inner_text() == "2015-12-25"
    assert plan_of(live_server, "022012", "C-4").planned_end == dt.date(2015, 11, 30)
    page.screenshot(path="test-artifacts/plans_conflict_top.png")


def test_body_downloads_its_sheet_changes_it_and_uploads_it_back(page, live_server, tmp_path):
    user = live_server.make_user(Role.BODY_STAFF, "012033")  # 小樽市
    login(page, user.login_id)
    page.goto("/plans/012033")
    with page.expect_download() as info:
        page.get_by_role("link", name="Excelでダウンロード").click()
    workbook = openpyxl.load_workbook(io.BytesIO(Path(info.value.path()).read_bytes()))
    sheet = workbook["計画・実績"]
    assert [c.value for c in sheet[1]] == ["団体コード", "団体名", "サブタスク", "計画開始日", "計画終了日", "実績開始日",
                                           "実績終了日", "進捗率", "対象外理由", "備考"]
    rows = {r[2].value: r for r in sheet.iter_rows(min_row=2)}
    rows["G-2"][3].value = dt.datetime(2015, 1, 5)
    rows["G-2"][4].value = "H27.3.31"
    rows["D-3"][8].value = "中間サーバー・プラットフォームを利用するため"
    path = tmp_path / "otaru.xlsx"
    workbook.save(path)
    page.get_by_role("link", name="Excel・CSVから取り込む").click()
    page.set_input_files("input[type=file]", str(path))
    page.get_by_role("button", name="内容を確認する").click()
    page.wait_for_url("**/plans/import/*")
    assert "まだ反映していません" in page.locator("main").inner_text()
    assert page.locator(".stat__value").first.inner_text() == "2"  # 新規
    page.get_by_role("button", name="取込を確定する").click()
    assert "取込を確定しました" in page.locator(".alert--success").inner_text()
    assert plan_of(live_server, "012033", "G-2").planned_end == dt.date(2015, 3, 31)
    page.goto("/plans/012033")
    assert page.locator("#row-D-3 .badge").inner_text() == "対象外"


def test_national_download_shows_its_progress(page, live_server):
    user = live_server.make_user(Role.MINISTRY_OFFICER, ministry="mic")
    login(page, user.login_id)
    page.goto("/plans/national")
    progress = page.locator("[data-export-progress]")
    assert progress.is_hidden()
    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("link", name="CSV（UTF-8）").click()
        assert progress.is_visible()
    lines = Path(info.value.path()).read_bytes().decode("utf-8-sig").splitlines()
    assert lines[0].startswith("団体コード,団体名,サブタスク") and len(lines) > 52_000
    progress.get_by_text("ファイルを作成しました").wait_for(timeout=30_000)
    bar = progress.locator("progress")
    assert bar.get_attribute("value") == bar.get_attribute("max")  # every body written
    assert page.url.endswith("/plans/national")  # the page stays; the file downloads
