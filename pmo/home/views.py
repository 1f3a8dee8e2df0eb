"""The landing page of each role. Domains contribute panels through ``home_panels``."""

from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from pmo.accounts.models import Role
from pmo.db import get_session
from pmo.web.auth import current_actor, public, require

bp = Blueprint("home", __name__)

# Domains append callables (session, actor) -> dict(title, template, context) | None.
home_panels: list[Callable[..., dict[str, Any] | None]] = []

ROLE_INTRO = {
    Role.BODY_STAFF: "自団体の計画・実績の入力、国からの文書・FAQの確認、問い合わせ、補助金申請を行います。",
    Role.BODY_ADMIN: "自団体の計画・実績の入力に加え、自団体職員のアカウントを発行・管理します。",
    Role.PREFECTURE_STAFF: "管下市区町村の進捗を確認し、支援コメントを登録します。県自身の計画も入力します。",
    Role.MINISTRY_OFFICER: "全国の進捗をマイルストーンと照らして確認し、遅延団体のフォローと全体推進会議への報告を行います。",
    Role.FINANCE_OFFICER: "国庫補助基準額の算定、補助金申請と見積書の審査を行います。",
    Role.SYSTEM_ADMIN: "府省アカウント、作業項目カタログ、マイルストーン、基準額表を管理します。",
}


@bp.route("/")
@public
def index() -> Any:
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login"))
    return dashboard()


@require(None)
def dashboard() -> Any:
    actor = current_actor()
    db = get_session()
    panels = [p for p in (panel(db, actor) for panel in home_panels) if p]
    return render_template("home/index.html", intro=ROLE_INTRO[actor.role], panels=panels, user=current_user.user)
