"""Account use cases: log in and out, server-side sessions, issuing and disabling accounts, API tokens.

Every function takes the session (and the acting user where one acts), flushes, never commits, and
writes its audit entry in the same transaction as the change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import threading
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload

from pmo.accounts import rules
from pmo.accounts.models import ApiToken, LoginAttempt, Role, User, UserSession
from pmo.accounts.permissions import (
    GRANTABLE_ROLES,
    Actor,
    BodyRef,
    Permission,
    can,
    visible_prefecture,
)
from pmo.audit import service as audit
from pmo.core import clock
from pmo.core.errors import NotFound, PermissionDenied, Problem, RateLimited, ValidationFailed
from pmo.orgs.models import Body, BodyKind

_hasher = PasswordHasher()
# Verified against for unknown login IDs, so that both failures take the same time (AUTH-01).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
LOGIN_FAILED_MESSAGE = "ログインIDまたはパスワードが正しくありません。"
THROTTLED_MESSAGE = "ログインの試行回数が上限を超えました。しばらく時間をおいてから再度お試しください。"
LOGIN_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
GENERIC_LOGIN_IDS = re.compile(r"^(admin|user|guest|test|soumu|somu|jinji|kikaku|joho|tanto|staff|pmo)\d*$")


def use_password_hasher(hasher: PasswordHasher) -> None:
    """Swap the hasher: the test suite uses cheap argon2 parameters; the portal keeps argon2's defaults."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


# Each argon2 computation takes 64 MiB (argon2's default memory cost) for its duration. A worker
# with 8 threads answering 8 logins at once would hold 512 MiB; more parallel hashes than cores
# finish no sooner anyway. So a process computes at most this many at a time; the others wait.
_hash_slots = threading.BoundedSemaphore(2)


def limit_password_hashing(concurrent: int) -> None:
    """Set how many argon2 computations one process runs at once (PMO_PASSWORD_HASH_CONCURRENCY)."""
    global _hash_slots
    _hash_slots = threading.BoundedSemaphore(max(1, int(concurrent)))


def hash_password(password: str) -> str:
    """Hash with argon2id and a per-user salt."""
    with _hash_slots:
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        with _hash_slots:
            return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def actor_for(user: User) -> Actor:
    """Build the Actor from the database row (never from cookie claims)."""
    body = None
    if user.body is not None:
        body = body_ref(user.body)
    return Actor(
        user_id=user.id, login_id=user.login_id, role=user.role, body=body, ministry_id=user.ministry_id
    )


def body_ref(body: Body) -> BodyRef:
    return BodyRef(
        id=body.id,
        code=body.code,
        prefecture_code=body.prefecture_code,
        is_prefecture=body.kind is BodyKind.PREFECTURE,
    )


# --- login, throttling -------------------------------------------------------------------------


