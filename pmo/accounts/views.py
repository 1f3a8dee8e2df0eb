"""Login, logout, password change, one's own sessions and tokens, and account administration."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user

from pmo.accounts import rules, service
from pmo.accounts.forms import ChangePasswordForm, IssueAccountForm, LoginForm, RoleForm, TokenForm, VersionForm
from pmo.accounts.models import Role
from pmo.accounts.permissions import GRANTABLE_ROLES, Permission, is_admin_level
from pmo.core.errors import ValidationFailed
from pmo.db import get_session
from pmo.orgs.service import ministries
from pmo.web.auth import client_ip, current_actor, fresh_required, login_is_fresh, public, require
from pmo.web.forms import add_problems, safe_next

bp = Blueprint("accounts", __name__)
log = logging.getLogger("pmo.accounts")


def _login_settings() -> service.LoginSettings:
    cfg = current_app.config
    return service.LoginSettings(
        window=dt.timedelta(minutes=cfg["LOGIN_WINDOW_MINUTES"]),
        max_per_user=cfg["LOGIN_MAX_FAILURES_PER_USER"],
        max_per_ip=cfg["LOGIN_MAX_FAILURES_PER_IP"],
    )


def _policy() -> rules.PasswordPolicy:
    cfg = current_app.config
    return rules.PasswordPolicy(cfg["PASSWORD_MIN_LENGTH"], cfg["PASSWORD_MAX_LENGTH"])


@bp.route("/login", methods=("GET", "POST"))
@public
def login() -> Any:
    home = url_for("home.index")
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"), home)
        if current_user.is_authenticated:
            return redirect(form.next.data)
    status = 200
    if form.validate_on_submit():
        db = get_session()
        try:
            user = service.authenticate(db, form.login_id.data, form.password.data, client_ip(), _login_settings())
        except service.LoginFailed as exc:
            db.commit()
            # One JSON line per failure (control characters escaped by the formatter, LOG-06).
            log.info("login failed login_id=%s throttled=%s ip=%s", form.login_id.data, exc.throttled, client_ip())
            form.form_errors.append(exc.message)
            status = 429 if exc.throttled else 200
        else:
            target = safe_next(form.next.data, home)
            second_step = mfa_views.begin_second_step(user, target)
            if second_step is not None:  # the code (or enrolment) comes first (AUTH-05)
                return second_step
            # A new session id at login: nothing from before login survives (SESS-01).
            session.clear()
            session["sid"] = service.start_session(db, user, client_ip(), request.headers.get("User-Agent"))
            session.permanent = True
            db.commit()
            return redirect(url_for("accounts.change_password") if user.must_change_password else target)
    expired = request.args.get("expired") == "1"
    return render_template("accounts/login.html", form=form, expired=expired), status


@bp.route("/logout", methods=("POST",))
@require(None)
def logout() -> Any:
    db = get_session()
    sid = session.get("sid")
    if sid:
        service.end_session(db, sid, "logout")
        db.commit()
    session.clear()
    flash("ログアウトしました。", "info")
    return redirect(url_for("accounts.login"))


def _not_forced(**_: Any) -> bool:
    """The forced change of an initial password follows the login itself and reaches nothing else."""
    return not current_user.user.must_change_password


@bp.route("/account/password", methods=("GET", "POST"))
@require(None)
@fresh_required("パスワードの変更", when=_not_forced)
def change_password() -> Any:
    form = ChangePasswordForm()
    user = current_user.user
    if form.validate_on_submit():
        db = get_session()
        try:
            service.change_password(db, user, form.current_password.data, form.new_password.data, _policy(),
                                    keep_sid=current_user.sid)
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        else:
            db.commit()
            flash("パスワードを変更しました。他の端末のログインは終了しました。", "success")
            return redirect(url_for("home.index"))
    return render_template("accounts/change_password.html", form=form, forced=user.must_change_password,
                           min_length=current_app.config["PASSWORD_MIN_LENGTH"])


@bp.route("/account")
@require(None)
def me() -> Any:
    db = get_session()
    return render_template(
        "accounts/me.html", user=current_user.user, sessions=service.open_sessions(db, current_user.user),
        current_session_id=current_user.session_row.id if current_user.session_row else None,
        tokens=service.list_api_tokens(db, current_actor()), token_form=TokenForm(), action_form=VersionForm(),
        new_token=None,
    )


@bp.route("/account/sessions/<int:session_id>/end", methods=("POST",))
@require(None)
def end_session(session_id: int) -> Any:
    VersionForm().validate_on_submit()
    db = get_session()
    service.end_own_session(db, current_actor(), session_id)
    db.commit()
    flash("選択したセッションを終了しました。", "success")
    return redirect(url_for("accounts.me"))


@bp.route("/account/tokens", methods=("POST",))
@require(Permission.API_TOKEN_OWN)
@fresh_required("APIトークンの発行", back=lambda: url_for("accounts.me"))
def create_token() -> Any:
    form = TokenForm()
    db = get_session()
    if not form.validate_on_submit():
        flash("トークンの用途を入力してください。", "error")
        return redirect(url_for("accounts.me"))
    _token, secret = service.create_api_token(db, current_actor(), form.name.data)
    db.commit()
    return render_template(
        "accounts/me.html", user=current_user.user, sessions=service.open_sessions(db, current_user.user),
        current_session_id=current_user.session_row.id if current_user.session_row else None,
        tokens=service.list_api_tokens(db, current_actor()), token_form=TokenForm(formdata=None),
        action_form=VersionForm(), new_token=secret,
    )


@bp.route("/account/tokens/<int:token_id>/revoke", methods=("POST",))
@require(Permission.API_TOKEN_OWN)
def revoke_token(token_id: int) -> Any:
    VersionForm().validate_on_submit()
    db = get_session()
    service.revoke_api_token(db, current_actor(), token_id)
    db.commit()
    flash("トークンを失効させました。", "success")
    return redirect(url_for("accounts.me"))


# --- administration --------------------------------------------------------------------------


def _issue_form() -> IssueAccountForm:
    actor = current_actor()
    form = IssueAccountForm()
    form.set_role_choices([r for r in Role if r in GRANTABLE_ROLES.get(actor.role, frozenset())])
    form.ministry_code.choices = [("", "（選択しない）")] + [(m.code, m.name) for m in ministries(get_session())]
    return form


@bp.route("/accounts/users")
@require(Permission.ACCOUNT_MANAGE)
def users() -> Any:
    db = get_session()
    actor = current_actor()
    show = request.args.get("show", "all")
    days = current_app.config["INACTIVE_ACCOUNT_DAYS"]
    rows = service.inactive_accounts(db, actor, days) if show == "review" else service.list_users(db, actor)
    return render_template("accounts/users.html", users=rows, show=show, inactive_days=days, form=_issue_form())


def _grants_admin_level(user_id: int | None = None, action: str = "role") -> bool:
    """A POST that issues an admin-level account, raises a role to one, or resets one's password."""
    if request.method != "POST":
        return False
    if action == "reset":  # another body's account stays "not found", stale login or not (AC-05)
        return is_admin_level(service.get_manageable_user(get_session(), current_actor(), user_id or 0).role)
    return action == "role" and is_admin_level(request.form.get("role"))


