"""Users, their server-side sessions, login attempts and API tokens."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pmo.core.types import created_dt, intpk
from pmo.db import Base
from pmo.orgs.models import Body, Ministry


class Role(enum.Enum):
    BODY_STAFF = "body_staff"
    BODY_ADMIN = "body_admin"
    PREFECTURE_STAFF = "prefecture_staff"
    MINISTRY_OFFICER = "ministry_officer"
    FINANCE_OFFICER = "finance_officer"
    SYSTEM_ADMIN = "system_admin"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.BODY_STAFF: "団体担当職員",
    Role.BODY_ADMIN: "団体管理者（番号制度主管課）",
    Role.PREFECTURE_STAFF: "都道府県 市町村支援担当",
    Role.MINISTRY_OFFICER: "府省担当官",
    Role.FINANCE_OFFICER: "補助金担当",
    Role.SYSTEM_ADMIN: "システム管理者",
}


class User(Base):
    """One named person (no shared IDs); belongs to a body or to a ministry."""

    __tablename__ = "users"

    id: Mapped[intpk]
    login_id: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[Role]
    body_id: Mapped[int | None] = mapped_column(ForeignKey("bodies.id"), index=True)
    ministry_id: Mapped[int | None] = mapped_column(ForeignKey("ministries.id"))
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(default=True)
    initial_password_expires_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    password_changed_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    is_active: Mapped[bool] = mapped_column(default=True)
    disabled_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    locked_until_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_dt: Mapped[created_dt]
    version: Mapped[int] = mapped_column(default=1)

    body: Mapped[Body | None] = relationship()
    ministry: Mapped[Ministry | None] = relationship()

    __mapper_args__ = {"version_id_col": version}


class UserSession(Base):
    """A login session held on the server, so logout and disabling end every copy of the cookie."""

    __tablename__ = "user_sessions"

    id: Mapped[intpk]
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_seen_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(40))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    # Whether the login passed the second factor (AUTH-05); a session without it does not count
    # for a user who must use MFA (role changed, or enforcement switched on, while logged in).
    mfa_verified: Mapped[bool] = mapped_column(default=False)
    # The last time the user proved who they are again (password, and code if enrolled): SESS-06.
    reauth_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class LoginAttempt(Base):
    """A login try, counted in a sliding window for throttling (AUTH-02)."""

    __tablename__ = "login_attempts"

    id: Mapped[intpk]
    login_id: Mapped[str] = mapped_column(String(64), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    success: Mapped[bool]
    attempted_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    # "password" or "totp" (the second step): each is throttled on its own counters.
    kind: Mapped[str] = mapped_column(String(10), default="password")


class ApiToken(Base):
    """A personal API token; only its hash is kept, and it acts with its owner's permissions."""

    __tablename__ = "api_tokens"

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(12))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_used_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    expires_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class MfaCredential(Base):
    """A user's TOTP authenticator (RFC 6238). The secret is kept encrypted and never shown again
    after enrolment; ``last_step`` is the last accepted time-step, so a code cannot be replayed."""

    __tablename__ = "mfa_credentials"

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    secret_enc: Mapped[str] = mapped_column(String(300))
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    confirmed_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_step: Mapped[int | None]
    # A replacement authenticator waiting for its first code (changing one's own app).
    pending_secret_enc: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[User] = relationship()


class MfaRecoveryCode(Base):
    """A single-use recovery code, kept only as a hash."""

    __tablename__ = "mfa_recovery_codes"

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