class LoginFailed(Exception):
    def __init__(self, message: str, throttled: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.throttled = throttled


@dataclass(frozen=True)
class LoginSettings:
    window: dt.timedelta
    max_per_user: int
    max_per_ip: int


def normalize_login_id(login_id: str) -> str:
    return unicodedata.normalize("NFKC", login_id or "").strip().lower()[:64]


def throttle_state(
    session: Session, login_id: str, ip: str, settings: LoginSettings, kind: str = "password"
) -> rules.ThrottleState:
    """Failures in the window for this account and this address; ``kind`` is "password" or "totp"."""
    since = clock.now() - settings.window
    user_failures = session.scalar(
        select(func.count()).where(
            LoginAttempt.login_id == login_id, LoginAttempt.success.is_(False), LoginAttempt.attempted_dt >= since,
            LoginAttempt.kind == kind,
        )
    )
    ip_failures = session.scalar(
        select(func.count()).where(
            LoginAttempt.ip == ip, LoginAttempt.success.is_(False), LoginAttempt.attempted_dt >= since,
            LoginAttempt.kind == kind,
        )
    )
    return rules.ThrottleState(user_failures or 0, ip_failures or 0)


def authenticate(session: Session, login_id: str, password: str, ip: str, settings: LoginSettings) -> User:
    """Check a login; raise LoginFailed with the same message for unknown user and wrong password."""
    login_id = normalize_login_id(login_id)
    state = throttle_state(session, login_id, ip, settings)
    user = session.scalar(select(User).where(User.login_id == login_id))
    if rules.is_throttled(state, settings.max_per_user, settings.max_per_ip):
        # Still verify, so a throttled answer takes as long as any other.
        verify_password(_DUMMY_HASH, password)
        session.add(LoginAttempt(login_id=login_id, ip=ip, success=False, attempted_dt=clock.now()))
        audit.record(
            session, None, "auth.login_throttled", outcome="denied", actor_login=login_id,
            target_type="users", target_id=user.id if user else None,
            target_body_code=user.body.code if user and user.body else None,
            detail=f"failures user={state.user_failures} ip={state.ip_failures}",
        )
        raise LoginFailed(THROTTLED_MESSAGE, throttled=True)
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    expired_initial = bool(
        user and user.must_change_password and user.initial_password_expires_dt
        and _aware(user.initial_password_expires_dt) < clock.now()
    )
    if not ok or user is None or not user.is_active or expired_initial:
        session.add(LoginAttempt(login_id=login_id, ip=ip, success=False, attempted_dt=clock.now()))
        reason = "unknown_user" if user is None else "bad_password" if not ok else (
            "disabled" if not user.is_active else "initial_password_expired"
        )
        audit.record(
            session, None, "auth.login_failed", outcome="failure", actor_login=login_id,
            target_type="users", target_id=user.id if user else None,
            target_body_code=user.body.code if user and user.body else None, detail=reason,
        )
        if state.user_failures + 1 == settings.max_per_user and user is not None:
            audit.record(
                session, None, "auth.account_locked", outcome="denied", actor_login=login_id,
                target_type="users", target_id=user.id,
                target_body_code=user.body.code if user.body else None,
                detail="too many failures; notify the user and the body admin",
            )
        raise LoginFailed(LOGIN_FAILED_MESSAGE)
    session.add(LoginAttempt(login_id=login_id, ip=ip, success=True, attempted_dt=clock.now()))
    # A plain UPDATE: the login time is not an edit of the account, so it must not bump the row's
    # version (two logins at once, or an admin editing the account, would otherwise collide).
    session.execute(
        update(User).where(User.id == user.id).values(last_login_dt=clock.now()),
        execution_options={"synchronize_session": False},
    )
    return user


def unlock_account(session: Session, actor: Actor, user_id: int) -> None:
    """Clear an account's recent failures so it can log in again at once (admin unlock)."""
    user = get_manageable_user(session, actor, user_id)
    session.execute(
        update(LoginAttempt).where(LoginAttempt.login_id == user.login_id, LoginAttempt.success.is_(False))
        .values(success=True)
    )
    audit.record(session, actor, "account.unlocked", target=user, target_body_code=_code(user))


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


# --- sessions ------------------------------------------------------------------------------------


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start_session(
    session: Session, user: User, ip: str | None, user_agent: str | None, mfa_verified: bool = False
) -> str:
    """Open a server-side session; return the secret session id for the cookie."""
    sid = secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        UserSession(
            sid_hash=_sid_hash(sid), user_id=user.id, created_dt=now, last_seen_dt=now,
            ip=ip, user_agent=(user_agent or "")[:300], mfa_verified=mfa_verified,
        )
    )
    audit.record(session, actor_for(user), "auth.login", target=user, target_body_code=_code(user),
                 detail="with second factor" if mfa_verified else None)
    return sid


def load_session(
    session: Session, sid: str, idle: dt.timedelta, absolute: dt.timedelta, touch: dt.timedelta
) -> tuple[User, UserSession] | str:
    """Return the live session's user, or why there is none ('missing', 'ended', 'idle', 'absolute', 'disabled').

    Every request calls this: the session, its user, the user's body and its prefecture (the page
    header shows 北海道小樽市) come in one query.
    """
    row = session.scalar(select(UserSession).where(UserSession.sid_hash == _sid_hash(sid))
                         .options(joinedload(UserSession.user).joinedload(User.body).joinedload(Body.prefecture)))
    if row is None:
        return "missing"
    if row.ended_dt is not None:
        return "ended"
    now = clock.now()
    why = rules.session_expired(now, _aware(row.created_dt), _aware(row.last_seen_dt), idle, absolute)
    if why:
        row.ended_dt, row.end_reason = now, why
        return why
    user = row.user
    if not user.is_active:
        row.ended_dt, row.end_reason = now, "disabled"
        return "disabled"
    if now - _aware(row.last_seen_dt) >= touch:
        row.last_seen_dt = now
    return user, row


def end_session(session: Session, sid: str, reason: str = "logout") -> User | None:
    row = session.scalar(select(UserSession).where(UserSession.sid_hash == _sid_hash(sid)))
    if row is None or row.ended_dt is not None:
        return None
    row.ended_dt, row.end_reason = clock.now(), reason
    if reason == "logout":
        audit.record(session, actor_for(row.user), "auth.logout", target=row.user, target_body_code=_code(row.user))
    return row.user


