"""The catalog screens for system admins: view A–K with terms in force, edit into a new dated version."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from pmo.accounts.permissions import Permission
from pmo.catalog import service
from pmo.catalog.models import FieldType
from pmo.core import clock
from pmo.core.dates import DateInputError, parse_date_input
from pmo.core.errors import Problem, ValidationFailed
from pmo.db import get_session
from pmo.web.auth import current_actor, require
from pmo.web.forms import nfkc, refuse_my_numbers

bp = Blueprint("catalog", __name__, url_prefix="/catalog")

FIELD_TYPE_LABELS = {"date": "日付", "integer": "整数", "text": "文字", "choice": "選択肢", "yes_no": "はい／いいえ"}


def _date(name: str, label: str) -> tuple[Any, Problem | None]:
    text = (request.form.get(name) or "").strip()
    try:
        parsed = parse_date_input(text)
    except DateInputError as exc:
        return None, Problem(name, exc.message)
    if parsed is None or parsed.precision != "day":
        return None, Problem(name, f"{label}を日まで入力してください。")
    return parsed.value, None


def _page(status: int = 200, errors: dict[str, list[str]] | None = None, form: dict[str, str] | None = None) -> Any:
    db = get_session()
    on = request.args.get("on")
    try:
        when = parse_date_input(on) if on else None
    except DateInputError:
        when = None
    day = when.end() if when else clock.today()
    return render_template(
        "catalog/index.html", items=service.work_items(db), subtasks=service.subtasks_on(db, day), day=day,
        versions=service.versions(db), milestones=service.milestones(db), current=service.version_on(db, day),
        errors=errors or {}, form=form or {}, field_types=FIELD_TYPE_LABELS,
    ), status


@bp.route("/")
@require(Permission.CATALOG_EDIT)
def index() -> Any:
    return _page()


@bp.route("/versions", methods=("POST",))
@require(Permission.CATALOG_EDIT)
def new_version() -> Any:
    db = get_session()
    effective, problem = _date("effective_from", "適用開始日")
    terms = {}
    for st in service.subtasks_on(db, clock.today()):
        raw = request.form.get(f"milestone_{st.id}", "")
        if not raw.isdigit():
            continue
        terms[st.id] = service.TermsInput(
            int(raw), request.form.get(f"pref_{st.id}") == "1", request.form.get(f"muni_{st.id}") == "1",
            request.form.get(f"union_{st.id}") == "1",
        )
    try:
        if problem:
            raise ValidationFailed([problem])
        refuse_my_numbers({"note": request.form.get("note")}, {"note": "版の説明"})
        version = service.create_version(db, current_actor(), effective, nfkc(request.form.get("note")) or "", terms)
    except ValidationFailed as exc:
        db.rollback()
        return _page(422, exc.by_field(), dict(request.form))
    db.commit()
    flash(f"新しい版（{version.effective_from:%Y年%m月%d日}適用）を作成しました。", "success")
    return redirect(url_for("catalog.index"))


@bp.route("/milestones/<int:milestone_id>", methods=("POST",))
@require(Permission.CATALOG_EDIT)
def move_milestone(milestone_id: int) -> Any:
    db = get_session()
    new_date, p1 = _date("due_date", "新しい期日")
    effective, p2 = _date("ms_effective_from", "適用開始日")
    try:
        if p1 or p2:
            raise ValidationFailed([p for p in (p1, p2) if p])
        refuse_my_numbers({"note": request.form.get("ms_note")}, {"note": "変更の理由"})
        service.change_milestone_date(db, current_actor(), milestone_id, new_date, effective,
                                      nfkc(request.form.get("ms_note")) or "")
    except ValidationFailed as exc:
        db.rollback()
        errors = {f"ms{milestone_id}_{k}": v for k, v in exc.by_field().items()}
        return _page(422, errors, dict(request.form))
    db.commit()
    flash("マイルストーンの期日を変更し、新しい版を作成しました（変更前の期日は過去の版に残ります）。", "success")
    return redirect(url_for("catalog.index"))


@bp.route("/subtasks/<int:subtask_id>/fields", methods=("POST",))
@require(Permission.CATALOG_EDIT)
def add_field(subtask_id: int) -> Any:
    db = get_session()
    choices = [c.strip() for c in (request.form.get("choices") or "").replace("、", ",").split(",") if c.strip()]
    try:
        refuse_my_numbers({"label": request.form.get("label"), "choices": request.form.get("choices")},
                          {"label": "項目名", "choices": "選択肢"})
        service.add_completion_field(db, current_actor(), subtask_id, nfkc(request.form.get("label")) or "",
                                     request.form.get("field_type", ""), request.form.get("required") == "1", choices)
    except ValidationFailed as exc:
        db.rollback()
        errors = {f"f{subtask_id}_{k}": v for k, v in exc.by_field().items()}
        return _page(422, errors, dict(request.form))
    db.commit()
    flash("完了時の入力項目を追加しました。", "success")
    return redirect(url_for("catalog.index") + f"#st-{subtask_id}")


__all__ = ["FieldType", "bp"]