@bp.route("/accounts/users/new", methods=("GET", "POST"))
@require(Permission.ACCOUNT_MANAGE)
@fresh_required("管理者権限のアカウントの発行", when=_grants_admin_level)
def issue() -> Any:
    form = _issue_form()
    actor = current_actor()
    if form.validate_on_submit():
        db = get_session()
        try:
            user, password = service.issue_account(
                db, actor, form.to_input(), current_app.config["INITIAL_PASSWORD_HOURS"]
            )
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        else:
            db.commit()
            return render_template("accounts/issued.html", user=user, password=password,
                                   hours=current_app.config["INITIAL_PASSWORD_HOURS"])
    elif request.method == "GET" and actor.body is not None:
        form.body_code.data = actor.body.code
    # Say before the form is filled in that an admin-level role will first ask for 本人確認 (SESS-06).
    grants_admin = any(is_admin_level(value) for value, _label in form.role.choices)
    return render_template("accounts/issue.html", form=form,
                           admin_needs_reauth=grants_admin and not login_is_fresh())


@bp.route("/accounts/users/<int:user_id>")
@require(Permission.ACCOUNT_MANAGE)
def user_detail(user_id: int) -> Any:
    db = get_session()
    actor = current_actor()
    user = service.get_manageable_user(db, actor, user_id)
    db.commit()
    role_form = RoleForm(version=user.version)
    role_form.role.choices = [(r.value, r.label) for r in Role if r in GRANTABLE_ROLES.get(actor.role, frozenset())]
    role_form.role.data = user.role.value
    from pmo.accounts import mfa_service

    return render_template("accounts/user_detail.html", user=user, sessions=service.open_sessions(db, user),
                           form=VersionForm(version=user.version), role_form=role_form,
                           mfa_enrolled=mfa_service.credential(db, user) is not None)


def _version(form: VersionForm) -> int | None:
    raw = (form.version.data or "").strip()
    return int(raw) if raw.isdigit() else None


@bp.route("/accounts/users/<int:user_id>/<action>", methods=("POST",))
@require(Permission.ACCOUNT_MANAGE)
@fresh_required("管理者権限の付与（役割の変更・初期パスワードの再発行）", when=_grants_admin_level,
                back=lambda user_id, action: url_for("accounts.user_detail", user_id=user_id))
def user_action(user_id: int, action: str) -> Any:
    db = get_session()
    actor = current_actor()
    form = RoleForm() if action == "role" else VersionForm()
    if action == "role":
        form.role.choices = [(r.value, r.label) for r in Role]
    form.validate_on_submit()
    version = _version(form)
    try:
        if action == "disable":
            service.disable_account(db, actor, user_id, version)
            message = "アカウントを無効にしました。ログイン中のセッションも終了しました。"
        elif action == "enable":
            service.enable_account(db, actor, user_id, version)
            message = "アカウントを有効にしました。"
        elif action == "reset":
            user, password = service.reset_password(db, actor, user_id, current_app.config["INITIAL_PASSWORD_HOURS"])
            db.commit()
            return render_template("accounts/issued.html", user=user, password=password, reset=True,
                                   hours=current_app.config["INITIAL_PASSWORD_HOURS"])
        elif action == "end-sessions":
            count = service.end_user_sessions(db, actor, user_id)
            message = f"{count}件のセッションを終了しました。"
        elif action == "unlock":
            service.unlock_account(db, actor, user_id)
            message = "ログイン制限を解除しました。"
        elif action == "role":
            try:
                role = Role(form.role.data)
            except ValueError:
                raise ValidationFailed([]) from None
            service.change_role(db, actor, user_id, role, version)
            message = "役割を変更しました。"
        else:
            from flask import abort

            abort(404)
    except ValidationFailed as exc:
        db.rollback()
        flash("；".join(p.message for p in exc.problems) or "入力内容を確認してください。", "error")
        return redirect(url_for("accounts.user_detail", user_id=user_id))
    db.commit()
    flash(message, "success")
    return redirect(url_for("accounts.user_detail", user_id=user_id))


# The second factor's pages share this blueprint (imported last: they use bp and the helpers above).
from pmo.accounts import mfa_views  # noqa: E402
