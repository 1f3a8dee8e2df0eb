"""Who is asking: the server-side session or a Bearer token, turned into an Actor on every request.

Each view declares a permission with ``@require`` or is listed as public with ``@public``; a test
walks the URL map and fails on a view that does neither.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Callable, TypeVar

from flask import Flask, abort, current_app, flash, g, redirect, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user
from werkzeug.wrappers import Response

from pmo.accounts import mfa_service
from pmo.accounts import service as accounts
from pmo.accounts.models import User, UserSession
from pmo.accounts.permissions import Actor, Permission, can
from pmo.db import get_session

login_manager = LoginManager()
F = TypeVar("F", bound=Callable[..., Any])

# Endpoints an anonymous visitor may reach. Everything else must declare a permission.
PUBLIC_ENDPOINTS: set[str] = {"static"}
# Endpoints a logged-in user reaches before changing an initial password.
PASSWORD_CHANGE_ALLOWED = {"accounts.change_password", "accounts.logout", "static", "accounts.login"}


class PortalUser(UserMixin):
    """The logged-in user as flask-login sees it, carrying the Actor read from the database."""

    def __init__(self, user: User, sid: str | None, session_row: UserSession | None) -> None:
        self.user = user
        self.sid = sid
        self.session_row = session_row
        self.actor: Actor = accounts.actor_for(user)

    def get_id(self) -> str:
        return str(self.user.id)


def public(view: F) -> F:
    """Mark a view as reachable without login."""
    view._pmo_public = True  # type: ignore[attr-defined]
    return view


def require(permission: Permission | None) -> Callable[[F], F]:
    """Gate a view: logged in, and holding ``permission`` somewhere (scope is checked by the service).

    ``require(None)`` means any logged-in user.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                if request.path.startswith("/api/"):
                    abort(401)
                expired = {"expired": "1"} if g.get("session_expired") else {}
                return redirect(url_for("accounts.login", next=request.full_path.rstrip("?"), **expired))
            if permission is not None and not can(current_actor(), permission) and not _holds_anywhere(permission):
                from pmo.audit import service as audit

                audit.record(get_session(), current_actor(), "authz.denied", outcome="denied",
                             target_type="endpoint", target_id=request.endpoint, detail=str(permission))
                get_session().commit()
                abort(403)
            return view(*args, **kwargs)

        wrapped._pmo_permission = permission  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


def _holds_anywhere(permission: Permission) -> bool:
    from pmo.accounts.permissions import scope_of

    actor = current_actor()
    return scope_of(actor, permission) is not None and actor.body is not None


def fresh_required(
    what: str, back: Callable[..., str] | None = None, when: Callable[..., bool] | None = None,
) -> Callable[[F], F]:
    """Refuse a sensitive action until the user re-authenticates (SESS-06).

    The login itself counts when it is at most REAUTH_MINUTES old; otherwise nothing is done and the
    user is sent to the re-authentication page (password, and code when enrolled) and back. ``what``
    names the action in the Japanese message; ``when`` (given the view's arguments) limits the check
    to the requests that need it (an admin-level role, an export of every body); ``back`` is where
    the user returns, by default the same URL (the form again, for a POST).
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if (when is None or when(**kwargs)) and not login_is_fresh():
                return _ask_reauth(what, back(**kwargs) if back else None)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def login_is_fresh() -> bool:
    """Whether the user logged in or re-authenticated within REAUTH_MINUTES (an API token never is)."""
    from pmo.core import clock

    row = current_user.session_row if current_user.is_authenticated else None
    return mfa_service.is_fresh(row, clock.now(), current_app.config["REAUTH_MINUTES"])


def _ask_reauth(what: str, back: str | None) -> Response:
    """Say why and send the user to re-authenticate, then to ``back``; nothing is written."""
    minutes = current_app.config["REAUTH_MINUTES"]
    message = (f"{what}には本人確認（再認証）が必要です。ログインまたは前回の本人確認から{minutes}分を"
               "過ぎているため、パスワード（登録済みなら確認コードも）をもう一度入力してください。")
    if request.method != "GET" or back is not None:
        kept = "（入力内容は保存されていません）" if request.method != "GET" else ""
        message += f"{what}はまだ行っていません{kept}。本人確認の後、もう一度操作してください。"
    if back is None:
        back = request.full_path.rstrip("?") if request.method == "GET" else request.path
    flash(message, "warning")
    return redirect(url_for("accounts.reauth", next=back))


def spans_every_body(permission: Permission) -> Callable[..., bool]:
    """For ``fresh_required(when=...)``: the actor's ``permission`` reaches every body (a national export)."""

    def check(**_: Any) -> bool:
        from pmo.accounts.permissions import visible_prefecture

        return visible_prefecture(current_actor(), permission) is True

    return check


