"""The plan screen, its history, Excel/CSV round-trip, the national workbook, monthly close and the
prefecture view. Thin handlers: parse → service → commit → render."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from pmo.accounts.permissions import Permission, can
from pmo.config import upload_dir
from pmo.core import clock
from pmo.core.dates import DateInputError, format_partial, parse_date_input
from pmo.core.errors import ValidationFailed
from pmo.core.files import UploadRejected, content_disposition
from pmo.core.tabular import problems_to_csv, problems_to_xlsx
from pmo.db import get_session
from pmo.plans import forms, imports, locks, rules, service
from pmo.plans.models import ImportJob, ImportStatus
from pmo.web.auth import current_actor, fresh_required, require

bp = Blueprint("plans", __name__, url_prefix="/plans")

FORMATS = {"xlsx": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
           "csv": ("csv", "text/csv; charset=utf-8"), "cp932": ("csv", "text/csv; charset=shift_jis")}


def _storage() -> Path:
    return upload_dir(current_app.config, current_app.instance_path)


def _parse_as_of(text: str | None) -> tuple[dt.date | None, str | None]:
    if not text:
        return None, None
    try:
        parsed = parse_date_input(text[:40])
    except DateInputError as exc:
        return None, exc.message
    return (parsed.end() if parsed else None), None


def _render_sheet(sheet: service.Sheet, *, status: int = 200, raw: dict[str, dict[str, str]] | None = None,
                  errors: dict[str, list[str]] | None = None, conflicts: list[service.ConflictRow] | None = None,
                  versions: dict[str, int] | None = None, as_of_text: str = "", as_of_error: str | None = None,
                  editable: bool = True) -> tuple[str, int]:
    actor = current_actor()
    db = get_session()
    form = forms.SheetForm()
    may_comment = can(actor, Permission.PLAN_COMMENT) and sheet.body.id != (actor.body.id if actor.body else None)
    html = render_template(
        "plans/sheet.html", sheet=sheet, form=form, raw=raw or {}, errors=errors or {}, conflicts=conflicts or [],
        versions=versions or {}, editable=editable and not sheet.historical, as_of_text=as_of_text,
        as_of_error=as_of_error, rules=rules, name=forms.name, format_partial=format_partial,
        comments=service.list_comments(db, sheet.body), may_comment=may_comment,
        comment_form=forms.CommentForm() if may_comment else None, today=clock.today(),
    )
    return html, status


@bp.route("/")
@require(Permission.PLAN_EDIT)
def own() -> Any:
    actor = current_actor()
    if actor.body is None:
        abort(404)
    return redirect(url_for("plans.show", code=actor.body.code))


@bp.route("/<code>", methods=("GET", "POST"))
@require(Permission.PLAN_VIEW)
def show(code: str) -> Any:
    db = get_session()
    actor = current_actor()
    editable = can(actor, Permission.PLAN_EDIT) and actor.body is not None and actor.body.code == code
    as_of_text = (request.args.get("as_of") or "").strip()
    as_of, as_of_error = _parse_as_of(as_of_text)
    if request.method == "POST" and not editable:
        service.load_sheet(db, actor, code)  # 404 outside the actor's scope
        abort(403)
    if request.method == "GET":
        sheet = service.load_sheet(db, actor, code, as_of)
        db.commit()
        return _render_sheet(sheet, as_of_text=as_of_text, as_of_error=as_of_error, editable=editable)
    form = forms.SheetForm()
    sheet = service.load_sheet(db, actor, code, None, Permission.PLAN_EDIT)
    if not form.validate_on_submit():
        return _render_sheet(sheet, status=400, errors={"_form": ["画面の有効期限が切れました。もう一度保存してください。"]})
    codes = [r.subtask.code for r in sheet.rows]
    completion_codes = {r.subtask.code: [s.code for s in r.specs] for r in sheet.rows}
    inputs = forms.rows_from(request.form, codes, completion_codes)
    raw = {i.subtask_code: {**i.raw, "na": "1" if i.not_applicable else "", "fp": i.fingerprint or "",
                            "version": str(i.version)} for i in inputs}
    try:
        result = service.save_sheet(db, actor, code, inputs)
    except service.PlanConflict as exc:
        db.rollback()
        versions = {row.subtask_code: row.version for row in exc.rows}
        return _render_sheet(sheet, status=409, raw=raw, conflicts=exc.rows, versions=versions)
    except ValidationFailed as exc:
        db.rollback()
        return _render_sheet(sheet, status=422, raw=raw, errors=exc.by_field())
    db.commit()
    if result.changed:
        flash(f"保存しました（{len(result.changed)}件のサブタスク: {'、'.join(result.changed)}）。", "success")
    else:
        flash("変更はありませんでした。", "info")
    return redirect(url_for("plans.show", code=code))


@bp.route("/<code>/history")
@require(Permission.PLAN_VIEW)
def history(code: str) -> Any:
    db = get_session()
    actor = current_actor()
    from pmo.orgs.service import get_body

    body = get_body(db, actor, code, Permission.PLAN_VIEW)
    entries = service.plan_history(db, actor, code)
    db.commit()
    return render_template("plans/history.html", body=body, entries=entries)


@bp.route("/<code>/comments", methods=("POST",))
@require(Permission.PLAN_COMMENT)
def comment(code: str) -> Any:
    db = get_session()
    form = forms.CommentForm()
    if form.validate_on_submit():
        user = current_user.user
        org = user.body.full_name if user.body else (user.ministry.name if user.ministry else "")
        try:
            service.add_comment(db, current_actor(), code, form.text.data, (form.subtask.data or "").strip().upper() or None,
                                author_name=user.display_name, author_org=org)
        except ValidationFailed as exc:
            db.rollback()
            flash("；".join(p.message for p in exc.problems), "error")
        else:
            db.commit()
            flash("支援コメントを登録しました。", "success")
    else:
        flash("；".join(e for f in (form.text, form.subtask) for e in f.errors) or "コメントを入力してください。", "error")
    return redirect(url_for("plans.show", code=code) + "#comments")


# --- Excel / CSV -------------------------------------------------------------------------------------


def _download(data: bytes, stem: str, fmt: str) -> Response:
    ext, mime = FORMATS[fmt]
    response = Response(data, mimetype=mime)
    response.headers["Content-Disposition"] = content_disposition(f"{stem}.{ext}")
    return response


@bp.route("/<code>/export")
@require(Permission.PLAN_VIEW)
def export(code: str) -> Any:
    fmt = request.args.get("format", "xlsx")
    if fmt not in FORMATS:
        abort(404)
    db = get_session()
    data = imports.export_file(db, current_actor(), code, fmt)
    db.commit()
    return _download(data, f"計画・実績_{code}_{clock.today():%Y%m%d}", fmt)


@bp.route("/national/export")
@require(Permission.PLAN_IMPORT_NATIONAL)
@fresh_required("全団体分の計画・実績の出力", back=lambda: url_for("plans.national"))
def export_national() -> Any:
    """The national workbook; with ``job`` (set by the page's script) its progress can be polled."""
    fmt = request.args.get("format", "xlsx")
    if fmt not in FORMATS:
        abort(404)
    db = get_session()
    actor = current_actor()
    stem = f"計画・実績_全国_{clock.today():%Y%m%d}"
    batch = (request.args.get("job") or "").strip()
    job = None
    if batch.isascii() and batch.isalnum() and 8 <= len(batch) <= 40:
        job = imports.start_export_job(db, actor, batch, f"{stem}.{FORMATS[fmt][0]}")
        db.commit()
    if job is None:
        data = imports.export_file(db, actor, None, fmt)
        db.commit()
        return _download(data, stem, fmt)

    def report(done: int, total: int) -> None:
        job.processed_rows, job.total_rows, job.heartbeat_dt = done, total, clock.now()
        db.commit()  # only the job row is pending: the export reads

    data = imports.export_file(db, actor, None, fmt, report)
    imports.finish_export_job(job, len(data))
    db.commit()
    return _download(data, stem, fmt)


def _validate_progress(job: ImportJob) -> Any:
    db = get_session()

    def report(done: int, total: int) -> None:
        job.processed_rows, job.total_rows, job.heartbeat_dt = done, max(total, done), clock.now()
        db.commit()  # only the job row is pending: validation reads, it does not write

    return report


def _apply_progress(job: ImportJob) -> Any:
    """Report apply progress from a second connection (PostgreSQL); SQLite has one writer, so skip."""
    database = current_app.extensions["pmo_db"]
    if not database.writes_beside:
        return None
    job_id = job.id

    def report(done: int, total: int) -> None:
        from sqlalchemy import update

        with database.session() as other:
            other.execute(update(ImportJob).where(ImportJob.id == job_id)
                          .values(processed_rows=done, total_rows=total, heartbeat_dt=clock.now(), phase="apply"))
            other.commit()

    return report


def _beat_row(job: ImportJob) -> Any:
    """The job row's heartbeat from a second connection, for every server to see (PostgreSQL)."""
    database = current_app.extensions["pmo_db"]
    return imports.row_beat(database.session, job.id) if database.writes_beside else None


@bp.route("/import", methods=("GET", "POST"))
@require(Permission.PLAN_EDIT)
def upload() -> Any:
    return _upload(national=False)


@bp.route("/national/import", methods=("POST",))
@require(Permission.PLAN_IMPORT_NATIONAL)
def upload_national() -> Any:
    return _upload(national=True)


def _upload(national: bool) -> Any:
    db = get_session()
    actor = current_actor()
    form = forms.UploadForm()
    if request.method == "GET" or not form.validate_on_submit():
        if request.method == "POST":
            flash("画面の有効期限が切れました。もう一度選択してください。", "error")
        form.batch_id.data = imports.new_batch_id()
        return render_template("plans/import.html", form=form, national=national)
    upload_file = form.file.data
    if upload_file is None or not upload_file.filename:
        flash("取り込むファイルを選択してください。", "error")
        return redirect(url_for("plans.national" if national else "plans.upload"))
    data = upload_file.read()
    batch = (form.batch_id.data or "").strip()
    batch = batch if batch.isalnum() and len(batch) <= 40 else None
    try:
        job = imports.start_job(db, actor, data, upload_file.filename, national, batch)
    except UploadRejected as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("plans.national" if national else "plans.upload"))
    db.commit()
    imports.validate_job(db, actor, job, data, _storage(), _validate_progress(job))
    db.commit()
    return redirect(url_for("plans.job", batch_id=job.batch_id))


