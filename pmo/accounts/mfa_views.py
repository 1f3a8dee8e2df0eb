"""The second step of the login, enrolment, one's own MFA settings, re-authentication and the admin
reset (AUTH-05, SESS-06). Routes live on the accounts blueprint.

After the password the session holds only a pending mark (user id, time, where to go): it is not
authenticated. The server-side session, with a new id, is opened only after the code is accepted.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from pmo.accounts import mfa, mfa_service, service
from pmo.accounts.forms import MfaCodeForm, ReauthForm, VersionForm
from pmo.accounts.models import User
from pmo.accounts.permissions import Permission
from pmo.accounts.views import _login_settings, bp
from pmo.core import clock
from pmo.core.errors import ValidationFailed
from pmo.db import get_session
from pmo.web.auth import client_ip, current_actor, fresh_required, mfa_settings, public, require
from pmo.web.forms import add_problems, safe_next

PENDING = "mfa_pending"


def begin_second_step(user: User, target: str) -> Response | None:
    """After a correct password: go to the code (or enrolment) page when the user has or needs MFA."""
    db = get_session()
    settings = mfa_settings()
    enrolled = mfa_service.credential(db, user) is not None
    if not enrolled and not mfa_service.is_required(user, settings):
        return None
    if not enrolled and mfa_service.enrolment_secret(db, user, settings) is None:
        mfa_service.start_enrolment(db, user, settings)
    session.clear()
    session[PENDING] = {"uid": user.id, "at": clock.now().timestamp(), "next": target}
    db.commit()
    return redirect(url_for("accounts.mfa_verify" if enrolled else "accounts.mfa_enroll"))


def _pending_user() -> tuple[User, str] | None:
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return None
    age = clock.now().timestamp() - float(pending.get("at", 0))
    if age < 0 or age > current_app.config["MFA_PENDING_MINUTES"] * 60:
        session.pop(PENDING, None)
        return None
    user = get_session().get(User, int(pending.get("uid", 0)))
    if user is None or not user.is_active:
        session.pop(PENDING, None)
        return None
    return user, safe_next(pending.get("next"), url_for("home.index"))


def _expired() -> Response:
    flash("確認の有効時間が過ぎました。もう一度ログインしてください。", "info")
    return redirect(url_for("accounts.login"))


def _finish_login(user: User, target: str) -> str:
    """Open the authenticated session under a new id (nothing of the pending state survives)."""
    db = get_session()
    session.clear()
    session["sid"] = service.start_session(db, user, client_ip(), request.headers.get("User-Agent"),
                                           mfa_verified=True)
    session.permanent = True
    return url_for("accounts.change_password") if user.must_change_password else target


@bp.route("/login/mfa", methods=("GET", "POST"))
@public
def mfa_verify() -> Any:
    pending = _pending_user()
    if pending is None:
        return _expired()
    user, target = pending
    db = get_session()
    if mfa_service.credential(db, user) is None:
        return redirect(url_for("accounts.mfa_enroll"))
    form = MfaCodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            mfa_service.verify(db, user, form.code.data, client_ip(), mfa_settings())
        except mfa_service.MfaFailed as exc:
            db.commit()
            form.code.errors = [exc.message]
            status = 429 if exc.throttled else 200
        else:
            destination = _finish_login(user, target)
            db.commit()
            left = mfa_service.recovery_codes_left(db, user)
            if left <= 3:
                flash(f"未使用のリカバリーコードが残り{left}個です。アカウント画面で再発行してください。", "warning")
            return redirect(destination)
    return render_template("accounts/mfa_verify.html", form=form), status


def _enrol_page(form: MfaCodeForm, user: User, action: str, at_login: bool) -> str:
    """The QR code and setup key of the app being enrolled, or a button to start (GET never writes)."""
    secret = mfa_service.enrolment_secret(get_session(), user, mfa_settings())
    qr = key = None
    if secret is not None:
        qr = mfa.qr_svg(mfa.provisioning_uri(secret, user.login_id, mfa_settings().issuer))
        key = mfa.grouped(secret)
    return render_template("accounts/mfa_enroll.html", form=form, qr=qr, secret=key, action=action,
                           at_login=at_login, start_form=VersionForm(),
                           replacing=mfa_service.credential(get_session(), user) is not None)


def _start_requested(user: User) -> bool:
    """A POST of the 「設定を始める」 button (a new secret), not of a code."""
    if request.method == "POST" and request.form.get("start") and VersionForm().validate_on_submit():
        mfa_service.start_enrolment(get_session(), user, mfa_settings())
        get_session().commit()
        return True
    return False


def _confirm_enrolment(db: Any, user: Any, form: MfaCodeForm) -> tuple[list[str] | None, int]:
    """Check the new app's code: the recovery codes, or None with the reason on the form (429 when throttled)."""
    try:
        return mfa_service.confirm_enrolment(db, user, form.code.data, client_ip(), mfa_settings()), 200
    except mfa_service.MfaFailed as exc:
        db.commit()  # the failed attempt counts towards the limit
        form.code.errors = [exc.message]
        return None, 429 if exc.throttled else 200