def mfa_settings() -> mfa_service.MfaSettings:
    cfg = current_app.config
    keys = [cfg["MFA_ENCRYPTION_KEY"]] if cfg.get("MFA_ENCRYPTION_KEY") else [
        cfg["SECRET_KEY"], *(cfg.get("SECRET_KEY_FALLBACKS") or [])
    ]
    return mfa_service.MfaSettings(
        enforce=bool(cfg["MFA_ENFORCE"]), staff_too=bool(cfg["MFA_FOR_STAFF"]), keys=keys,
        issuer=cfg["MFA_ISSUER"],
        throttle=accounts.LoginSettings(
            window=dt.timedelta(minutes=cfg["LOGIN_WINDOW_MINUTES"]),
            max_per_user=cfg["MFA_MAX_FAILURES_PER_USER"], max_per_ip=cfg["MFA_MAX_FAILURES_PER_IP"],
        ),
    )


def current_actor() -> Actor:
    """The Actor of the request; only call behind ``@require``."""
    return current_user.actor  # type: ignore[no-any-return]


def client_ip() -> str:
    """The client address; X-Forwarded-For is trusted only through ProxyFix (TRUSTED_PROXIES)."""
    return request.remote_addr or "-"


def _load_request_user(req: Any) -> PortalUser | None:
    db = get_session()
    header = req.headers.get("Authorization", "")
    if req.path.startswith("/api/"):
        if header.startswith("Bearer "):
            user = accounts.user_for_token(db, header[7:].strip())
            if user is not None:
                g.via_token = True
                db.commit()
                return PortalUser(user, None, None)
        return None
    sid = session.get("sid")
    if not sid:
        return None
    cfg = current_app.config
    result = accounts.load_session(
        db,
        sid,
        idle=dt.timedelta(minutes=cfg["SESSION_IDLE_MINUTES"]),
        absolute=dt.timedelta(hours=cfg["SESSION_ABSOLUTE_HOURS"]),
        touch=dt.timedelta(seconds=cfg["SESSION_TOUCH_SECONDS"]),
    )
    if isinstance(result, str):
        db.commit()
        session.clear()
        if result in ("idle", "absolute"):
            g.session_expired = True
        return None
    user, row = result
    if not row.mfa_verified and mfa_service.is_required(user, mfa_settings()):
        # A session opened without the second factor no longer counts once the user must use it
        # (role raised, or enforcement switched on): log in again, with MFA (AUTH-05).
        accounts.end_session(db, sid, "mfa_required")
        db.commit()
        session.clear()
        return None
    if db.dirty:
        db.commit()
    return PortalUser(user, sid, row)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.request_loader(_load_request_user)
    login_manager.login_view = "accounts.login"
    accounts.limit_password_hashing(int(app.config.get("PASSWORD_HASH_CONCURRENCY", 2)))

    @app.context_processor
    def _mfa_notice() -> dict[str, Any]:
        # The local demo runs without MFA enforcement (production refuses it): say so on every page.
        return {"mfa_off": not app.config["MFA_ENFORCE"]}

    @app.before_request
    def _force_password_change() -> Any:
        if request.endpoint in PASSWORD_CHANGE_ALLOWED or request.path.startswith("/api/"):
            return None
        if current_user.is_authenticated and current_user.user.must_change_password:
            return redirect(url_for("accounts.change_password"))
        return None