def _discard_staged(*jobs: ImportJob) -> None:
    """Delete the staged files of jobs that can no longer be confirmed (REL-05). Files only: a GET
    writes nothing to the database."""
    imports.discard_staged(_storage(), *jobs)


@bp.route("/import/<batch_id>")
@require(None)
def job(batch_id: str) -> Any:
    db = get_session()
    found = imports.get_job(db, current_actor(), batch_id, _storage())
    db.commit()
    if found.kind != "plans":
        abort(404)  # an export's record only reports progress
    _discard_staged(found)
    problems = imports.errors_as_problems(found)
    return render_template("plans/job.html", job=found, problems=problems[:500], problem_count=len(problems),
                           form=forms.ConfirmForm(), Status=ImportStatus)


@bp.route("/import/<batch_id>/status.json")
@require(None)
def job_status(batch_id: str) -> Any:
    db = get_session()
    found = imports.get_job(db, current_actor(), batch_id, _storage())
    db.commit()
    _discard_staged(found)
    return jsonify({"status": found.status.value, "phase": found.phase, "processed": found.processed_rows,
                    "total": found.total_rows, "finished": found.status is not ImportStatus.RUNNING,
                    "url": url_for("plans.job", batch_id=found.batch_id)})


@bp.route("/import/<batch_id>/errors.<fmt>")
@require(None)
def job_errors(batch_id: str, fmt: str) -> Any:
    found = imports.get_job(get_session(), current_actor(), batch_id, _storage())
    problems = imports.errors_as_problems(found)
    if fmt == "csv":
        return _download(problems_to_csv(problems), f"取込エラー_{found.filename}", "csv")
    if fmt == "xlsx":
        return _download(problems_to_xlsx(problems), f"取込エラー_{found.filename}", "xlsx")
    abort(404)


