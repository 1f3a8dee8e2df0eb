"""Second-factor use cases (AUTH-05, SESS-06): enrol, verify, recovery codes, re-authenticate, reset.

Like every service: takes the session (and the acting user), flushes, never commits, and writes its
audit entry in the same transaction. The TOTP secret and the codes never reach a log or an audit row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from pmo.accounts import mfa, rules
from pmo.accounts.models import LoginAttempt, MfaCredential, MfaRecoveryCode, Role, User, UserSession
from pmo.accounts.permissions import Actor
from pmo.accounts.service import (
    LoginSettings,
    _aware,
    _code,
    actor_for,
    end_all_sessions,
    get_manageable_user,
    hash_password,
    throttle_state,
    verify_password,
)
from pmo.audit import service as audit
from pmo.core import clock
from pmo.core.errors import PermissionDenied, Problem, ValidationFailed

CODE_FAILED_MESSAGE = "確認コードが正しくありません。認証アプリに表示されている6桁の数字を入力してください。"
CODE_REPLAYED_MESSAGE = "この確認コードは既に使われています。次のコードが表示されるまでお待ちください。"
THROTTLED_MESSAGE = "確認コードの試行回数が上限を超えました。しばらく時間をおいてから再度お試しください。"
NO_KEY_MESSAGE = "二要素認証の設定を読み取れません。システム管理者に連絡してください。"


@dataclass(frozen=True)
class MfaSettings:
    enforce: bool  # False only outside production (demo), see pmo/config.py
    staff_too: bool  # body and prefecture staff must use MFA as well
    keys: Sequence[str]  # encryption keys of the secrets, newest first
    issuer: str
    throttle: LoginSettings  # window and failures per account / per address for codes


class MfaFailed(Exception):
    def __init__(self, message: str, throttled: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.throttled = throttled


def is_required(user: User, settings: MfaSettings) -> bool:
    return mfa.mfa_required(user.role, settings.enforce, settings.staff_too)


def credential(session: Session, user: User) -> MfaCredential | None:
    """The user's confirmed authenticator, or None."""
    cred = session.scalar(select(MfaCredential).where(MfaCredential.user_id == user.id))
    return cred if cred is not None and cred.confirmed_dt is not None else None


def recovery_codes_left(session: Session, user: User) -> int:
    return len(_unused_codes(session, user))


def _unused_codes(session: Session, user: User) -> list[MfaRecoveryCode]:
    return list(session.scalars(
        select(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id, MfaRecoveryCode.used_dt.is_(None))
    ))


# --- enrolment ----------------------------------------------------------------------------------


def enrolment_secret(session: Session, user: User, settings: MfaSettings) -> str | None:
    """The secret being enrolled, if one was started and is still readable (reads only).

    For a user who already has an authenticator it is the replacement, which takes effect only once
    a code from the new app is confirmed.
    """
    cred = session.scalar(select(MfaCredential).where(MfaCredential.user_id == user.id))
    if cred is None:
        return None
    token = cred.pending_secret_enc if cred.confirmed_dt is not None else cred.secret_enc
    return mfa.decrypt_secret(token, settings.keys) if token else None


def start_enrolment(session: Session, user: User, settings: MfaSettings) -> str:
    """Begin enrolling an app: a new secret kept encrypted until a code from it is confirmed."""
    secret = mfa.new_secret()
    token = mfa.encrypt_secret(secret, settings.keys)
    cred = session.scalar(select(MfaCredential).where(MfaCredential.user_id == user.id))
    if cred is None:
        session.add(MfaCredential(user_id=user.id, secret_enc=token, created_dt=clock.now()))
    elif cred.confirmed_dt is None:
        cred.secret_enc, cred.created_dt = token, clock.now()
    else:
        cred.pending_secret_enc = token
    session.flush()
    return secret


def confirm_enrolment(session: Session, user: User, code: str, ip: str, settings: MfaSettings) -> list[str]:
    """Check a code of the app being enrolled; switch it on and return new recovery codes (shown once)."""
    cred = session.scalar(select(MfaCredential).where(MfaCredential.user_id == user.id))
    replacing = cred is not None and cred.confirmed_dt is not None
    token = (cred.pending_secret_enc if replacing else cred.secret_enc) if cred is not None else None
    secret = mfa.decrypt_secret(token, settings.keys) if token else None
    _check_throttle(session, user, ip, settings, "enrol")
    step = mfa.match_step(secret, code, clock.now(), None) if secret else None
    if cred is None or secret is None or step is None:
        _fail(session, user, ip, "enrol_bad_code", CODE_FAILED_MESSAGE)
    assert cred is not None and step is not None
    now = clock.now()
    if replacing:
        cred.secret_enc, cred.pending_secret_enc = token or cred.secret_enc, None
    cred.confirmed_dt = now
    cred.last_step = step
    session.add(LoginAttempt(login_id=user.login_id, ip=ip, success=True, attempted_dt=now, kind="totp"))
    codes = _replace_recovery_codes(session, user)
    audit.record(session, actor_for(user), "auth.mfa_changed" if replacing else "auth.mfa_enrolled",
                 target=user, target_body_code=_code(user), detail="totp")
    return codes


