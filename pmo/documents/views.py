"""Document library screens: list, detail with versions, upload, publish, 取組情報, downloads, subscriptions."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for

from pmo.accounts.permissions import Permission, can
from pmo.config import upload_dir
from pmo.core.clock import JST
from pmo.core.errors import Conflict, NotFound, PermissionDenied, Problem, ValidationFailed
from pmo.core.files import content_disposition
from pmo.db import get_session
from pmo.documents import notify, rules, service
from pmo.documents.forms import (
    DocumentForm,
    NewDocumentForm,
    PracticeForm,
    ReviewForm,
    SubscriptionForm,
    VersionUploadForm,
)
from pmo.documents.models import FIELD_LABELS, Document, DocumentKind, DocumentStatus, Field
from pmo.documents.storage import FileStore
from pmo.home.views import home_panels
from pmo.orgs.service import ministries
from pmo.web.auth import current_actor, require
from pmo.web.forms import add_problems
from pmo.web.security import FILE_CSP

bp = Blueprint("documents", __name__, url_prefix="/documents")


def store() -> FileStore:
    return FileStore(upload_dir(current_app.config, current_app.instance_path))


def _max_bytes() -> int:
    return int(current_app.config.get("DOCUMENT_MAX_MB", 30)) * 1024 * 1024


def _upload(form: Any) -> service.Upload | None:
    file = form.file.data
    if file is None or not getattr(file, "filename", ""):
        return None
    return service.Upload(file.read(), file.filename)


def _send_notices(doc_id: int, event: str) -> None:
    cfg = current_app.config
    if not cfg.get("SMTP_HOST"):
        return
    db = get_session()
    doc = db.get(Document, doc_id)
    if doc is None:
        return
    messages = notify.build_messages(db, doc, event, cfg.get("PORTAL_URL") or request.host_url,
                                     cfg.get("MAIL_FROM") or "noreply@pmo.example.jp")
    notify.send(messages, cfg)


def _is_live(doc: Any) -> bool:
    from pmo.core import clock

    return rules.is_live(service.facts(doc), clock.now(), clock.today())


@bp.route("/")
@require(Permission.DOCUMENT_READ)
def index() -> Any:
    db, actor = get_session(), current_actor()
    field = next((f for f in Field if f.value == request.args.get("field")), None)
    kind = next((k for k in DocumentKind if k.value == request.args.get("kind")), None)
    raw_ministry = request.args.get("ministry", "")
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 10_000 else 1
    flt = service.DocumentFilter(field=field, kind=kind, ministry_id=int(raw_ministry) if raw_ministry.isdigit() else None,
                                 text=(request.args.get("q") or "").strip()[:100] or None)
    docs, total = service.list_documents(db, actor, flt, page=page)
    reads = service.read_versions(db, actor, [d.id for d in docs])
    return render_template("documents/index.html", docs=docs, total=total, page=page, flt=flt, reads=reads,
                           is_unread=service.is_unread, fields=FIELD_LABELS, ministries=ministries(db),
                           pending=service.pending_practices(db, actor), is_live=_is_live,
                           can_publish=can(actor, Permission.DOCUMENT_PUBLISH) and actor.ministry_id is not None,
                           can_submit=actor.body is not None and can(actor, Permission.PRACTICE_SUBMIT, body=actor.body))


@bp.route("/new", methods=("GET", "POST"))
@require(Permission.DOCUMENT_PUBLISH)
def new() -> Any:
    form = NewDocumentForm()
    if form.validate_on_submit():
        db = get_session()
        upload = _upload(form)
        try:
            if upload is None:
                raise ValidationFailed([Problem("file", "ファイルを選択してください。")])
            doc = service.create_document(db, current_actor(), form.to_input(), upload, store(), max_bytes=_max_bytes())
            if form.publish_now.data:
                service.publish_document(db, current_actor(), doc.id)
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        else:
            db.commit()
            if form.publish_now.data:
                _send_notices(doc.id, "published")
            flash("文書を登録しました。" + ("公開しました。" if form.publish_now.data else "下書きです。内容を確認して公開してください。"), "success")
            return redirect(url_for("documents.show", doc_id=doc.id))
    return render_template("documents/new.html", form=form)


@bp.route("/practices/new", methods=("GET", "POST"))
@require(Permission.PRACTICE_SUBMIT)
def new_practice() -> Any:
    form = PracticeForm()
    if form.validate_on_submit():
        db = get_session()
        upload = _upload(form)
        try:
            if upload is None:
                raise ValidationFailed([Problem("file", "ファイルを選択してください。")])
            doc = service.submit_practice(db, current_actor(), form.to_input(), upload, store(), max_bytes=_max_bytes())
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        else:
            db.commit()
            flash("取組情報を登録しました。府省担当官の承認後に公開されます。", "success")
            return redirect(url_for("documents.show", doc_id=doc.id))
    return render_template("documents/new_practice.html", form=form)


@bp.route("/<int:doc_id>")
@require(Permission.DOCUMENT_READ)
def show(doc_id: int) -> Any:
    db, actor = get_session(), current_actor()
    doc = service.get_document(db, actor, doc_id)
    reads = service.read_versions(db, actor, [doc.id])
    was_unread = service.is_unread(doc, reads)
    service.mark_read(db, actor, doc)
    db.commit()
    manage = rules.can_manage(actor, service.facts(doc))
    return render_template("documents/show.html", doc=doc, manage=manage, was_unread=was_unread,
                           live=_is_live(doc), version_form=VersionUploadForm(formdata=None), review_form=ReviewForm(formdata=None),
                           can_review=doc.kind is DocumentKind.PRACTICE and doc.status is DocumentStatus.PENDING
                           and can(actor, Permission.PRACTICE_APPROVE))


@bp.route("/<int:doc_id>/edit", methods=("GET", "POST"))
@require(None)
def edit(doc_id: int) -> Any:
    db, actor = get_session(), current_actor()
    doc = service.get_document(db, actor, doc_id)
    if not rules.can_manage(actor, service.facts(doc)):
        raise PermissionDenied("この文書を編集する権限がありません（登録した府省・団体のみ編集できます）。")
    form = DocumentForm(obj=None if request.method == "POST" else doc)
    if request.method == "GET":
        form.field.data, form.audience.data = doc.field.value, doc.audience.value
        form.tags.data = "、".join(doc.tag_list)
        form.publish_from.data = doc.publish_from_dt.astimezone(JST).date().isoformat() if doc.publish_from_dt else ""
        form.publish_until.data = doc.publish_until.isoformat() if doc.publish_until else ""
        form.version.data = str(doc.version)
    conflict = None
    if form.validate_on_submit():
        try:
            service.update_document(db, actor, doc_id, form.to_input(), int(form.version.data or 0))
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        except Conflict as exc:
            db.rollback()
            conflict = {"message": exc.message, "current": service.get_document(db, actor, doc_id)}
        else:
            db.commit()
            flash("文書の情報を更新しました。", "success")
            return redirect(url_for("documents.show", doc_id=doc_id))
    return render_template("documents/edit.html", form=form, doc=doc, conflict=conflict)


@bp.route("/<int:doc_id>/versions", methods=("POST",))
@require(None)
def add_version(doc_id: int) -> Any:
    db, actor = get_session(), current_actor()
    form = VersionUploadForm()
    if form.validate_on_submit():
        upload = _upload(form)
        try:
            if upload is None:
                raise ValidationFailed([Problem("file", "ファイルを選択してください。")])
            version = service.add_version(db, actor, doc_id, upload, form.change_note.data or "", store(),
                                          expected_version=int(form.version.data) if (form.version.data or "").isdigit() else None,
                                          max_bytes=_max_bytes())
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        else:
            db.commit()
            doc = db.get(Document, doc_id)
            if doc is not None and doc.status is DocumentStatus.PUBLISHED:
                _send_notices(doc_id, "updated")
            flash(f"第{version.number}版を登録しました（最新版）。", "success")
            return redirect(url_for("documents.show", doc_id=doc_id))
    doc = service.get_document(db, actor, doc_id)
    return render_template("documents/show.html", doc=doc, manage=rules.can_manage(actor, service.facts(doc)),
                           was_unread=False, live=_is_live(doc), version_form=form, review_form=ReviewForm(formdata=None),
                           can_review=False), 422


@bp.route("/<int:doc_id>/publish", methods=("POST",))
@require(Permission.DOCUMENT_PUBLISH)
def publish(doc_id: int) -> Any:
    form = ReviewForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_session()
    service.publish_document(db, current_actor(), doc_id)
    db.commit()
    _send_notices(doc_id, "published")
    flash("文書を公開しました。", "success")
    return redirect(url_for("documents.show", doc_id=doc_id))


@bp.route("/<int:doc_id>/withdraw", methods=("POST",))
@require(Permission.DOCUMENT_PUBLISH)
def withdraw(doc_id: int) -> Any:
    form = ReviewForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_session()
    service.withdraw_document(db, current_actor(), doc_id)
    db.commit()
    flash("文書の公開を停止しました。閲覧・ダウンロードはできなくなりました。", "success")
    return redirect(url_for("documents.show", doc_id=doc_id))


@bp.route("/<int:doc_id>/review", methods=("POST",))
@require(Permission.PRACTICE_APPROVE)
def review(doc_id: int) -> Any:
    form = ReviewForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_session()
    try:
        service.review_practice(db, current_actor(), doc_id, form.decision.data == "approve", form.note.data or "")
    except ValidationFailed as exc:
        db.rollback()
        flash("；".join(p.message for p in exc.problems), "error")
        return redirect(url_for("documents.show", doc_id=doc_id))
    db.commit()
    flash("取組情報を承認し、公開しました。" if form.decision.data == "approve" else "取組情報を差し戻しました。", "success")
    return redirect(url_for("documents.show", doc_id=doc_id))


@bp.route("/<int:doc_id>/versions/<int:number>/download")
@require(Permission.DOCUMENT_READ)
def download(doc_id: int, number: int) -> Any:
    db = get_session()
    try:
        doc, version = service.get_version(db, current_actor(), doc_id, number)
    except NotFound:
        db.commit()  # keep the authz.denied audit entry
        raise
    try:
        data = store().read(version.storage_key)
    except FileNotFoundError:
        abort(404)
    if version.number == (doc.latest.number if doc.latest else 0):
        service.mark_read(db, current_actor(), doc, version.number)
        db.commit()
    return file_response(data, version.mime_type, version.display_name)


def file_response(data: bytes, mime_type: str, display_name: str) -> Response:
    """A download with the stored type, an RFC 5987 name and the file headers of FILE-06."""
    response = Response(data, mimetype=mime_type.split(";")[0])
    if "charset" in mime_type:
        response.headers["Content-Type"] = mime_type
    response.headers["Content-Disposition"] = content_disposition(display_name)
    response.headers["Content-Security-Policy"] = FILE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/subscriptions", methods=("GET", "POST"))
@require(Permission.DOCUMENT_READ)
def subscriptions() -> Any:
    db, actor = get_session(), current_actor()
    form = SubscriptionForm()
    all_ministries = ministries(db)
    form.ministries.choices = [(m.id, m.name) for m in all_ministries]
    if request.method == "GET":
        subs = service.subscriptions(db, actor)
        form.fields.data = [s.field.value for s in subs if s.field is not None]
        form.ministries.data = [s.ministry_id for s in subs if s.ministry_id is not None]
    if form.validate_on_submit():
        service.set_subscriptions(db, actor, [Field(v) for v in form.fields.data or []], list(form.ministries.data or []))
        db.commit()
        flash("購読の設定を保存しました。新着・更新はホーム画面に表示されます。", "success")
        return redirect(url_for("documents.index"))
    return render_template("documents/subscriptions.html", form=form, fields=FIELD_LABELS, ministries=all_ministries,
                           smtp=bool(current_app.config.get("SMTP_HOST")))


def _home_panel(session: Any, actor: Any) -> dict[str, Any] | None:
    if not can(actor, Permission.DOCUMENT_READ):
        return None
    docs, reads, subscribed = service.feed(session, actor)
    return {"title": "新着・更新された文書", "template": "documents/_home_panel.html", "docs": docs, "reads": reads,
            "subscribed": subscribed, "is_unread": service.is_unread}


home_panels.append(_home_panel)