@bp.route("/import/<batch_id>/commit", methods=("POST",))
@require(None)
def job_commit(batch_id: str) -> Any:
    db = get_session()
    actor = current_actor()
    found = imports.get_job(db, actor, batch_id, _storage())
    if not forms.ConfirmForm().validate_on_submit():
        flash("画面の有効期限が切れました。もう一度確定してください。", "error")
        return redirect(url_for("plans.job", batch_id=batch_id))
    if found.status is not ImportStatus.PREVIEWED:
        flash("この取込はすでに確定済みか、確定できない状態です。", "warning")
        return redirect(url_for("plans.job", batch_id=batch_id))
    found.status, found.phase, found.heartbeat_dt, found.processed_rows = ImportStatus.RUNNING, "apply", clock.now(), 0
    db.commit()
    try:
        with imports.apply_heartbeat(found, _storage(), _beat_row(found)):  # REL-05: alive until committed
            locks.wait_for_other_imports(db)  # REL-06: a second import is queued, never interleaved
            counts = imports.commit_job(db, actor, found, _storage(), _apply_progress(found))
            db.commit()
    except Exception:
        db.rollback()
        found = imports.get_job(db, actor, batch_id, _storage())
        found.status, found.message = ImportStatus.FAILED, "取込に失敗しました。データは変更されていません。"
        found.finished_dt = clock.now()
        db.commit()
        _discard_staged(found)
        raise
    _discard_staged(found)
    del counts  # the job page shows them
    return redirect(url_for("plans.job", batch_id=batch_id))


