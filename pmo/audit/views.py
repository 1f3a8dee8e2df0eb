"""The audit trail viewer: filter and export within the viewer's scope."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, render_template, request, url_for
from sqlalchemy import func, select

from pmo.accounts.permissions import Permission
from pmo.audit import service
from pmo.db import get_session
from pmo.web.auth import current_actor, fresh_required, require, spans_every_body
from pmo.web.filters import datetime_ja

bp = Blueprint("audit", __name__, url_prefix="/audit")


def _filter() -> service.AuditFilter:
    from pmo.core.dates import DateInputError, parse_date_input

    def day(name: str) -> Any:
        try:
            parsed = parse_date_input(request.args.get(name, ""))
        except DateInputError:
            return None
        return parsed.start() if parsed else None

    return service.AuditFilter(
        date_from=day("from"), date_to=day("to"),
        action=(request.args.get("action") or "").strip()[:60] or None,
        login=(request.args.get("login") or "").strip()[:64] or None,
        body_code=(request.args.get("body") or "").strip()[:6] or None,
        outcome=request.args.get("outcome") if request.args.get("outcome") in ("success", "denied", "failure") else None,
    )


@bp.route("/")
@require(Permission.AUDIT_VIEW)
def index() -> Any:
    db = get_session()
    stmt = service.scoped_entries(current_actor(), _filter())
    page = request.args.get("page", "1")
    page_no = int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(db.scalars(stmt.offset((page_no - 1) * 100).limit(100)))
    values = {e.id: service.visible_values(current_actor(), e) for e in rows}
    return render_template("audit/index.html", entries=rows, values=values, total=total, page=page_no,
                           args=request.args)


@bp.route("/export.csv")
@require(Permission.AUDIT_VIEW)
@fresh_required("全団体分の監査ログの出力", when=spans_every_body(Permission.AUDIT_VIEW),
                back=lambda: url_for("audit.index", **request.args.to_dict(flat=False)))
def export() -> Any:
    from pmo.core.tabular import write_csv

    db = get_session()
    stmt = service.scoped_entries(current_actor(), _filter()).limit(200_000)
    from pmo.audit.labels import action_label

    headers = ["日時", "操作", "操作コード", "結果", "操作者", "操作者団体", "対象種別", "対象ID", "対象団体", "変更前", "変更後",
               "経路", "取込ID", "IPアドレス", "リクエストID", "詳細"]
    import json

    actor = current_actor()
    rows = (
        [datetime_ja(e.at_dt), action_label(e.action), e.action, e.outcome, e.actor_login, e.actor_body_code, e.target_type, e.target_id,
         e.target_body_code, json.dumps(before, ensure_ascii=False) if before else "",
         json.dumps(after, ensure_ascii=False) if after else "", e.channel, e.batch_id, e.ip, e.request_id,
         e.detail]
        for e in db.scalars(stmt) for before, after in [service.visible_values(actor, e)]
    )
    data = write_csv(headers, rows)
    return Response(data, mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=\"audit.csv\"; filename*=UTF-8''%E7%9B%A3%E6%9F%BB%E3%83%AD%E3%82%B0.csv"
    })