def end_all_sessions(session: Session, user: User, reason: str, keep_sid: str | None = None) -> int:
    """End every open session of ``user`` (except ``keep_sid``); return how many."""
    stmt = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_dt.is_(None))
    if keep_sid:
        stmt = stmt.where(UserSession.sid_hash != _sid_hash(keep_sid))
    result = session.execute(stmt.values(ended_dt=clock.now(), end_reason=reason))
    return result.rowcount or 0


def open_sessions(session: Session, user: User) -> list[UserSession]:
    return list(
        session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_dt.is_(None))
            .order_by(UserSession.last_seen_dt.desc())
        )
    )


def end_own_session(session: Session, actor: Actor, session_id: int) -> None:
    row = session.get(UserSession, session_id)
    if row is None or row.user_id != actor.user_id or row.ended_dt is not None:
        raise NotFound("セッションが見つかりません。")
    row.ended_dt, row.end_reason = clock.now(), "ended_by_user"
    audit.record(session, actor, "auth.session_ended", target=row, target_body_code=actor.body.code if actor.body else None)


# --- passwords -----------------------------------------------------------------------------------


def _context_words(user: User) -> list[str]:
    words = [user.login_id, user.display_name, user.email.split("@")[0]]
    if user.body is not None:
        words += [user.body.name, user.body.code]
    return words


def change_password(
    session: Session, user: User, current: str, new: str, policy: rules.PasswordPolicy, keep_sid: str | None
) -> None:
    """Change the user's own password; needs the current one; ends the user's other sessions."""
    problems = []
    if not verify_password(user.password_hash, current):
        problems.append(Problem("current_password", "現在のパスワードが正しくありません。"))
    for message in rules.password_problems(new, policy, _context_words(user)):
        problems.append(Problem("new_password", message))
    if new == current or (user.must_change_password and verify_password(user.password_hash, new)):
        problems.append(Problem("new_password", "現在（初期）のパスワードとは異なるものを設定してください。"))
    if problems:
        raise ValidationFailed(problems)
    user.password_hash = hash_password(new)
    user.must_change_password = False
    user.initial_password_expires_dt = None
    user.password_changed_dt = clock.now()
    ended = end_all_sessions(session, user, "password_changed", keep_sid=keep_sid)
    audit.record(
        session, actor_for(user), "account.password_changed", target=user, target_body_code=_code(user),
        detail=f"other sessions ended: {ended}",
    )


# --- issuing and managing accounts ---------------------------------------------------------------


@dataclass(frozen=True)
class AccountInput:
    login_id: str
    display_name: str
    email: str
    role: Role
    body_code: str | None = None
    ministry_code: str | None = None


ACCOUNT_FIELDS = ("login_id", "display_name", "email", "role", "body_id", "ministry_id", "is_active")


def _code(user: User) -> str | None:
    return user.body.code if user.body is not None else None


def _ensure_can_manage(session: Session, actor: Actor, role: Role, body: Body | None) -> None:
    if role not in GRANTABLE_ROLES.get(actor.role, frozenset()):
        raise PermissionDenied("この役割のアカウントを発行する権限がありません。")
    if body is None:
        if not can(actor, Permission.MINISTRY_ACCOUNT_MANAGE):
            raise PermissionDenied("府省のアカウントを管理する権限がありません。")
        return
    if not can(actor, Permission.ACCOUNT_MANAGE, body_ref(body)):
        raise PermissionDenied("他団体のアカウントは管理できません。")