@bp.route("/login/mfa/setup", methods=("GET", "POST"))
@public
def mfa_enroll() -> Any:
    """First login of a user who must use MFA and has none: enrol before reaching any page."""
    pending = _pending_user()
    if pending is None:
        return _expired()
    user, target = pending
    db = get_session()
    if mfa_service.credential(db, user) is not None:
        return redirect(url_for("accounts.mfa_verify"))
    if _start_requested(user):
        return redirect(url_for("accounts.mfa_enroll"))
    form = MfaCodeForm()
    status = 200
    if form.validate_on_submit():
        codes, status = _confirm_enrolment(db, user, form)
        if codes is not None:
            destination = _finish_login(user, target)
            db.commit()
            return render_template("accounts/mfa_recovery.html", codes=codes, continue_to=destination,
                                   enrolled=True)
    return _enrol_page(form, user, url_for("accounts.mfa_enroll"), at_login=True), status


# --- one's own settings ------------------------------------------------------------------------------


@bp.route("/account/mfa")
@require(None)
def mfa_manage() -> Any:
    db = get_session()
    user = current_user.user
    cred = mfa_service.credential(db, user)
    return render_template(
        "accounts/mfa_manage.html", cred=cred, required=mfa_service.is_required(user, mfa_settings()),
        codes_left=mfa_service.recovery_codes_left(db, user) if cred else 0, action_form=VersionForm(),
    )


@bp.route("/account/mfa/setup", methods=("GET", "POST"))
@require(None)
@fresh_required("二要素認証の設定")
def mfa_setup_own() -> Any:
    """Set up MFA (voluntary for staff) or move it to a new phone; the old app works until confirmed."""
    db = get_session()
    user = current_user.user
    if _start_requested(user):
        return redirect(url_for("accounts.mfa_setup_own"))
    form = MfaCodeForm()
    status = 200
    if form.validate_on_submit():
        codes, status = _confirm_enrolment(db, user, form)
        if codes is not None:
            current_user.session_row.mfa_verified = True
            db.commit()
            return render_template("accounts/mfa_recovery.html", codes=codes,
                                   continue_to=url_for("accounts.mfa_manage"), enrolled=True)
    return _enrol_page(form, user, url_for("accounts.mfa_setup_own"), at_login=False), status


@bp.route("/account/mfa/recovery-codes", methods=("POST",))
@require(None)
@fresh_required("リカバリーコードの再発行", back=lambda: url_for("accounts.mfa_manage"))
def mfa_recovery_codes() -> Any:
    VersionForm().validate_on_submit()
    db = get_session()
    try:
        codes = mfa_service.regenerate_recovery_codes(db, current_user.user)
    except ValidationFailed as exc:
        db.rollback()
        flash("；".join(p.message for p in exc.problems), "error")
        return redirect(url_for("accounts.mfa_manage"))
    db.commit()
    return render_template("accounts/mfa_recovery.html", codes=codes, continue_to=url_for("accounts.mfa_manage"),
                           enrolled=False)


@bp.route("/account/mfa/remove", methods=("POST",))
@require(None)
@fresh_required("二要素認証の解除", back=lambda: url_for("accounts.mfa_manage"))
def mfa_remove() -> Any:
    VersionForm().validate_on_submit()
    db = get_session()
    mfa_service.remove_own(db, current_user.user, mfa_settings())
    db.commit()
    flash("二要素認証を解除しました。", "success")
    return redirect(url_for("accounts.mfa_manage"))


@bp.route("/account/reauth", methods=("GET", "POST"))
@require(None)
def reauth() -> Any:
    """Prove who you are again before a sensitive change of your own account (SESS-06)."""
    db = get_session()
    user = current_user.user
    form = ReauthForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"), url_for("accounts.mfa_manage"))
    enrolled = mfa_service.credential(db, user) is not None
    if form.validate_on_submit():
        try:
            mfa_service.reauthenticate(db, user, current_user.session_row, form.password.data, form.code.data or "",
                                       client_ip(), mfa_settings(), _login_settings())
        except ValidationFailed as exc:
            db.commit()  # the failed try is counted and audited
            add_problems(form, exc)
        else:
            db.commit()
            flash(f"本人確認ができました。{current_app.config['REAUTH_MINUTES']}分以内に操作を続けてください。", "success")
            return redirect(safe_next(form.next.data, url_for("accounts.mfa_manage")))
    return render_template("accounts/reauth.html", form=form, enrolled=enrolled)


# --- administration ------------------------------------------------------------------------------


@bp.route("/accounts/users/<int:user_id>/mfa-reset", methods=("POST",))
@require(Permission.ACCOUNT_MANAGE)
def mfa_reset(user_id: int) -> Any:
    VersionForm().validate_on_submit()
    db = get_session()
    user = mfa_service.reset(db, current_actor(), user_id)
    db.commit()
    flash(f"{user.display_name} さんの二要素認証をリセットしました。ログイン中のセッションも終了しました。"
          "次回ログイン時に再登録が必要です。", "success")
    return redirect(url_for("accounts.user_detail", user_id=user_id))
