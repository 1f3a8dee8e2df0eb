"""Delay screens: one body's plan against actual, follow-up cases, the vendor view; and the delays API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for

from pmo.accounts.models import Role
from pmo.accounts.permissions import Permission, can, visible_prefecture
from pmo.api.openapi import document, query_param
from pmo.core import clock
from pmo.core.errors import ValidationFailed
from pmo.db import get_session
from pmo.delays import cases as case_service
from pmo.delays import service
from pmo.delays.forms import EntryForm, OpenCasesForm, UpdateCaseForm
from pmo.delays.models import CASE_CAUSE_LABELS, CASE_STATUS_LABELS, CaseCause, CaseStatus
from pmo.web.auth import current_actor, require
from pmo.web.errors import problem
from pmo.web.forms import add_problems

bp = Blueprint("delays", __name__, url_prefix="/delays")
api_bp = Blueprint("delays_api", __name__, url_prefix="/api/v1")


@bp.record_once
def _configure_cache(state: Any) -> None:
    # National and prefecture states are cached per data fingerprint (see service.delay_state);
    # off under TESTING, where rolled-back data can repeat a fingerprint.
    service.CACHE["enabled"] = not state.app.testing and bool(state.app.config.get("DELAY_STATE_CACHE", True))


def default_as_of() -> dt.date:
    """Return the as-of date a page opens on: today, or the demo's date on a demo database."""
    if current_app.config.get("DEMO") and current_app.config.get("DEMO_DATE"):
        return dt.date.fromisoformat(current_app.config["DEMO_DATE"])
    return clock.today()


def as_of_arg() -> dt.date:
    """Return the ``as_of`` query argument; a bad one is reported and the default used instead."""
    try:
        return service.parse_as_of(request.args.get("as_of"), default_as_of())
    except ValidationFailed as exc:
        flash(exc.problems[0].message + "既定の基準日で表示しています。", "error")
        return default_as_of()


@bp.route("/")
@require(Permission.DELAY_VIEW)
def index() -> Any:
    actor = current_actor()
    if can(actor, Permission.DASHBOARD_NATIONAL):
        return redirect(url_for("reports.national"))
    reach = visible_prefecture(actor, Permission.DELAY_VIEW)
    if isinstance(reach, str):
        return redirect(url_for("reports.prefecture", code=reach))
    return redirect(url_for("delays.body", code=actor.body.code))  # type: ignore[union-attr]


@bp.route("/bodies/<code>")
@require(Permission.DELAY_VIEW)
def body(code: str) -> Any:
    from pmo.reports import service as reports

    db = get_session()
    as_of = as_of_arg()
    view = reports.body_view(db, current_actor(), code, as_of)
    body_cases = case_service.list_cases(db, current_actor(), case_service.CaseFilter(body_code=code), limit=50)
    db.commit()
    return render_template("delays/body.html", view=view, as_of=as_of, cases=body_cases,
                           thresholds=service.get_thresholds(db))


# --- follow-up cases ---------------------------------------------------------------------------


def _enum_arg(enum_cls: Any, name: str) -> Any:
    raw = request.args.get(name, "")
    return next((m for m in enum_cls if m.value == raw), None)


@bp.route("/cases")
@require(Permission.CASE_VIEW)
def cases() -> Any:
    db = get_session()
    actor = current_actor()
    status = _enum_arg(CaseStatus, "status")
    show = request.args.get("show", "open")
    pref = request.args.get("prefecture", "")
    flt = case_service.CaseFilter(
        status=status, open_only=status is None and show != "all",
        prefecture_code=pref if pref.isdigit() and len(pref) == 2 else None,
        cause=_enum_arg(CaseCause, "cause"),
        owner_id=actor.user_id if request.args.get("mine") == "1" else None,
    )
    rows = case_service.list_cases(db, actor, flt)
    from pmo.reports.service import prefecture_names

    return render_template(
        "delays/cases.html", cases=rows, flt=flt, show=show, counts=case_service.case_counts(db, actor),
        statuses=CASE_STATUS_LABELS, causes=CASE_CAUSE_LABELS, prefectures=prefecture_names(db),
        can_manage=can(actor, Permission.CASE_MANAGE),
    )


def _owner_choices(db: Any) -> list[tuple[int, str]]:
    return [(0, "（自分）")] + [(u.id, u.display_name) for u in case_service.officers(db)]


