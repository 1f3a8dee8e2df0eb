"""Fixtures shared by every test: a real database (SQLite or PostgreSQL), per-test isolation in a
rolled-back transaction, the app bound to it, a client that carries CSRF tokens, and users per role.

Choose the database with PMO_TEST_DATABASE_URL (default: a SQLite file in a temporary folder).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher  # noqa: E402
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from pmo import create_app
from pmo.accounts import service as _accounts_service  # noqa: E402
from pmo.accounts.mfa import PRIVILEGED_ROLES
from pmo.accounts.mfa_service import enrol_known_secret
from pmo.accounts.models import Role, User
from pmo.accounts.service import hash_password
from pmo.cli import upgrade_database
from pmo.core import clock
from pmo.db import create_db_engine, make_session_factory
from pmo.orgs.models import Body, Ministry
from pmo.paths import data_dir

# argon2's production cost (64 MiB, 3 passes) would dominate the suite's time; the hashes stay argon2id.
_accounts_service.use_password_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

TEST_PASSWORD = "correct horse battery staple 2015"
SECRET = "t" * 64
# The authenticator of every test user who has one: the fixtures log in with real TOTP codes from it.
TEST_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

# Bodies of SECURITY.md's fixtures, real ones: 市A and 市B in 県X (北海道), 市C in 県Y (青森県).
PREF_X, CITY_A, CITY_B = "010006", "012033", "012025"  # 北海道, 小樽市, 函館市
PREF_Y, CITY_C = "020001", "022012"  # 青森県, 青森市


def database_url(tmp_root: Path) -> str:
    return os.environ.get("PMO_TEST_DATABASE_URL") or f"sqlite:///{tmp_root / 'test.sqlite3'}"


def reset_database(url: str) -> None:
    """Empty the database so migrations start from nothing."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
        return
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return database_url(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[sa.Engine]:
    """Migrate an empty database to head once, and seed every real body and ministry."""
    reset_database(db_url)
    upgrade_database(db_url)
    eng = create_db_engine(db_url)
    from pmo.seeding import run_seed

    with make_session_factory(eng)() as session:
        run_seed(session, data_dir("seed"))
        session.commit()
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One connection with an outer transaction, rolled back after the test."""
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    if outer.is_active:
        outer.rollback()
    conn.close()


@pytest.fixture
def db_session(connection: sa.Connection) -> Iterator[Session]:
    session = make_session_factory(connection)()
    yield session
    session.close()


@pytest.fixture(autouse=True)
def _unfreeze_clock() -> Iterator[None]:
    yield
    clock.freeze(None)


class PortalClient(FlaskClient):
    """A test client over HTTPS (the cookies are Secure and __Host-) that adds CSRF tokens to forms."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_REFERER"] = "https://localhost/"

    def open(self, *args: Any, **kwargs: Any) -> Any:
        # environ_base cannot set the scheme (the builder overrides wsgi.url_scheme): use base_url.
        if args and isinstance(args[0], str) and "://" not in args[0]:
            kwargs.setdefault("base_url", "https://localhost")
        return super().open(*args, **kwargs)

    def csrf_token(self, path: str = "/login") -> str:
        html = self.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', html
        )
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def post_form(self, url: str, data: dict[str, Any] | None = None, token_from: str | None = None,
                  **kwargs: Any) -> Any:
        data = dict(data or {})
        data.setdefault("csrf_token", self.csrf_token(token_from or "/account/password"))
        return self.post(url, data=data, **kwargs)


@pytest.fixture
def app(connection: sa.Connection, tmp_path: Path) -> Flask:
    application = create_app({
        "TESTING": True,
        "DB_BIND": connection,
        "SECRET_KEY": SECRET,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": str(connection.engine.url.render_as_string(hide_password=False)),
    })
    application.test_client_class = PortalClient
    return application


@pytest.fixture
def client(app: Flask) -> PortalClient:
    return app.test_client()  # type: ignore[return-value]


@pytest.fixture
def body(db_session: Session):  # type: ignore[no-untyped-def]
    """Return a body by its code: ``body(CITY_A)``."""

    def get(code: str) -> Body:
        found = db_session.scalar(sa.select(Body).where(Body.code == code))
        assert found is not None, code
        return found

    return get


@pytest.fixture
def make_user(db_session: Session):  # type: ignore[no-untyped-def]
    """Create a user: ``make_user(Role.BODY_STAFF, CITY_A)`` or ``make_user(Role.MINISTRY_OFFICER, ministry="mic")``."""

    def create(role: Role, body_code: str | None = None, ministry: str | None = None,
               password: str = TEST_PASSWORD, must_change: bool = False, login_id: str | None = None,
               mfa: bool | None = None) -> User:
        """``mfa``: enrol TEST_TOTP_SECRET (default: for the roles that must use MFA)."""
        login_id = login_id or f"{role.value.replace('_', '-')}-{secrets.token_hex(3)}"
        body_id = ministry_id = None
        if body_code:
            body_id = db_session.scalar(sa.select(Body.id).where(Body.code == body_code))
        if ministry:
            ministry_id = db_session.scalar(sa.select(Ministry.id).where(Ministry.code == ministry))
        user = User(
            login_id=login_id, display_name=f"テスト {login_id}", email=f"{login_id}@example.jp", role=role,
            body_id=body_id, ministry_id=ministry_id, password_hash=hash_password(password),
            must_change_password=must_change,
        )
        db_session.add(user)
        db_session.flush()
        if mfa if mfa is not None else role in PRIVILEGED_ROLES:
            enrol_known_secret(db_session, user, TEST_TOTP_SECRET, [SECRET])
        db_session.commit()
        return user

    return create


