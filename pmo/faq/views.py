"""FAQ screens, the inquiry form with FAQ suggestions, answering, and turning an answer into a FAQ."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup

from pmo.accounts.permissions import Permission, can
from pmo.core import clock
from pmo.core.errors import Conflict, NotFound, ValidationFailed
from pmo.db import get_session
from pmo.faq import service
from pmo.faq.forms import ActionForm, AnswerForm, FaqForm, InquiryForm
from pmo.faq.models import CATEGORIES
from pmo.orgs.service import ministries
from pmo.search import service as search
from pmo.web.auth import current_actor, require
from pmo.web.forms import add_problems

bp = Blueprint("faq", __name__, url_prefix="/faq")


@bp.app_template_filter("safe_answer")
def safe_answer(html: str) -> Markup:
    """Answers are stored sanitised; sanitise again on output as defence in depth."""
    from pmo.faq.rules import sanitize_html

    return Markup(sanitize_html(html))


@bp.route("/")
@require(Permission.FAQ_READ)
def index() -> Any:
    db, actor = get_session(), current_actor()
    category = request.args.get("category") if request.args.get("category") in CATEGORIES else None
    text = (request.args.get("q") or "").strip()[:100] or None
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 10_000 else 1
    faqs, total = service.list_faqs(db, actor, category, text, include_drafts=True, page=page)
    return render_template("faq/index.html", faqs=faqs, total=total, page=page, per_page=service.FAQ_PAGE_SIZE,
                           category=category, text=text,
                           counts=service.category_counts(db), voted=service.voted(db, actor, [f.id for f in faqs]),
                           form=ActionForm(), can_manage=can(actor, Permission.FAQ_MANAGE),
                           can_ask=actor.body is not None and can(actor, Permission.INQUIRY_ASK, body=actor.body))


@bp.route("/<int:faq_id>")
@require(Permission.FAQ_READ)
def show(faq_id: int) -> Any:
    db, actor = get_session(), current_actor()
    faq = service.get_faq(db, actor, faq_id)
    from pmo.documents import service as documents

    related = []
    for link in faq.related:
        try:
            related.append(documents.get_document(db, actor, link.document_id))
        except NotFound:  # a related document the reader may not see is left out
            continue
    db.rollback()
    return render_template("faq/show.html", faq=faq, related=related, form=ActionForm(),
                           voted=faq.id in service.voted(db, actor, [faq.id]),
                           can_manage=can(actor, Permission.FAQ_MANAGE, ministry_id=faq.ministry_id))


@bp.route("/<int:faq_id>/helpful", methods=("POST",))
@require(Permission.FAQ_READ)
def helpful(faq_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    db = get_session()
    counted = service.vote_helpful(db, current_actor(), faq_id)
    db.commit()
    flash("「役に立った」を送信しました。ありがとうございます。" if counted else "このFAQには既に「役に立った」を送信済みです。",
          "success" if counted else "info")
    return redirect(request.referrer if (request.referrer or "").startswith(request.host_url) else url_for("faq.show", faq_id=faq_id))


@bp.route("/new", methods=("GET", "POST"))
@require(Permission.FAQ_MANAGE)
def new() -> Any:
    form = FaqForm()
    if form.validate_on_submit():
        db = get_session()
        try:
            faq = service.create_faq(db, current_actor(), form.to_input(), publish=request.form.get("publish") == "1")
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        else:
            db.commit()
            flash("FAQを登録しました。", "success")
            return redirect(url_for("faq.show", faq_id=faq.id))
    return render_template("faq/edit.html", form=form, faq=None, inquiry=None)


@bp.route("/<int:faq_id>/edit", methods=("GET", "POST"))
@require(Permission.FAQ_MANAGE)
def edit(faq_id: int) -> Any:
    db, actor = get_session(), current_actor()
    faq = service.get_faq(db, actor, faq_id)
    form = FaqForm()
    if request.method == "GET":
        form.category.data, form.question.data, form.answer_html.data = faq.category, faq.question, faq.answer_html
        form.source.data, form.version.data = faq.source, str(faq.version)
        form.related.data = ",".join(str(r.document_id) for r in faq.related)
    conflict = None
    if form.validate_on_submit():
        try:
            service.update_faq(db, actor, faq_id, form.to_input(), int(form.version.data or 0),
                               publish=request.form.get("publish") == "1")
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        except Conflict as exc:
            db.rollback()
            conflict = {"message": exc.message, "current": service.get_faq(db, actor, faq_id)}
        else:
            db.commit()
            flash("FAQを更新しました。", "success")
            return redirect(url_for("faq.show", faq_id=faq_id))
    return render_template("faq/edit.html", form=form, faq=faq, inquiry=None, conflict=conflict)


@bp.route("/suggest")
@require(Permission.FAQ_READ)
def suggest() -> Any:
    """JSON for the inquiry form: FAQs similar to what is being typed."""
    text = (request.args.get("q") or "")[:500]
    found = service.suggest(get_session(), text)
    return jsonify({"items": [{"id": f.id, "question": f.question, "category": f.category,
                               "url": url_for("faq.show", faq_id=f.id)} for f, _score in found]})


# --- inquiries ------------------------------------------------------------------------------------


@bp.route("/inquiries/")
@require(None)
def inquiries() -> Any:
    db, actor = get_session(), current_actor()
    if not (can(actor, Permission.INQUIRY_ANSWER) or can(actor, Permission.INQUIRY_ASK)):
        abort(403)
    officer = can(actor, Permission.INQUIRY_ANSWER)
    return render_template("faq/inquiries.html", officer=officer,
                           items=service.list_inquiries(db, actor),
                           by_age=service.unanswered_by_age(db, actor) if officer else [], today=clock.today())


@bp.route("/inquiries/new", methods=("GET", "POST"))
@require(Permission.INQUIRY_ASK)
def ask() -> Any:
    db = get_session()
    form = InquiryForm()
    all_ministries = ministries(db)
    form.ministry_id.choices = [(m.id, m.name) for m in all_ministries]
    if request.method == "GET":
        form.ministry_id.data = next((m.id for m in all_ministries if m.code == "mhlw"), None)
    if form.validate_on_submit():
        try:
            inquiry = service.ask(db, current_actor(), form.to_input(), int(current_app.config.get("INQUIRY_REPLY_DAYS", 14)))
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        else:
            db.commit()
            flash(f"問い合わせを送信しました。回答期限は{inquiry.due_date.month}月{inquiry.due_date.day}日です。", "success")
            return redirect(url_for("faq.inquiry", inquiry_id=inquiry.id))
    return render_template("faq/ask.html", form=form)


@bp.route("/inquiries/<int:inquiry_id>", methods=("GET", "POST"))
@require(None)
def inquiry(inquiry_id: int) -> Any:
    db, actor = get_session(), current_actor()
    item = service.get_inquiry(db, actor, inquiry_id)
    db.commit()
    form = AnswerForm()
    officer = can(actor, Permission.INQUIRY_ANSWER)
    if request.method == "POST":
        if not officer:
            abort(403)
        if form.validate_on_submit():
            try:
                service.answer(db, actor, inquiry_id, form.answer.data or "", int(form.version.data or 0))
            except Conflict as exc:
                db.rollback()
                flash(exc.message, "error")
            else:
                db.commit()
                flash("回答を送信しました。問い合わせた団体で確認できます。", "success")
                return redirect(url_for("faq.inquiry", inquiry_id=inquiry_id))
    else:
        form.answer.data = item.answer or ""
    form.version.data = str(item.version)
    return render_template("faq/inquiry.html", item=item, form=form, officer=officer, today=clock.today())


@bp.route("/inquiries/<int:inquiry_id>/to-faq", methods=("GET", "POST"))
@require(Permission.FAQ_MANAGE)
def to_faq(inquiry_id: int) -> Any:
    db, actor = get_session(), current_actor()
    item = service.get_inquiry(db, actor, inquiry_id)
    form = FaqForm()
    if request.method == "GET":
        draft = service.faq_draft_from(db, actor, inquiry_id)
        form.question.data, form.answer_html.data, form.category.data = draft.question, draft.answer_html, draft.category
        form.version.data = str(item.version)
    if form.validate_on_submit():
        try:
            faq = service.publish_as_faq(db, actor, inquiry_id, form.to_input(), int(form.version.data or 0))
        except ValidationFailed as exc:
            db.rollback()
            add_problems(form, exc)
        except Conflict as exc:
            db.rollback()
            flash(exc.message, "error")
        else:
            db.commit()
            flash("回答をFAQとして公開しました。", "success")
            return redirect(url_for("faq.show", faq_id=faq.id))
    return render_template("faq/edit.html", form=form, faq=None, inquiry=item)


@bp.route("/misses")
@require(Permission.FAQ_MANAGE)
def misses() -> Any:
    return render_template("faq/misses.html", misses=search.misses(get_session(), current_actor()))
