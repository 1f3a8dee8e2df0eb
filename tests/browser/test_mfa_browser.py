"""AUTH-05 on screen: a privileged user's first login enrols an authenticator from the server-drawn QR
code, sees the recovery codes once, and later logs in with a code."""

from __future__ import annotations

import re

import pyotp
import pytest

from pmo.accounts.models import Role

from .conftest import LIVE_PASSWORD, login, logout

pytestmark = pytest.mark.browser


def test_first_login_enrols_then_the_code_is_asked(page, live_server):
    officer = live_server.make_user(Role.MINISTRY_OFFICER, ministry="mic", mfa=False)
    page.goto("/login")
    page.get_by_label("ログインID").fill(officer.login_id)
    page.get_by_label("パスワード").fill(LIVE_PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/login/mfa/setup")
    assert page.get_by_role("heading", level=1).inner_text() == "二要素認証の設定"
    qr = page.locator(".mfa-qr svg")
    assert qr.is_visible() and qr.bounding_box()["width"] >= 150
    page.screenshot(path="test-artifacts/mfa_enrolment.png", full_page=True)
    secret = page.get_by_label("セットアップキー").inner_text().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    page.goto("/")  # no page before enrolment
    assert page.url.endswith("/login") or "/login?" in page.url
    page.goto("/login/mfa/setup")
    page.get_by_label("確認コード").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="登録する").click()
    assert "二要素認証を設定しました" in page.locator("main").inner_text()
    codes = page.locator(".recovery-codes .secret").all_inner_texts()
    assert len(codes) == 10
    page.screenshot(path="test-artifacts/mfa_recovery_codes.png", full_page=True)
    page.get_by_role("link", name="控えました。続ける").click()
    assert page.get_by_role("heading", level=1).inner_text().startswith("ようこそ")
    logout(page)

    # the next login asks for the code; a recovery code works in its place, once
    page.get_by_label("ログインID").fill(officer.login_id)
    page.get_by_label("パスワード").fill(LIVE_PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/login/mfa")
    page.get_by_label("確認コード").fill("000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.get_by_role("button", name="確認する").click()
    assert "確認コードが正しくありません" in page.locator(".error-summary").inner_text()
    page.get_by_label("確認コード").fill(codes[0])
    page.get_by_role("button", name="確認する").click()
    assert page.get_by_role("heading", level=1).inner_text().startswith("ようこそ")
    page.get_by_role("link", name=officer.display_name).click()
    page.get_by_role("link", name="二要素認証").click()
    assert "設定済み" in page.locator("main").inner_text()
    assert "9個" in page.locator("main").inner_text()


def test_an_enrolled_user_logs_in_with_a_code(page, live_server):
    admin = live_server.make_user(Role.SYSTEM_ADMIN, ministry="cas")
    login(page, admin.login_id)
    assert page.get_by_role("heading", level=1).inner_text().startswith("ようこそ")
