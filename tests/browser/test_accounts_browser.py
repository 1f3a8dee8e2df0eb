"""Each role logs in, lands on its home page and logs out; a failed login; a body admin issues an account."""

from __future__ import annotations

import re

import pytest

from pmo.accounts.models import Role

from .conftest import LIVE_PASSWORD, login, logout

pytestmark = pytest.mark.browser

ROLE_CASES = [
    (Role.BODY_STAFF, "012033", None, "自団体の計画・実績の入力"),
    (Role.BODY_ADMIN, "012033", None, "アカウントを発行・管理"),
    (Role.PREFECTURE_STAFF, "010006", None, "管下市区町村の進捗"),
    (Role.MINISTRY_OFFICER, None, "mic", "全国の進捗"),
    (Role.FINANCE_OFFICER, None, "mhlw", "国庫補助基準額"),
    (Role.SYSTEM_ADMIN, None, "cas", "府省アカウント"),
]


@pytest.mark.parametrize("role,body,ministry,intro", ROLE_CASES, ids=[c[0].value for c in ROLE_CASES])
def test_each_role_lands_on_its_home_and_logs_out(page, live_server, role, body, ministry, intro):
    user = live_server.make_user(role, body, ministry)
    login(page, user.login_id)
    assert page.get_by_role("heading", level=1).inner_text().startswith("ようこそ")
    assert intro in page.locator("main").inner_text()
    assert role.label in page.locator(".user-menu").inner_text()
    logout(page)
    assert "ログアウトしました" in page.locator("main").inner_text()
    page.goto("/")
    assert page.url.endswith("/login")


def test_failed_login_shows_the_same_message_and_keeps_the_id(page, live_server):
    user = live_server.make_user(Role.BODY_STAFF, "012033")
    login(page, user.login_id, password="wrong password here")
    assert "ログインIDまたはパスワードが正しくありません" in page.locator(".error-summary").inner_text()
    assert page.get_by_label("ログインID").input_value() == user.login_id
    login(page, "nobody-at-all", password="wrong password here")
    assert "ログインIDまたはパスワードが正しくありません" in page.locator(".error-summary").inner_text()


def test_body_admin_issues_an_account_that_must_change_its_password(page, new_page, live_server):
    admin = live_server.make_user(Role.BODY_ADMIN, "012033")
    login(page, admin.login_id)
    page.get_by_role("link", name="アカウント管理").first.click()
    page.get_by_role("link", name="アカウントを発行する").click()
    page.get_by_label("氏名").fill("新任 職員")
    page.get_by_label("ログインID").fill("otaru.shinnin")
    page.get_by_label("メールアドレス").fill("shinnin@city.otaru.example.jp")
    page.get_by_label("役割").select_option("body_staff")
    page.get_by_role("button", name="発行する").click()
    initial = page.locator("#initial-password").inner_text().strip()
    assert re.fullmatch(r"[A-Za-z0-9]{16}", initial)

    staff = new_page()
    login(staff, "otaru.shinnin", initial)
    assert "初期パスワードのままでは利用できません" in staff.locator("main").inner_text()
    staff.goto("/bodies/")
    assert staff.url.endswith("/account/password")
    staff.get_by_label("現在のパスワード").fill(initial)
    staff.locator("#new_password").fill("otaru kanko unga 2015")
    staff.get_by_label("新しいパスワード（確認）").fill("otaru kanko unga 2015")
    staff.get_by_role("button", name="変更する").click()
    assert "パスワードを変更しました" in staff.locator("main").inner_text()
    assert staff.get_by_role("heading", level=1).inner_text().startswith("ようこそ")


def test_form_errors_are_shown_beside_the_field_in_japanese(page, live_server):
    admin = live_server.make_user(Role.BODY_ADMIN, "012033")
    login(page, admin.login_id)
    page.goto("/accounts/users/new")
    page.get_by_label("氏名").fill("名前 だけ")
    page.get_by_label("ログインID").fill("soumu01")
    page.get_by_label("メールアドレス").fill("not-an-address")
    page.get_by_role("button", name="発行する").click()
    login_field = page.locator(".field", has=page.get_by_label("ログインID"))
    assert "共用の名前" in login_field.inner_text()
    assert "形式が正しくありません" in page.locator(".field", has=page.get_by_label("メールアドレス")).inner_text()
    assert page.get_by_label("氏名").input_value() == "名前 だけ"
    assert page.get_by_label("メールアドレス").input_value() == "not-an-address"


def test_live_password_constant_is_what_users_get():
    assert len(LIVE_PASSWORD) >= 8