@bp.route("/cases/new", methods=("GET", "POST"))
@require(Permission.CASE_MANAGE)
def new_cases() -> Any:
    from pmo.orgs.models import Body
    from sqlalchemy import select

    db = get_session()
    codes = request.values.getlist("body")
    form = OpenCasesForm()
    form.owner_id.choices = _owner_choices(db)
    if request.method == "GET":
        form.as_of.data = request.args.get("as_of") or default_as_of().isoformat()
        form.vendor.data = request.args.get("vendor", "")
        if form.vendor.data:
            form.cause.data = CaseCause.VENDOR.value
            form.title.data = f"ベンダー（{form.vendor.data}）起因の遅延の確認"
    if form.validate_on_submit():
        try:
            as_of = service.parse_as_of(form.as_of.data, default_as_of())
            opened = case_service.open_cases(db, current_actor(), codes, form.to_input(), as_of)
        except ValidationFailed as exc:
            add_problems(form, exc)
        else:
            db.commit()
            flash(f"{len(opened)}団体のフォローを開始しました。", "success")
            if len(opened) == 1:
                return redirect(url_for("delays.case", case_id=opened[0].id))
            return redirect(url_for("delays.cases"))
    bodies = list(db.scalars(select(Body).where(Body.code.in_(codes)).order_by(Body.code))) if codes else []
    return render_template("delays/new_cases.html", form=form, bodies=bodies, codes=codes)


@bp.route("/cases/<int:case_id>")
@require(Permission.CASE_VIEW)
def case(case_id: int) -> Any:
    db = get_session()
    found = case_service.get_case(db, current_actor(), case_id)
    db.commit()
    return _render_case(found, EntryForm(), _update_form(db, found))


def _update_form(db: Any, found: Any, formdata: Any = None) -> UpdateCaseForm:
    form = UpdateCaseForm(formdata=formdata, data={
        "status": found.status.value, "cause": found.cause.value, "owner_id": found.owner_id or 0,
        "next_contact_date": found.next_contact_date, "version": found.version,
    }) if formdata is None else UpdateCaseForm()
    form.owner_id.choices = _owner_choices(db)
    return form


def _render_case(found: Any, entry_form: EntryForm, update_form: UpdateCaseForm, conflict: Any = None,
                 status: int = 200) -> Any:
    actor = current_actor()
    from pmo.accounts.service import body_ref

    ref = body_ref(found.body)
    can_manage = can(actor, Permission.CASE_MANAGE, ref)
    can_answer = can(actor, Permission.CASE_ANSWER, ref) and found.is_open
    can_comment = actor.role is Role.PREFECTURE_STAFF and can(actor, Permission.PLAN_COMMENT, ref) and found.is_open
    return render_template(
        "delays/case.html", case=found, entries=case_service.visible_entries(actor, found), entry_form=entry_form, update_form=update_form, conflict=conflict,
        can_manage=can_manage, can_write=can_manage or can_answer or can_comment,
        entry_label="対応の記録" if can_manage else ("回答" if can_answer else "支援コメント"),
    ), status


@bp.route("/cases/<int:case_id>/entries", methods=("POST",))
@require(Permission.CASE_VIEW)
def add_entry(case_id: int) -> Any:
    db = get_session()
    form = EntryForm()
    found = case_service.get_case(db, current_actor(), case_id)
    if form.validate_on_submit():
        try:
            case_service.add_entry(db, current_actor(), case_id, form.text.data or "", internal=bool(form.internal.data))
        except ValidationFailed as exc:
            add_problems(form, exc)
        else:
            db.commit()
            flash("記録しました。", "success")
            return redirect(url_for("delays.case", case_id=case_id) + "#timeline")
    return _render_case(found, form, _update_form(db, found), status=422)


@bp.route("/cases/<int:case_id>/update", methods=("POST",))
@require(Permission.CASE_MANAGE)
def update_case(case_id: int) -> Any:
    db = get_session()
    found = case_service.get_case(db, current_actor(), case_id)
    form = UpdateCaseForm()
    form.owner_id.choices = _owner_choices(db)
    if form.validate_on_submit():
        data = form.to_input()
        if data.owner_id is None:
            data = case_service.CaseUpdate(data.status, data.cause, data.next_contact_date, current_actor().user_id,
                                           data.note)
        try:
            case_service.update_case(db, current_actor(), case_id, data, form.version.data)
        except case_service.CaseConflict as exc:
            db.rollback()
            found = case_service.get_case(db, current_actor(), case_id)
            return _render_case(found, EntryForm(), form, conflict=exc, status=409)
        except ValidationFailed as exc:
            add_problems(form, exc)
        else:
            db.commit()
            flash("フォローの状況を更新しました。", "success")
            return redirect(url_for("delays.case", case_id=case_id))
    return _render_case(found, EntryForm(), form, status=422)