def issue_account(
    session: Session, actor: Actor, data: AccountInput, initial_hours: int
) -> tuple[User, str]:
    """Create an account with a random initial password, shown once and changed at first login."""
    from pmo.orgs.models import Ministry

    problems = []
    login_id = normalize_login_id(data.login_id)
    if not LOGIN_ID_PATTERN.match(login_id):
        problems.append(Problem("login_id", "ログインIDは英小文字・数字・記号(. _ -)の3〜64文字で入力してください。"))
    elif GENERIC_LOGIN_IDS.match(login_id):
        problems.append(Problem("login_id", "共用の名前（soumu01 など）は使えません。個人を特定できるIDにしてください。"))
    elif session.scalar(select(User.id).where(User.login_id == login_id)):
        problems.append(Problem("login_id", "このログインIDは既に使われています。"))
    email = unicodedata.normalize("NFKC", data.email or "").strip().lower()
    if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        problems.append(Problem("email", "メールアドレスの形式が正しくありません。"))
    elif session.scalar(select(User.id).where(func.lower(User.email) == email)):
        problems.append(Problem("email", "このメールアドレスは既に別のアカウントで使われています。"))
    display_name = unicodedata.normalize("NFC", data.display_name or "").strip()
    if not display_name:
        problems.append(Problem("display_name", "氏名を入力してください。"))
    elif len(display_name) > 100:
        problems.append(Problem("display_name", "氏名は100文字以内で入力してください。"))

    body = None
    ministry = None
    national_role = data.role in (Role.MINISTRY_OFFICER, Role.SYSTEM_ADMIN) or (
        data.role is Role.FINANCE_OFFICER and data.ministry_code
    )
    if actor.role is Role.BODY_ADMIN:
        # A body admin always issues for its own body, whatever the form said (AC-05).
        body = session.get(Body, actor.body.id) if actor.body else None
    elif national_role:
        ministry = session.scalar(select(Ministry).where(Ministry.code == (data.ministry_code or "")))
        if ministry is None:
            problems.append(Problem("ministry_code", "所属府省を選択してください。"))
    else:
        body = session.scalar(select(Body).where(Body.code == (data.body_code or "")))
        if body is None:
            problems.append(Problem("body_code", "所属団体の団体コードが見つかりません。"))
    if body is not None and data.role is Role.PREFECTURE_STAFF and body.kind is not BodyKind.PREFECTURE:
        problems.append(Problem("role", "都道府県 市町村支援担当は都道府県に所属する必要があります。"))
    if problems:
        raise ValidationFailed(problems)
    _ensure_can_manage(session, actor, data.role, body)

    password = rules.generate_initial_password()
    user = User(
        login_id=login_id, display_name=display_name, email=email, role=data.role,
        body_id=body.id if body else None, ministry_id=ministry.id if ministry else None,
        password_hash=hash_password(password), must_change_password=True,
        initial_password_expires_dt=clock.now() + dt.timedelta(hours=initial_hours),
    )
    session.add(user)
    session.flush()
    audit.record(
        session, actor, "account.issued", target=user, target_body_code=body.code if body else None,
        after=audit.snapshot(user, ACCOUNT_FIELDS),
    )
    return user, password


def get_manageable_user(session: Session, actor: Actor, user_id: int) -> User:
    """Load a user the actor may manage; other bodies' users are reported as not found (AC-05)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("アカウントが見つかりません。")
    allowed = (
        can(actor, Permission.ACCOUNT_MANAGE, body_ref(user.body))
        if user.body is not None
        else can(actor, Permission.MINISTRY_ACCOUNT_MANAGE)
    )
    if not allowed:
        audit.record(
            session, actor, "authz.denied", outcome="denied", target=user, target_body_code=_code(user),
            detail="manage account",
        )
        raise NotFound("アカウントが見つかりません。")
    return user


def _active_admins(session: Session, body_id: int) -> int:
    return session.scalar(
        select(func.count()).where(User.body_id == body_id, User.role == Role.BODY_ADMIN, User.is_active.is_(True))
    ) or 0


def disable_account(session: Session, actor: Actor, user_id: int, version: int | None = None) -> User:
    """Disable an account (人事異動 etc.) and end all its sessions at once."""
    user = get_manageable_user(session, actor, user_id)
    _check_version(user, version)
    if not user.is_active:
        return user
    if user.role is Role.BODY_ADMIN and user.body_id and _active_admins(session, user.body_id) <= 1:
        raise ValidationFailed([Problem("user", "団体の最後の管理者アカウントは無効にできません。")])
    before = audit.snapshot(user, ACCOUNT_FIELDS)
    user.is_active = False
    user.disabled_dt = clock.now()
    end_all_sessions(session, user, "disabled")
    audit.record(
        session, actor, "account.disabled", target=user, target_body_code=_code(user),
        before=before, after=audit.snapshot(user, ACCOUNT_FIELDS),
    )
    return user


def enable_account(session: Session, actor: Actor, user_id: int, version: int | None = None) -> User:
    user = get_manageable_user(session, actor, user_id)
    _check_version(user, version)
    before = audit.snapshot(user, ACCOUNT_FIELDS)
    user.is_active = True
    user.disabled_dt = None
    audit.record(
        session, actor, "account.enabled", target=user, target_body_code=_code(user),
        before=before, after=audit.snapshot(user, ACCOUNT_FIELDS),
    )
    return user


def change_role(session: Session, actor: Actor, user_id: int, role: Role, version: int | None = None) -> User:
    """Change an account's role within what the actor may grant; never the actor's own (AC-05)."""
    user = get_manageable_user(session, actor, user_id)
    _check_version(user, version)
    if user.id == actor.user_id:
        raise PermissionDenied("自分自身の役割は変更できません。")
    _ensure_can_manage(session, actor, role, user.body)
    if user.role is Role.BODY_ADMIN and role is not Role.BODY_ADMIN and user.body_id:
        if _active_admins(session, user.body_id) <= 1:
            raise ValidationFailed([Problem("role", "団体の最後の管理者の役割は変更できません。")])
    before = audit.snapshot(user, ACCOUNT_FIELDS)
    user.role = role
    audit.record(
        session, actor, "account.role_changed", target=user, target_body_code=_code(user),
        before=before, after=audit.snapshot(user, ACCOUNT_FIELDS),
    )
    return user


def reset_password(session: Session, actor: Actor, user_id: int, initial_hours: int) -> tuple[User, str]:
    """Give an account a new random initial password and end its sessions."""
    user = get_manageable_user(session, actor, user_id)
    password = rules.generate_initial_password()
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.initial_password_expires_dt = clock.now() + dt.timedelta(hours=initial_hours)
    end_all_sessions(session, user, "password_reset")
    audit.record(session, actor, "account.password_reset", target=user, target_body_code=_code(user))
    return user, password


def end_user_sessions(session: Session, actor: Actor, user_id: int) -> int:
    """End every session of a user (全セッション終了)."""
    user = get_manageable_user(session, actor, user_id)
    count = end_all_sessions(session, user, "ended_by_admin")
    audit.record(session, actor, "account.sessions_ended", target=user, target_body_code=_code(user), detail=str(count))
    return count


def _check_version(user: User, version: int | None) -> None:
    from pmo.core.errors import Conflict

    if version is not None and version != user.version:
        raise Conflict("他のユーザーが先に更新しました。画面を再読み込みしてから操作してください。")


def list_users(session: Session, actor: Actor, include_inactive: bool = True) -> list[User]:
    """Return the accounts the actor manages: its own body's, or all for a system admin."""
    reach = visible_prefecture(actor, Permission.ACCOUNT_MANAGE)
    stmt = select(User).order_by(User.body_id.nulls_first(), User.login_id)
    if reach is False:
        raise PermissionDenied("アカウントを管理する権限がありません。")
    if reach is not True:
        stmt = stmt.where(User.body_id == (actor.body.id if actor.body else -1))
    if not include_inactive:
        stmt = stmt.where(User.is_active.is_(True))
    return list(session.scalars(stmt))


