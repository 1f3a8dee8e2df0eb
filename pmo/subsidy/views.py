"""Subsidy screens: bases and their working, registration and 配分, union transfers, applications and
their workflow, estimates with flags and peer charts, base tables, keywords, finance reports; and the
calculation API."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

from pmo.accounts.permissions import Permission, can, visible_prefecture
from pmo.api.openapi import document
from pmo.core.errors import DomainError, Problem, ValidationFailed
from pmo.db import get_session
from pmo.subsidy import forms, queries, rules, service, tables
from pmo.subsidy.models import ApplicationKind, Estimate
from pmo.subsidy.rules import Category, System
from pmo.web.auth import current_actor, fresh_required, require, spans_every_body

bp = Blueprint("subsidy", __name__, url_prefix="/subsidy")
api_bp = Blueprint("subsidy_api", __name__, url_prefix="/api/v1/subsidy")

ACTION_LABELS = {"submit": "提出する", "check": "都道府県確認済みにする", "approve": "承認する", "return": "差戻す"}
EVENT_LABELS = {"created": "作成", "submitted": "提出", "prefecture_checked": "都道府県確認", "approved": "承認",
                "returned": "差戻し"}
FLAG_LABELS = {
    rules.FlagCode.LUMP_SUM: "一式計上", rules.FlagCode.ARITHMETIC: "計算不一致",
    rules.FlagCode.TOTAL_MISMATCH: "合計不一致", rules.FlagCode.NONCOVERED: "補助対象外",
    rules.FlagCode.WRONG_PHASE: "年度事業違い", rules.FlagCode.UNIT_PRICE_ABOVE_PEERS: "単価が高い",
    rules.FlagCode.EFFORT_ABOVE_PEERS: "工数が多い", rules.FlagCode.COST_ABOVE_PEERS: "総額が高い",
}


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {"FISCAL_PROJECTS": rules.FISCAL_PROJECTS, "FLAG_LABELS": FLAG_LABELS, "Category": Category,
            "EVENT_LABELS": EVENT_LABELS, "ACTION_LABELS": ACTION_LABELS,
            "rate_label": lambda rate: "10/10" if rate == 1 else f"{rate.numerator}/{rate.denominator}"}


def _fy() -> int:
    return forms.fiscal_year(request.values.get("fy"))


def _problems(exc: ValidationFailed) -> list[str]:
    return [str(p) if isinstance(p, rules.RowProblem) else (f"{p.field}: {p.message}" if p.field else p.message)
            for p in exc.problems]


# --------------------------------------------------------------------------------------------
# Index, body page, working


@bp.route("/")
@require(Permission.SUBSIDY_VIEW)
def index() -> Any:
    db, actor = get_session(), current_actor()
    fy = _fy()
    own = None
    if actor.body is not None and can(actor, Permission.SUBSIDY_APPLY):
        body = service.find_body(db, actor.body.code)
        own = {"body": body, "bases": service.body_bases(db, actor, body, fy),
               "applications": service.applications_of(db, body, fy), "estimates": service.estimates_of(db, body, fy)}
    pending = service.pending_applications(db, actor)
    wide = visible_prefecture(actor, Permission.SUBSIDY_VIEW) not in (None, False)
    recent = service.visible_applications(db, actor, fy) if wide else []
    return render_template("subsidy/index.html", fy=fy, own=own, pending=pending, wide=wide, recent=recent)


@bp.route("/find")
@require(Permission.SUBSIDY_VIEW)
def find() -> Any:
    code = (request.args.get("code") or "").strip()
    return redirect(url_for("subsidy.body", code=code, fy=_fy())) if code else redirect(url_for("subsidy.index"))


def _body_page(code: str, fy: int, problems: list[str] | None = None, status: int = 200) -> Any:
    db, actor = get_session(), current_actor()
    body = service.get_body(db, actor, code)
    bases = service.body_bases(db, actor, body, fy)
    regs = service.registrations(db, body, fy)
    html = render_template(
        "subsidy/body.html", body=body, fy=fy, bases=bases, totals=bases.category_totals(),
        token=service.registration_token(regs), unions=service.unions_of(db, body),
        transfers=service.transfers_of(db, body, fy), applications=service.applications_of(db, body, fy),
        estimates=service.estimates_of(db, body, fy), problems=problems or [],
        can_apply=can(actor, Permission.SUBSIDY_APPLY, service.body_ref(body)),
        can_estimate=can(actor, Permission.ESTIMATE_SUBMIT, service.body_ref(body)),
    )
    return html, status


@bp.route("/bodies/<code>")
@require(Permission.SUBSIDY_VIEW)
def body(code: str) -> Any:
    return _body_page(code, _fy())


@bp.route("/bodies/<code>/working/<system>")
@require(Permission.SUBSIDY_VIEW)
def working(code: str, system: str) -> Any:
    db, actor = get_session(), current_actor()
    body = service.get_body(db, actor, code)
    fy = _fy()
    bases = service.body_bases(db, actor, body, fy)
    item = bases.get(forms.system(system))
    if item is None or item.working is None:
        abort(404)
    factor = bases.factors[item.category]
    return render_template("subsidy/working.html", body=body, fy=fy, bases=bases, item=item, factor=factor)


def _post_body(code: str, action: Any) -> Any:
    db, actor = get_session(), current_actor()
    fy = forms.fiscal_year(request.form.get("fy"))
    body = service.get_body(db, actor, code)
    try:
        message = action(db, actor, body, fy)
    except ValidationFailed as exc:
        db.rollback()
        return _body_page(code, fy, _problems(exc), 422)
    db.commit()
    flash(message, "success")
    return redirect(url_for("subsidy.body", code=code, fy=fy))


@bp.route("/bodies/<code>/registrations", methods=["POST"])
@require(Permission.SUBSIDY_APPLY)
def register(code: str) -> Any:
    def action(db: Any, actor: Any, body: Any, fy: int) -> str:
        systems = {forms.system(s, "systems") for s in request.form.getlist("systems")}
        service.register_systems(db, actor, body, fy, systems, request.form.get("token", ""))
        return "補助対象システムの登録（様式1）を保存しました。"

    return _post_body(code, action)


@bp.route("/bodies/<code>/allocations", methods=["POST"])
@require(Permission.SUBSIDY_APPLY)
def allocate(code: str) -> Any:
    def action(db: Any, actor: Any, body: Any, fy: int) -> str:
        names = [s.value for s in service.registrations(db, body, fy)]
        service.set_allocations(db, actor, body, fy, forms.allocations(request.form, names), request.form.get("token", ""))
        return "配分を保存しました。"

    return _post_body(code, action)


@bp.route("/bodies/<code>/transfers", methods=["POST"])
@require(Permission.SUBSIDY_APPLY)
def transfer(code: str) -> Any:
    def action(db: Any, actor: Any, body: Any, fy: int) -> str:
        problems: list[Problem] = []
        amount = forms.money(request.form.get("amount"), "amount", "移管額", problems)
        if problems or amount is None:
            raise ValidationFailed(problems)
        system = forms.system(request.form.get("system"))
        t = service.transfer_base(db, actor, body, request.form.get("union", ""), fy, system, amount)
        return f"{system}の基準額 {amount:,}円 を {t.union.name} に移管しました。"

    return _post_body(code, action)


# --------------------------------------------------------------------------------------------
# Applications


@bp.route("/bodies/<code>/applications", methods=["POST"])
@require(Permission.SUBSIDY_APPLY)
def new_application(code: str) -> Any:
    db, actor = get_session(), current_actor()
    fy = forms.fiscal_year(request.form.get("fy"))
    body = service.get_body(db, actor, code, Permission.SUBSIDY_APPLY)
    try:
        app = service.create_application(db, actor, body, fy)
    except ValidationFailed as exc:
        db.rollback()
        return _body_page(code, fy, _problems(exc), 422)
    db.commit()
    flash(f"{app.title}を作成しました。経費を入力してください。", "success")
    return redirect(url_for("subsidy.application", application_id=app.id))


def _application_page(application_id: int, problems: list[str] | None = None, status: int = 200,
                      values: dict[str, str] | None = None) -> Any:
    db, actor = get_session(), current_actor()
    app = service.get_application(db, actor, application_id)
    grant = service.application_grant(db, app)
    estimates = [e for e in service.estimates_of(db, app.body, app.fiscal_year)]
    reviews = {e.id: service.review_estimate(db, None, e) for e in estimates}
    settlement = None
    if app.kind is ApplicationKind.APPLICATION:
        from sqlalchemy import select

        from pmo.subsidy.models import Application

        settlement = db.scalar(select(Application).where(Application.settles_id == app.id))
    html = render_template(
        "subsidy/application.html", app=app, grant=grant, actions=service.available_actions(actor, app),
        estimates=estimates, reviews=reviews, problems=problems or [], values=values or {}, settlement=settlement,
        can_apply=can(actor, Permission.SUBSIDY_APPLY, service.body_ref(app.body)),
        needs_check=service.needs_prefecture_check(app),
    )
    return html, status


@bp.route("/applications/<int:application_id>")
@require(Permission.SUBSIDY_VIEW)
def application(application_id: int) -> Any:
    return _application_page(application_id)


@bp.route("/applications/<int:application_id>/lines", methods=["POST"])
@require(Permission.SUBSIDY_APPLY)
def application_lines(application_id: int) -> Any:
    db, actor = get_session(), current_actor()
    app = service.get_application(db, actor, application_id)
    try:
        lines = forms.application_lines(request.form, [line.system for line in app.lines])
        service.update_lines(db, actor, app, lines, forms.version(request.form))
    except ValidationFailed as exc:
        db.rollback()
        return _application_page(application_id, _problems(exc), 422, dict(request.form))
    db.commit()
    flash("経費を保存しました。交付額を再計算しました。", "success")
    return redirect(url_for("subsidy.application", application_id=application_id))


@bp.route("/applications/<int:application_id>/<any(submit,check,approve,return):action>", methods=["POST"])
@require(Permission.SUBSIDY_VIEW)
def application_action(application_id: int, action: str) -> Any:
    db, actor = get_session(), current_actor()
    app = service.get_application(db, actor, application_id)
    version = forms.version(request.form)
    comment = (request.form.get("comment") or "").strip()[:2000] or None
    steps = {"submit": service.submit_application, "check": service.prefecture_check,
             "approve": service.approve_application}
    try:
        if action == "return":
            service.return_application(db, actor, app, version, comment or "")
        else:
            steps[action](db, actor, app, version, comment)
    except ValidationFailed as exc:
        db.rollback()
        return _application_page(application_id, _problems(exc), 422)
    db.commit()
    flash(f"{app.title}を「{app.state.label}」にしました。", "success")
    return redirect(url_for("subsidy.application", application_id=application_id))


@bp.route("/applications/<int:application_id>/settlement", methods=["POST"])
@require(Permission.SUBSIDY_APPLY)
def new_settlement(application_id: int) -> Any:
    db, actor = get_session(), current_actor()
    app = service.get_application(db, actor, application_id)
    try:
        report = service.create_settlement(db, actor, app)
    except ValidationFailed as exc:
        db.rollback()
        return _application_page(application_id, _problems(exc), 422)
    db.commit()
    flash("実績報告を作成しました。実際の支出額を入力してください。", "success")
    return redirect(url_for("subsidy.application", application_id=report.id))


# --------------------------------------------------------------------------------------------
# Estimates


@bp.route("/estimates/template.<any(xlsx,csv):ext>")
@require(Permission.SUBSIDY_VIEW)
def estimate_template(ext: str) -> Any:
    if ext == "xlsx":
        data, mime = tables.template_xlsx(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        data, mime = tables.template_csv(), "text/csv; charset=utf-8"
    return Response(data, mimetype=mime, headers={
        "Content-Disposition": f"attachment; filename=estimate_template.{ext}; "
                               f"filename*=UTF-8''%E8%A6%8B%E7%A9%8D%E6%98%8E%E7%B4%B0%E3%83%86%E3%83%B3%E3%83%97%E3%83%AC%E3%83%BC%E3%83%88.{ext}"})


def _estimate_form(code: str, problems: list[str] | None = None, status: int = 200) -> Any:
    db, actor = get_session(), current_actor()
    body = service.get_body(db, actor, code, Permission.ESTIMATE_SUBMIT)
    systems = [s for s in System if s in rules.ELIGIBLE_SYSTEMS[service.body_kind(body)]
               or s in service.registrations(db, body, _fy())]
    return render_template("subsidy/estimate_new.html", body=body, fy=_fy(), systems=systems,
                           problems=problems or [], values=request.form, rows=NEW_GRID_ROWS), status


NEW_GRID_ROWS = 10


@bp.route("/bodies/<code>/estimates/new", methods=["GET", "POST"])
@require(Permission.ESTIMATE_SUBMIT)
def new_estimate(code: str) -> Any:
    if request.method == "GET":
        return _estimate_form(code)
    db, actor = get_session(), current_actor()
    body = service.get_body(db, actor, code, Permission.ESTIMATE_SUBMIT)
    try:
        problems: list[Problem] = []
        stated = forms.money(request.form.get("stated_total"), "stated_total", "見積合計", problems, required=False)
        if problems:
            raise ValidationFailed(problems)
        upload = request.files.get("file")
        if upload is not None and upload.filename:
            name = upload.filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:200]
            rows = tables.read_estimate_file(upload.read(), name)
            lines = service.parse_estimate_rows(rows, where=f"{name} ")
        else:
            grid = forms.estimate_grid(request.form, NEW_GRID_ROWS)
            if not any(v.strip() for _, cells in grid for v in cells.values()):
                raise ValidationFailed([Problem("file", "見積明細のファイル（xlsx または CSV）を選ぶか、明細を画面で入力してください。")])
            name = None
            lines = service.parse_estimate_rows(grid, where="明細 ")
        data = service.EstimateInput(forms.system(request.form.get("system")), forms.fiscal_year(request.form.get("fy")),
                                     request.form.get("vendor", ""), stated, lines, name)
        estimate = service.create_estimate(db, actor, body, data)
    except ValidationFailed as exc:
        db.rollback()
        return _estimate_form(code, _problems(exc), 422)
    db.commit()
    flash(f"{estimate.vendor}の見積（{len(estimate.lines)}行）を登録しました。", "success")
    return redirect(url_for("subsidy.estimate", estimate_id=estimate.id))


@bp.route("/estimates/<int:estimate_id>")
@require(Permission.SUBSIDY_VIEW)
def estimate(estimate_id: int) -> Any:
    db, actor = get_session(), current_actor()
    est = service.get_estimate(db, actor, estimate_id)
    review = service.review_estimate(db, actor, est)
    prices = service.peer_unit_prices(db, est)
    named = service.may_read_review(actor, est.body)
    charts = {
        "unit_price": queries.figure_json(queries.unit_price_figure(review, prices)),
        "effort": queries.figure_json(queries.peer_totals_figure(review, "effort", named)),
        "cost": queries.figure_json(queries.peer_totals_figure(review, "cost", named)),
    }
    others = [e for e in service.estimates_of(db, est.body, est.fiscal_year) if e.system == est.system]
    return render_template("subsidy/estimate.html", est=est, review=review, charts=charts, others=others,
                           notes=service.estimate_notes(actor, est),
                           can_review=can(actor, Permission.ESTIMATE_REVIEW, service.body_ref(est.body)),
                           can_edit=can(actor, Permission.ESTIMATE_SUBMIT, service.body_ref(est.body)))


@bp.route("/estimates/<int:estimate_id>/notes", methods=["POST"])
@require(Permission.ESTIMATE_REVIEW)
def estimate_note(estimate_id: int) -> Any:
    db, actor = get_session(), current_actor()
    est = service.get_estimate(db, actor, estimate_id)
    raw = request.form.get("line_no", "")
    try:
        service.add_estimate_note(db, actor, est, request.form.get("text", ""), int(raw) if raw.isdigit() else None)
    except ValidationFailed as exc:
        db.rollback()
        flash("；".join(_problems(exc)), "error")
        return redirect(url_for("subsidy.estimate", estimate_id=estimate_id))
    db.commit()
    flash("所見を登録しました。", "success")
    return redirect(url_for("subsidy.estimate", estimate_id=estimate_id) + "#notes")


@bp.route("/estimates/<int:estimate_id>/edit", methods=["GET", "POST"])
@require(Permission.ESTIMATE_SUBMIT)
def edit_estimate(estimate_id: int) -> Any:
    db, actor = get_session(), current_actor()
    est = service.get_estimate(db, actor, estimate_id)
    service.ensure_can(db, actor, Permission.ESTIMATE_SUBMIT, est.body)
    rows = max(len(est.lines) + 5, 10)
    problems: list[str] = []
    if request.method == "POST":
        count = min(int(request.form.get("rows", "0") or 0), 500)
        try:
            errs: list[Problem] = []
            stated = forms.money(request.form.get("stated_total"), "stated_total", "見積合計", errs, required=False)
            if errs:
                raise ValidationFailed(errs)
            lines = service.parse_estimate_rows(forms.estimate_grid(request.form, count), where="明細 ")
            service.replace_estimate_lines(db, actor, est, lines, stated, forms.version(request.form))
        except ValidationFailed as exc:
            db.rollback()
            problems = _problems(exc)
            return render_template("subsidy/estimate_edit.html", est=est, rows=count, problems=problems,
                                   values=request.form), 422
        db.commit()
        flash("見積明細を保存しました。", "success")
        return redirect(url_for("subsidy.estimate", estimate_id=estimate_id))
    values = {"stated_total": "" if est.stated_total is None else str(est.stated_total), "version": str(est.version)}
    for line in est.lines:
        i = line.line_no
        values.update({f"l-{i}-phase": line.phase, f"l-{i}-item": line.work_item, f"l-{i}-worker": line.worker_class,
                       f"l-{i}-price": "" if line.unit_price is None else str(line.unit_price),
                       f"l-{i}-unit": line.unit or "", f"l-{i}-effort": "" if line.effort is None else f"{line.effort.normalize():f}",
                       f"l-{i}-amount": str(line.amount)})
    return render_template("subsidy/estimate_edit.html", est=est, rows=rows, problems=problems, values=values)


@bp.route("/bodies/<code>/compare")
@require(Permission.SUBSIDY_VIEW)
def compare(code: str) -> Any:
    db, actor = get_session(), current_actor()
    body = service.get_body(db, actor, code)
    system = forms.system(request.args.get("system"))
    comparison = queries.vendor_comparison(db, body, system.value, _fy())
    return render_template("subsidy/compare.html", body=body, fy=_fy(), system=system, cmp=comparison,
                           chart=queries.figure_json(comparison.figure()))


# --------------------------------------------------------------------------------------------
# Base tables, budgets, keywords


def _tables_page(problems: list[str] | None = None, status: int = 200, refused: str | None = None) -> Any:
    db = get_session()
    tables_ = service.tables_in_force(db)
    budgets = {fy: service.budgets(db, fy) for fy in rules.FISCAL_PROJECTS}
    return render_template("subsidy/base_tables.html", tables=tables_, budgets=budgets, problems=problems or [],
                           refused=refused), status


@bp.route("/base-tables", methods=["GET", "POST"])
@require(Permission.BASE_TABLE_MANAGE)
def base_tables() -> Any:
    if request.method == "GET":
        return _tables_page()
    db, actor = get_session(), current_actor()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _tables_page(["ファイル: 基準額表のCSVファイルを選んでください。"], 422)
    name = upload.filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:200]
    try:
        text = service.decode_upload(upload.read(), name)
        stored = service.load_base_table(db, actor, text, name)
    except ValidationFailed as exc:
        db.rollback()
        return _tables_page(_problems(exc), 422, refused=name)
    db.commit()
    flash(f"{name} を登録しました（{'、'.join(f'{t.fiscal_year}年度' for t in stored)}）。", "success")
    return redirect(url_for("subsidy.base_tables"))


@bp.route("/base-tables/<int:fy>.csv")
@require(Permission.SUBSIDY_VIEW)
def base_table_csv(fy: int) -> Any:
    table = service.tables_in_force(get_session()).get(fy)
    if table is None:
        abort(404)
    return Response(("\ufeff" + service.table_csv(table)).encode("utf-8"), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename=base_table_{fy}.csv"})


@bp.route("/base-tables/<int:fy>/edit", methods=["GET", "POST"])
@require(Permission.BASE_TABLE_MANAGE)
def edit_base_table(fy: int) -> Any:
    db, actor = get_session(), current_actor()
    service.check_fiscal_year(fy)
    table = service.tables_in_force(db).get(fy)
    if request.method == "POST":
        text = request.form.get("text", "")
        try:
            service.edit_base_table(db, actor, fy, text, forms.version(request.form))
        except ValidationFailed as exc:
            db.rollback()
            return render_template("subsidy/base_table_edit.html", fy=fy, table=table, text=text,
                                   problems=_problems(exc)), 422
        db.commit()
        flash(f"{fy}年度の基準額表を更新しました。", "success")
        return redirect(url_for("subsidy.base_tables"))
    text = service.table_csv(table) if table else ",".join(rules.TABLE_COLUMNS) + "\n"
    return render_template("subsidy/base_table_edit.html", fy=fy, table=table, text=text, problems=[])


@bp.route("/budgets", methods=["POST"])
@require(Permission.BASE_TABLE_MANAGE)
def budget() -> Any:
    db, actor = get_session(), current_actor()
    fy = forms.fiscal_year(request.form.get("fy"))
    try:
        try:
            category = Category(request.form.get("category"))
        except ValueError:
            raise ValidationFailed([Problem("category", "区分（一般分 または 国民年金・特別児童扶養手当分）を選択してください。")]) from None
        problems: list[Problem] = []
        amount = forms.money(request.form.get("amount"), "amount", "予算額", problems, required=False)
        if problems:
            raise ValidationFailed(problems)
        raw = request.form.get("version", "0")
        service.set_budget(db, actor, fy, category, amount, int(raw) if raw.isdigit() else 0)
    except ValueError:
        abort(400)
    except ValidationFailed as exc:
        db.rollback()
        return _tables_page(_problems(exc), 422)
    db.commit()
    flash(f"{fy}年度・{category}の予算額を{'設定' if amount is not None else '解除'}しました。", "success")
    return redirect(url_for("subsidy.base_tables"))


@bp.route("/keywords", methods=["GET", "POST"])
@require(Permission.BASE_TABLE_MANAGE)
def keywords() -> Any:
    db, actor = get_session(), current_actor()
    words = service.keywords(db)
    if request.method == "POST":
        text = request.form.get("text", "")
        try:
            service.save_keywords(db, actor, text, request.form.get("token", ""))
        except ValidationFailed as exc:
            db.rollback()
            return render_template("subsidy/keywords.html", text=text, token=service.keywords_token(words),
                                   problems=_problems(exc)), 422
        db.commit()
        flash("補助対象外キーワードを保存しました。", "success")
        return redirect(url_for("subsidy.keywords"))
    return render_template("subsidy/keywords.html", text="\n".join(words), token=service.keywords_token(words),
                           problems=[])


# --------------------------------------------------------------------------------------------
# Finance reports


@bp.route("/reports")
@require(Permission.SUBSIDY_VIEW)
def reports() -> Any:
    db, actor = get_session(), current_actor()
    fy = _fy()
    national, prefectures, illustrative = queries.finance_report(db, actor, fy)
    return render_template("subsidy/reports.html", fy=fy, national=national, prefectures=prefectures,
                           illustrative=illustrative, Totals=queries.Totals, systems=list(System))


@bp.route("/reports.xlsx")
@require(Permission.SUBSIDY_VIEW)
@fresh_required("全国の補助金集計の出力", when=spans_every_body(Permission.SUBSIDY_VIEW),
                back=lambda: url_for("subsidy.reports", **request.args.to_dict(flat=False)))
def reports_xlsx() -> Any:
    db, actor = get_session(), current_actor()
    fy = _fy()
    national, prefectures, illustrative = queries.finance_report(db, actor, fy)
    data = queries.report_xlsx(national, prefectures, fy, illustrative)
    return Response(data, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=subsidy_report_{fy}.xlsx"})


# --------------------------------------------------------------------------------------------
# API

MONEY_MAP = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
             "description": "システム名 → 円（整数）"}
CATEGORY_RESULT = {"type": "object", "properties": {k: {"type": "integer"} for k in ("base", "eligible", "grant", "local_share")}}


@api_bp.route("/calculate", methods=["POST"])
@require(Permission.SUBSIDY_VIEW)
@document(
    "交付額の計算（SUBSIDY.md §5）。costs に挙げたシステムを登録済みとみなし、保存された移管・予算を反映します。",
    request_body={"type": "object", "required": ["body", "fiscal_year", "costs"], "properties": {
        "body": {"type": "string", "description": "団体コード（6桁）"},
        "fiscal_year": {"type": "integer", "enum": list(rules.FISCAL_PROJECTS)},
        "costs": MONEY_MAP, "other_income": MONEY_MAP, "allocations": MONEY_MAP,
        "already_granted": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}}},
    response={"type": "object", "properties": {"categories": {"type": "object", "properties": {
        c.value: CATEGORY_RESULT for c in Category}}}},
)
def calculate() -> Any:
    db = get_session()
    try:
        data = json.loads(request.get_data(as_text=True) or "null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed([Problem("", "リクエスト本文をJSONとして読めません。")])
    result = service.grant_for_request(db, current_actor(), data)
    db.commit()
    return result


def _domain_error(exc: DomainError) -> Any:
    """Map domain errors like the portal does, but keep the audit entry of a refused look-up (404)."""
    from pmo.core.errors import NotFound
    from pmo.web.errors import error_page, problem

    session = get_session()
    if isinstance(exc, NotFound):
        session.commit()
    else:
        session.rollback()
    if request.path.startswith("/api/"):
        errors = [{"field": p.field, "message": p.message} for p in getattr(exc, "problems", [])]
        return problem(exc.status, "入力内容に誤りがあります。" if errors else (exc.message or None), errors or None)
    if isinstance(exc, ValidationFailed):
        return error_page(exc.status, "；".join(_problems(exc)))
    return error_page(exc.status, exc.message or None)


bp.register_error_handler(DomainError, _domain_error)
api_bp.register_error_handler(DomainError, _domain_error)


def _home_panel(session: Any, actor: Any) -> dict[str, Any] | None:
    """Home page: applications waiting for this actor, or the body's own applications."""
    if not can(actor, Permission.SUBSIDY_VIEW):
        return None
    pending = service.pending_applications(session, actor)
    own = []
    if actor.body is not None and can(actor, Permission.SUBSIDY_APPLY):
        body = service.find_body(session, actor.body.code)
        own = [a for a in service.applications_of(session, body) if a.state.value != "approved"]
    if not pending and not own:
        return None
    return {"title": "補助金の手続", "template": "subsidy/_home_panel.html", "pending": pending, "own": own}


from pmo.home.views import home_panels  # noqa: E402

home_panels.append(_home_panel)