def next_totp_code(session: Session, user_id: int, secret: str = TEST_TOTP_SECRET) -> str:
    """A TOTP code the portal will accept now: of a time-step after the last one used.

    The portal refuses a replayed step (AUTH-05); a test that logs one user in several times within
    30 seconds would run out of steps, so the fixture then moves the user's last step back, as if
    time had passed (test data only: the portal's check is unchanged).
    """
    from pmo.accounts import mfa
    from pmo.accounts.models import MfaCredential

    cred = session.scalar(sa.select(MfaCredential).where(MfaCredential.user_id == user_id)
                          .execution_options(populate_existing=True))
    current = mfa.time_step(clock.now())
    last = cred.last_step if cred is not None else None
    # The current or the next step: both stay valid if the clock crosses a step boundary meanwhile.
    for step in (current, current + 1):
        if last is None or step > last:
            return mfa.code_at(secret, step)
    session.execute(sa.update(MfaCredential).where(MfaCredential.user_id == user_id)
                    .values(last_step=current - 1))
    session.commit()
    return mfa.code_at(secret, current)


def second_step(client: PortalClient, session: Session | None, user: User, response: Any) -> Any:
    """After the password step's ``response``: do the real second step it redirected to, a TOTP code
    (computed from TEST_TOTP_SECRET) or first-time enrolment (reading the setup key off the page)."""
    location = response.headers.get("Location", "")
    if location.endswith("/login/mfa"):
        assert session is not None
        code = next_totp_code(session, user.id)
        response = client.post_form("/login/mfa", {"code": code}, token_from="/login/mfa")
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
    elif location.endswith("/login/mfa/setup"):
        assert session is not None
        page = client.get("/login/mfa/setup").get_data(as_text=True)
        match = re.search(r'<span class="secret"[^>]*>([A-Z2-7 ]+)</span>', page)
        assert match, "no setup key on the enrolment page"
        code = next_totp_code(session, user.id, match.group(1).replace(" ", ""))
        response = client.post_form("/login/mfa/setup", {"code": code}, token_from="/login/mfa/setup")
        assert response.status_code == 200 and "リカバリーコード" in response.get_data(as_text=True)
    return response


def log_in(client: PortalClient, app: Any, login_id: str, password: str = TEST_PASSWORD) -> Any:
    """Log ``client`` in to ``app`` (on a database of its own): the password, then, for a role that
    must use MFA (enrolled with TEST_TOTP_SECRET), a real TOTP code. Returns the last response."""
    response = client.post_form("/login", {"login_id": login_id, "password": password}, token_from="/login")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    if response.headers["Location"].endswith("/login/mfa"):
        with app.extensions["pmo_db"].session() as session:
            user_id = session.scalar(sa.select(User.id).where(User.login_id == login_id))
            code = next_totp_code(session, user_id)
            session.commit()
        response = client.post_form("/login/mfa", {"code": code}, token_from="/login/mfa")
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


class AuthActions:
    def __init__(self, client: PortalClient, make_user: Any, session: Session | None = None) -> None:
        self.client = client
        self.make_user = make_user
        self.session = session

    def login(self, user: User | None = None, role: Role | None = None, body: str | None = None,
              ministry: str | None = None, password: str = TEST_PASSWORD) -> User:
        """Log in as ``user``, or as a new user of ``role`` at ``body`` / ``ministry``."""
        if user is None:
            assert role is not None
            if ministry is None and body is None:
                ministry = "mic" if role in (Role.MINISTRY_OFFICER, Role.FINANCE_OFFICER, Role.SYSTEM_ADMIN) else None
                body = None if ministry else CITY_A
            user = self.make_user(role, body, ministry)
        response = self.client.post_form("/login", {"login_id": user.login_id, "password": password},
                                          token_from="/login")
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        self.second_step(user, response)
        return user

    def second_step(self, user: User, response: Any) -> Any:
        assert self.session is not None or not response.headers.get("Location", "").endswith(
            ("/login/mfa", "/login/mfa/setup")), "AuthActions needs the db session to log in with MFA"
        return second_step(self.client, self.session, user, response)

    def logout(self) -> Any:
        return self.client.post_form("/logout", token_from="/account")


@pytest.fixture
def auth(client: PortalClient, make_user: Any, db_session: Session) -> AuthActions:
    return AuthActions(client, make_user, db_session)