# --- vendor view ---------------------------------------------------------------------------------


@bp.route("/vendors")
@require(Permission.CASE_MANAGE)
def vendors() -> Any:
    from pmo.reports import rules as report_rules
    from pmo.reports import service as reports

    db = get_session()
    as_of = as_of_arg()
    vendor = (request.args.get("vendor") or "").strip()[:100]
    state = service.delay_state(db, current_actor(), as_of)
    names = reports.prefecture_names(db)
    all_vendors = sorted({v for vs in state.bodies["vendors"] for v in vs})
    rows = None
    late_subtasks: dict[str, list[str]] = {}
    if vendor:
        rows = service.vendor_bodies(state, vendor)
        late_subtasks = service.vendor_late_subtasks(state, vendor)
        table = report_rules.followup_table(rows, names, reports.KIND_LABELS,
                                            {c: f"{k.status.label}（No.{k.id}）" for c, k in
                                             case_service.open_case_by_body(db, current_actor()).items()})
    else:
        table = None
    return render_template("delays/vendors.html", as_of=as_of, vendor=vendor, vendors=all_vendors, rows=rows,
                           table=table, late_subtasks=late_subtasks)


# --- API -----------------------------------------------------------------------------------------

SIGNAL_ITEM = {
    "type": "object",
    "properties": {
        "body_code": {"type": "string"}, "subtask": {"type": "string"},
        "signal": {"type": "string", "enum": [k.value for k in service.rules.SignalKind]},
        "days": {"type": ["integer", "null"]}, "severity": {"type": "string", "enum": ["notice", "delayed", "critical"]},
    },
}


@api_bp.route("/delays")
@require(Permission.DELAY_VIEW)
@document(
    "遅延の兆候（基準日時点、閲覧できる範囲）",
    params=[query_param("as_of", "基準日（YYYY-MM-DD、省略時は今日）"), query_param("body", "団体コード（省略時は範囲内の全団体）")],
    response={"type": "object", "properties": {
        "as_of": {"type": "string", "format": "date"}, "count": {"type": "integer"},
        "items": {"type": "array", "items": SIGNAL_ITEM},
    }},
    responses={"422": "基準日が正しくありません"},
)
def api_delays() -> Any:
    db = get_session()
    try:
        as_of = service.parse_as_of(request.args.get("as_of"), clock.today())
    except ValidationFailed as exc:
        return problem(422, exc.problems[0].message, [{"field": "as_of", "message": exc.problems[0].message}])
    state = service.delay_state(db, current_actor(), as_of, body_code=request.args.get("body") or None)
    db.commit()
    items = service.signal_items(state)
    return jsonify({"as_of": as_of.isoformat(), "thresholds": service.thresholds_dict(state.thresholds),
                    "count": len(items), "items": items})


@bp.route("/thresholds", methods=("GET", "POST"))
@require(Permission.SYSTEM_SETTINGS)
def thresholds() -> Any:
    from pmo.core.errors import Problem
    from pmo.delays.forms import ThresholdsForm
    from pmo.delays.rules import Severity, SeverityThresholds

    db = get_session()
    current = service.get_thresholds(db)
    form = ThresholdsForm(data=service.thresholds_dict(current))
    if form.validate_on_submit():
        try:
            new = SeverityThresholds(
                delayed_days=form.delayed_days.data, critical_days=form.critical_days.data,
                no_plan=Severity.from_code(form.no_plan.data), finished_late_cap=Severity.from_code(form.finished_late_cap.data),
            )
        except ValueError:
            add_problems(form, ValidationFailed([Problem(
                "critical_days", "日数は 1 ≦「遅延」≦「重大」となるように入力してください。")]))
        else:
            service.set_thresholds(db, current_actor(), new)
            db.commit()
            flash("遅延の判定基準を変更しました。各画面の「この数値の定義」にも反映されます。", "success")
            return redirect(url_for("delays.thresholds"))
    return render_template("delays/thresholds.html", form=form)