def cancel_replacement(session: Session, user: User) -> None:
    cred = session.scalar(select(MfaCredential).where(MfaCredential.user_id == user.id))
    if cred is not None:
        cred.pending_secret_enc = None


def _replace_recovery_codes(session: Session, user: User) -> list[str]:
    session.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id))
    codes = mfa.new_recovery_codes()
    now = clock.now()
    for code in codes:
        session.add(MfaRecoveryCode(user_id=user.id, code_hash=hash_password(code), created_dt=now))
    session.flush()
    return codes


def regenerate_recovery_codes(session: Session, user: User) -> list[str]:
    if credential(session, user) is None:
        raise ValidationFailed([Problem("mfa", "二要素認証が設定されていません。")])
    codes = _replace_recovery_codes(session, user)
    audit.record(session, actor_for(user), "auth.mfa_recovery_codes_renewed", target=user,
                 target_body_code=_code(user))
    return codes


# --- the second step ----------------------------------------------------------------------------


def _check_throttle(session: Session, user: User, ip: str, settings: MfaSettings, stage: str) -> None:
    state = throttle_state(session, user.login_id, ip, settings.throttle, kind="totp")
    if rules.is_throttled(state, settings.throttle.max_per_user, settings.throttle.max_per_ip):
        session.add(LoginAttempt(login_id=user.login_id, ip=ip, success=False, attempted_dt=clock.now(),
                                 kind="totp"))
        audit.record(session, None, "auth.mfa_throttled", outcome="denied", actor_login=user.login_id,
                     target=user, target_body_code=_code(user),
                     detail=f"{stage}: failures user={state.user_failures} ip={state.ip_failures}")
        raise MfaFailed(THROTTLED_MESSAGE, throttled=True)


def _fail(session: Session, user: User, ip: str, reason: str, message: str) -> None:
    session.add(LoginAttempt(login_id=user.login_id, ip=ip, success=False, attempted_dt=clock.now(), kind="totp"))
    audit.record(session, None, "auth.mfa_failed", outcome="failure", actor_login=user.login_id,
                 target=user, target_body_code=_code(user), detail=reason)
    raise MfaFailed(message)


def verify(session: Session, user: User, code: str, ip: str, settings: MfaSettings) -> str:
    """Check the second factor: a TOTP code (not used before) or an unused recovery code.

    Return "totp" or "recovery"; raise MfaFailed otherwise. Tries are throttled per account and per
    address on their own counters (kind "totp" in the login attempts).
    """
    _check_throttle(session, user, ip, settings, "login")
    cred = credential(session, user)
    if cred is None:
        _fail(session, user, ip, "not_enrolled", CODE_FAILED_MESSAGE)
    assert cred is not None
    now = clock.now()
    if mfa.looks_like_recovery_code(code):
        wanted = mfa.canonical_recovery_code(code)
        for row in _unused_codes(session, user):
            if verify_password(row.code_hash, wanted):
                used = session.execute(
                    update(MfaRecoveryCode).where(MfaRecoveryCode.id == row.id, MfaRecoveryCode.used_dt.is_(None))
                    .values(used_dt=now), execution_options={"synchronize_session": False},
                ).rowcount
                if used == 1:
                    session.add(LoginAttempt(login_id=user.login_id, ip=ip, success=True, attempted_dt=now,
                                             kind="totp"))
                    audit.record(session, actor_for(user), "auth.mfa_success", target=user,
                                 target_body_code=_code(user), detail="recovery code")
                    return "recovery"
        _fail(session, user, ip, "bad_recovery_code", CODE_FAILED_MESSAGE)
    secret = mfa.decrypt_secret(cred.secret_enc, settings.keys)
    if secret is None:
        _fail(session, user, ip, "secret_unreadable", NO_KEY_MESSAGE)
    assert secret is not None
    step = mfa.match_step(secret, code, now, cred.last_step)
    if step is None:
        replayed = mfa.match_step(secret, code, now, None) is not None
        _fail(session, user, ip, "replayed" if replayed else "bad_code",
              CODE_REPLAYED_MESSAGE if replayed else CODE_FAILED_MESSAGE)
    # Record the step with a conditional UPDATE, so two requests with one code cannot both pass.
    taken = session.execute(
        update(MfaCredential)
        .where(MfaCredential.id == cred.id, or_(MfaCredential.last_step.is_(None), MfaCredential.last_step < step))
        .values(last_step=step), execution_options={"synchronize_session": False},
    ).rowcount
    if taken != 1:
        _fail(session, user, ip, "replayed", CODE_REPLAYED_MESSAGE)
    session.expire(cred, ["last_step"])
    if settings.keys and mfa.decrypt_secret(cred.secret_enc, settings.keys[:1]) is None:
        cred.secret_enc = mfa.encrypt_secret(secret, settings.keys)  # re-encrypt under the current key
    session.add(LoginAttempt(login_id=user.login_id, ip=ip, success=True, attempted_dt=now, kind="totp"))
    audit.record(session, actor_for(user), "auth.mfa_success", target=user, target_body_code=_code(user),
                 detail="totp")
    return "totp"


