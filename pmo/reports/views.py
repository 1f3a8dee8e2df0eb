"""Dashboards (national, prefecture), table downloads, the steering-meeting report; and the summary API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for

from pmo.accounts.permissions import Permission, can, visible_prefecture
from pmo.api.openapi import document, query_param
from pmo.core import clock
from pmo.core.errors import NotFound, ValidationFailed
from pmo.db import get_session
from pmo.delays import service as delays
from pmo.delays.views import as_of_arg
from pmo.reports import rules, service
from pmo.web.auth import current_actor, fresh_required, require
from pmo.web.errors import problem

bp = Blueprint("reports", __name__, url_prefix="/reports")
api_bp = Blueprint("reports_api", __name__, url_prefix="/api/v1/reports")

TABLES = {
    "status": "状況別団体数", "rate_item": "作業項目別完了率", "rate_prefecture": "都道府県別完了率",
    "heatmap": "都道府県×作業項目", "trend": "月次推移", "followup": "フォローが必要な団体",
}
FILTER_KEYS = ("prefecture", "kind", "population_class", "signal", "item", "vendor", "status", "sort")


def _filter() -> rules.FollowupFilter:
    args = {k: (request.args.get(k) or "").strip()[:100] or None for k in FILTER_KEYS}
    return rules.FollowupFilter(
        prefecture_code=args["prefecture"], kind=args["kind"], population_class=args["population_class"],
        signal=args["signal"], item=args["item"], vendor=args["vendor"], status=args["status"],
        sort=args["sort"] or "status",
    )


@bp.record_once
def _configure_cache(state: Any) -> None:
    # Roll-ups are shared by every request and worker: through Redis when PMO_REDIS_URL is set, else
    # in-process. Off under TESTING (rolled-back test data can repeat a data version).
    app = state.app
    if app.testing or not app.config.get("ROLLUP_CACHE", True):
        service.ROLLUP_CACHE = service.BODY_CACHE = None
        return
    import hashlib

    from pmo.core.sharedcache import SharedCache

    # Two portals sharing one Redis must not share entries: the prefix names the database.
    database = hashlib.sha256(str(app.config.get("DATABASE_URL")).encode()).hexdigest()[:12]
    service.ROLLUP_CACHE = SharedCache(
        secret=str(app.config["SECRET_KEY"]).encode(), redis_url=app.config.get("REDIS_URL") or None,
        prefix=f"{app.config.get('REDIS_PREFIX', 'pmo:')}rollup:{database}:", local_size=int(app.config.get("ROLLUP_CACHE_LOCAL_SIZE", 24)),
        ttl=float(app.config.get("ROLLUP_CACHE_SECONDS", 3600)),
    )
    # Each body's own signals (its users' home page): small entries, many bodies.
    service.BODY_CACHE = SharedCache(
        secret=str(app.config["SECRET_KEY"]).encode(), redis_url=app.config.get("REDIS_URL") or None,
        prefix=f"{app.config.get('REDIS_PREFIX', 'pmo:')}body:{database}:", local_size=512,
        ttl=float(app.config.get("ROLLUP_CACHE_SECONDS", 3600)),
    )


def _charts_json(board: service.Dashboard) -> dict[str, str]:
    return board.figures  # already JSON (serialised once, in the cached roll-up)


FOLLOWUP_PER_PAGE = 100


def _render(board: service.Dashboard, endpoint: str, **kwargs: Any) -> Any:
    args = {k: v for k, v in request.args.items() if k in FILTER_KEYS and v}
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 10_000 else 1
    page_args = dict(args, as_of=board.as_of.isoformat(), **kwargs)
    first = (page - 1) * FOLLOWUP_PER_PAGE
    statuses = list(board.followup["status"].iloc[first:first + FOLLOWUP_PER_PAGE]) if board.followup is not None else []
    # One url_for for the 100 rows' body links (before, a third of the page's time): split at the code.
    body_url = url_for("delays.body", code="000000", as_of=board.as_of.isoformat()).split("000000", 1)
    return render_template(
        "reports/dashboard.html", board=board, charts=_charts_json(board), tables=TABLES, endpoint=endpoint,
        statuses=statuses, body_url=body_url,
        endpoint_args=kwargs, filter_args=args, flt=_filter(), page=page, per_page=FOLLOWUP_PER_PAGE,
        page_args=page_args,
        can_manage=can(current_actor(), Permission.CASE_MANAGE), status_label=rules.STATUS_LABEL,
    )


@bp.route("/national")
@require(Permission.DASHBOARD_NATIONAL)
def national() -> Any:
    board = service.dashboard(get_session(), current_actor(), as_of_arg(), flt=_filter())
    return _render(board, "reports.national")


@bp.route("/prefecture")
@require(Permission.DELAY_VIEW)
def own_prefecture() -> Any:
    reach = visible_prefecture(current_actor(), Permission.DELAY_VIEW)
    if isinstance(reach, str):
        return redirect(url_for("reports.prefecture", code=reach))
    if reach is True:
        return redirect(url_for("reports.national"))
    return redirect(url_for("delays.index"))


@bp.route("/prefectures/<code>")
@require(Permission.DELAY_VIEW)
def prefecture(code: str) -> Any:
    db = get_session()
    flt = _filter()
    flt = rules.FollowupFilter(**{**flt.__dict__, "prefecture_code": None})
    board = service.dashboard(db, current_actor(), as_of_arg(), prefecture_code=code, flt=flt)
    db.commit()
    return _render(board, "reports.prefecture", code=code)


@bp.route("/export/<table>.<fmt>")
@require(Permission.DELAY_VIEW)
@fresh_required("全国ダッシュボードの表（全団体分）の出力",
                when=lambda **_: not request.args.get("scope") and can(current_actor(), Permission.DASHBOARD_NATIONAL),
                back=lambda **_: url_for("reports.national", **request.args.to_dict(flat=False)))
def export(table: str, fmt: str) -> Any:
    if table not in TABLES or fmt not in ("csv", "xlsx"):
        abort(404)
    db = get_session()
    pref = request.args.get("scope") or None
    if pref is None and not can(current_actor(), Permission.DASHBOARD_NATIONAL):
        raise NotFound("ページが見つかりません。")
    flt = _filter()
    if pref:
        flt = rules.FollowupFilter(**{**flt.__dict__, "prefecture_code": None})
    board = service.dashboard(db, current_actor(), as_of_arg(), prefecture_code=pref, flt=flt)
    db.commit()
    frame = board.tables[table]
    name = f"{board.title}_{TABLES[table]}_{board.as_of.isoformat()}"
    if fmt == "csv":
        data, mimetype = service.write_csv(frame), "text/csv; charset=utf-8"
    else:
        note = f"{board.title}・基準日 {board.as_of.isoformat()}・{board.definitions.get(table, '')}"
        data = service.write_xlsx({TABLES[table]: frame}, {TABLES[table]: note})
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return _download(data, mimetype, f"{name}.{fmt}")


def _download(data: bytes, mimetype: str, filename: str) -> Response:
    from urllib.parse import quote

    response = Response(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"report.{filename.rsplit('.', 1)[1]}\"; filename*=UTF-8''{quote(filename)}"
    )
    return response


@bp.route("/steering")
@require(Permission.REPORT_STEERING)
def steering() -> Any:
    report = service.steering_report(get_session(), current_actor(), as_of_arg())
    return render_template("reports/steering.html", report=report)


@bp.route("/steering.xlsx")
@require(Permission.REPORT_STEERING)
@fresh_required("全体推進会議報告（全団体分）の出力", back=lambda: url_for("reports.steering", **request.args.to_dict(flat=False)))
def steering_xlsx() -> Any:
    report = service.steering_report(get_session(), current_actor(), as_of_arg())
    summary = service.pd.DataFrame({
        "項目": ["基準日", "前回報告（月次締め）", "団体数", "完了率(%)", "遅延・重大の団体", "重大の団体",
                "フォロー対応中", "フォロー経過観察", "フォロー解決"],
        "値": [report.as_of.isoformat(), report.previous.as_of.isoformat() if report.previous else "（なし）",
              report.summary["bodies"], report.summary["rate"], report.summary["attention"], report.summary["critical"],
              report.summary["open_cases"], report.summary["watching_cases"], report.summary["resolved_cases"]],
    })
    sheets = {"概要": summary}
    notes = {"概要": f"全体推進会議 報告資料（基準日 {report.as_of.isoformat()}）"}
    for key, frame in report.sections.items():
        sheets[report.titles[key]] = frame
    data = service.write_xlsx(sheets, notes)
    return _download(data, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     f"全体推進会議報告_{report.as_of.isoformat()}.xlsx")


# --- API -----------------------------------------------------------------------------------------


@api_bp.route("/summary")
@require(Permission.DASHBOARD_NATIONAL)
@document(
    "全国の状況の集計（基準日時点）",
    params=[query_param("as_of", "基準日（YYYY-MM-DD、省略時は今日）")],
    response={"type": "object", "properties": {
        "as_of": {"type": "string", "format": "date"}, "bodies": {"type": "integer"},
        "completion_rate": {"type": "number"}, "by_status": {"type": "object"},
        "by_item": {"type": "array", "items": {"type": "object"}},
        "by_prefecture": {"type": "array", "items": {"type": "object"}},
    }},
    responses={"422": "基準日が正しくありません"},
)
def api_summary() -> Any:
    try:
        as_of = delays.parse_as_of(request.args.get("as_of"), clock.today())
    except ValidationFailed as exc:
        return problem(422, exc.problems[0].message, [{"field": "as_of", "message": exc.problems[0].message}])
    db = get_session()
    roll = service.rollup(db, current_actor(), as_of)
    prefs = roll.tables["prefecture"]
    items = roll.tables["rate_item"]
    return jsonify({
        "as_of": as_of.isoformat(), "bodies": int(len(roll.bodies)),
        "completion_rate": roll.summary["rate"],
        "by_status": {s: int((roll.bodies["status"] == s).sum()) for s in rules.STATUS_ORDER},
        "by_item": [{"item": i, "name": n, "subtasks": int(t), "completion_rate": float(r)} for i, n, t, r in
                    zip(items["作業項目"], items["名称"], items["サブタスク数"], items["完了率(%)"])],
        "by_prefecture": [
            {"prefecture_code": c, "name": n, "bodies": int(b), "completion_rate": float(r),
             "by_status": {s: int(prefs.loc[i, rules.STATUS_LABEL[s]]) for s in rules.STATUS_ORDER}}
            for i, (c, n, b, r) in enumerate(zip(prefs["都道府県コード"], prefs["都道府県"], prefs["団体数"], prefs["完了率(%)"]))
        ],
    })


_TABLE_HTML: dict[int, tuple[Any, str, Any]] = {}


@bp.app_template_global("table_html")
def table_html(frame: Any, caption: str | None = None) -> Any:
    """Render ``df_table(frame, caption)`` once per table object: the roll-up's tables are shared by every
    request, so their HTML is too (a per-request table is rendered as before)."""
    import weakref

    from flask import get_template_attribute

    entry = _TABLE_HTML.get(id(frame))
    if entry is not None and entry[0]() is frame and entry[1] == caption:
        return entry[2]
    html = get_template_attribute("reports/_macros.html", "df_table")(frame, caption)
    if len(_TABLE_HTML) > 512:
        _TABLE_HTML.clear()
    _TABLE_HTML[id(frame)] = (weakref.ref(frame), caption, html)
    return html


@bp.app_template_filter("cell")
def cell_filter(value: Any) -> str:
    """Format a table cell: integers with thousands separators, other numbers to one decimal."""
    import math
    import numbers

    if value is None or isinstance(value, bool):
        return "" if value is None else ("はい" if value else "いいえ")
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return "" if math.isnan(float(value)) else f"{float(value):,.1f}"
    text = str(value)
    return "" if text in ("nan", "NaT", "<NA>", "None") else text


@bp.app_template_test("is_num")
def is_num(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Number) and not isinstance(value, bool)


# --- home panels ---------------------------------------------------------------------------------


def _home_panel(session: Any, actor: Any) -> dict[str, Any] | None:
    """Ministry officers: bodies by status and open cases. Body and prefecture staff: their own signals."""
    from pmo.delays import cases as case_service
    from pmo.delays.views import default_as_of

    if not can(actor, Permission.DELAY_VIEW) and actor.body is None:
        return None
    if delays.reach_of_or_none(actor) is None:
        return None
    as_of = default_as_of()
    counts = case_service.case_counts(session, actor)
    if can(actor, Permission.DASHBOARD_NATIONAL):
        roll = service.rollup(session, actor, as_of)
        return {"title": f"全国の状況（{as_of.year}年{as_of.month}月{as_of.day}日時点）", "template": "reports/_home_national.html",
                "status": roll.tables["status"], "cases": counts, "as_of": as_of}
    if actor.body is None:
        return None
    own = service.body_signals(session, actor, as_of, actor.body.code)
    return {"title": f"自団体の遅延の兆候（{as_of.year}年{as_of.month}月{as_of.day}日時点）", "template": "delays/_home_body.html",
            "status": own.status, "rate": own.rate,
            "signals": own.signals, "cases": counts, "as_of": as_of, "code": actor.body.code,
            "is_prefecture": bool(actor.body.is_prefecture and actor.role.value == "prefecture_staff")}


from pmo.home.views import home_panels  # noqa: E402

home_panels.append(_home_panel)