def inactive_accounts(session: Session, actor: Actor, days: int) -> list[User]:
    """Accounts unused for ``days`` (棚卸し): candidates to disable."""
    cutoff = clock.now() - dt.timedelta(days=days)
    return [
        u for u in list_users(session, actor, include_inactive=False)
        if _aware(u.last_login_dt or u.created_dt or clock.now()) < cutoff
    ]


# --- API tokens ----------------------------------------------------------------------------------

TOKEN_PREFIX = "pmo_"


def create_api_token(session: Session, actor: Actor, name: str, days: int | None = 365) -> tuple[ApiToken, str]:
    """Create a personal API token; the secret is returned once and only its hash is kept."""
    name = (name or "").strip()[:100]
    if not name:
        raise ValidationFailed([Problem("name", "トークンの用途（名前）を入力してください。")])
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    token = ApiToken(
        user_id=actor.user_id, name=name, prefix=secret[:10], token_hash=_sid_hash(secret), created_dt=now,
        expires_dt=now + dt.timedelta(days=days) if days else None,
    )
    session.add(token)
    session.flush()
    audit.record(session, actor, "api_token.created", target=token, target_body_code=actor.body.code if actor.body else None,
                 after={"name": name, "prefix": token.prefix})
    return token, secret


def revoke_api_token(session: Session, actor: Actor, token_id: int) -> None:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != actor.user_id:
        raise NotFound("トークンが見つかりません。")
    token.revoked_dt = clock.now()
    audit.record(session, actor, "api_token.revoked", target=token, target_body_code=actor.body.code if actor.body else None)


def user_for_token(session: Session, secret: str) -> User | None:
    """Return the active owner of a live token, or None."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _sid_hash(secret)))
    if token is None or token.revoked_dt is not None:
        return None
    now = clock.now()
    if token.expires_dt is not None and _aware(token.expires_dt) < now:
        return None
    if not token.user.is_active:
        return None
    if token.last_used_dt is None or now - _aware(token.last_used_dt) > dt.timedelta(minutes=5):
        token.last_used_dt = now
    return token.user


def list_api_tokens(session: Session, actor: Actor) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == actor.user_id).order_by(ApiToken.id.desc())))


def ensure_rate(count: int, limit: int, message: str) -> None:
    if count >= limit:
        raise RateLimited(message)