# --- national and monthly close -------------------------------------------------------------------


@bp.route("/national")
@require(Permission.PLAN_IMPORT_NATIONAL)
def national() -> Any:
    db = get_session()
    form = forms.UploadForm()
    form.batch_id.data = imports.new_batch_id()
    today = clock.today()
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    close_form = forms.CloseMonthForm(month=f"{last_month:%Y-%m}")
    imports.sweep_staged(db, _storage())  # also imports no page lists: the CLI's, older ones
    jobs = imports.recent_jobs(db, national=True, storage=_storage())
    db.commit()
    _discard_staged(*jobs)
    return render_template("plans/national.html", form=form, close_form=close_form, jobs=jobs,
                           snapshots=service.list_snapshots(db), may_close=can(current_actor(), Permission.MONTHLY_CLOSE))


@bp.route("/open")
@require(Permission.PLAN_VIEW)
def open_body() -> Any:
    code = "".join(ch for ch in (request.args.get("code") or "") if ch.isalnum())[:6]
    return redirect(url_for("plans.show", code=code) if code else url_for("plans.national"))


@bp.route("/national/close", methods=("POST",))
@require(Permission.MONTHLY_CLOSE)
def close_month() -> Any:
    db = get_session()
    form = forms.CloseMonthForm()
    if form.validate_on_submit():
        try:
            month = parse_date_input(form.month.data)
        except DateInputError as exc:
            flash(exc.message, "error")
            return redirect(url_for("plans.national"))
        try:
            snap = service.close_month(db, current_actor(), month.start())  # type: ignore[union-attr]
        except ValidationFailed as exc:
            db.rollback()
            flash("；".join(p.message for p in exc.problems), "error")
        else:
            db.commit()
            flash(f"{snap.month.year}年{snap.month.month}月を締めました（{snap.row_count:,}行）。", "success")
    return redirect(url_for("plans.national"))


@bp.route("/prefecture")
@require(Permission.PLAN_COMMENT)
def prefecture() -> Any:
    db = get_session()
    rows = service.prefecture_summaries(db, current_actor())
    sheet_url = url_for("plans.show", code="0")[:-1]  # one url_for, not one per body
    return render_template("plans/prefecture.html", rows=rows, today=clock.today(), sheet_url=sheet_url)
