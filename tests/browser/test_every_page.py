"""Every role visits every page of its navigation, at 1280 px and on a tablet: no error, no CSP
violation or script error in the console, and the basics of JIS X 8341-3 (language, one h1,
every form control labelled, a skip link reached by keyboard, no horizontal scrolling)."""

from __future__ import annotations

import pytest

from pmo.accounts.models import Role

from .conftest import ARTIFACTS, login

pytestmark = pytest.mark.browser

ROLES = [
    (Role.BODY_STAFF, "012033", None),
    (Role.BODY_ADMIN, "012033", None),
    (Role.PREFECTURE_STAFF, "010006", None),
    (Role.MINISTRY_OFFICER, None, "mic"),
    (Role.FINANCE_OFFICER, None, "mhlw"),
    (Role.SYSTEM_ADMIN, None, "cas"),
]

UNLABELLED_CONTROLS = """
() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.type !== 'submit' && el.type !== 'button')
  .filter(el => {
    if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.title) return false;
    if (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)) return false;
    return !el.closest('label');
  })
  .map(el => el.outerHTML.slice(0, 120))
"""


def _check_page(page, path: str, problems: list[str]) -> None:
    response = page.goto(path)
    if response is None or response.status >= 400:
        problems.append(f"{path}: HTTP {response.status if response else 'none'}")
        return
    if page.evaluate("document.documentElement.lang") != "ja":
        problems.append(f"{path}: html lang is not ja")
    h1 = page.locator("h1").count()
    if h1 != 1:
        problems.append(f"{path}: {h1} h1 elements")
    unlabelled = page.evaluate(UNLABELLED_CONTROLS)
    if unlabelled:
        problems.append(f"{path}: unlabelled controls {unlabelled}")
    missing_alt = page.locator("img:not([alt])").count()
    if missing_alt:
        problems.append(f"{path}: {missing_alt} images without alt")
    if page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"):
        if not page.evaluate("!!document.querySelector('.table-wrap, .chart, .js-plotly-plot')"):
            problems.append(f"{path}: the page scrolls sideways")


@pytest.mark.parametrize("role,body,ministry", ROLES, ids=[r[0].value for r in ROLES])
def test_every_navigation_page_is_sound(page, live_server, role, body, ministry):
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(f"{page.url}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: console_errors.append(f"{page.url}: {exc}"))
    user = live_server.make_user(role, body, ministry)
    login(page, user.login_id)

    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "本文へ移動"

    links = page.eval_on_selector_all(".main-nav a", "els => els.map(e => e.getAttribute('href'))")
    assert links, "the role has no navigation"
    problems: list[str] = []
    for href in links:
        _check_page(page, href, problems)

    page.set_viewport_size({"width": 768, "height": 1024})
    for href in links:
        page.goto(href)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"tablet_{role.value}_{href.strip('/').replace('/', '_') or 'home'}.png"))
    assert not problems, "\n".join(problems)
    assert not console_errors, "\n".join(console_errors)