# --- re-authentication (SESS-06) --------------------------------------------------------------------


def is_fresh(row: UserSession | None, now: dt.datetime, minutes: int) -> bool:
    """Whether the user proved who they are (login or re-authentication) within ``minutes``."""
    if row is None:
        return False
    last = max(_aware(row.created_dt), _aware(row.reauth_dt) if row.reauth_dt else _aware(row.created_dt))
    return now - last < dt.timedelta(minutes=minutes)


def reauthenticate(
    session: Session, user: User, row: UserSession, password: str, code: str, ip: str, settings: MfaSettings,
    login_settings: LoginSettings,
) -> None:
    """Check the password again (and the second factor when enrolled); mark the session fresh."""
    state = throttle_state(session, user.login_id, ip, login_settings)
    if rules.is_throttled(state, login_settings.max_per_user, login_settings.max_per_ip):
        raise ValidationFailed([Problem("password", "試行回数が上限を超えました。しばらく時間をおいてから再度お試しください。")])
    if not verify_password(user.password_hash, password):
        session.add(LoginAttempt(login_id=user.login_id, ip=ip, success=False, attempted_dt=clock.now()))
        audit.record(session, actor_for(user), "auth.reauth_failed", outcome="failure", target=user,
                     target_body_code=_code(user), detail="bad_password")
        raise ValidationFailed([Problem("password", "パスワードが正しくありません。")])
    if credential(session, user) is not None:
        try:
            verify(session, user, code, ip, settings)
        except MfaFailed as exc:
            raise ValidationFailed([Problem("code", exc.message)]) from exc
    row.reauth_dt = clock.now()
    audit.record(session, actor_for(user), "auth.reauthenticated", target=user, target_body_code=_code(user))


# --- removing and resetting ---------------------------------------------------------------------------


def _delete_mfa(session: Session, user: User) -> bool:
    had = session.scalar(select(MfaCredential.id).where(MfaCredential.user_id == user.id)) is not None
    session.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id))
    session.execute(delete(MfaCredential).where(MfaCredential.user_id == user.id))
    return had


def remove_own(session: Session, user: User, settings: MfaSettings) -> None:
    """Switch one's own MFA off, where the role does not require it."""
    if is_required(user, settings):
        raise PermissionDenied("この役割では二要素認証を解除できません。")
    _delete_mfa(session, user)
    audit.record(session, actor_for(user), "auth.mfa_removed", target=user, target_body_code=_code(user))


def reset(session: Session, actor: Actor, user_id: int) -> User:
    """A system admin removes a user's authenticator (lost phone); the user's sessions end at once.

    At the next login a user who must use MFA enrols again before reaching any page.
    """
    if actor.role is not Role.SYSTEM_ADMIN:
        raise PermissionDenied("二要素認証のリセットはシステム管理者だけが行えます。")
    user = get_manageable_user(session, actor, user_id)
    had = _delete_mfa(session, user)
    ended = end_all_sessions(session, user, "mfa_reset")
    audit.record(session, actor, "account.mfa_reset", target=user, target_body_code=_code(user),
                 before={"mfa": had}, after={"mfa": False}, detail=f"sessions ended: {ended}")
    return user


def enrol_known_secret(session: Session, user: User, secret: str, keys: Sequence[str]) -> None:
    """Enrol ``user`` with a given secret, already confirmed: for the demo and benchmarks only
    (``pmo demo --totp-secret``) and the test fixtures, which then log in with real codes."""
    _delete_mfa(session, user)
    session.add(MfaCredential(user_id=user.id, secret_enc=mfa.encrypt_secret(secret, keys),
                              created_dt=clock.now(), confirmed_dt=clock.now()))
    session.flush()
