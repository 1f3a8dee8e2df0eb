"""Procedures catalog: browse and filter, xlsx/CSV downloads, data sets with version history."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf.file import FileField
from wtforms import StringField, TextAreaField
from wtforms.validators import Length

from pmo.accounts.permissions import Permission, can
from pmo.config import upload_dir
from pmo.core.errors import NotFound, ValidationFailed
from pmo.db import get_session
from pmo.documents.storage import FileStore
from pmo.documents.views import file_response
from pmo.procedures import service
from pmo.web.auth import current_actor, require
from pmo.web.forms import PortalForm, add_problems

bp = Blueprint("procedures", __name__, url_prefix="/procedures")


class DatasetForm(PortalForm):
    title = StringField("名称（新規登録のとき）", validators=[Length(max=200)])
    description = TextAreaField("説明", validators=[Length(max=2000)])
    file = FileField("ファイル（Excel・CSV・PDF・ZIP）")
    change_note = TextAreaField("変更内容", validators=[Length(max=2000)])


def _store() -> FileStore:
    return FileStore(upload_dir(current_app.config, current_app.instance_path))


def _filter() -> service.ProcedureFilter:
    linkage = request.args.get("linkage")
    return service.ProcedureFilter(system=request.args.get("system") or None, submit_to=request.args.get("submit_to") or None,
                                   linkage=True if linkage == "yes" else False if linkage == "no" else None,
                                   text=(request.args.get("q") or "").strip()[:100] or None)


@bp.route("/")
@require(Permission.PROCEDURE_READ)
def index() -> Any:
    db = get_session()
    flt = _filter()
    return render_template("procedures/index.html", procs=service.list_procedures(db, current_actor(), flt), flt=flt,
                           systems=service.systems(db), destinations=service.destinations(db),
                           items=service.ordinance_items(db), headers=service.ORDINANCE_HEADERS,
                           datasets=service.list_datasets(db),
                           can_publish=can(current_actor(), Permission.DATASET_PUBLISH) and current_actor().ministry_id is not None)


@bp.route("/<int:procedure_id>")
@require(Permission.PROCEDURE_READ)
def show(procedure_id: int) -> Any:
    return render_template("procedures/show.html", p=service.get_procedure(get_session(), current_actor(), procedure_id))


@bp.route("/export.<fmt>")
@require(Permission.PROCEDURE_READ)
def export(fmt: str) -> Any:
    db = get_session()
    procs = service.list_procedures(db, current_actor(), _filter())
    if fmt == "csv":
        return file_response(service.export_csv(procs), "text/csv; charset=utf-8", "番号利用事務・手続一覧.csv")
    if fmt == "xlsx":
        return file_response(service.export_xlsx(procs, service.ordinance_items(db)),
                             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "番号利用事務・手続一覧.xlsx")
    abort(404)


@bp.route("/datasets/new", methods=("GET", "POST"))
@bp.route("/datasets/<int:dataset_id>/versions", methods=("GET", "POST"))
@require(Permission.DATASET_PUBLISH)
def upload_dataset(dataset_id: int | None = None) -> Any:
    db = get_session()
    dataset = service.get_dataset(db, current_actor(), dataset_id) if dataset_id else None
    form = DatasetForm()
    if form.validate_on_submit():
        file = form.file.data
        try:
            if file is None or not getattr(file, "filename", ""):
                raise ValidationFailed([service.Problem("file", "ファイルを選択してください。")])
            version = service.upload_dataset(db, current_actor(), _store(), file.read(), file.filename,
                                             form.change_note.data or "", form.title.data, form.description.data or "",
                                             dataset_id)
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        else:
            db.commit()
            flash(f"第{version.number}版を登録しました。", "success")
            return redirect(url_for("procedures.dataset", dataset_id=version.dataset_id))
    return render_template("procedures/upload.html", form=form, dataset=dataset)


@bp.route("/datasets/<int:dataset_id>")
@require(Permission.PROCEDURE_READ)
def dataset(dataset_id: int) -> Any:
    ds = service.get_dataset(get_session(), current_actor(), dataset_id)
    return render_template("procedures/dataset.html", ds=ds,
                           can_publish=can(current_actor(), Permission.DATASET_PUBLISH, ministry_id=ds.ministry_id))


@bp.route("/datasets/<int:dataset_id>/versions/<int:number>/download")
@require(Permission.PROCEDURE_READ)
def dataset_download(dataset_id: int, number: int) -> Any:
    ds = service.get_dataset(get_session(), current_actor(), dataset_id)
    version = next((v for v in ds.versions if v.number == number), None)
    if version is None:
        raise NotFound("ファイルが見つかりません。")
    try:
        data = _store().read(version.storage_key)
    except FileNotFoundError:
        abort(404)
    return file_response(data, version.mime_type, version.display_name)
