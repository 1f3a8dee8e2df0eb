"""The main navigation, per role. An entry appears once its domain's endpoint exists."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, url_for

from pmo.accounts.permissions import Actor, Permission, can, scope_of


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    permission: Permission | None
    body_scoped: bool = False


NAV = [
    NavItem("ホーム", "home.index", None),
    NavItem("進捗入力", "plans.own", Permission.PLAN_EDIT, body_scoped=True),
    NavItem("管下団体の進捗", "plans.prefecture", Permission.PLAN_COMMENT, body_scoped=True),
    NavItem("全国の計画・実績", "plans.national", Permission.PLAN_IMPORT_NATIONAL),
    NavItem("全国ダッシュボード", "reports.national", Permission.DASHBOARD_NATIONAL),
    NavItem("遅延状況", "delays.index", Permission.DELAY_VIEW, body_scoped=True),
    NavItem("遅延・フォロー", "delays.cases", Permission.CASE_VIEW),
    NavItem("文書", "documents.index", Permission.DOCUMENT_READ),
    NavItem("FAQ・問い合わせ", "faq.index", Permission.FAQ_READ),
    NavItem("事務・手続", "procedures.index", Permission.PROCEDURE_READ),
    NavItem("補助金", "subsidy.index", Permission.SUBSIDY_VIEW),
    NavItem("基準額表", "subsidy.base_tables", Permission.BASE_TABLE_MANAGE),
    NavItem("団体一覧", "orgs.index", Permission.BODY_VIEW),
    NavItem("アカウント管理", "accounts.users", Permission.ACCOUNT_MANAGE),
    NavItem("監査ログ", "audit.index", Permission.AUDIT_VIEW),
    NavItem("作業項目カタログ", "catalog.index", Permission.CATALOG_EDIT),
    NavItem("遅延の判定基準", "delays.thresholds", Permission.SYSTEM_SETTINGS),
    NavItem("システム状態", "ops.status", Permission.SYSTEM_SETTINGS),
]


def navigation(actor: Actor) -> list[tuple[str, str, str, bool]]:
    """Return (label, url, endpoint, is_current) for the entries this actor may use."""
    from flask import request

    items = []
    for item in NAV:
        if item.endpoint not in current_app.view_functions:
            continue
        if item.permission is not None:
            if scope_of(actor, item.permission) is None:
                continue
            if item.body_scoped and actor.body is None:
                continue
            if not item.body_scoped and not can(actor, item.permission) and actor.body is None:
                continue
        items.append((item.label, url_for(item.endpoint), item.endpoint))
    endpoints = [endpoint for _, _, endpoint in items]
    current = request.endpoint if request.endpoint in endpoints else next(
        (e for e in endpoints if e != "home.index" and e.split(".")[0] == request.blueprint), None
    )
    return [(label, href, endpoint, endpoint == current) for label, href, endpoint in items]
