"""Browser tests: Debian's chromium driven by Playwright against a live portal on its own database.

The live server runs in a thread of the test process with a real committed database (a SQLite file,
or a separate PostgreSQL database beside the test one), so tests create their own uniquely named
users and data. Every test leaves a screenshot in test-artifacts/ to look at.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from pmo import create_app
from pmo.accounts.models import Role
from pmo.cli import upgrade_database
from pmo.paths import data_dir
from tests.conftest import TEST_TOTP_SECRET, next_totp_code
from tests.databases import own_database

CHROMIUM = os.environ.get("PMO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LIVE_PASSWORD = "live-test-password-2015"
LIVE_SECRET_KEY = "b" * 64
_live: dict[str, Any] = {}  # the running live server, for login() to read a user's last TOTP step


class LiveServer:
    def __init__(self, app: Any, url: str) -> None:
        self.app = app
        self.url = url

    def session(self) -> Any:
        """A session on the live database, for setting up and checking data."""
        return self.app.extensions["pmo_db"].session()

    def make_user(self, role: Role, body_code: str | None = None, ministry: str | None = None,
                  must_change: bool = False, password: str = LIVE_PASSWORD, mfa: bool | None = None) -> Any:
        """``mfa``: enrol TEST_TOTP_SECRET (default: for the roles that must use MFA); login() types its codes."""
        from pmo.accounts.mfa import PRIVILEGED_ROLES
        from pmo.accounts.mfa_service import enrol_known_secret
        from pmo.accounts.models import User
        from pmo.accounts.service import hash_password
        from pmo.orgs.models import Body, Ministry

        login_id = f"{role.value.replace('_', '-')}-{secrets.token_hex(3)}"
        with self.session() as session:
            body_id = session.scalar(sa.select(Body.id).where(Body.code == body_code)) if body_code else None
            ministry_id = session.scalar(sa.select(Ministry.id).where(Ministry.code == ministry)) if ministry else None
            user = User(login_id=login_id, display_name=f"画面 {login_id[-6:]}", email=f"{login_id}@example.jp",
                        role=role, body_id=body_id, ministry_id=ministry_id, password_hash=hash_password(password),
                        must_change_password=must_change)
            session.add(user)
            session.flush()
            if mfa if mfa is not None else role in PRIVILEGED_ROLES:
                enrol_known_secret(session, user, TEST_TOTP_SECRET, [LIVE_SECRET_KEY])
            session.commit()
            return user


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("live")
    url = own_database(root, "live")
    upgrade_database(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(root / "instance"), "SECRET_KEY": LIVE_SECRET_KEY,
                      "LOGIN_MAX_FAILURES_PER_IP": 1000})
    from pmo.seeding import run_seed

    with app.extensions["pmo_db"].session() as session:
        run_seed(session, data_dir("seed"))
        session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _live["server"] = LiveServer(app, f"http://127.0.0.1:{server.server_port}")
    yield _live["server"]
    _live.clear()
    server.shutdown()
    app.extensions["pmo_db"].engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        if os.environ.get("PMO_REQUIRE_BROWSER"):
            pytest.fail(f"chromium is required but missing at {CHROMIUM}")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP",
                                  base_url=live_server.url, accept_downloads=True)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    name = request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    except Exception:  # the page may already be closed by the test
        pass
    context.close()


@pytest.fixture
def new_page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """Open further independent browser sessions (another user, another tab with its own cookies)."""
    contexts = []

    def make() -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP",
                                      base_url=live_server.url, accept_downloads=True)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def login(page: Any, login_id: str, password: str = LIVE_PASSWORD) -> None:
    """Log in through the login form, then type the TOTP code when the account has MFA (AUTH-05)."""
    page.goto("/login")
    page.get_by_label("ログインID").fill(login_id)
    page.get_by_label("パスワード").fill(password)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_load_state()
    if page.url.endswith("/login/mfa"):
        from pmo.accounts.models import User

        with _live["server"].session() as session:
            user_id = session.scalar(sa.select(User.id).where(User.login_id == login_id))
            code = next_totp_code(session, user_id)
        page.get_by_label("確認コード").fill(code)
        page.get_by_role("button", name="確認する").click()
        page.wait_for_load_state()


def logout(page: Any) -> None:
    page.get_by_role("button", name="ログアウト").click()
    page.wait_for_url("**/login")


@pytest.fixture
def today() -> dt.date:
    return dt.date.today()
